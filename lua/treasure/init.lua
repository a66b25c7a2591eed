--- treasure: picks the resolver backend (docs/API.md, "Loading").
--
-- `require("treasure")` returns the native (Rust) backend when
-- `require("treasure.native")` succeeds and the pure-LuaJIT reference
-- (`treasure.legacy`) otherwise. TREASURE_BACKEND=lua|native forces one;
-- forcing native when it cannot load is an error carrying the loader's
-- message, because silently running the slow path in production would hide
-- a broken deployment.
--
-- The module is a fresh table (not the backend's own), so later versions can
-- add functions here (restore, swap, ...) without touching the backends.

local packet = require("treasure.packet")

local function load_native()
  return pcall(require, "treasure.native")
end

local function pick()
  local want = os.getenv("TREASURE_BACKEND")
  if want == nil or want == "" then
    local ok, native = load_native()
    if ok then return native end
    return require("treasure.legacy")
  elseif want == "lua" then
    return require("treasure.legacy")
  elseif want == "native" then
    local ok, native = load_native()
    if not ok then
      error("treasure: TREASURE_BACKEND=native but treasure.native failed to load: " .. tostring(native), 0)
    end
    return native
  end
  error("treasure: TREASURE_BACKEND must be 'lua' or 'native' (or unset), got '" .. want .. "'", 0)
end

local impl = pick()

-- Snapshot, restore and swap (docs/API.md). The snapshot rules live in
-- treasure/snapshot.lua; each backend's restore runs them before building.
local snapshot_rules = require("treasure.snapshot")

local function show(v)
  if type(v) == "string" then return "'" .. v .. "'" end
  if type(v) == "number" then return tostring(v) end
  return type(v)
end

--- The backend module for `backend` ("lua", "native" or nil = impl).
local function backend_module(fn, backend)
  if backend == nil then return impl end
  if backend == "lua" then return require("treasure.legacy") end
  if backend == "native" then
    local ok, native = load_native()
    if not ok then
      error("treasure: " .. fn .. ": backend 'native' failed to load: " .. tostring(native), 0)
    end
    return native
  end
  error("treasure: " .. fn .. ": backend must be 'lua' or 'native', got " .. show(backend), 0)
end

--- treasure.restore(snapshot [, backend]) -> resolver
local function restore(snapshot, backend)
  snapshot_rules.check(snapshot)                    -- arguments left to right
  return backend_module("restore", backend).restore(snapshot)
end

--- treasure.swap(r, backend) -> new resolver; r is closed. The stream a
-- client reads continues unchanged: pending packets move to the new one.
local function swap(r, backend)
  local f = (type(r) == "table" or type(r) == "userdata") and r.snapshot
  if type(f) ~= "function" then
    error("treasure: swap: r must be a resolver, got " .. type(r), 0)
  end
  local mod = backend_module("swap", backend)
  -- snapshot() waits for every accepted dig first (it flushes)
  local ok, snap = pcall(f, r)
  if not ok then
    if type(snap) == "string" then snap = snap:gsub("^treasure: snapshot: ", "treasure: swap: ") end
    error(snap, 0)
  end
  local new = mod.restore(snap)   -- on failure r is untouched and still open
  r:close()
  return new
end

return {
  new = impl.new,
  restore = restore,
  swap = swap,
  backend = impl.backend,
  _VERSION = impl._VERSION,
  packet = packet,
  metrics = require("treasure.metrics").render,
}
