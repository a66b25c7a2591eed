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

return {
  new = impl.new,
  backend = impl.backend,
  _VERSION = impl._VERSION,
  packet = packet,
}
