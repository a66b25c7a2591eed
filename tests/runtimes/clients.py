#!/usr/bin/env python3
"""Real game clients for the runtime tests (tests/runtimes/run.sh).

Opens --clients TCP connections to a treasure example server (OpenResty or
luv; the protocol is in examples/openresty/treasure_game.lua), then for
--seconds sends --rate digs per second in total (spread over random clients;
some digs miss the site, some are preceded by a move), says bye, and checks
EVERY packet received: magic, version, CRC-32C, recipient == this client,
strictly increasing seq, and that each of its own digs came back exactly once
as its DIGGER packet. After bye the server sends a trailer with how many
packets its resolver produced for the player: received must equal it
(lost = 0). Prints dig -> receive latency p50/p99/max over all packets
(client send time to client receive time; both on CLOCK_REALTIME) and exits
1 on any failure.
"""
import argparse, asyncio, random, struct, sys, time

COLUMNS, SPACING = 100, 8          # must match the servers' home(p)
PACKET = 128
HDR = struct.Struct("<4sHBBQQIIII")  # magic version kind flags seq t_us site finder recipient party

# CRC-32C: the one Python implementation of the tests, in the independent
# model of the contract (tests/diff/model.py).
sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "diff"))
from model import crc32c  # noqa: E402

def home(p):
    return ((p - 1) % COLUMNS) * SPACING, ((p - 1) // COLUMNS) * SPACING

def now_us():
    return time.time_ns() // 1000

class Client:
    def __init__(self, player):
        self.player = player
        self.last_seq = 0
        self.received = 0
        self.outstanding = {}   # t_us -> count of own digs not yet answered
        self.trailer = None
        self.errors = []
        self.lat = []

    def check(self, pkt, t_recv):
        magic, ver, kind, flags, seq, t_us, site, finder, recipient, party = HDR.unpack_from(pkt)
        crc = struct.unpack_from("<I", pkt, 124)[0]
        err = None
        if magic != b"TRSR": err = "magic %r" % magic
        elif ver != 1: err = "version %d" % ver
        elif crc32c(pkt[:124]) != crc: err = "crc"
        elif recipient != self.player: err = "recipient %d" % recipient
        elif seq <= self.last_seq: err = "seq %d after %d" % (seq, self.last_seq)
        elif kind not in (1, 2, 3, 4): err = "kind %d" % kind
        if err:
            self.errors.append("player %d: %s" % (self.player, err))
            return
        self.last_seq = seq
        self.received += 1
        self.lat.append(t_recv - t_us)
        if flags & 1:
            if finder != self.player or not self.outstanding.get(t_us):
                self.errors.append("player %d: unexpected DIGGER packet t_us %d" % (self.player, t_us))
            else:
                self.outstanding[t_us] -= 1
                if not self.outstanding[t_us]: del self.outstanding[t_us]

async def connect(c, host, port):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /play?player=%d HTTP/1.1\r\nHost: game\r\nUpgrade: treasure\r\nConnection: Upgrade\r\n\r\n" % c.player)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError("player %d: handshake %r" % (c.player, head[:40]))
    return reader, writer

async def receive(c, reader):
    while True:
        magic = await reader.readexactly(4)
        if magic == b"BYE!":
            rest = await reader.readexactly(12)
            c.trailer = struct.unpack_from("<Q", rest, 4)[0]
            return
        rest = await reader.readexactly(PACKET - 4)
        c.check(magic + rest, now_us())

def frame(op, x, y, z, t):
    return struct.pack("<IiiiQ", op, x, y, z, t)

async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--rate", type=float, default=100.0, help="digs per second, all clients together")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--first-player", type=int, default=1)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    random.seed(1)
    clients = [Client(a.first_player + i) for i in range(a.clients)]
    conns = []
    for i in range(0, len(clients), 100):   # connect in waves of 100
        conns += await asyncio.gather(*(connect(c, a.host, a.port) for c in clients[i:i + 100]))
    await asyncio.sleep(0.3)                # every player has joined
    readers = [asyncio.create_task(receive(c, rd)) for c, (rd, _) in zip(clients, conns)]
    digs = 0
    start = time.monotonic()
    while time.monotonic() - start < a.seconds:
        i = random.randrange(len(clients))
        c, w = clients[i], conns[i][1]
        hx, hz = home(c.player)
        if random.random() < 0.1:           # step aside and back: a move
            w.write(frame(2, hx + 1, 0, hz, 0))
        t = now_us()
        while c.outstanding.get(t):       # t_us identifies the client's own digs
            t += 1
        c.outstanding[t] = 1
        bx = hx if random.random() < 0.9 else hx + 2   # 10% dig next to the site: NOTHING
        w.write(frame(1, bx, 0, hz, t))
        digs += 1
        await asyncio.sleep(max(0.0, start + digs / a.rate - time.monotonic()))
    for _, w in conns:
        w.write(frame(3, 0, 0, 0, 0))
    await asyncio.wait_for(asyncio.gather(*readers), timeout=20)
    for _, w in conns:
        w.close()
    errors = [e for c in clients for e in c.errors]
    lost = sum(max(0, c.trailer - c.received) for c in clients)
    extra = sum(max(0, c.received - c.trailer) for c in clients)
    unanswered = sum(sum(c.outstanding.values()) for c in clients)
    lat = sorted(x for c in clients for x in c.lat)
    total = sum(c.received for c in clients)
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] / 1000.0 if lat else float("nan")
    print("%s clients %d, digs %d (%.0f/s), packets received %d, lost %d, extra %d, unanswered digs %d, "
          "errors %d; dig->receive latency ms p50 %.2f p99 %.2f max %.2f"
          % (a.label, a.clients, digs, digs / a.seconds, total, lost, extra, unanswered, len(errors),
             q(0.5), q(0.99), (lat[-1] / 1000.0 if lat else float("nan"))))
    for e in errors[:10]:
        print("  " + e)
    ok = not errors and lost == 0 and extra == 0 and unanswered == 0 and total > 0
    sys.exit(0 if ok else 1)

asyncio.run(main())
