--- Issue 4/7: a panic inside a worker becomes a Lua error on the next call,
-- never an abort; other resolvers keep working; close still succeeds.
local C = require("common")
local M = require("treasure.native")

local r = C.world(M, { workers = 2 }, 8)
M._inject_worker_panic(r, 0)
r:dig(1, 0, 0, 0, 1)
local ok, err = pcall(r.flush, r)
C.check(not ok, "flush after a worker panic must raise")
C.check(type(err) == "string" and err:match("^treasure: flush: worker panicked: "),
  "unexpected error: %s", tostring(err))
-- Issue 12 item 7: each method names itself, not the core call behind it.
for _, m in ipairs({ "poll", "wait", "stats", "flush" }) do
  ok, err = pcall(r[m], r)
  C.check(not ok and err:match("^treasure: " .. m .. ": worker panicked: "), "%s: %s", m, tostring(err))
end
ok, err = pcall(r.dig, r, 1, 0, 0, 0, 2)
C.check(not ok and err:match("^treasure: dig: worker panicked: "), "later calls must keep failing: %s", tostring(err))
r:close()
ok, err = pcall(r.dig, r, 1, 0, 0, 0, 3)
C.check(not ok and err == "treasure: dig: resolver is closed", "after close: %s", tostring(err))

local other = C.world(M, { workers = 2 }, 8)
C.check(other:dig(1, 0, 0, 0, 1) == 1, "a second resolver must still work")
other:flush()
C.check(other:poll() == 8, "the second resolver must deliver its packets")
print("worker_panic: panic reported as Lua errors, process alive")
