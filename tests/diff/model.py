#!/usr/bin/env python3
"""tests/diff/model.py: an independent, deliberately simple reading of
docs/API.md (contract v1) and the packet layout, checked against a trace
written by `luajit tests/diff/run.lua --trace FILE`.

For every recorded call it computes its own outcome (success + results, or
the exact error message) and compares it with every backend's recorded
outcome: same success/failure, same error text, same seq / busy answers,
byte-identical packets from poll/poll_into and the final drain, same stats.

Stdlib only. Brute force everywhere (every dig scans every player).

usage: python3 tests/diff/model.py TRACE.jsonl [--max-report N]
prints `model: N passed, M failed` (N = sequences) and exits 0 iff all passed.
"""
import json
import math
import struct
import sys

U32 = 4294967295
MAX53 = 9007199254740991
CMIN, CMAX = -1048576, 1048575

# ------------------------------------------------------------------ values


class Table:
    """a Lua table built from ordered (key, value) pairs"""

    def __init__(self, pairs):
        self.pairs = pairs

    def get(self, key):
        for k, v in self.pairs:
            if k == key and type(k) is type(key):
                return v
        return None


class Buf:
    def __init__(self, kind, size):
        self.kind, self.size = kind, size


class Fn:
    pass


class I64:
    def __init__(self, v):
        self.v = v


def dec(v):
    """decode a trace value"""
    if v is None:
        return None
    tag = v[0]
    if tag == "n":
        return float(v[1])
    if tag == "s":
        return bytes.fromhex(v[1])
    if tag == "b":
        return bool(v[1])
    if tag == "t":
        return Table([(dec(k), dec(x)) for k, x in v[1]])
    if tag == "buf":
        return Buf(v[1], v[2])
    if tag == "fn":
        return Fn()
    if tag == "i64":
        return I64(v[1])
    raise ValueError("unknown trace value %r" % (v,))


def buf_text(v):
    """How poll_into names a refused buffer: its ctype for cdata (issue 12)."""
    if isinstance(v, Buf):
        return {
            "int32": "cdata<int [?]>",
            "ptr": "cdata<unsigned char *>",
            "const": "cdata<const unsigned char [%d]>" % v.size,
            "ctype": "ctype<unsigned char [%d]>" % v.size,
            "ctype_vla": "ctype<unsigned char [?]>",
        }[v.kind]
    if isinstance(v, I64):
        return "cdata<int64_t>"
    return typename(v)


def typename(v):
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, float):
        return "number"
    if isinstance(v, bytes):
        return "string"
    if isinstance(v, Table):
        return "table"
    if isinstance(v, (Buf, I64)):
        return "cdata"
    if isinstance(v, Fn):
        return "function"
    raise TypeError(v)


def luanum(v):
    """LuaJIT tostring() of a number"""
    if v != v:
        return "nan"
    if v == math.inf:
        return "inf"
    if v == -math.inf:
        return "-inf"
    return "%.14g" % v


def shown(v):
    """<value> in an error message"""
    if isinstance(v, float):
        return luanum(v)
    return typename(v)


class LuaError(Exception):
    pass


def fail(fn, text):
    raise LuaError("treasure: %s: %s" % (fn, text))


def check_int(fn, name, v, lo, hi, allow_nil=False):
    if v is None and allow_nil:
        return None
    if isinstance(v, float) and math.isfinite(v) and v == math.floor(v) and lo <= v <= hi:
        return int(v)
    fail(fn, "%s must be an integer in [%d, %d], got %s" % (name, lo, hi, shown(v)))


# ------------------------------------------------------------------ packets


def _crc_table():
    tab = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        tab.append(c)
    return tab


CRC_TAB = _crc_table()


def _crc_table16():
    """two bytes per step: T16[i] is the register after the two bytes of i (low first) from register i"""
    t = CRC_TAB
    out = []
    for i in range(65536):
        r = t[i & 0xFF] ^ (i >> 8)
        out.append(t[r & 0xFF] ^ (r >> 8))
    return out


CRC_TAB16 = _crc_table16()


def crc32c(data):
    c = 0xFFFFFFFF
    t16 = CRC_TAB16
    n = len(data) & ~1
    for w in memoryview(data[:n]).cast("H"):
        c = t16[(c ^ w) & 0xFFFF] ^ (c >> 16)
    if n < len(data):
        c = CRC_TAB[(c ^ data[-1]) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc32c_bitwise(data):  # used once at start-up to cross-check the table
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF


M64 = (1 << 64) - 1


def splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


PKT = struct.Struct("<4sHBBQQIIIIiiiIHBBIQI48s")
assert PKT.size == 124


def packet(kind, flags, seq, t_us, site, finder, recipient, party, x, y, z, item, qty, rarity, charges_left, roll, d2):
    body = PKT.pack(b"TRSR", 1, kind, flags, seq, t_us, site, finder, recipient, party, x, y, z,
                    item, qty, rarity, 0, charges_left, roll, min(d2, U32), bytes(48))
    return body + struct.pack("<I", crc32c(body))


def decode_packet(b):
    if len(b) < 128:
        return "<%d bytes>" % len(b)
    f = PKT.unpack(b[:124])
    names = ["magic", "ver", "kind", "flags", "seq", "t_us", "site", "finder", "recipient", "party", "x", "y", "z",
             "item", "qty", "rarity", "pad", "charges_left", "roll", "dist2"]
    d = dict(zip(names, f))
    d["magic"] = d["magic"].decode("latin-1")
    d["crc"] = "0x%08x" % struct.unpack("<I", b[124:128])[0]
    return " ".join("%s=%s" % kv for kv in d.items())


# ------------------------------------------------------------------ resolver

OPT_KEYS = [("seed", 0, MAX53, 0), ("aoi_radius", 0, 1048576, 64), ("reach", 0, 1048576, 8),
            ("workers", 0, 256, 0), ("max_pending_packets", 1, MAX53, 1048576)]
ENTRY_FIELDS = [("item", 1, U32), ("weight", 1, U32), ("min", 0, 65535), ("max", 0, 65535), ("rarity", 0, 255)]


def keyname(k):
    if isinstance(k, bytes):
        return k.decode("latin-1")
    return shown(k)


def check_opts(opts):
    fn = "new"
    if opts is None:
        out = {k: d for k, _, _, d in OPT_KEYS}
        out["shard"] = out["shards"] = None
        return out
    if not isinstance(opts, Table):
        fail(fn, "opts must be a table, got %s" % typename(opts))
    known = {k for k, _, _, _ in OPT_KEYS} | {"shard", "shards"}
    for k, _ in opts.pairs:
        if not (isinstance(k, bytes) and k.decode("latin-1") in known):
            fail(fn, "opts has unknown key '%s'" % keyname(k))
    out = {}
    for k, lo, hi, d in OPT_KEYS:
        v = opts.get(k.encode())
        out[k] = d if v is None else check_int(fn, "opts." + k, v, lo, hi)
    # issue 17 (docs/API.md "Cluster mode"): after the five, `shard`'s range
    # when given, then `shards`' range when given, then both or neither, then shard < shards
    shard, shards = opts.get(b"shard"), opts.get(b"shards")
    if shard is not None:
        shard = check_int(fn, "opts.shard", shard, 0, 65534)
    if shards is not None:
        shards = check_int(fn, "opts.shards", shards, 1, 65535)
    if shard is not None and shards is None:
        fail(fn, "opts.shards must be given with opts.shard, got nil")
    if shard is None and shards is not None:
        fail(fn, "opts.shard must be given with opts.shards, got nil")
    if shard is not None and shard >= shards:
        fail(fn, "opts.shard must be below opts.shards (%d), got %d" % (shards, shard))
    out["shard"], out["shards"] = shard, shards
    return out


def lua_len(t):
    """the border of a table without holes: the largest n with 1..n all present"""
    n = 0
    while t.get(float(n + 1)) is not None:
        n += 1
    return n


class Model:
    def __init__(self, opts):
        self.seed = opts["seed"]
        self.aoi = opts["aoi_radius"]
        self.reach = opts["reach"]
        self.max_pending = opts["max_pending_packets"]
        self.closed = False
        self.tables = {}   # id -> (entries, total)
        self.sites = {}    # id -> [x, y, z, table, charges]
        self.blocks = {}   # (x, y, z) -> site id
        self.players = {}  # id -> [x, y, z, party]
        self.next_seq = 1
        self.queue = []    # undelivered packets (bytes), head first
        self.head = 0
        self.c = dict(digs=0, packets=0, found=0, empty=0, nothing=0, rejected=0, busy=0)
        # issue 17 cluster mode
        self.shard, self.shards = opts.get("shard"), opts.get("shards")
        self.cluster = self.shard is not None
        self.hosts = {}        # player -> host shard
        self.call_digs = None  # the digs of the dig call being resolved: [(seq, fields, {dest: [recipient slots]})]
        self.outgoing = []     # [(record bytes, recipient count)] cut, not yet taken
        self.sent = {}         # dest -> `to` of the last record cut for it
        self.applied = {}      # src -> highest owner seq covered
        self.next_host_seq = 1
        self.log_position = 0
        self.cc = dict(applied_digs=0, duplicate_digs=0, records_out=0, records_in=0)

    # -- helpers
    def pending(self):
        return len(self.queue) - self.head

    def take(self, n):
        out = self.queue[self.head:self.head + n]
        self.head += len(out)
        if self.head > 4096 and self.head * 2 > len(self.queue):
            self.queue = self.queue[self.head:]
            self.head = 0
        return len(out), b"".join(out)

    def coords(self, fn, x, y, z, prefix=""):
        return (check_int(fn, prefix + "x", x, CMIN, CMAX), check_int(fn, prefix + "y", y, CMIN, CMAX),
                check_int(fn, prefix + "z", z, CMIN, CMAX))

    def joined(self, fn, p, name="player"):
        if p not in self.players:
            fail(fn, "%s must have joined, got %d" % (name, p))

    # -- dig resolution
    def resolve(self, p, bx, by, bz, t):
        seq = self.next_seq
        self.next_seq += 1
        px, py, pz, party = self.players[p]
        d2 = (px - bx) ** 2 + (py - by) ** 2 + (pz - bz) ** 2
        site = item = qty = rarity = left = roll = 0
        recips = [p]
        last = 0
        if d2 > self.reach * self.reach:
            kind = 4
        elif (bx, by, bz) not in self.blocks:
            kind = 3
        else:
            site = self.blocks[(bx, by, bz)]
            s = self.sites[site]
            if s[4] == 0:
                kind = 2
            else:
                kind = 1
                before = s[4]
                roll = splitmix64(self.seed ^ (site << 32) ^ before)
                entries, total = self.tables[s[3]]
                pick = roll % total
                acc = 0
                for e in entries:
                    acc += e[1]
                    if acc > pick:
                        break
                item, rarity = e[0], e[4]
                qty = e[2] + ((roll >> 40) % (e[3] - e[2] + 1))
                s[4] = before - 1
                left = s[4]
                last = 4 if before == 1 else 0
                r2 = self.aoi * self.aoi
                rs = {p}
                for q, (qx, qy, qz, qparty) in self.players.items():
                    if (qx - bx) ** 2 + (qy - by) ** 2 + (qz - bz) ** 2 <= r2:
                        rs.add(q)
                    elif party != 0 and qparty == party:
                        rs.add(q)
                recips = sorted(rs)
        self.c["digs"] += 1
        self.c[{1: "found", 2: "empty", 3: "nothing", 4: "rejected"}[kind]] += 1
        if self.cluster:
            by_dest = {}
            for q in recips:
                qx, qy, qz, qparty = self.players[q]
                rf = 1 if q == p else (2 if party != 0 and qparty == party else 0)
                qd2 = (qx - bx) ** 2 + (qy - by) ** 2 + (qz - bz) ** 2
                by_dest.setdefault(self.hosts[q], []).append((q, min(qd2, U32), rf))
            fields = (t, kind, last, rarity, qty, site, p, party, bx, by, bz, item, left, roll)
            self.call_digs.append((seq, fields, by_dest))
            return seq
        for q in recips:
            qx, qy, qz, qparty = self.players[q]
            flags = last
            if q == p:
                flags |= 1
            elif party != 0 and qparty == party:
                flags |= 2
            qd2 = (qx - bx) ** 2 + (qy - by) ** 2 + (qz - bz) ** 2
            self.queue.append(packet(kind, flags, seq, t, site, p, q, party, bx, by, bz, item, qty, rarity, left,
                                     roll, qd2))
        self.c["packets"] += len(recips)
        return seq

    # -- methods; each returns a tuple of results or raises LuaError
    def add_loot_table(self, fn, id_=None, entries=None, *_):
        tid = check_int(fn, "id", id_, 1, U32)
        shape = "entries must be a non-empty array of tables, got %s"
        if not isinstance(entries, Table):
            fail(fn, shape % typename(entries))
        n = lua_len(entries)
        if n == 0:
            fail(fn, shape % "table")
        for k, _ in entries.pairs:
            if not (isinstance(k, float) and k == math.floor(k) and 1 <= k <= n):
                fail(fn, shape % "table")
        out = []
        total = 0
        for i in range(1, n + 1):
            e = entries.get(float(i))
            if not isinstance(e, Table):
                fail(fn, "entries[%d] must be a table, got %s" % (i, typename(e)))
            names = {f for f, _, _ in ENTRY_FIELDS}
            for k, _ in e.pairs:
                if not (isinstance(k, bytes) and k.decode("latin-1") in names):
                    fail(fn, "entries[%d] has unknown key '%s'" % (i, keyname(k)))
            vals = []
            for f, lo, hi in ENTRY_FIELDS:
                vals.append(check_int(fn, "entries[%d].%s" % (i, f), e.get(f.encode()), lo, hi))
            if vals[2] > vals[3]:
                fail(fn, "entries[%d].min must be <= max, got %d > %d" % (i, vals[2], vals[3]))
            out.append(vals)
            total += vals[1]
        if total > U32:
            fail(fn, "entries total weight must be <= 4294967295, got %s" % luanum(float(total)))
        if tid in self.tables:
            fail(fn, "id must not be an existing loot table, got %d" % tid)
        self.tables[tid] = (out, total)
        return ()

    def add_site(self, fn, id_=None, x=None, y=None, z=None, t=None, charges=None, *_):
        sid = check_int(fn, "id", id_, 1, U32)
        bx, by, bz = self.coords(fn, x, y, z)
        tid = check_int(fn, "loot_table_id", t, 1, U32)
        ch = check_int(fn, "charges", charges, 0, U32)
        if sid in self.sites:
            fail(fn, "id must not be an existing site, got %d" % sid)
        if (bx, by, bz) in self.blocks:
            # the block as integers (-0 is block 0): the reading legacy and native took
            fail(fn, "block must not hold a site already, got %d, %d, %d (site %d)" % (
                bx, by, bz, self.blocks[(bx, by, bz)]))
        if tid not in self.tables:
            fail(fn, "loot_table_id must be an existing loot table, got %d" % tid)
        self.sites[sid] = [bx, by, bz, tid, ch]
        self.blocks[(bx, by, bz)] = sid
        return ()

    def remove_site(self, fn, id_=None, *_):
        sid = check_int(fn, "id", id_, 1, U32)
        if sid not in self.sites:
            fail(fn, "id must be an existing site, got %d" % sid)
        s = self.sites.pop(sid)
        del self.blocks[(s[0], s[1], s[2])]
        return ()

    def join(self, fn, p=None, x=None, y=None, z=None, party=None, *_):
        pid = check_int(fn, "player", p, 1, U32)
        pos = self.coords(fn, x, y, z)
        pa = check_int(fn, "party", party, 0, U32, allow_nil=True) or 0
        if pid in self.players:
            fail(fn, "player must not have joined already, got %d" % pid)
        self.players[pid] = [pos[0], pos[1], pos[2], pa]
        self.hosts[pid] = self.shard  # a (re)joined player's host starts as this shard
        return ()

    def move(self, fn, p=None, x=None, y=None, z=None, *_):
        pid = check_int(fn, "player", p, 1, U32)
        pos = self.coords(fn, x, y, z)
        self.joined(fn, pid)
        self.players[pid][0:3] = pos
        return ()

    def set_party(self, fn, p=None, party=None, *_):
        pid = check_int(fn, "player", p, 1, U32)
        pa = check_int(fn, "party", party, 0, U32)
        self.joined(fn, pid)
        self.players[pid][3] = pa
        return ()

    def leave(self, fn, p=None, *_):
        pid = check_int(fn, "player", p, 1, U32)
        self.joined(fn, pid)
        del self.players[pid]
        self.hosts.pop(pid, None)
        return ()

    def busy(self):
        pending = self.dig_pending() if self.cluster else self.pending()
        if pending > self.max_pending:
            self.c["busy"] += 1
            return True
        return False

    def dig(self, fn, p=None, x=None, y=None, z=None, t=None, *_):
        pid = check_int(fn, "player", p, 1, U32)
        pos = self.coords(fn, x, y, z)
        tus = check_int(fn, "t_us", t, 0, MAX53)
        self.joined(fn, pid)
        if self.busy():
            return (None, "busy")
        self.call_digs = []
        seq = self.resolve(pid, pos[0], pos[1], pos[2], tus)
        self.cut_call()
        return (seq,)

    def records(self, fn, recs, size, with_t):
        if not isinstance(recs, bytes):
            fail(fn, "records must be a string, got %s" % typename(recs))
        if len(recs) % size:
            fail(fn, "records length must be a multiple of %d, got %d" % (size, len(recs)))
        out = []
        for i in range(len(recs) // size):
            r = recs[i * size:(i + 1) * size]
            p, x, y, z = struct.unpack_from("<Iiii", r)
            pre = "records[%d]." % (i + 1)
            if not 1 <= p <= U32:
                fail(fn, "%splayer must be an integer in [1, 4294967295], got %d" % (pre, p))
            for name, v in (("x", x), ("y", y), ("z", z)):
                if not CMIN <= v <= CMAX:
                    fail(fn, "%s%s must be an integer in [%d, %d], got %d" % (pre, name, CMIN, CMAX, v))
            t = None
            if with_t:
                (t,) = struct.unpack_from("<Q", r, 16)
                if t > MAX53:
                    fail(fn, "%st_us must be an integer in [0, 9007199254740991], got %d" % (pre, t))
            self.joined(fn, p, pre + "player")
            out.append((p, x, y, z, t))
        return out

    def dig_batch(self, fn, recs=None, *_):
        rs = self.records(fn, recs, 24, True)
        if self.busy():
            return (None, "busy")
        first = self.next_seq
        self.call_digs = []
        for p, x, y, z, t in rs:
            self.resolve(p, x, y, z, t)
        self.cut_call()
        return (first, len(rs))

    def move_batch(self, fn, recs=None, *_):
        rs = self.records(fn, recs, 16, False)
        for p, x, y, z, _ in rs:
            self.players[p][0:3] = [x, y, z]
        return ()

    def poll(self, fn, *args):
        mx = check_int(fn, "max", args[0] if args else None, 0, MAX53, allow_nil=True)
        n, b = self.take(self.pending() if mx is None else mx)
        return (n, b)

    def poll_view(self, fn, *args):
        # issue 16: run.lua drives a poll_view op to the poll it stands for
        # (up to max packets, in views); the same checks and packets as poll
        return self.poll(fn, *args)

    def poll_into(self, fn, buf=None, mx=None, capacity=None, *_):
        # issue 15: a uint8_t * ("ptr") needs an explicit capacity in bytes;
        # an array may narrow its own size with one. Order: buf, max, capacity.
        if not (isinstance(buf, Buf) and buf.kind in ("vla", "fixed", "ptr")):
            fail(fn, "buf must be a uint8_t array, uint8_t * or void * cdata, got %s" % buf_text(buf))
        m = check_int(fn, "max", mx, 0, MAX53)
        if buf.kind == "ptr" and capacity is None:
            fail(fn, "capacity must be given with a pointer buf (the bytes it points at), got nil")
        if capacity is None:
            cap = buf.size // 128
        else:
            c = check_int(fn, "capacity", capacity, 0, MAX53)
            if buf.kind != "ptr" and c > buf.size:
                fail(fn, "capacity must be at most %d (the bytes buf holds), got %d" % (buf.size, c))
            cap = c // 128
        if m > cap:
            fail(fn, "max must be at most %d (the packets buf holds), got %d" % (cap, m))
        return self.take(m)

    def flush(self, fn, *_):
        return ()

    def stats(self, fn, *_):
        s = dict(self.c)
        s["players"] = len(self.players)
        s["sites"] = len(self.sites)
        s["pending_packets"] = self.pending()
        s["inflight_digs"] = 0  # the drivers flush before stats (issue 15)
        if self.cluster:
            s.update(self.cc)
            s.update(shard=self.shard, shards=self.shards, next_host_seq=self.next_host_seq,
                     pending_records=len(self.outgoing), log_position=self.log_position)
        return (s,)

    def close(self, fn, *_):
        self.closed = True
        return ()


def encode_record(src, dest, prev, to, entries):
    """entries: [bytes] (each an entry with its recipient slots)"""
    body = b"".join(entries)
    length = 40 + len(body)
    head = struct.pack("<4sHHHHIQQI", b"TRSC", 1, src, dest, 0, len(entries), prev, to, length)
    return head + struct.pack("<I", crc32c(head + body)) + body


ENTRY = struct.Struct("<QQBBBBHHIIIiiiIIIIQ")
HEADER = struct.Struct("<4sHHHHIQQII")
assert ENTRY.size == 72 and HEADER.size == 40


def encode_entry(seq, fields, slots):
    t, kind, flags, rarity, qty, site, finder, party, x, y, z, item, left, roll = fields
    b = ENTRY.pack(seq, t, kind, flags, rarity, 0, qty, 0, site, finder, party, x, y, z, item, left, len(slots), 0, roll)
    return b + b"".join(struct.pack("<IIB3x", q, d2, rf) for q, d2, rf in slots)


class ClusterMethods:
    """issue 17 (CLUSTER_SPEC.md), mixed into Model"""

    def need_shard(self, fn):
        if not self.cluster:
            fail(fn, "resolver has no shard (create it with opts.shard and opts.shards)")

    def dig_pending(self):
        return sum(n for _, n in self.outgoing)

    def cut_call(self):
        """the records of one accepted dig call: per destination ascending, split before 65536 bytes"""
        digs, self.call_digs = self.call_digs, None
        if not self.cluster or not digs:
            return
        last_seq = digs[-1][0]
        for dest in sorted({d for _, _, by in digs for d in by}):
            groups, cur, curlen = [], [], 40
            for seq, fields, by in digs:
                if dest not in by:
                    continue
                e = encode_entry(seq, fields, by[dest])
                if cur and curlen + len(e) > 65536:
                    groups.append(cur)
                    cur, curlen = [], 40
                cur.append((seq, e, len(by[dest])))
                curlen += len(e)
            groups.append(cur)
            for gi, g in enumerate(groups):
                to = last_seq if gi == len(groups) - 1 else g[-1][0]
                prev = self.sent.get(dest, 0)
                self.outgoing.append((encode_record(self.shard, dest, prev, to, [e for _, e, _ in g]),
                                      sum(n for _, _, n in g)))
                self.sent[dest] = to

    def set_host(self, fn, p=None, host=None, *_):
        self.need_shard(fn)
        pid = check_int(fn, "player", p, 1, U32)
        self.joined(fn, pid)
        h = check_int(fn, "host", host, 0, self.shards - 1)
        self.hosts[pid] = h
        return ()

    def take_records(self, fn, *_):
        self.need_shard(fn)
        out = self.outgoing
        self.outgoing = []
        self.cc["records_out"] += len(out)
        return (len(out), b"".join(b for b, _ in out))

    def parse_records(self, fn, data):
        S = self.shard
        recs = []
        off = 0
        i = 0
        while off < len(data):
            i += 1
            left = len(data) - off

            def bad(reason):
                fail(fn, "records[%d] must be a valid record for shard %d, got %s" % (i, S, reason))
            if left < 40:
                bad("truncated header (%d bytes)" % left)
            if data[off:off + 4] != b"TRSC":
                bad("bad magic")
            _, ver, src, dest, hpad, digs, prev, to, length, crc = HEADER.unpack_from(data, off)
            if ver != 1:
                bad("bad version %d" % ver)
            if length < 40 or length > left:
                bad("bad length %d" % length)
            rb = data[off:off + length]
            if crc32c(rb[:36] + rb[40:]) != crc:
                bad("bad CRC")
            if hpad != 0:
                bad("nonzero header padding")
            if dest != S:
                bad("dest shard %d" % dest)
            if src >= self.shards:
                bad("src shard %d" % src)
            if to > 2**53 - 1:
                bad("to %d past 9007199254740991" % to)
            if prev >= to:
                bad("prev %d not below to %d" % (prev, to))
            entries = []
            q = 40
            lo = prev
            for k in range(1, digs + 1):
                if q + 72 > length:
                    bad("entry %d truncated" % k)
                f = ENTRY.unpack_from(rb, q)
                seq, t, kind, flags, rarity, pad19, qty, pad22, site, finder, party, x, y, z, item, left_, nrec, pad60, roll = f
                if q + 72 + 12 * nrec > length:
                    bad("entry %d truncated" % k)
                if not lo < seq <= to:
                    bad("entry %d seq %d not in (%d, %d]" % (k, seq, lo, to))
                if not 1 <= kind <= 4:
                    bad("entry %d kind %d" % (k, kind))
                if flags not in (0, 4):
                    bad("entry %d flags %d" % (k, flags))
                if nrec == 0:
                    bad("entry %d has no recipients" % k)
                slots = []
                prev_id = 0
                padding = pad19 or pad22 or pad60
                for j in range(1, nrec + 1):
                    rid, d2, rf = struct.unpack_from("<IIB", rb, q + 72 + 12 * (j - 1))
                    if rid <= prev_id:
                        bad("entry %d recipient %d id %d not above %d" % (k, j, rid, prev_id))
                    if rf & ~3:
                        bad("entry %d recipient %d flags %d" % (k, j, rf))
                    if rb[q + 72 + 12 * (j - 1) + 9:q + 72 + 12 * j] != b"\0\0\0":
                        padding = True
                    slots.append((rid, d2, rf))
                    prev_id = rid
                if padding:
                    bad("entry %d nonzero padding" % k)
                entries.append((seq, (t, kind, flags, rarity, qty, site, finder, party, x, y, z, item, left_, roll), slots))
                lo = seq
                q += 72 + 12 * nrec
            if q < length:
                bad("trailing %d bytes" % (length - q))
            recs.append((src, prev, to, entries))
            off += length
        return recs

    def apply_records(self, fn, data=None, logpos=None, *_):
        self.need_shard(fn)
        if not isinstance(data, bytes):
            fail(fn, "records must be a string, got %s" % typename(data))
        lp = check_int(fn, "log_position", logpos, 0, MAX53, allow_nil=True)
        recs = self.parse_records(fn, data)
        # docs/API.md: every record valid, then dedupe/gap, then the host seq limit, then busy
        applied = dict(self.applied)
        todo, dups, nin = [], 0, 0
        for src, prev, to, entries in recs:
            a = applied.get(src, 0)
            if to <= a:
                dups += len(entries)
                nin += 1
                continue
            if prev > a:
                return (None, "gap")
            for e in entries:
                if e[0] <= a:
                    dups += 1
                else:
                    todo.append(e)
            applied[src] = to
            nin += 1
        if self.next_host_seq + len(todo) - 1 > MAX53:
            fail(fn, "seq must stay at most %d, got %d" % (MAX53, self.next_host_seq + len(todo) - 1))
        if self.pending() >= self.max_pending:
            self.c["busy"] += 1
            return (None, "busy")
        for seq, fields, slots in todo:
            h = self.next_host_seq
            self.next_host_seq += 1
            t, kind, flags, rarity, qty, site, finder, party, x, y, z, item, left, roll = fields
            for rid, d2, rf in slots:
                self.queue.append(packet(kind, flags | rf, h, t, site, finder, rid, party, x, y, z, item, qty, rarity,
                                         left, roll, d2))
            self.c["packets"] += len(slots)
        self.applied = applied
        self.cc["applied_digs"] += len(todo)
        self.cc["duplicate_digs"] += dups
        self.cc["records_in"] += nin
        if lp is not None:
            self.log_position = max(self.log_position, lp)
        return (len(todo),)


for _name in ("need_shard", "dig_pending", "cut_call", "set_host", "take_records", "parse_records", "apply_records"):
    setattr(Model, _name, getattr(ClusterMethods, _name))


METHODS = {"add_loot_table", "add_site", "remove_site", "join", "move", "set_party", "leave", "dig", "dig_batch",
            "move_batch", "poll", "poll_into", "flush", "stats", "close", "set_host", "take_records", "apply_records",
            "poll_view"}
# type rules ("must be a table/string/resolver/...") name the type even for a
# number: API.md's own example is `entries[2] must be a table, got number`
SELF_SHOWN = {"nil": "nil", "table": "table", "number": "number"}


# run.lua's finalize_probe: a side resolver restored from this one's snapshot
# is finalized by the GC and resurrected; every call on it says closed.
FINALIZE_CALLS = ["dig", "move", "flush", "poll", "poll_into", "wait", "stats", "snapshot", "dig_batch", "close"]


def finalize_log(model):
    if model.closed:
        return "no side resolver: treasure: snapshot: resolver is closed"
    lines = []
    for tag in ("in_gc.", "resurrected."):
        for m in FINALIZE_CALLS:
            lines.append(tag + m + "=" + ("ok" if m == "close" else "treasure: %s: resolver is closed" % m))
    lines.append("tostring=closed")
    return "\n".join(lines)


def model_call(model, m, self_marker, args):
    """returns ('ok', results) or ('err', message)"""
    try:
        if m == "new_check":
            check_opts(args[0] if args else None)
            return ("ok", ())
        if m == "finalize":
            return ("ok", (finalize_log(model),))
        if m == "resnap":  # run.lua: restore(snapshot()) on every backend; a restored resolver continues seamlessly
            if model.closed:
                fail("snapshot", "resolver is closed")
            return ("ok", (model,))
        if m not in METHODS:
            raise ValueError("unknown method " + m)
        if self_marker is not None:
            fail(m, "self must be a resolver, got %s" % SELF_SHOWN[self_marker])
        if m == "close":
            return ("ok", model.close(m))
        if model.closed:
            fail(m, "resolver is closed")
        return ("ok", getattr(model, m)(m, *args))
    except LuaError as e:
        return ("err", str(e))


def model_burst(model, ops):
    """a loop of dig/move calls; stops at the first error. Results: seq, -1 busy, 0 move"""
    out = []
    for op in ops:
        if op[0] == 1:
            kind, val = model_call(model, "dig", None, [float(v) for v in op[1:]])
        else:
            kind, val = model_call(model, "move", None, [float(v) for v in op[1:]])
        if kind == "err":
            return out, val
        if op[0] == 1:
            out.append(-1 if val[0] is None else val[0])
        else:
            out.append(0)
    return out, None


# ------------------------------------------------------------------ checking

STATS_KEYS = ["digs", "packets", "found", "empty", "nothing", "rejected", "busy", "players", "sites",
              "pending_packets", "inflight_digs",
              "shard", "shards", "next_host_seq", "applied_digs", "duplicate_digs", "records_out", "records_in",
              "pending_records", "log_position"]


def describe_records(b):
    out, off = [], 0
    while off + 40 <= len(b):
        _, ver, src, dest, _pad, digs, prev, to, length, crc = HEADER.unpack_from(b, off)
        out.append("src=%d dest=%d digs=%d prev=%d to=%d len=%d" % (src, dest, digs, prev, to, length))
        if length < 40:
            break
        off += length
    if len(out) > 6:
        out = out[:3] + ["..."] + out[-2:]
    return "; ".join(out) or "(none)"


def first_diff(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return min(len(a), len(b)) if len(a) != len(b) else None


def res_num(v):
    if v is None:
        return None
    x = dec(v)
    return x


def compare(m, want, got):
    """want: model outcome; got: recorded outcome (dict). Returns None or a description."""
    kind, val = want
    if got.get("ok") != (kind == "ok"):
        return "success/failure differs: model %s, backend %s" % (
            "ok" if kind == "ok" else "error: " + val, "ok" if got.get("ok") else "error: " + got.get("err", "?"))
    if kind == "err":
        if got["err"] != val:
            return "error message differs:\n      model:   %s\n      backend: %s" % (val, got["err"])
        return None
    if m == "resnap" and "cluster" in got:
        return compare_snapshot(val[0] if val else None, got)
    if m == "take_records":
        n, b = val
        gn = res_num(got.get("n"))
        gb = bytes.fromhex(got.get("bytes", ""))
        if gn != n or gb != b:
            off = first_diff(b, gb)
            return "records differ (first differing byte %s)\n      model:   %d: %s\n      backend: %s: %s" % (
                off, n, describe_records(b), gn, describe_records(gb))
        return None
    if m in ("poll", "poll_into", "poll_view"):
        n, b = val
        gn = res_num(got.get("n"))
        gb = bytes.fromhex(got.get("bytes", ""))
        if gn != n:
            return "packet count differs: model %d, backend %s" % (n, gn)
        if gb != b:
            off = first_diff(b, gb)
            k = off // 128
            return ("packet bytes differ at offset %d (packet %d, byte %d)\n      model:   %s\n      backend: %s" % (
                off, k, off % 128, decode_packet(b[k * 128:k * 128 + 128]), decode_packet(gb[k * 128:k * 128 + 128])))
        return None
    if m == "stats":
        gs = got.get("stats") or {}
        for k in STATS_KEYS:
            if gs.get(k) != val[0].get(k):
                return "stats.%s differs: model %s, backend %s" % (k, val[0].get(k), gs.get(k))
        return None
    if m in ("dig", "dig_batch", "apply_records", "set_host"):
        gr = [dec(v) for v in got.get("r", [])]
        wr = [float(v) if isinstance(v, int) else (v.encode() if isinstance(v, str) else v) for v in val]
        if gr != wr:
            return "results differ: model %r, backend %r" % (wr, gr)
    return None


def compare_snapshot(model, got):
    """the cluster parts of a snapshot (CLUSTER_SPEC.md "Snapshot") against the model's state"""
    def d(v):
        return None if v is None else int(float(v))
    if not model.cluster:
        if got["cluster"] is not None or got["hosts"] or got["opt_shard"] is not None or got["opt_shards"] is not None:
            return "snapshot of a plain resolver has cluster fields"
        return None
    c = got["cluster"]
    if c is None:
        return "snapshot has no cluster table"
    want = dict(
        opt=(model.shard, model.shards),
        next_host_seq=model.next_host_seq, log_position=model.log_position,
        applied=sorted((k, v) for k, v in model.applied.items() if v > 0),
        sent=sorted((k, v) for k, v in model.sent.items() if v > 0),
        outgoing=b"".join(b for b, _ in model.outgoing),
        counters=(model.cc["applied_digs"], model.cc["duplicate_digs"], model.cc["records_out"], model.cc["records_in"]),
        hosts=sorted(model.hosts.items()),
        pending=b"".join(model.queue[model.head:]),
    )
    have = dict(
        opt=(d(got["opt_shard"]), d(got["opt_shards"])),
        next_host_seq=d(c["next_host_seq"]), log_position=d(c["log_position"]),
        applied=[(d(a), d(b)) for a, b in c["applied"]], sent=[(d(a), d(b)) for a, b in c["sent"]],
        outgoing=bytes.fromhex(c["outgoing"]), counters=tuple(d(v) for v in c["counters"]),
        hosts=sorted((d(a), d(b)) for a, b in got["hosts"]), pending=bytes.fromhex(got["pending"]),
    )
    for k in want:
        if want[k] != have[k]:
            w, h = want[k], have[k]
            if isinstance(w, bytes):
                w, h = describe_records(w) if k == "outgoing" else "%d bytes" % len(w), \
                    describe_records(h) if k == "outgoing" else "%d bytes" % len(h)
            return "snapshot %s differs:\n      model:   %s\n      backend: %s" % (k, w, h)
    return None


def check_trace(path, max_report):
    passed = failed = 0
    reported = 0
    model = None
    seq_seed = None
    seq_ok = True
    calls = 0
    t0 = __import__("time").time()

    def bad(msg):
        nonlocal seq_ok, reported
        if seq_ok:
            seq_ok = False
            if reported < max_report:
                reported += 1
                print(msg)

    in_seq = False
    backends = "lua"

    def finish():
        # a sequence ends at its "end" line, or truncated (run.lua stopped it at a
        # backend mismatch) at the next "begin" or at the end of the file
        nonlocal passed, failed, in_seq
        if in_seq:
            if seq_ok:
                passed += 1
            else:
                failed += 1
        in_seq = False

    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                bad("MODEL: seed %s: truncated trace line (did run.lua crash?)" % seq_seed)
                break
            if "begin" in rec:
                finish()
                in_seq = True
                seq_seed = rec["begin"]
                backends = ",".join(rec.get("backends", ["lua"]))
                seq_ok = True
                model = None
                continue
            if "end" in rec:
                if seq_ok and model is not None and not rec.get("closed"):
                    if model.cluster:
                        want = model.take_records("take_records")
                        for name, got in rec.get("drain_records", {}).items():
                            d = compare("take_records", ("ok", want), got)
                            if d:
                                bad("MODEL MISMATCH: seed %s, final take_records, backend %s: %s" % (seq_seed, name, d))
                    want = model.poll("poll")
                    for name, got in rec["drain"].items():
                        d = compare("poll", ("ok", want), got)
                        if d:
                            bad("MODEL MISMATCH: seed %s, final drain, backend %s: %s" % (seq_seed, name, d))
                    want = model.stats("stats")
                    for name, got in rec["stats"].items():
                        d = compare("stats", ("ok", want), got)
                        if d:
                            bad("MODEL MISMATCH: seed %s, final stats, backend %s: %s" % (seq_seed, name, d))
                finish()
                continue
            i, m = rec["i"], rec["m"]
            calls += 1
            if not seq_ok:
                continue
            if m == "burst":
                want = model_burst(model, rec["args"][0])
                for name, got in rec["out"].items():
                    if got.get("burst") != want[0] or got.get("err") != want[1]:
                        bad("MODEL MISMATCH: seed %s, call %d (burst), backend %s: model %r / %r, backend %r / %r" % (
                            seq_seed, i, name, want[0][-5:], want[1], (got.get("burst") or [])[-5:], got.get("err")))
                        break
                continue
            args = [dec(a) for a in rec["args"]]
            if m != "new" and model is None:
                bad("MODEL: seed %s, call %d before new()" % (seq_seed, i))
                continue
            if m == "new":
                try:
                    model = Model(check_opts(args[0] if args else None))
                    want = ("ok", ())
                except LuaError as e:
                    want = ("err", str(e))
            else:
                try:
                    want = model_call(model, m, rec["self"], args)
                except Exception as e:  # a model bug (or an impossible state): fail the sequence
                    bad("MODEL INTERNAL ERROR: seed %s, call %d: %s(%s): %r" % (
                        seq_seed, i, m, ", ".join(show_arg(a) for a in args), e))
                    continue
            for name, got in rec["out"].items():
                d = compare(m, want, got)
                if d:
                    bad("MODEL MISMATCH: seed %s, call %d, backend %s\n  call: %s(%s)%s\n  %s\n  replay: luajit "
                        "tests/diff/run.lua --backends %s --seed %s --sequences 1 --calls %d --trace /tmp/replay.jsonl"
                        " && python3 tests/diff/model.py /tmp/replay.jsonl" % (
                            seq_seed, i, name, m, ", ".join(show_arg(a) for a in args),
                            "" if rec["self"] is None else " [self=%s]" % rec["self"], d, backends, seq_seed, i))
                    break
    finish()
    sys.stderr.write("model.py: %d calls checked in %.1fs\n" % (calls, __import__("time").time() - t0))
    return passed, failed


def show_arg(a, depth=0):
    if isinstance(a, float):
        return luanum(a)
    if isinstance(a, bytes):
        if len(a) <= 40 and all(32 <= c < 127 for c in a):
            return repr(a.decode())
        return "<%d bytes %s%s>" % (len(a), a[:48].hex(), "..." if len(a) > 48 else "")
    if isinstance(a, Table):
        if depth > 3:
            return "{...}"
        return "{" + ", ".join("[%s]=%s" % (show_arg(k), show_arg(v, depth + 1)) for k, v in a.pairs) + "}"
    if isinstance(a, Buf):
        return "<%s buffer %d bytes>" % (a.kind, a.size)
    if a is None:
        return "nil"
    if isinstance(a, bool):
        return str(a).lower()
    return "<%s>" % typename(a)


def selftest():
    assert crc32c(b"123456789") == 0xE3069283 == crc32c_bitwise(b"123456789")
    for k in range(0, 70, 7):
        d = bytes(range(k, 3 * k + 1))
        assert crc32c(d) == crc32c_bitwise(d)
    assert luanum(1e15) == "1e+15" and luanum(-0.0) == "-0" and luanum(2.0 ** 53) == "9.007199254741e+15"
    assert luanum(float("nan")) == "nan" and luanum(1.5) == "1.5" and luanum(4294967296.0) == "4294967296"


def main():
    argv = sys.argv[1:]
    max_report = 5
    if "--max-report" in argv:
        k = argv.index("--max-report")
        max_report = int(argv[k + 1])
        del argv[k:k + 2]
    if len(argv) != 1:
        sys.stderr.write(__doc__)
        sys.exit(2)
    selftest()
    passed, failed = check_trace(argv[0], max_report)
    print("model: %d passed, %d failed" % (passed, failed))
    sys.exit(0 if failed == 0 and passed > 0 else 1)


if __name__ == "__main__":
    main()
