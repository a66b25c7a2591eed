--- treasure.cluster: the native NATS JetStream transport of cluster mode
-- (docs/API.md, "Native transport"). It lives in native.so (src/cluster/,
-- crates/treasure-cluster/); this file only makes it a module of its own:
--
--   local cluster = require("treasure.cluster")
--   local link = cluster.connect{ url = "nats://127.0.0.1:4222", stream = "TREASURE",
--                                 shard = 0, shards = 2, from = 0 }
--   local sent, applied = link:pump(r)   -- every tick
--
-- There is no pure-Lua transport: without native.so this require fails.
local native = require("treasure.native")
local cluster = rawget(native, "_cluster")
if cluster == nil then
  error("treasure: cluster: this native.so has no cluster transport (" ..
    tostring(native._VERSION) .. ")", 0)
end
return cluster
