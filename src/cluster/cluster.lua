-- The Lua half of treasure.cluster, compiled into native.so and run once by
-- src/cluster/mod.rs: the raw Rust functions return (ERR, message) on a
-- failure, and these wrappers raise the message as a plain string at level
-- 0, exactly as native.lua does for the resolver.
--
-- Arguments: raw (table of Rust functions: connect, methods), ERR (the
-- binding's unique sentinel table).
local raw, ERR = ...
local select, error = select, error

local function check(...)
  if (...) == ERR then
    error((select(2, ...)), 0)
  end
  return ...
end

local methods = {}
for name, fn in pairs(raw.methods) do
  methods[name] = function(...)
    return check(fn(...))
  end
end

local M = {}

--- cluster.connect(opts) -> link (docs/API.md, "Native transport").
function M.connect(opts)
  return check(raw.connect(opts))
end

return M, methods
