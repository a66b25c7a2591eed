-- require("treasure") backend selection (docs/API.md "Loading") and the
-- no-globals rule. Selection is tested in child processes because the
-- choice is made once, at require time, from the environment.

local backends = require("backends")

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- Run a Lua snippet in a fresh luajit with the given env prefix; returns
-- ok, combined output.
local function run(env, code)
  -- popen's close() does not report the exit status in Lua 5.1: append it.
  local cmd = env .. " luajit -e " .. sh_quote(code) .. " 2>&1; printf '\\n%d' $?"
  local fh = assert(io.popen(cmd, "r"))
  local out = fh:read("*a")
  fh:close()
  local body, rc = out:match("^(.*)\n(%d+)$")
  return rc == "0", body
end

local SHOW = [[local t = require("treasure") io.write(t.backend, " ", t._VERSION, " ",
  type(t.new), " ", type(t.packet), " ", t.packet.SIZE)]]

describe("require('treasure')", function()
  it("rejects an unknown TREASURE_BACKEND value", function()
    local ok, out = run("TREASURE_BACKEND=rust", SHOW)
    assert.is_false(ok)
    assert.matches("treasure: TREASURE_BACKEND must be 'lua' or 'native' %(or unset%), got 'rust'", out)
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
    assert.equals("lua treasure 1.0.0 function table 128", out)
  end)

  it("with nothing forced picks native exactly when treasure.native loads", function()
    local native_loads = pcall(require, "treasure.native")
    local ok, out = run("TREASURE_BACKEND=", SHOW)
    assert.is_true(ok, out)
    assert.equals((native_loads and "native" or "lua") .. " treasure 1.0.0 function table 128", out)
  end)
end)

for _, B in ipairs(backends) do
  describe(B.name .. " loading", function()
    it("TREASURE_BACKEND=" .. B.name .. " selects it", function()
      local ok, out = run("TREASURE_BACKEND=" .. B.name, SHOW)
      assert.is_true(ok, out)
      assert.equals(B.name .. " treasure 1.0.0 function table 128", out)
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
