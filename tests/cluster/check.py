#!/usr/bin/env python3
"""The cluster test's checker: every client's packets against the reference's.

    python3 tests/cluster/check.py --dir DIR --shards N --stripe W [--extra JSON]
    python3 tests/cluster/check.py --self-test

DIR holds what tests/cluster/node.lua wrote: reference.bin (one big server's
packets), hosts.txt (the host shard of player i + 1 on line i + 1),
shard<s>.bin (the packets shard s sent to its clients, in order),
owner<s>.log / poll<s>.log (wall clocks) and shard<s>.json (final stats).

Per client (recipient), in the order its host sent them:
  * exact duplicates (same bytes: seq, recipient and all) are dropped and
    counted as `resent` (a restored shard re-emits what it sent after its
    snapshot: the seq rule lets a client drop them by (seq, recipient));
  * the remaining seqs must be strictly increasing (`reordered` counts
    violations);
  * the multiset of packets with seq and CRC masked (bytes 8..16 and
    124..128) must equal the reference's for that client: `lost` = reference
    packets missing, `duplicated` = extra ones (e.g. a dig applied twice).
Also: every packet passes the packet check (magic, version, CRC-32C:
`crc_bad`), a recipient only appears in its host's output (`misrouted`), a
host's seqs are exactly 1..max (`host_seq_gaps`), no torn packet at the end
of a file (`torn_bytes`).
Latency: for each dig and each host shard that is not the dig's owner, the
first poll on that host that returned one of its packets, minus the owner's
wall clock just before the dig_batch of that dig's tick (CLOCK_REALTIME in
both logs): cross_shard_p50_ms / p99 (and local_* for the owner's own
clients; burst_* for the digs of --burst-tick).
The last line printed is one JSON object. Exit 1 unless identical.
"""
import argparse
import collections
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SIZE = 128
TICK_US = 50000


def masked(p):
    return p[0:8] + p[16:124]


def packets(data):
    return [data[i:i + SIZE] for i in range(0, len(data) - len(data) % SIZE, SIZE)]


def crc_check(paths):
    """[(n, bad, trailing)] per path, from tests/cluster/packets_crc.lua."""
    if not paths:
        return []
    env = dict(os.environ)
    env["LUA_PATH"] = f"{REPO}/lua/?.lua;{REPO}/lua/?/init.lua;;"
    out = subprocess.run(["luajit", os.path.join(HERE, "packets_crc.lua")] + paths,
                         check=True, capture_output=True, text=True, env=env).stdout
    return [tuple(int(v) for v in line.split()) for line in out.splitlines()]


def quantile(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def read_log(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                try:
                    rows.append([int(v) for v in parts])
                except ValueError:
                    continue   # a line cut by kill -9
    return rows


def check(d, shards, stripe, burst_tick=None, fault_ticks=()):
    res = collections.OrderedDict()
    with open(os.path.join(d, "hosts.txt")) as f:
        hosts = [int(line) for line in f if line.strip()]

    def host_of(rcpt):
        return hosts[rcpt - 1]

    def owner_of(x):
        return min(max(x // stripe, 0), shards - 1)

    with open(os.path.join(d, "reference.bin"), "rb") as f:
        ref_data = f.read()
    ref = collections.defaultdict(collections.Counter)
    for p in packets(ref_data):
        ref[struct.unpack_from("<I", p, 32)[0]][masked(p)] += 1
    ref_packets = len(ref_data) // SIZE

    bins = [os.path.join(d, f"shard{s}.bin") for s in range(shards)]
    for b in bins:
        if not os.path.exists(b):
            open(b, "wb").close()
    crc = crc_check([os.path.join(d, "reference.bin")] + bins)
    crc_bad = sum(c[1] for c in crc)
    torn = sum(c[2] for c in crc)

    got = collections.defaultdict(list)          # recipient -> [(seq, bytes)]
    misrouted = host_gaps = host_order = 0
    total = 0
    lat_cross, lat_local, lat_burst, lat_clean = [], [], [], []
    owner_t = []
    call_ms = []                                 # dig_batch call times (steady ticks)
    max_seq = [0] * shards
    for s in range(shards):
        t = {}
        for row in read_log(os.path.join(d, f"owner{s}.log")):
            if len(row) >= 2:
                t[row[0]] = min(t.get(row[0], row[1]), row[1])
            if len(row) == 3 and row[0] != burst_tick:
                call_ms.append((row[2] - row[1]) / 1000.0)
        owner_t.append(t)
    for s in range(shards):
        with open(bins[s], "rb") as f:
            data = f.read()
        ps = packets(data)
        total += len(ps)
        # wall clock of the poll that returned each packet index (a restarted
        # process's polls override the killed one's for the indices it rewrote)
        poll_t = [None] * len(ps)
        for row in read_log(os.path.join(d, f"poll{s}.log")):
            if len(row) == 3:
                i0, n, w = row
                for i in range(i0, min(i0 + n, len(ps))):
                    poll_t[i] = w
        first = {}                               # dig t_us -> first poll on this host
        seqs = set()
        seen_host = set()
        last_seq = 0
        for i, p in enumerate(ps):
            seq, = struct.unpack_from("<Q", p, 8)
            rcpt, = struct.unpack_from("<I", p, 32)
            if p not in seen_host:             # a replay re-emits exact copies: not an order error
                seen_host.add(p)
                if seq < last_seq:
                    host_order += 1
                last_seq = max(last_seq, seq)
            seqs.add(seq)
            max_seq[s] = max(max_seq[s], seq)
            if rcpt < 1 or rcpt > len(hosts) or host_of(rcpt) != s:
                misrouted += 1
            got[rcpt].append((seq, p))
            t_us, = struct.unpack_from("<Q", p, 16)
            if poll_t[i] is not None and (t_us not in first or poll_t[i] < first[t_us][0]):
                first[t_us] = (poll_t[i], struct.unpack_from("<i", p, 40)[0])
        if seqs and (min(seqs) != 1 or len(seqs) != max(seqs)):
            host_gaps += max(seqs) - len(seqs) + (min(seqs) - 1)
        for t_us, (w, x) in first.items():
            o = owner_of(x)
            tick = t_us // TICK_US
            if tick not in owner_t[o]:
                continue
            ms = (w - owner_t[o][tick]) / 1000.0
            if burst_tick is not None and tick == burst_tick:
                if o != s:
                    lat_burst.append(ms)
            elif o != s:
                lat_cross.append(ms)
                if not any(a <= tick <= b for a, b in fault_ticks):
                    lat_clean.append(ms)
            else:
                lat_local.append(ms)

    lost = duplicated = resent = reordered = 0
    for rcpt in set(ref) | set(got):
        seen = set()
        last = 0
        mine = collections.Counter()
        for seq, p in got.get(rcpt, []):
            if p in seen:
                resent += 1
                continue
            seen.add(p)
            if seq <= last:
                reordered += 1
            last = max(last, seq)
            mine[masked(p)] += 1
        want = ref.get(rcpt, collections.Counter())
        lost += sum((want - mine).values())
        duplicated += sum((mine - want).values())

    identical = (lost == 0 and duplicated == 0 and reordered == 0 and crc_bad == 0 and misrouted == 0
                 and host_gaps == 0 and host_order == 0 and torn == 0 and ref_packets > 0)
    res["shards"] = shards
    res["packets"] = total
    res["reference_packets"] = ref_packets
    res["clients"] = len(set(ref) | set(got))
    res["lost"] = lost
    res["duplicated"] = duplicated
    res["resent"] = resent
    res["reordered"] = reordered
    res["crc_bad"] = crc_bad
    res["misrouted"] = misrouted
    res["host_seq_gaps"] = host_gaps
    res["host_order_errors"] = host_order
    res["torn_bytes"] = torn
    res["identical"] = identical

    def r3(v):
        return None if v is None else round(v, 3)
    res["cross_shard_p50_ms"] = r3(quantile(lat_cross, 0.50))
    res["cross_shard_p99_ms"] = r3(quantile(lat_cross, 0.99))
    res["cross_shard_max_ms"] = r3(max(lat_cross) if lat_cross else None)
    res["cross_shard_samples"] = len(lat_cross)
    if fault_ticks:
        # the same, without the digs of the ticks around each fault (a killed
        # owner's digs wait for its restore; a stopped broker holds everything)
        res["cross_shard_p50_ms_outside_faults"] = r3(quantile(lat_clean, 0.50))
        res["cross_shard_p99_ms_outside_faults"] = r3(quantile(lat_clean, 0.99))
        res["fault_ticks_excluded"] = [list(w) for w in fault_ticks]
    # the first stage alone: dig_batch -> the owner's first pump after it
    # that took records (resolve + take), per steady tick
    take = []
    pump_ms = []                                 # link:pump call times (those that sent records)
    for s in range(shards):
        rows = read_log(os.path.join(d, f"pump{s}.log"))
        pumps = sorted(row[0] for row in rows if len(row) >= 2)
        pump_ms.extend((row[0] - row[2]) / 1000.0 for row in rows if len(row) == 3)
        ticks = sorted(owner_t[s].items())
        j = 0
        for k, (tick, t0) in enumerate(ticks):
            if burst_tick is not None and tick == burst_tick:
                continue
            nxt = ticks[k + 1][1] if k + 1 < len(ticks) else float("inf")
            while j < len(pumps) and pumps[j] < t0:
                j += 1
            if j < len(pumps) and pumps[j] < nxt:
                take.append((pumps[j] - t0) / 1000.0)
    res["owner_dig_batch_p50_ms"] = r3(quantile(call_ms, 0.50))
    res["owner_dig_batch_p99_ms"] = r3(quantile(call_ms, 0.99))
    res["owner_pump_call_p50_ms"] = r3(quantile(pump_ms, 0.50))
    res["owner_pump_call_p99_ms"] = r3(quantile(pump_ms, 0.99))
    res["owner_take_p50_ms"] = r3(quantile(take, 0.50))
    res["owner_take_p99_ms"] = r3(quantile(take, 0.99))
    res["local_p50_ms"] = r3(quantile(lat_local, 0.50))
    res["local_p99_ms"] = r3(quantile(lat_local, 0.99))
    if burst_tick is not None:
        # the burst's first stage: dig_batch -> the owner's first pump that
        # took records after it (every record of a call comes once its digs
        # are all resolved)
        taken = []
        for s in range(shards):
            t0 = owner_t[s].get(burst_tick)
            if t0 is None:
                continue
            after = [row[0] for row in read_log(os.path.join(d, f"pump{s}.log")) if len(row) >= 2 and row[0] >= t0]
            if after:
                taken.append(round((min(after) - t0) / 1000.0, 3))
        res["burst_owner_first_take_ms"] = taken
        res["burst_cross_shard_p50_ms"] = r3(quantile(lat_burst, 0.50))
        res["burst_cross_shard_p99_ms"] = r3(quantile(lat_burst, 0.99))
        res["burst_cross_shard_samples"] = len(lat_burst)
    # the shards' own accounting
    dup_digs = 0
    accounting = 0
    restored = 0
    link = collections.Counter()
    for s in range(shards):
        p = os.path.join(d, f"shard{s}.json")
        if os.path.exists(p):
            with open(p) as f:
                j = json.load(f)
            st = j.get("stats", {})
            dup_digs += st.get("duplicate_digs", 0)
            restored += 1 if j.get("restored") else 0
            # the shard's own counters agree with what it sent its clients
            if (st.get("applied_digs") != j.get("expect") or j.get("timed_out")
                    or st.get("next_host_seq", 0) - 1 != max_seq[s] or st.get("pending_packets", 0) != 0):
                accounting += 1
            for k, v in j.get("link", {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    link[k] += v
    res["duplicate_digs_dropped"] = dup_digs
    res["restored_shards"] = restored
    res["accounting_errors"] = accounting
    res["identical"] = res["identical"] and accounting == 0
    res["link"] = dict(sorted(link.items()))
    return res


# ---------------------------------------------------------------- self-test

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def make_packet(seq, t_us, rcpt, x, flags=0):
    p = bytearray(SIZE)
    p[0:4] = b"TRSR"
    struct.pack_into("<HBB", p, 4, 1, 1, flags)
    struct.pack_into("<QQ", p, 8, seq, t_us)
    struct.pack_into("<IIII", p, 24, 7, 1, rcpt, 0)
    struct.pack_into("<iii", p, 40, x, -1, 3)
    struct.pack_into("<I", p, 124, crc32c(bytes(p[0:124])))
    return bytes(p)


def reseal(p, seq=None):
    p = bytearray(p)
    if seq is not None:
        struct.pack_into("<Q", p, 8, seq)
    struct.pack_into("<I", p, 124, crc32c(bytes(p[0:124])))
    return bytes(p)


def synth(d, rng, shards=3, players=12, digs=40, stripe=100):
    """A reference and shard outputs that agree: digs with random recipients,
    each host numbering the digs it gets in an interleaved (per-host) order."""
    hosts = [i % shards for i in range(players)]
    with open(os.path.join(d, "hosts.txt"), "w") as f:
        f.write("".join(f"{h}\n" for h in hosts))
    ref = []
    per_host = [[] for _ in range(shards)]     # [(t_us, x, [rcpt])]
    for j in range(digs):
        t_us = (1 + j // 4) * TICK_US + j % 4
        x = rng.randrange(shards * stripe)
        rc = sorted(rng.sample(range(1, players + 1), rng.randrange(1, 5)))
        for r_ in rc:
            ref.append(make_packet(j + 1, t_us, r_, x))
        for h in range(shards):
            mine = [r_ for r_ in rc if hosts[r_ - 1] == h]
            if mine:
                per_host[h].append((t_us, x, mine))
    with open(os.path.join(d, "reference.bin"), "wb") as f:
        f.write(b"".join(ref))
    outs = []
    for h in range(shards):
        entries = per_host[h][:]
        # log order: digs of other owners arrive late (a few places later)
        for i in range(len(entries) - 1):
            if rng.random() < 0.3:
                entries[i], entries[i + 1] = entries[i + 1], entries[i]
        out = []
        for k, (t_us, x, rc) in enumerate(entries):
            for r_ in rc:
                out.append(make_packet(k + 1, t_us, r_, x))
        outs.append(out)
    return outs


def write_outs(d, outs):
    for s, out in enumerate(outs):
        with open(os.path.join(d, f"shard{s}.bin"), "wb") as f:
            f.write(b"".join(out))


def self_test():
    rng = random.Random(17)
    failures = []

    def case(name, mutate, expect):
        d = tempfile.mkdtemp(prefix="tc17-selftest-")
        try:
            outs = synth(d, rng)
            mutate(outs)
            write_outs(d, outs)
            res = check(d, 3, 100)
            bad = {k: (res[k], v) for k, v in expect.items() if res[k] != v}
            print(f"self-test {name}: " + ("ok" if not bad else f"FAILED {bad}") +
                  f" (lost={res['lost']} duplicated={res['duplicated']} resent={res['resent']} "
                  f"reordered={res['reordered']} crc_bad={res['crc_bad']} identical={res['identical']})")
            if bad:
                failures.append(name)
        finally:
            shutil.rmtree(d)

    def nop(outs):
        pass

    def resend(outs):          # a restored shard re-emits its last 5 packets
        outs[1].extend(outs[1][-5:])

    def lose(outs):
        del outs[2][len(outs[2]) // 2]

    def lose_entry(outs):      # a whole entry (all its packets): a host seq gap too
        out = outs[0]
        seq = struct.unpack_from("<Q", out[len(out) // 2], 8)[0]
        outs[0] = [p for p in out if struct.unpack_from("<Q", p, 8)[0] != seq]
        outs[0] = [reseal(p, struct.unpack_from("<Q", p, 8)[0] - (1 if struct.unpack_from("<Q", p, 8)[0] > seq else 0))
                   for p in outs[0]]

    def duplicate(outs):       # a dig applied twice: same packet under a new host seq
        last = struct.unpack_from("<Q", outs[1][-1], 8)[0]
        outs[1].append(reseal(outs[1][3], last + 1))

    def reorder(outs):         # two packets of one client swapped
        out = outs[0]
        rc = collections.defaultdict(list)
        for i, p in enumerate(out):
            rc[struct.unpack_from("<I", p, 32)[0]].append(i)
        idx = next(v for v in rc.values() if len(v) >= 2)
        i, j = idx[0], idx[1]
        out[i], out[j] = out[j], out[i]

    def corrupt(outs):
        p = bytearray(outs[2][0])
        p[60] ^= 1
        outs[2][0] = bytes(p)

    def misroute(outs):        # a packet of a shard-0 client in shard 1's output
        outs[1].append(reseal(outs[0][0], struct.unpack_from("<Q", outs[1][-1], 8)[0] + 1))

    case("clean", nop, {"identical": True, "lost": 0, "duplicated": 0, "resent": 0})
    case("resent", resend, {"identical": True, "lost": 0, "duplicated": 0, "resent": 5})
    case("lost", lose, {"identical": False, "lost": 1, "duplicated": 0})
    case("lost-entry", lose_entry, {"identical": False, "duplicated": 0})
    case("duplicated", duplicate, {"identical": False, "lost": 0, "duplicated": 1})
    case("reordered", reorder, {"identical": False, "lost": 0, "duplicated": 0, "reordered": 1})
    case("bad-crc", corrupt, {"identical": False, "crc_bad": 1})
    case("misrouted", misroute, {"identical": False, "misrouted": 1, "duplicated": 1})
    if failures:
        print("check.py self-test: FAILED: " + ", ".join(failures))
        return 1
    print("check.py self-test: ok")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir")
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--stripe", type=int, default=128)
    ap.add_argument("--burst-tick", type=int)
    ap.add_argument("--fault-ticks", default="", help="tick windows a-b,c-d left out of the *_outside_faults latency")
    ap.add_argument("--extra", default="{}", help="JSON merged into the result (fault counts, duration)")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--require-faults", type=int, default=0,
                    help="N distinct shards were killed: N must have restored, and duplicates must have been dropped")
    a = ap.parse_args()
    if a.self_test:
        sys.exit(self_test())
    windows = [tuple(int(v) for v in w.split("-")) for w in a.fault_ticks.split(",") if w]
    res = check(a.dir, a.shards, a.stripe, a.burst_tick, windows)
    res.update(json.loads(a.extra))
    ok = res["identical"] and res["lost"] == 0 and res["duplicated"] == 0
    if a.require_faults:
        # the faults really happened: each killed shard ended as a restored
        # one, and the duplicate publishes reached a resolver's dedupe
        res["faults_exercised"] = res["restored_shards"] >= a.require_faults and res["duplicate_digs_dropped"] > 0
        ok = ok and res["faults_exercised"]
    print(json.dumps(res))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
