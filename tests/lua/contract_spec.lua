-- treasure.contract is the one Lua definition of the contract's limits, the
-- loot entry rule and the message texts (issue 13). This spec checks:
--  * the loot entry rule reads the same from add_loot_table and from restore
--    on every backend: one rule, the same text, only the prefix differs;
--  * no other Lua module writes a contract limit as a literal again;
--  * the shared helpers (ranges, column key) say what the contract says.

local backends = require("backends")
local contract = require("treasure.contract")

local NAN = 0 / 0

local function E(t) -- a valid entry with overrides (false drops a field)
  local e = { item = 1, weight = 1, min = 0, max = 0, rarity = 0 }
  for k, v in pairs(t or {}) do if v == false then e[k] = nil else e[k] = v end end
  return e
end

-- entries -> the rule's text after "<entries path>"
local ENTRY_CASES = {
  { "not a table", 5, " must be a non-empty array of tables, got number" },
  { "empty", {}, " must be a non-empty array of tables, got table" },
  { "a hole", { E(), nil, E() }, " must be a non-empty array of tables, got table" },
  { "a string key", { E(), x = 1 }, " must be a non-empty array of tables, got table" },
  { "entry not a table", { E(), "e" }, "[2] must be a table, got string" },
  { "unknown key", { E({ colour = 1 }) }, "[1] has unknown key 'colour'" },
  { "item 0", { E({ item = 0 }) }, "[1].item must be an integer in [1, 4294967295], got 0" },
  { "weight missing", { E({ weight = false }) }, "[1].weight must be an integer in [1, 4294967295], got nil" },
  { "min fraction", { E({ min = 0.5 }) }, "[1].min must be an integer in [0, 65535], got 0.5" },
  { "max too big", { E({ max = 65536 }) }, "[1].max must be an integer in [0, 65535], got 65536" },
  { "rarity nan", { E({ rarity = NAN }) }, "[1].rarity must be an integer in [0, 255], got " .. tostring(NAN) },
  { "min above max", { E(), E({ min = 3, max = 2 }) }, "[2].min must be <= max, got 3 > 2" },
  { "total weight", { E({ weight = 4294967295 }), E({ weight = 1 }) },
    " total weight must be <= 4294967295, got 4294967296" },
}

local function error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return err
end

for _, B in ipairs(backends) do
  local T = B.module
  describe("contract (" .. B.name .. "): the loot entry rule", function()
    for _, case in ipairs(ENTRY_CASES) do
      it("reads the same from add_loot_table and restore: " .. case[1], function()
        local r = T.new()
        assert.are.equal("treasure: add_loot_table: entries" .. case[3],
          error_of(r.add_loot_table, r, 7, case[2]))
        -- the table was not added: the same id is still free
        r:add_loot_table(7, { E() })
        -- a second resolver, snapshot and dropped unclosed: its finalizer
        -- runs in the middle of later calls (this shape made LuaJIT spin
        -- forever in legacy's old __gc, which cleared the state in pairs())
        local s = T.new():snapshot()
        s.loot_tables = { { id = 7, entries = case[2] } }
        assert.are.equal("treasure: restore: snapshot.loot_tables[1].entries" .. case[3],
          error_of(T.restore, s))
        r:close()
      end)
    end
  end)
end

describe("contract: limits are written once", function()
  -- Every Lua module but contract.lua takes these from treasure.contract.
  local LIMITS = { "1048575", "1048576", "2097152", "9007199254740991", "9007199254740992" }
  -- (found as require finds them: a checkout or an installed tree)
  for _, modname in ipairs({ "treasure", "treasure.legacy", "treasure.packet", "treasure.snapshot",
    "treasure.ffi_buffer", "treasure.metrics" }) do
    it(modname .. " states no contract limit", function()
      local path = assert(package.searchpath(modname, package.path))
      local f = assert(io.open(path, "rb"))
      local text = f:read("*a"):gsub("%-%-[^\n]*", "") -- comments may quote a message
      f:close()
      for _, limit in ipairs(LIMITS) do
        local at = text:find(limit, 1, true)
        assert.is_nil(at, path .. " contains " .. limit .. " (take it from treasure.contract)")
      end
    end)
  end
end)

describe("contract: the shared helpers", function()
  it("prints every range from its bounds", function()
    assert.are.equal("[-1048576, 1048575]", contract.COORD.text)
    assert.are.equal("[0, 9007199254740991]", contract.COUNT.text)
    assert.are.equal("[1, 9007199254740992]", contract.NEXT_SEQ.text)
    assert.are.equal(contract.COORD_MAX, 2 ^ (contract.COORD_BITS - 1) - 1)
    assert.are.equal(contract.SAFE_INT_MAX, 2 ^ 53 - 1)
  end)

  it("gives distinct block columns distinct keys, corners included", function()
    local lo, hi = contract.COORD_MIN, contract.COORD_MAX
    local seen = {}
    for _, x in ipairs({ lo, lo + 1, -1, 0, 1, hi - 1, hi }) do
      for _, y in ipairs({ lo, lo + 1, -1, 0, 1, hi - 1, hi }) do
        local k = contract.column_key(x, y)
        assert.is_nil(seen[k], "column key collides at " .. x .. ", " .. y)
        assert.is_true(k >= 0 and k < 2 ^ 42 and k == math.floor(k))
        seen[k] = true
      end
    end
  end)

  it("prints held numbers as exact integers, -0 as 0", function()
    assert.are.equal("1000000000000000", contract.int_text(1e15))
    assert.are.equal("0", contract.int_text(-0))
    assert.are.equal("9007199254740992", contract.int_text(2 ^ 53))
  end)
end)
