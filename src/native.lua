-- The Lua half of the binding, compiled into native.so (include_str!) and run
-- once by luaopen_treasure_native. It exists for two reasons only:
--
-- 1. mlua raises Rust errors as userdata objects, but the contract says a bad
--    call raises a plain string at level 0 (exactly as treasure.legacy does).
--    Each raw Rust function therefore *returns* (ERR, message) on failure and
--    the wrapper below turns that into error(message, 0). A call still costs
--    one Lua->C call; the wrapper is plain Lua that LuaJIT compiles.
-- 2. Only Lua can ask LuaJIT's FFI what a cdata is and how big it is, which
--    poll_into must know before Rust writes into the caller's buffer.
--
-- Arguments: raw (table of Rust functions), ERR (unique sentinel table),
-- packets_held (lua/treasure/ffi_buffer.lua).
local raw, ERR, packets_held = ...

local ffi = require("ffi")
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

-- poll_into: measure the buffer here (treasure/ffi_buffer.lua, the same
-- file treasure.legacy uses), let Rust check everything in the contract's
-- order (self, closed, buf, max) and do the copy.
local raw_poll_into = raw.poll_into
methods.poll_into = function(self, buf, max)
  return check(raw_poll_into(self, buf, max, packets_held(buf) or -1, type(buf)))
end

-- Calibrate how lua_topointer reports a cdata: some LuaJIT builds return the
-- payload address, older ones the GC header. Rust learns the difference once
-- from two probes whose payload addresses the FFI tells us exactly.
local probe_vla = ffi.new("uint8_t[?]", 8)
local probe_fixed = ffi.new("uint8_t[8]")
raw.calibrate(
  probe_vla, tonumber(ffi.cast("uintptr_t", probe_vla)),
  probe_fixed, tonumber(ffi.cast("uintptr_t", probe_fixed))
)

local M = {
  _VERSION = raw._VERSION,
  backend = "native",
}

function M.new(opts)
  return check(raw.new(opts))
end

-- Test-only: new() with internal queue sizes overridden, so tests can force
-- tiny chunks and a tiny in-flight window (wrap-around and backpressure).
function M._new_with_tuning(opts, tuning)
  return check(raw.new(opts, tuning))
end

-- Test-only: make the next worker task panic after n more chunks.
function M._inject_worker_panic(r, n)
  return check(raw.inject_worker_panic(r, n))
end

return M, methods
