#!/usr/bin/env python3
"""Independent check of the golden vectors (stdlib only).

This re-implements the packet layout, CRC-32C and the loot roll from
docs/PACKET.md without sharing any code with the Lua side, so a vector that
passes here *and* in tests/lua/vectors_spec.lua is agreed on by two separate
implementations.

  packets.txt: encode the fields with struct, append CRC-32C, compare with hex
               (and decode hex back to the fields).
  rolls.txt:   splitmix64(seed ^ (site_id << 32) ^ before), pick, quantity.

Exits non-zero on any mismatch; always ends with "vectors: N passed, M failed".
"""
import os
import struct
import sys

# Optional argument: another directory holding packets.txt and rolls.txt.
HERE = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
M64 = (1 << 64) - 1

# --- CRC-32C, bit by bit from the reflected Castagnoli polynomial ----------

POLY = 0x82F63B78


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC-32C check value is wrong"

# --- packet layout ---------------------------------------------------------

# 0 magic, 4 version, 6 kind, 7 flags, 8 seq, 16 t_us, 24 site_id, 28 finder,
# 32 recipient, 36 party, 40 x, 44 y, 48 z, 52 item, 56 quantity, 58 rarity,
# 59 pad, 60 charges_left, 64 roll, 72 dist2, 76..123 zero, 124 crc
LAYOUT = struct.Struct("<4sHBBQQIIIIiiiIHBxIQI48x")
assert LAYOUT.size == 124
FIELDS = ["kind", "flags", "seq", "t_us", "site_id", "finder", "recipient",
          "party", "x", "y", "z", "item", "quantity", "rarity",
          "charges_left", "roll", "dist2"]


def encode(f: dict) -> bytes:
    body = LAYOUT.pack(b"TRSR", 1, *[f[k] for k in FIELDS])
    return body + struct.pack("<I", crc32c(body))


def decode(b: bytes) -> dict:
    assert len(b) == 128, "packet must be 128 bytes"
    vals = LAYOUT.unpack(b[:124])
    assert vals[0] == b"TRSR" and vals[1] == 1, "bad magic/version"
    assert b[76:124] == bytes(48), "reserved bytes not zero"
    assert b[59] == 0, "pad byte not zero"
    (crc,) = struct.unpack("<I", b[124:])
    assert crc == crc32c(b[:124]), "bad CRC"
    return dict(zip(FIELDS, vals[2:]))

# --- loot roll -------------------------------------------------------------


def splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def roll_for(seed: int, site_id: int, before: int) -> int:
    return splitmix64((seed ^ (site_id << 32) ^ before) & M64)


def pick_entry(roll: int, weights) -> int:
    """1-based index of the first entry whose running weight sum exceeds pick."""
    pick = roll % sum(weights)
    run = 0
    for i, w in enumerate(weights, 1):
        run += w
        if run > pick:
            return i
    raise AssertionError("unreachable")


def quantity_for(roll: int, lo: int, hi: int) -> int:
    return lo + ((roll >> 40) % (hi - lo + 1))

# --- vector files ----------------------------------------------------------


def blocks(path):
    """Yield dicts of key=value blocks separated by blank lines."""
    cur = {}
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if line.startswith("#"):
                continue
            if not line:
                if cur:
                    yield cur
                cur = {}
                continue
            key, sep, val = line.partition("=")
            if not sep:
                raise SystemExit(f"{path}:{lineno}: expected key=value, got {line!r}")
            cur[key.strip()] = val.strip()
    if cur:
        yield cur


def check_packet(v):
    f = {k: int(v[k]) for k in FIELDS}
    want = bytes.fromhex(v["hex"])
    if len(v["hex"]) != 256 or v["hex"] != v["hex"].lower():
        return "hex must be 256 lowercase hex chars"
    got = encode(f)
    if got != want:
        return f"encode mismatch:\n  got  {got.hex()}\n  want {want.hex()}"
    back = decode(want)
    for k in FIELDS:
        if back[k] != f[k]:
            return f"decode mismatch on {k}: {back[k]} != {f[k]}"
    return None


def check_roll(v):
    seed, site, before = int(v["seed"]), int(v["site_id"]), int(v["before"])
    weights = [int(w) for w in v["weights"].split(",")]
    lo, hi = int(v["min"]), int(v["max"])
    roll = roll_for(seed, site, before)
    if roll != int(v["roll"]):
        return f"roll {roll} != {v['roll']}"
    entry = pick_entry(roll, weights)
    if entry != int(v["entry"]):
        return f"entry {entry} != {v['entry']}"
    qty = quantity_for(roll, lo, hi)
    if qty != int(v["quantity"]):
        return f"quantity {qty} != {v['quantity']}"
    return None


def main():
    passed = failed = 0
    for fname, check in (("packets.txt", check_packet), ("rolls.txt", check_roll)):
        path = os.path.join(HERE, fname)
        for v in blocks(path):
            try:
                err = check(v)
            except (KeyError, ValueError, AssertionError, struct.error) as e:
                err = f"{type(e).__name__}: {e}"
            if err:
                failed += 1
                print(f"FAIL {fname} {v.get('name', '?')}: {err}", file=sys.stderr)
            else:
                passed += 1
    print(f"vectors: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
