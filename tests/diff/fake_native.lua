-- tests/diff/fake_native.lua: a stand-in "native" backend for testing the
-- differential driver itself (not a product module). It wraps treasure.legacy
-- and behaves like an asynchronous backend: packets of accepted digs become
-- visible to poll() only gradually, and all at once after flush(). It has the
-- _new_with_tuning test hook. FAKE_NATIVE_BUG=flags|msg|busy injects a bug so
-- the driver's mismatch reports can be checked:
--   luajit tests/diff/run.lua --backends lua,native=fake_native --sequences 20
local legacy = require("treasure.legacy")

local M = { backend = "native", _VERSION = legacy._VERSION }
local BUG = os.getenv("FAKE_NATIVE_BUG")

local W = {}
W.__index = W
local wrappers = setmetatable({}, { __mode = "k" })

local function wrap(inner)
  local w = setmetatable({ inner = inner, hidden = 0, polls = 0 }, W)
  wrappers[w] = true
  return w
end

function M.new(...) return wrap(legacy.new(...)) end
function M._new_with_tuning(opts, tuning)
  -- run.lua passes chunk sizes, or only freeze_min_found
  assert(type(tuning) == "table" and (tuning.chunk_digs or tuning.freeze_min_found), "bad tuning")
  return wrap(legacy.new(opts))
end

function M.restore(snap) return wrap(legacy.restore(snap)) end
function M._restore_with_tuning(snap, tuning) return M._new_with_tuning and wrap(legacy.restore(snap)) end

-- forward every method; a foreign self goes to legacy unchanged (same errors)
local function inner_of(self)
  if wrappers[self] then return self.inner, self end
  return self, nil
end

local METHODS = { "add_loot_table", "add_site", "remove_site", "join", "move", "set_party", "leave",
  "flush", "stats", "close", "move_batch", "poll_into", "set_host", "take_records", "apply_records", "snapshot" }
local proto -- legacy's method table (taken from a throwaway resolver)
do
  local r = legacy.new()
  proto = {}
  for _, m in ipairs(METHODS) do proto[m] = r[m] end
  proto.dig, proto.dig_batch, proto.poll = r.dig, r.dig_batch, r.poll
  r:close()
end

for _, m in ipairs(METHODS) do
  W[m] = function(self, ...)
    local inner, w = inner_of(self)
    if m == "flush" and w then w.hidden = 0 end
    if BUG == "msg" and m == "move" then
      local ok, e = pcall(proto[m], inner, ...)
      if not ok then error(e .. "!", 0) end
      return e
    end
    return proto[m](inner, ...)
  end
end

local function produced(inner)
  local ok, s = pcall(proto.stats, inner)
  return ok and s.packets or 0
end

function W.dig(self, ...)
  local inner, w = inner_of(self)
  local before = w and produced(inner)
  local a, b = proto.dig(inner, ...)
  if w then w.hidden = w.hidden + (produced(inner) - before) end
  if BUG == "busy" and a == nil and w and w.polls % 7 == 3 then return 1 end
  return a, b
end

function W.dig_batch(self, ...)
  local inner, w = inner_of(self)
  local before = w and produced(inner)
  local a, b = proto.dig_batch(inner, ...)
  if w then w.hidden = w.hidden + (produced(inner) - before) end
  return a, b
end

function W.poll(self, ...)
  local inner, w = inner_of(self)
  local mx = ...
  local nargs = select("#", ...)
  if not w or (mx ~= nil and (type(mx) ~= "number" or mx ~= mx or mx < 0 or mx > 9007199254740991 or mx % 1 ~= 0)) then
    return proto.poll(inner, ...)
  end
  w.polls = w.polls + 1
  local ok, s = pcall(proto.stats, inner)
  if not ok then return proto.poll(inner, ...) end -- closed etc.
  local pending = s.pending_packets
  if w.hidden > pending then w.hidden = pending end
  local visible = pending - w.hidden
  -- progress: a poll sees half of what is still hidden become visible
  local newly = math.floor(w.hidden / 2)
  w.hidden = w.hidden - newly
  visible = visible + newly
  local take = visible
  if mx ~= nil and mx < take then take = mx end
  local n, bytes = proto.poll(inner, take)
  if BUG == "flags" and n > 0 and w.polls % 5 == 2 then
    local k = 7 + 128 * (n - 1)
    bytes = bytes:sub(1, k) .. string.char((bytes:byte(k + 1) + 2) % 256) .. bytes:sub(k + 2)
  end
  return n, bytes
end

return M
