-- The one Lua rule of the binding's errors, compiled into native.so and
-- shared by treasure.native (src/native.lua) and treasure.cluster
-- (src/cluster/cluster.lua): a raw Rust function *returns* (ERR, message) on
-- failure (mlua would raise a userdata; the contract raises a plain string
-- at level 0), and `check` turns that into error(message, 0).
--
-- Argument: ERR (the binding's unique sentinel table).
local ERR = ...
local select, error, pairs = select, error, pairs

local M = {}

--- Passes its arguments through, or raises the message after ERR.
function M.check(...)
  if (...) == ERR then
    error((select(2, ...)), 0)
  end
  return ...
end
local check = M.check

--- A table of Lua methods, each the raw Rust method of the same name
--- wrapped in `check`.
function M.wrap(raw_methods)
  local methods = {}
  for name, fn in pairs(raw_methods) do
    methods[name] = function(...)
      return check(fn(...))
    end
  end
  return methods
end

return M
