//! `require("treasure.cluster")`: the native JetStream transport of
//! cluster mode (crates/treasure-cluster) as Lua sees it: `connect(opts)`
//! and the link's methods `pump`, `flush`, `stats`, `close` (GC closes).
//!
//! As for the resolver, each raw function validates and converts, the
//! transport does the work, failures become `(ERR, message)` in
//! crate::error and the shim (`cluster.lua`) raises them as plain strings.
//! Message texts are `treasure_cluster::messages`'.
//! * `pump.rs` the one place that calls the resolver's record methods.

mod pump;

use std::time::Duration;

use mlua::{
    IntoLuaMulti, Lua, LuaSerdeExt, MultiValue, Table, UserData, UserDataFields, UserDataMethods,
    UserDataRefMut, Value,
};
use serde::Deserialize;
use treasure_cluster::messages::{self as msg, expected, ErrorKind, Function};
use treasure_cluster::{Config, Link, Storage};

use crate::error::{self, guarded_cluster, Fail};
use crate::resolver::{self, LendRefused};

const METHODS_KEY: &str = "treasure.cluster.methods";

/// The module table (`treasure.native`'s `_cluster`, which
/// lua/treasure/cluster.lua returns).
pub fn open(lua: &Lua, raise: Table) -> mlua::Result<Table> {
    let raw = lua.create_table()?;
    let m = lua.create_table()?;
    method(lua, &m, Function::Pump, pump_fn)?;
    method(lua, &m, Function::Flush, flush)?;
    method(lua, &m, Function::Stats, stats)?;
    m.set(
        "close",
        lua.create_function(|lua, s: Value| guarded_cluster(lua, Function::Close, || close(&s)))?,
    )?;
    raw.set("methods", m)?;
    raw.set(
        "connect",
        lua.create_function(|lua, opts: Value| {
            guarded_cluster(lua, Function::Connect, || connect(lua, &opts))
        })?,
    )?;
    let (module, methods): (Table, Table) = lua
        .load(include_str!("cluster.lua"))
        .set_name("=treasure.cluster")
        .call((raw, raise))?;
    lua.set_named_registry_value(METHODS_KEY, methods)?;
    Ok(module)
}

type RawMethod<R> = fn(&Lua, &mut LinkUd, &[Value]) -> Result<R, Fail>;

/// Registers a link method: checks `self` (a link, open) and runs `body`.
fn method<R: IntoLuaMulti + 'static>(
    lua: &Lua,
    t: &Table,
    f: Function,
    body: RawMethod<R>,
) -> mlua::Result<()> {
    let func = lua.create_function(move |lua, (s, rest): (Value, MultiValue)| {
        guarded_cluster(lua, f, || {
            let mut link = this(f, &s)?;
            if link.link.as_ref().is_none_or(|l| !l.is_open()) {
                return Err(Fail::Cluster(msg::Error::closed(f)));
            }
            let rest: Vec<Value> = rest.into_iter().collect();
            body(lua, &mut link, &rest)
        })
    })?;
    t.set(f.name().trim_start_matches("cluster."), func)
}

/// A link as Lua sees it; `None` once closed.
struct LinkUd {
    link: Option<Link>,
    held: pump::Held,
}

impl UserData for LinkUd {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| {
            lua.named_registry_value::<Table>(METHODS_KEY)
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method("__tostring", |_, this, ()| {
            Ok(match &this.link {
                Some(l) => format!(
                    "treasure.cluster link (shard {} of {}, stream {})",
                    l.config().shard,
                    l.config().shards,
                    l.config().stream
                ),
                None => "treasure.cluster link (closed)".to_owned(),
            })
        });
    }
}

fn this(f: Function, v: &Value) -> Result<UserDataRefMut<LinkUd>, Fail> {
    let wrong = |got: &str| Fail::Cluster(msg::Error::wrong_type(f, "self", expected::LINK, got));
    match v {
        Value::UserData(ud) => ud.borrow_mut::<LinkUd>().map_err(|e| {
            if error::is_finalized(&e) {
                Fail::Cluster(msg::Error::closed(f))
            } else {
                wrong("userdata")
            }
        }),
        other => Err(wrong(error::type_name(other))),
    }
}

/// `connect`'s options (serde, unknown keys refused). Numbers arrive as
/// Lua numbers and are checked as exact integers in their ranges below.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectOpts {
    url: Option<String>,
    stream: Option<String>,
    shard: Option<f64>,
    shards: Option<f64>,
    from: Option<f64>,
    storage: Option<String>,
    duplicate_window_ms: Option<f64>,
    connect_timeout_ms: Option<f64>,
    ack_timeout_ms: Option<f64>,
    max_in_flight: Option<f64>,
    max_unacked: Option<f64>,
    /// Test hook: every k-th record published twice, same Msg-Id.
    duplicate_every: Option<f64>,
    /// Test hook: every k-th record published twice, another Msg-Id.
    duplicate_raw_every: Option<f64>,
}

/// An exact integer in [lo, hi], or the range message (`got` as Lua's
/// `tostring` shows the number).
fn int(lua: &Lua, f: Function, arg: &str, v: f64, lo: u64, hi: u64) -> Result<u64, Fail> {
    if v.fract() == 0.0 && v >= lo as f64 && v <= hi as f64 {
        return Ok(v as u64);
    }
    let got = error::describe(lua, &Value::Number(v));
    Err(Fail::Cluster(msg::Error::out_of_range(f, arg, lo, hi, got)))
}

fn connect(lua: &Lua, opts: &Value) -> Result<LinkUd, Fail> {
    let f = Function::Connect;
    if !matches!(opts, Value::Table(_)) {
        let got = error::type_name(opts);
        return Err(Fail::Cluster(msg::Error::wrong_type(
            f,
            "opts",
            expected::TABLE,
            got,
        )));
    }
    let o: ConnectOpts = lua
        .from_value(opts.clone())
        .map_err(|e| error::cluster_lua(f, true, e))?;
    let mut cfg = Config::default();
    let need = |v: Option<f64>, name| v.ok_or(error::cluster(f, ErrorKind::Missing(name)));
    let shard = need(o.shard, "shard")?;
    let shards = need(o.shards, "shards")?;
    let (smin, smax) = (msg::SHARD_MIN as u64, msg::SHARD_MAX as u64);
    cfg.shard = int(lua, f, "opts.shard", shard, smin, smax)? as u16;
    let (nmin, nmax) = (msg::SHARDS_MIN as u64, msg::SHARDS_MAX as u64);
    cfg.shards = int(lua, f, "opts.shards", shards, nmin, nmax)? as u16;
    if let Some(url) = o.url {
        cfg.url = url;
    }
    if let Some(stream) = o.stream {
        cfg.stream = stream;
    }
    if let Some(v) = o.from {
        cfg.from = int(lua, f, "opts.from", v, 0, msg::POSITION_MAX)?;
    }
    if let Some(s) = o.storage {
        cfg.storage = Storage::parse(&s).ok_or(error::cluster(f, ErrorKind::BadStorage(s)))?;
    }
    let ms = |v: Option<f64>, name: &str| -> Result<Option<Duration>, Fail> {
        v.map(|v| int(lua, f, name, v, 1, msg::OPTION_MS_MAX).map(Duration::from_millis))
            .transpose()
    };
    if let Some(d) = ms(o.duplicate_window_ms, "opts.duplicate_window_ms")? {
        cfg.duplicate_window = d;
    }
    if let Some(d) = ms(o.connect_timeout_ms, "opts.connect_timeout_ms")? {
        cfg.connect_timeout = d;
    }
    if let Some(d) = ms(o.ack_timeout_ms, "opts.ack_timeout_ms")? {
        cfg.ack_timeout = d;
    }
    if let Some(v) = o.max_in_flight {
        cfg.max_in_flight =
            int(lua, f, "opts.max_in_flight", v, 1, msg::MAX_IN_FLIGHT_MAX)? as usize;
    }
    if let Some(v) = o.max_unacked {
        cfg.max_unacked = int(lua, f, "opts.max_unacked", v, 1, msg::MAX_UNACKED_MAX)?;
    }
    if let Some(v) = o.duplicate_every {
        cfg.duplicate_every = int(lua, f, "opts.duplicate_every", v, 0, msg::POSITION_MAX)?;
    }
    if let Some(v) = o.duplicate_raw_every {
        cfg.duplicate_raw_every = int(lua, f, "opts.duplicate_raw_every", v, 0, msg::POSITION_MAX)?;
    }
    let link = Link::connect(cfg)?;
    Ok(LinkUd {
        link: Some(link),
        held: pump::Held::default(),
    })
}

/// `link:pump(r)` -> sent, applied.
fn pump_fn(_: &Lua, l: &mut LinkUd, a: &[Value]) -> Result<(f64, f64), Fail> {
    let f = Function::Pump;
    let r = a.first().unwrap_or(&Value::Nil);
    let LinkUd { link, held } = l;
    let link = link.as_mut().ok_or(Fail::Cluster(msg::Error::closed(f)))?;
    let out = resolver::lend(r, |core| pump::pump(held, link, core)).map_err(|why| {
        error::cluster(
            f,
            match why {
                LendRefused::NotAResolver(got) => {
                    return Fail::Cluster(msg::Error::wrong_type(f, "r", expected::RESOLVER, got))
                }
                LendRefused::Closed => ErrorKind::ResolverClosed,
                LendRefused::Foreign { created, used } => {
                    ErrorKind::ResolverForeign { created, used }
                }
                LendRefused::InCall => ErrorKind::ResolverInCall,
            },
        )
    })?;
    let (sent, applied) = out?;
    Ok((sent as f64, applied as f64))
}

/// `link:flush([timeout_ms])` -> true | nil, "timeout".
fn flush(lua: &Lua, l: &mut LinkUd, a: &[Value]) -> Result<MultiValue, Fail> {
    let f = Function::Flush;
    let timeout = match a.first().unwrap_or(&Value::Nil) {
        Value::Nil => msg::FLUSH_TIMEOUT_MS_DEFAULT,
        Value::Integer(i) => int(
            lua,
            f,
            "timeout_ms",
            *i as f64,
            0,
            msg::FLUSH_TIMEOUT_MS_MAX,
        )?,
        Value::Number(n) => int(lua, f, "timeout_ms", *n, 0, msg::FLUSH_TIMEOUT_MS_MAX)?,
        other => {
            let got = error::type_name(other).to_owned();
            let max = msg::FLUSH_TIMEOUT_MS_MAX;
            return Err(Fail::Cluster(msg::Error::out_of_range(
                f,
                "timeout_ms",
                0,
                max,
                got,
            )));
        }
    };
    let link = l
        .link
        .as_ref()
        .ok_or(Fail::Cluster(msg::Error::closed(f)))?;
    let done = link.flush(Duration::from_millis(timeout));
    let lua_err = |e| error::cluster_lua(f, false, e);
    if done {
        true.into_lua_multi(lua).map_err(lua_err)
    } else {
        (Value::Nil, "timeout").into_lua_multi(lua).map_err(lua_err)
    }
}

/// `link:stats()` -> the transport's counters and pump's.
fn stats(lua: &Lua, l: &mut LinkUd, _: &[Value]) -> Result<Table, Fail> {
    let f = Function::Stats;
    let link = l
        .link
        .as_ref()
        .ok_or(Fail::Cluster(msg::Error::closed(f)))?;
    let s = link.stats();
    let h = &l.held;
    let build = || -> mlua::Result<Table> {
        let t = lua.create_table_with_capacity(0, 20)?;
        let n = |v: u64| v as f64;
        t.raw_set("queued", n(s.queued))?;
        t.raw_set("published", n(s.published))?;
        t.raw_set("acked", n(s.acked))?;
        t.raw_set("retries", n(s.retries))?;
        t.raw_set("duplicates", n(s.duplicates))?;
        t.raw_set("received", n(s.received))?;
        t.raw_set("buffered", n(s.buffered))?;
        t.raw_set("consumers", n(s.consumers))?;
        t.raw_set("errors", n(s.errors))?;
        t.raw_set("disconnects", n(s.disconnects))?;
        t.raw_set("last_seq", n(s.last_seq))?;
        t.raw_set("held", h.held() as f64)?;
        t.raw_set("sent", n(h.sent))?;
        t.raw_set("applied", n(h.applied))?;
        t.raw_set("messages", n(h.messages))?;
        t.raw_set("gaps", n(h.gaps))?;
        t.raw_set("busy", n(h.busy))?;
        t.raw_set("deferred", n(h.deferred))?;
        Ok(t)
    };
    build().map_err(|e| error::cluster_lua(f, false, e))
}

/// `link:close()`: stops the transport thread (unacked records are
/// dropped: flush first). Idempotent.
fn close(s: &Value) -> Result<(), Fail> {
    let mut l = match this(Function::Close, s) {
        Ok(l) => l,
        // Already finalized: closed.
        Err(Fail::Cluster(e)) if e.kind == ErrorKind::Closed => return Ok(()),
        Err(e) => return Err(e),
    };
    if let Some(mut link) = l.link.take() {
        link.close();
    }
    Ok(())
}
