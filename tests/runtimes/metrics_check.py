#!/usr/bin/env python3
"""Fetch /metrics from the OpenResty example and parse it with
prometheus_client's text parser; require the treasure families with sane
values (digs > 0, packets >= digs, the four resolve quantiles) and that
the server runs the backend it was started with."""
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families

port = int(sys.argv[1])
backend = sys.argv[2]  # the backend the server was started with: prove it loaded
text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
fam = {f.name: f for f in text_string_to_metric_families(text)}
def one(name):
    s = fam[name].samples
    assert s, name
    return s[0].value
assert fam["treasure_digs"].type == "counter", fam["treasure_digs"].type
digs, packets = one("treasure_digs"), one("treasure_packets")
assert digs > 0 and packets >= digs, (digs, packets)
qs = sorted(s.labels["quantile"] for s in fam["treasure_resolve_latency_us"].samples)
assert qs == ["0.5", "0.99", "0.999", "1"], qs
# issue 15: the resolve latency histogram: buckets monotonic, +Inf == count
h = fam["treasure_resolve_duration_us"]
assert h.type == "histogram", h.type
bk = [(float(s.labels["le"]), s.value) for s in h.samples if s.name.endswith("_bucket")]
assert len(bk) == 13 and bk[-1][0] == float("inf"), bk
assert [b for b, _ in bk] == sorted(b for b, _ in bk), bk
assert all(a[1] <= b[1] for a, b in zip(bk, bk[1:])), ("buckets not monotonic", bk)
count = [s.value for s in h.samples if s.name.endswith("_count")][0]
hsum = [s.value for s in h.samples if s.name.endswith("_sum")][0]
assert bk[-1][1] == count and count > 0 and hsum >= 0, (bk[-1], count, hsum)
assert all("worker" in s.labels for f in fam.values() for s in f.samples)
# only native reports its worker threads: the server runs the backend asked for
assert ("treasure_workers" in fam) == (backend == "native"), (backend, sorted(fam))
print(("metrics (%s): " % backend) + "%d families parsed by prometheus_client; this worker: digs %d, packets %d;"
      " resolve histogram %d buckets, monotonic, +Inf == count == %d" % (len(fam), digs, packets, len(bk), count))
