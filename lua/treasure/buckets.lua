--- The fixed upper bounds (µs) of the resolve latency histogram in
-- `stats()` (docs/API.md, "stats"; issue 15): key `resolve_bucket_le_<b>_us`
-- counts the digs resolved in at most b µs (cumulative), with
-- `resolve_count` and `resolve_sum_us`. The same list as
-- RESOLVE_BUCKETS_US in crates/treasure-core/src/readiness.rs (native);
-- tests/lua/metrics_spec.lua checks that both backends report these keys.
local bounds = { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 50000, 100000, 250000 }
local keys = {}
for i = 1, #bounds do keys[i] = "resolve_bucket_le_" .. bounds[i] .. "_us" end
return { bounds = bounds, keys = keys }
