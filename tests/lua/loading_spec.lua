-- require("treasure") backend selection (docs/API.md "Loading"): the
-- backend names, native_error (no silent fallback), the version pairing of
-- the Lua half and native.so, and the no-globals rule. Selection is tested in
-- child processes because the choice is made once, at require time, from the
-- environment. (PUC Lua's refusal is tests/puc/run.sh: busted runs on LuaJIT.)

local backends = require("backends")

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The children run on the interpreter running this spec (Debian's luajit or
-- OpenResty's, see the Makefile): popen's shell is our child, so its parent
-- is this process (under valgrind: $LUAJIT, or luajit).
local LUAJIT = (function()
  local fh = io.popen("readlink /proc/$PPID/exe 2>/dev/null")
  local exe = fh and fh:read("*l")
  if fh then fh:close() end
  -- under valgrind (tests/memcheck) the parent is valgrind's tool binary,
  -- which cannot be run directly: take $LUAJIT then
  if exe == nil or exe == "" or exe:find("valgrind", 1, true) then
    return os.getenv("LUAJIT") or "luajit"
  end
  return exe
end)()

--- Run a Lua snippet in a fresh LuaJIT with the given env prefix; returns
-- ok, combined output.
local function run(env, code)
  -- popen's close() does not report the exit status in Lua 5.1: append it.
  local cmd = env .. " " .. sh_quote(LUAJIT) .. " -e " .. sh_quote(code) .. " 2>&1; printf '\\n%d' $?"
  local fh = assert(io.popen(cmd, "r"))
  local out = fh:read("*a")
  fh:close()
  local body, rc = out:match("^(.*)\n(%d+)$")
  return rc == "0", body
end

local packet = require("treasure.packet")
local V = packet._VERSION -- this Lua half's release, e.g. "treasure 1.0.0"

local SHOW = [[local t = require("treasure") io.write(t.backend, " ", t._VERSION, " ",
  type(t.new), " ", type(t.packet), " ", t.packet.SIZE)]]

local native_loads = pcall(require, "treasure.native")

describe("require('treasure')", function()
  it("rejects an unknown TREASURE_BACKEND value", function()
    local ok, out = run("TREASURE_BACKEND=rust", SHOW)
    assert.is_false(ok)
    assert.matches("treasure: TREASURE_BACKEND must be 'legacy', 'lua' or 'native' (or unset), got 'rust'", out, 1, true)
  end)

  it("forcing native when it cannot load raises the loader's message", function()
    local ok, out = run("TREASURE_BACKEND=native LUA_CPATH='/nonexistent/?.so'", SHOW)
    assert.is_false(ok)
    assert.matches("treasure: TREASURE_BACKEND=native but treasure.native failed to load:", out, 1, true)
    assert.matches("module 'treasure.native' not found", out, 1, true)
  end)

  it("falls back to legacy when native is not there and nothing is forced", function()
    local ok, out = run("TREASURE_BACKEND= LUA_CPATH='/nonexistent/?.so'", SHOW)
    assert.is_true(ok, out)
    assert.equals("lua " .. V .. " function table 128", out)
  end)

  it("keeps why native did not load in treasure.native_error", function()
    local ok, out = run("TREASURE_BACKEND= LUA_CPATH='/nonexistent/?.so'",
      [[local t = require("treasure") io.write(t.backend, "|", t.native_error)]])
    assert.is_true(ok, out)
    assert.matches("^lua|module 'treasure.native' not found:", out)
  end)

  it("with nothing forced picks native exactly when treasure.native loads", function()
    local ok, out = run("TREASURE_BACKEND=", SHOW .. [[ io.write(" ", tostring(t.native_error))]])
    assert.is_true(ok, out)
    if native_loads then
      assert.equals("native " .. V .. " function table 128 nil", out)
    else
      assert.matches("^lua " .. V:gsub("%.", "%%.") .. " function table 128 module 'treasure.native' not found", out)
    end
  end)

  it("TREASURE_BACKEND=legacy is the lua backend under its module's name", function()
    local ok, out = run("TREASURE_BACKEND=legacy",
      SHOW .. [[ io.write(" ", tostring(t.native_error), " ", tostring(t.new == require("treasure.legacy").new))]])
    assert.is_true(ok, out)
    assert.equals("lua " .. V .. " function table 128 nil true", out)
  end)

  it("every module has _VERSION and _VERSION_NUM = major*1e6 + minor*1e3 + patch", function()
    local major, minor, patch = V:match("^treasure (%d+)%.(%d+)%.(%d+)$")
    assert.is_truthy(major, V)
    local num = major * 1000000 + minor * 1000 + patch
    local mods = { "treasure", "treasure.legacy", "treasure.packet", "treasure.snapshot" }
    if native_loads then mods[#mods + 1] = "treasure.native" end
    for _, name in ipairs(mods) do
      local m = require(name)
      assert.equals(V, m._VERSION, name)
      assert.equals(num, m._VERSION_NUM, name)
    end
  end)
end)

describe("treasure.restore and treasure.swap", function()
  it("accept 'legacy' as the lua backend's name", function()
    local treasure, legacy = require("treasure"), require("treasure.legacy")
    local r = treasure.new({ seed = 3 })
    r:add_loot_table(1, { { item = 1, weight = 1, min = 1, max = 1, rarity = 0 } })
    r:add_site(1, 0, 0, 0, 1, 2)
    r:join(1, 0, 0, 0, 0)
    r:dig(1, 0, 0, 0, 1)
    r:flush()
    local want = r:snapshot()
    local a = treasure.restore(want, "legacy")
    assert.equals(getmetatable(legacy.new()), getmetatable(a))
    assert.same(want, a:snapshot())
    local b = treasure.swap(r, "legacy")
    assert.equals(getmetatable(a), getmetatable(b))
    assert.same(want, b:snapshot())
    assert.has_error(function() r:poll() end, "treasure: poll: resolver is closed")
  end)
end)

-- A Lua half and a native.so of different releases must not pair: copy the
-- Lua modules to a temporary directory, give that copy another version, and
-- load it with the real native.so.
if native_loads then
  describe("a Lua half and native.so from different releases", function()
    local dir
    setup(function()
      local src = package.searchpath("treasure.packet", package.path):gsub("/packet%.lua$", "")
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. sh_quote(dir) .. " && cp -r " .. sh_quote(src) .. " " .. sh_quote(dir .. "/treasure")) == 0)
      -- init.lua in a checkout; a LuaRocks tree installs it as treasure.lua
      local init = package.searchpath("treasure", package.path)
      if init:match("/treasure%.lua$") then
        assert(os.execute("cp " .. sh_quote(init) .. " " .. sh_quote(dir .. "/treasure.lua")) == 0)
      end
      local f = assert(io.open(dir .. "/treasure/packet.lua", "rb"))
      local text = f:read("*a")
      f:close()
      local changed, n = text:gsub('local RELEASE = "treasure [%d.]+"', 'local RELEASE = "treasure 9.8.7"')
      assert.equals(1, n)
      f = assert(io.open(dir .. "/treasure/packet.lua", "wb"))
      f:write(changed)
      f:close()
    end)
    teardown(function() if dir then os.execute("rm -rf " .. sh_quote(dir)) end end)

    local function env(backend)
      return "TREASURE_BACKEND=" .. backend .. " LUA_PATH=" .. sh_quote(dir .. "/?.lua;" .. dir .. "/?/init.lua;;")
    end

    for _, backend in ipairs({ "", "native" }) do
      it("refuse to pair (TREASURE_BACKEND=" .. backend .. "), naming both versions", function()
        local ok, out = run(env(backend), SHOW)
        assert.is_false(ok)
        assert.matches("treasure: treasure.native is " .. V .. " (", out, 1, true)
        assert.matches(") but the Lua modules are treasure 9.8.7 (" .. dir, out, 1, true)
        assert.matches("install both halves from one release", out, 1, true)
      end)
    end

    it("refuse in treasure.restore and swap too, and legacy still runs", function()
      local ok, out = run(env("legacy"), [[local t = require("treasure") io.write(t.backend, " ", t._VERSION, "\n")
        local ok, err = pcall(t.restore, t.new():snapshot(), "native") io.write(tostring(ok), " ", err, "\n")
        ok, err = pcall(t.swap, t.new(), "native") io.write(tostring(ok), " ", err)]])
      assert.is_true(ok, out)
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.equals("lua treasure 9.8.7", lines[1])
      assert.matches("^false treasure: treasure.native is " .. V:gsub("%.", "%%.") .. " %(", lines[2])
      assert.matches("^false treasure: treasure.native is " .. V:gsub("%.", "%%.") .. " %(", lines[3])
    end)
  end)
end

for _, B in ipairs(backends) do
  describe(B.name .. " loading", function()
    it("TREASURE_BACKEND=" .. B.name .. " selects it", function()
      local ok, out = run("TREASURE_BACKEND=" .. B.name, SHOW)
      assert.is_true(ok, out)
      assert.equals(B.name .. " " .. V .. " function table 128", out)
    end)

    it("creates no globals when required and used", function()
      local before = {}
      for k in pairs(_G) do before[k] = true end
      local T = B.module
      local t = require("treasure")
      local r = T.new({ seed = 1 })
      r:add_loot_table(1, { { item = 1, weight = 1, min = 0, max = 1, rarity = 0 } })
      r:add_site(1, 0, 0, 0, 1, 2)
      r:join(1, 0, 0, 0, 1)
      r:join(2, 1, 0, 0, 1)
      r:move(2, 2, 0, 0); r:set_party(2, 0)
      r:dig(1, 0, 0, 0, 0)
      r:dig_batch(""); r:move_batch("")
      pcall(r.dig, r, "bad")
      r:flush(); r:poll(1); r:poll(); r:stats()
      r:leave(2); r:remove_site(1); r:close()
      local r2 = t.new(); r2:close()
      local added = {}
      for k in pairs(_G) do if not before[k] then added[#added + 1] = tostring(k) end end
      assert.same({}, added)
    end)
  end)
end
