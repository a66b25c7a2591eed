--- The backends every spec runs against: a list of { name = , module = }.
--
-- TREASURE_TEST_BACKENDS=lua,native (comma list) makes each listed backend
-- REQUIRED: one that fails to load is an error carrying the loader message,
-- never a silent skip (a skipped backend would make a green run meaningless).
-- Unset or empty: every backend that loads (legacy always does).

local MODULES = { lua = "treasure.legacy", native = "treasure.native" }
local ORDER = { "lua", "native" }

local function load(name, required)
  local modname = MODULES[name]
  if modname == nil then
    error("tests/lua/backends.lua: unknown backend '" .. name ..
      "' in TREASURE_TEST_BACKENDS (want lua and/or native)", 0)
  end
  local ok, mod = pcall(require, modname)
  if not ok then
    if required then
      error("tests/lua/backends.lua: backend '" .. name .. "' is required by " ..
        "TREASURE_TEST_BACKENDS but " .. modname .. " failed to load:\n" .. tostring(mod), 0)
    end
    return nil
  end
  return { name = name, module = mod }
end

local list = {}
local env = os.getenv("TREASURE_TEST_BACKENDS")
if env ~= nil and env:match("%S") then
  local seen = {}
  for name in env:gmatch("[^,%s]+") do
    if not seen[name] then
      seen[name] = true
      list[#list + 1] = load(name, true)
    end
  end
else
  for _, name in ipairs(ORDER) do
    local b = load(name, false)
    if b then list[#list + 1] = b end
  end
end
return list
