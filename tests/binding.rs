//! Binding tests that need no Lua on the machine: they link the vendored
//! LuaJIT (the crate's default features), install the module with
//! `package.preload`, and drive it from Lua exactly as a game script would.
//! The full behavioural suite (busted, both backends) and the differential
//! test run against the real cdylib in `make test`.

use mlua::{Lua, Table};

fn lua_with_module() -> Lua {
    // SAFETY-free: unsafe_new only because the tests need LuaJIT's `ffi`
    // library, which mlua treats as unsafe.
    let lua = unsafe { Lua::unsafe_new() };
    let open = lua
        .create_function(|lua, ()| treasure_native::open(lua))
        .expect("create loader");
    let preload: Table = lua
        .globals()
        .get::<Table>("package")
        .and_then(|p| p.get("preload"))
        .expect("package.preload");
    preload.set("treasure.native", open).expect("preload");
    lua
}

fn run(lua: &Lua, script: &str) {
    if let Err(e) = lua.load(script).exec() {
        panic!("script failed:\n{e}");
    }
}

const PRELUDE: &str = r#"
local N = require("treasure.native")
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  assert(type(e) == "string", "errors must be plain strings, got " .. type(e))
  return e
end
local function eq(a, b) if a ~= b then error(("expected %q, got %q"):format(tostring(b), tostring(a)), 2) end end
"#;

#[test]
fn module_shape() {
    let lua = lua_with_module();
    run(
        &lua,
        &format!(
            "{PRELUDE}
        eq(N.backend, 'native')
        assert(N._VERSION:match('^treasure %d+%.%d+%.%d+$'), N._VERSION)
        local a, b = N.new(), N.new()
        assert(a ~= b)
        a:join(1, 0, 0, 0)
        eq(a:stats().players, 1)
        eq(b:stats().players, 0)
        "
        ),
    );
}

#[test]
fn errors_are_exact_strings_and_change_nothing() {
    let lua = lua_with_module();
    run(
        &lua,
        &format!(
            "{PRELUDE}
        local r = N.new({{ aoi_radius = 4, reach = 2 }})
        eq(err_of(r.dig, nil, 1, 0, 0, 0, 0), 'treasure: dig: self must be a resolver, got nil')
        eq(err_of(r.dig, {{}}, 1, 0, 0, 0, 0), 'treasure: dig: self must be a resolver, got table')
        eq(err_of(r.join, r, 1, 1.5, 0, 0), 'treasure: join: x must be an integer in [-1048576, 1048575], got 1.5')
        eq(err_of(r.join, r, 1, 0/0, 0, 0):match('got (.*)$'), tostring(0/0))
        eq(err_of(r.join, r, 1, 1/0, 0, 0), 'treasure: join: x must be an integer in [-1048576, 1048575], got inf')
        eq(err_of(r.join, r, '1', 0, 0, 0), 'treasure: join: player must be an integer in [1, 4294967295], got string')
        eq(err_of(r.join, r, 1, 0, 0, 0, -1), 'treasure: join: party must be an integer in [0, 4294967295], got -1')
        eq(err_of(N.new, {{ sede = 1 }}), \"treasure: new: opts has unknown key 'sede'\")
        eq(err_of(N.new, 'x'), 'treasure: new: opts must be a table, got string')
        eq(err_of(N.new, {{ aoi_radius = -1 }}), 'treasure: new: opts.aoi_radius must be an integer in [0, 1048576], got -1')
        eq(err_of(r.add_loot_table, r, 1, {{}}), 'treasure: add_loot_table: entries must be a non-empty array of tables, got table')
        eq(err_of(r.add_loot_table, r, 1, {{ {{ item = 1, wieght = 1, min = 0, max = 0, rarity = 0 }} }}),
           \"treasure: add_loot_table: entries[1] has unknown key 'wieght'\")
        eq(err_of(r.add_loot_table, r, 1, {{ {{ item = 1, weight = 1, min = 5, max = 3, rarity = 0 }} }}),
           'treasure: add_loot_table: entries[1].min must be <= max, got 5 > 3')
        eq(err_of(r.dig, r, 9, 0, 0, 0, 0), 'treasure: dig: player must have joined, got 9')
        eq(err_of(r.dig_batch, r, {{}}), 'treasure: dig_batch: records must be a string, got table')
        eq(err_of(r.dig_batch, r, ('x'):rep(25)), 'treasure: dig_batch: records length must be a multiple of 24, got 25')
        local s = r:stats()
        eq(s.players, 0); eq(s.digs, 0)
        r:close()
        r:close()
        eq(err_of(r.dig, r, 1, 0, 0, 0, 0), 'treasure: dig: resolver is closed')
        "
        ),
    );
}

#[test]
fn dig_poll_and_poll_into_agree() {
    let lua = lua_with_module();
    run(
        &lua,
        &format!(
            "{PRELUDE}
        local ffi = require('ffi')
        local function world()
          local r = N.new({{ seed = 7, aoi_radius = 16, reach = 4, workers = 2 }})
          r:add_loot_table(1, {{ {{ item = 100, weight = 3, min = 1, max = 5, rarity = 0 }},
                                 {{ item = 200, weight = 1, min = 1, max = 1, rarity = 3 }} }})
          r:add_site(10, 0, 0, 0, 1, 2)
          r:join(1, 1, 0, 0, 5); r:join(2, 3, 0, 0); r:join(3, 900, 0, 900, 5)
          eq(r:dig(1, 0, 0, 0, 123456), 1)
          eq(r:dig(2, 0, 0, 0, 123457), 2)
          eq(r:dig(2, 0, 0, 0, 123458), 3)   -- site depleted: EMPTY
          r:flush()
          return r
        end
        local a = world()
        local n, bytes = a:poll()
        eq(n, 3 + 2 + 1); eq(#bytes, n * 128)   -- dig 2: player 2 has no party
        eq(bytes:sub(1, 4), 'TRSR')
        local b = world()
        local buf = ffi.new('uint8_t[?]', 16 * 128)
        local m = b:poll_into(buf, 16)
        eq(m, n)
        eq(ffi.string(buf, m * 128), bytes)
        eq(b:poll_into(buf, 16), 0)
        local small = ffi.new('uint8_t[?]', 4 * 128 + 5)
        eq(err_of(b.poll_into, b, small, 5), 'treasure: poll_into: max must be at most 4 (the packets buf holds), got 5')
        eq(err_of(b.poll_into, b, ffi.cast('const uint8_t*', small), 1), 'treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got cdata<const unsigned char *>')
        eq(err_of(b.poll_into, b, {{}}, 1), 'treasure: poll_into: buf must be a uint8_t array, uint8_t * or void * cdata, got table')
        local fixed = ffi.new('uint8_t[256]')
        eq(b:poll_into(fixed, 2), 0)
        "
        ),
    );
}

#[test]
fn busy_refuses_and_recovers() {
    let lua = lua_with_module();
    run(
        &lua,
        &format!(
            "{PRELUDE}
        local r = N.new({{ max_pending_packets = 2, reach = 0 }})
        r:join(1, 0, 0, 0)
        eq(r:dig(1, 5, 0, 0, 1), 1)   -- REJECTED: 1 packet
        eq(r:dig(1, 5, 0, 0, 2), 2)   -- pending 1 <= 2: accepted
        eq(r:dig(1, 5, 0, 0, 3), 3)   -- pending 2 <= 2: accepted
        local s, why = r:dig(1, 5, 0, 0, 4)
        eq(s, nil); eq(why, 'busy')
        local f, w2 = r:dig_batch(('\\0'):rep(0))
        eq(f, nil); eq(w2, 'busy')
        eq(r:stats().busy, 2)
        r:flush()
        local n = r:poll()
        eq(n, 3)
        eq(r:dig(1, 5, 0, 0, 5), 4)
        "
        ),
    );
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a line, without a `//` comment (good enough for this
/// source: no string literal of src/ contains `//` followed by `unsafe`).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// Issue 13 item 4, as a test of the class: unsafe code exists only in
/// src/ffi/ (the crate root denies it everywhere else and allows it for
/// `mod ffi` alone), every unsafe block or impl there has a `// SAFETY:`
/// comment right above it, and every unsafe fn has a `# Safety` section.
#[test]
fn unsafe_lives_only_in_src_ffi() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() >= 10, "found {} files under src", files.len());
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    assert!(
        lib.contains("#![deny(unsafe_code)]"),
        "src/lib.rs must deny unsafe_code"
    );
    let allows: Vec<&str> = lib
        .lines()
        .filter(|l| code(l).contains("allow(unsafe_code)"))
        .collect();
    assert_eq!(allows, ["#[allow(unsafe_code)]"], "one allow, for mod ffi");
    assert!(
        lib.contains("#[allow(unsafe_code)]\nmod ffi;"),
        "the allow is for mod ffi"
    );
    let mut checked_blocks = 0;
    let mut checked_fns = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(&src).unwrap().display().to_string();
        let lines: Vec<&str> = text.lines().collect();
        if !rel.starts_with("ffi/") {
            for (i, l) in lines.iter().enumerate() {
                let c = code(l);
                if rel == "lib.rs" && (c.contains("unsafe_code)]")) {
                    continue;
                }
                assert!(
                    !c.contains("unsafe"),
                    "src/{rel}:{}: unsafe outside src/ffi: {l}",
                    i + 1
                );
            }
            continue;
        }
        for (i, l) in lines.iter().enumerate() {
            let c = code(l);
            let above = || {
                lines[..i]
                    .iter()
                    .rev()
                    .take_while(|p| {
                        let t = p.trim_start();
                        t.starts_with("//") || t.starts_with("#[")
                    })
                    .map(|p| p.trim_start())
                    .collect::<Vec<_>>()
            };
            if c.contains("unsafe {") || c.contains("unsafe impl") {
                checked_blocks += 1;
                assert!(
                    above().iter().any(|p| p.starts_with("// SAFETY:")),
                    "src/{rel}:{}: unsafe without a // SAFETY: comment right above",
                    i + 1
                );
            }
            if c.contains("unsafe fn") || (c.contains("unsafe extern") && c.contains(" fn ")) {
                checked_fns += 1;
                assert!(
                    above().iter().any(|p| p.starts_with("/// # Safety")),
                    "src/{rel}:{}: unsafe fn without a # Safety section",
                    i + 1
                );
            }
        }
    }
    assert!(
        checked_blocks >= 8 && checked_fns >= 5,
        "{checked_blocks} blocks, {checked_fns} fns"
    );
}

/// Issue 13 item 3, as a test of the class: the binding's messages and
/// limits are the core's (`treasure_core::contract`). No src/ file spells
/// a `treasure: <fn>: ...` message or a contract bound itself.
#[test]
fn binding_restates_no_message_or_limit() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let bounds = [
        "1048575",
        "1_048_575",
        "1048576",
        "1_048_576",
        "4294967295",
        "4_294_967_295",
        "9007199254740991",
        "9_007_199_254_740_991",
        "9007199254740992",
    ];
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // A file's unit tests may use such numbers as inputs.
        let text = text.split("#[cfg(test)]").next().unwrap();
        let rel = f.strip_prefix(&src).unwrap().display();
        for (i, l) in text.lines().enumerate() {
            let c = code(l);
            assert!(
                !c.contains("\"treasure: "),
                "src/{rel}:{}: message text: {l}",
                i + 1
            );
            for b in bounds {
                assert!(
                    !c.contains(b),
                    "src/{rel}:{}: restated bound {b}: {l}",
                    i + 1
                );
            }
        }
    }
}
