-- The Lua half of treasure.cluster, compiled into native.so and run once by
-- src/cluster/mod.rs: the raw Rust functions return (ERR, message) on a
-- failure, and these wrappers raise the message as a plain string at level
-- 0, exactly as native.lua does for the resolver.
--
-- Arguments: raw (table of Rust functions: connect, methods), raise
-- (src/raise.lua: the ERR-to-error rule).
local raw, raise = ...
local check = raise.check
local methods = raise.wrap(raw.methods)

local M = {}

--- cluster.connect(opts) -> link (docs/API.md, "Native transport").
function M.connect(opts)
  return check(raw.connect(opts))
end

return M, methods
