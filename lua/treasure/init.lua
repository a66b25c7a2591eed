--- treasure: picks the resolver backend (docs/API.md, "Loading").
--
-- `require("treasure")` returns the native (Rust) backend when
-- `require("treasure.native")` succeeds and the pure-LuaJIT reference
-- (`treasure.legacy`) otherwise; then `treasure.native_error` keeps why
-- native did not load, so a broken deployment can be seen (and
-- TREASURE_BACKEND=native turns it into an error). TREASURE_BACKEND=legacy
-- (or its older name, lua) or =native forces one. A native.so from another
-- release than these Lua files is refused in every mode that would use it.
--
-- The module is a fresh table (not the backend's own), so later versions can
-- add functions here (restore, swap, ...) without touching the backends.

-- First, before any other module is parsed: they are LuaJIT code (0ULL
-- literals, the FFI), which PUC Lua would reject with a confusing message.
do
  local jit = rawget(_G, "jit")
  local ok = type(jit) == "table" and (tonumber(jit.version_num) or 0) >= 20100 and pcall(require, "ffi")
  if not ok then
    local this = type(jit) == "table" and tostring(jit.version) or tostring(_VERSION)
    error("treasure: needs LuaJIT 2.1 (FFI); this is " .. this, 0)
  end
end

local contract = require("treasure.contract")
local packet = require("treasure.packet")

--- Backend names: "legacy" is the module's name (treasure.legacy), "lua" the
-- name contract v1 reports in `backend`; both are accepted everywhere.
local MODULE_OF = { legacy = "treasure.legacy", lua = "treasure.legacy", native = "treasure.native" }

local function where(modname, path)
  return (package.searchpath and package.searchpath(modname, path)) or "?"
end

--- Loads treasure.native. Returns the module, or nil, why, fatal: fatal when
-- it loaded but belongs to another release (never paired with these files).
local function load_native()
  local ok, native = pcall(require, "treasure.native")
  if not ok then return nil, tostring(native), false end
  if native._VERSION ~= packet._VERSION then
    return nil, "treasure: treasure.native is " .. tostring(native._VERSION) .. " (" ..
      where("treasure.native", package.cpath) .. ") but the Lua modules are " .. packet._VERSION ..
      " (" .. where("treasure", package.path) .. "); install both halves from one release " ..
      "(or set TREASURE_BACKEND=legacy to run without native)", true
  end
  return native
end

local native_error -- why native did not load (default selection only)

local function pick()
  local want = os.getenv("TREASURE_BACKEND")
  if want == nil or want == "" then
    local native, why, fatal = load_native()
    if native then return native end
    if fatal then error(why, 0) end
    native_error = why
    return require("treasure.legacy")
  elseif want == "native" then
    local native, why, fatal = load_native()
    if not native then
      if fatal then error(why, 0) end
      error("treasure: TREASURE_BACKEND=native but treasure.native failed to load: " .. why, 0)
    end
    return native
  elseif MODULE_OF[want] then
    return require(MODULE_OF[want])
  end
  error("treasure: TREASURE_BACKEND must be 'legacy', 'lua' or 'native' (or unset), got '" .. want .. "'", 0)
end

local impl = pick()

-- Snapshot, restore and swap (docs/API.md). The snapshot rules live in
-- treasure/snapshot.lua; each backend's restore runs them before building.
local snapshot_rules = require("treasure.snapshot")

--- The backend module for `backend` ("legacy", "lua", "native" or nil = impl).
local function backend_module(fn, backend)
  if backend == nil then return impl end
  if backend == "native" then
    local native, why, fatal = load_native()
    if not native then
      if fatal then error(why, 0) end
      contract.fail(fn, "backend 'native' failed to load: " .. why)
    end
    return native
  end
  if type(backend) == "string" and MODULE_OF[backend] then return require(MODULE_OF[backend]) end
  contract.fail(fn, "backend must be 'legacy', 'lua' or 'native', got " .. contract.show_choice(backend))
end

--- treasure.restore(snapshot [, backend]) -> resolver
local function restore(snapshot, backend)
  snapshot_rules.check(snapshot)                    -- arguments left to right
  return backend_module("restore", backend).restore(snapshot)
end

--- A message of `fn` ("treasure: snapshot: ...") as swap's own.
local function rename(message, fn)
  local prefix = contract.message(fn, "")
  if message:sub(1, #prefix) ~= prefix then return message end
  return contract.message("swap", message:sub(#prefix + 1))
end

--- treasure.swap(r, backend) -> new resolver; r is closed. The stream a
-- client reads continues unchanged: pending packets move to the new one.
local function swap(r, backend)
  local f = (type(r) == "table" or type(r) == "userdata") and r.snapshot
  if type(f) ~= "function" then
    contract.fail("swap", "r must be a resolver, got " .. type(r))
  end
  local mod = backend_module("swap", backend)
  -- snapshot() waits for every accepted dig first (it flushes)
  local ok, snap = pcall(f, r)
  if not ok then
    if type(snap) == "string" then snap = rename(snap, "snapshot") end
    error(snap, 0)
  end
  -- on failure r is untouched and still open; the message names swap
  local restored, new = pcall(mod.restore, snap)
  if not restored then
    if type(new) == "string" then new = rename(new, "restore") end
    error(new, 0)
  end
  r:close()
  return new
end

return {
  new = impl.new,
  restore = restore,
  swap = swap,
  backend = impl.backend,
  -- nil unless native was tried (TREASURE_BACKEND unset) and did not load
  native_error = native_error,
  _VERSION = packet._VERSION,
  _VERSION_NUM = packet._VERSION_NUM,
  packet = packet,
  metrics = require("treasure.metrics").render,
}
