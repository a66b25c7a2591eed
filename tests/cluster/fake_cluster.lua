-- tests/cluster/fake_cluster.lua: a test double of cluster mode and of
-- treasure.cluster, for developing node.lua and run.py before the real ones
-- exist (`run.py --fake`; `run.py --fake-link`: only the link is fake, the
-- resolvers are real cluster-mode ones, e.g. legacy's). It is NOT the contract's implementation: its
-- records are its own format (a small header, then the owner's 128-byte
-- packets), built on a plain resolver's packets, and its "log" is one
-- append-only file per destination shard (flock'd appends; the stream
-- position is the message's index from 1). What it does keep from the
-- contract is the part the driver relies on: per-source dedupe by owner seq
-- (`prev`/`to`), host seq numbering in log order, apply whole or nothing,
-- `log_position` in the snapshot, replay from it, and the duplicate hooks.
local ffi = require("ffi")
local packet = require("treasure.packet")
local base = require("treasure")

ffi.cdef[[
int open(const char *path, int flags, int mode);
int close(int fd);
long write(int fd, const void *buf, unsigned long n);
int flock(int fd, int op);
]]
local O_WRONLY, O_CREAT, O_APPEND = 1, 64, 1024
local LOCK_EX, LOCK_UN = 2, 8

local M = { backend = "fake" }
local R = {}
R.__index = R

local HDR = 32   -- u16 src, u16 dest, u32 n packets, f64 prev, f64 to, f64 0

local function new_state(r, opts)
  return setmetatable({ r = r, shard = opts.shard, shards = opts.shards, opts = opts, hosts = {},
    applied = {}, sent = {}, next_host_seq = 1, log_position = 0, pending = {}, outgoing = {},
    applied_digs = 0, duplicate_digs = 0, records_in = 0, records_out = 0 }, R)
end

function M.new(opts)
  local o = {}
  for k, v in pairs(opts) do if k ~= "shard" and k ~= "shards" then o[k] = v end end
  return new_state(base.new(o), opts)
end

for _, m in ipairs({ "add_loot_table", "add_site", "move_batch", "move", "set_party" }) do
  R[m] = function(self, ...) return self.r[m](self.r, ...) end
end
function R:join(p, ...) self.hosts[p] = nil return self.r:join(p, ...) end
function R:leave(p) self.hosts[p] = nil return self.r:leave(p) end
function R:set_host(p, h) self.hosts[p] = h ~= self.shard and h or nil end

function R:dig_batch(recs)
  local first, n = self.r:dig_batch(recs)
  if not first then return first, n end
  self.r:flush()
  local np, bytes = self.r:poll()
  local by_dest, to = {}, first + n - 1
  for k = 0, np - 1 do
    local p = bytes:sub(k * 128 + 1, k * 128 + 128)
    local rcpt = packet.decode(p).recipient
    local d = self.hosts[rcpt] or self.shard
    by_dest[d] = by_dest[d] or {}
    local t = by_dest[d]
    t[#t + 1] = p
  end
  for d = 0, self.shards - 1 do
    local t = by_dest[d]
    if t then
      local h = ffi.new("uint8_t[?]", HDR)
      ffi.cast("uint16_t *", h)[0], ffi.cast("uint16_t *", h)[1] = self.shard, d
      ffi.cast("uint32_t *", h)[1] = #t
      ffi.cast("double *", h + 8)[0], ffi.cast("double *", h + 8)[1] = self.sent[d] or 0, to
      self.outgoing[#self.outgoing + 1] = ffi.string(h, HDR) .. table.concat(t)
      self.sent[d] = to
    end
  end
  return first, n
end

function R:take_records()
  local t = self.outgoing
  self.outgoing = {}
  self.records_out = self.records_out + #t
  return #t, t   -- (a table: the fake's own shape)
end

function R:apply_record(rec, log_position)
  local p = ffi.cast("const uint8_t *", rec)
  local src, dest = ffi.cast("const uint16_t *", p)[0], ffi.cast("const uint16_t *", p)[1]
  local n = ffi.cast("const uint32_t *", p)[1]
  local prev, to = ffi.cast("const double *", p + 8)[0], ffi.cast("const double *", p + 8)[1]
  assert(dest == self.shard)
  local have = self.applied[src] or 0
  if to <= have then self.duplicate_digs = self.duplicate_digs + n self.records_in = self.records_in + 1 return 0 end
  if prev > have then return nil, "gap" end
  local last, applied = nil, 0
  for k = 0, n - 1 do
    local q = ffi.new("uint8_t[128]")
    ffi.copy(q, p + HDR + k * 128, 128)
    local seq = tonumber(ffi.cast("uint64_t *", q + 8)[0])
    if seq > have then
      if seq ~= last then
        last = seq
        self.seq_now = self.next_host_seq
        self.next_host_seq = self.next_host_seq + 1
        self.applied_digs = self.applied_digs + 1
        applied = applied + 1
      end
      ffi.cast("uint64_t *", q + 8)[0] = self.seq_now
      ffi.cast("uint32_t *", q + 124)[0] = packet.crc32c_ptr(q, 124)
      self.pending[#self.pending + 1] = ffi.string(q, 128)
    else
      self.duplicate_digs = self.duplicate_digs + (seq ~= last and 1 or 0)
      last = seq
    end
  end
  self.applied[src] = to
  self.records_in = self.records_in + 1
  if log_position and log_position > self.log_position then self.log_position = log_position end
  return applied
end

function R:poll()
  local t = self.pending
  self.pending = {}
  return #t, table.concat(t)
end

function R:stats()
  local s = self.r:stats()
  s.shard, s.shards, s.next_host_seq, s.log_position = self.shard, self.shards, self.next_host_seq, self.log_position
  s.applied_digs, s.duplicate_digs, s.records_in, s.records_out = self.applied_digs, self.duplicate_digs, self.records_in, self.records_out
  return s
end

local function list(t)
  local l = {}
  for k, v in pairs(t) do l[#l + 1] = { shard = k, seq = v } end
  table.sort(l, function(a, b) return a.shard < b.shard end)
  return l
end
function R:snapshot()
  local s = self.r:snapshot()
  local hosts = {}
  for p, h in pairs(self.hosts) do hosts[#hosts + 1] = { id = p, host = h } end
  local opts = {}
  for k, v in pairs(self.opts) do opts[k] = v end
  return { base = s, opts = opts, hosts = hosts, applied = list(self.applied), sent = list(self.sent),
    next_host_seq = self.next_host_seq, log_position = self.log_position, pending = self.pending,
    outgoing = self.outgoing, counters = { self.applied_digs, self.duplicate_digs, self.records_in, self.records_out },
    players = s.players }
end
function M.restore(s)
  local st = new_state(base.restore(s.base), s.opts)
  for _, e in ipairs(s.hosts) do st.hosts[e.id] = e.host end
  for _, e in ipairs(s.applied) do st.applied[e.shard] = e.seq end
  for _, e in ipairs(s.sent) do st.sent[e.shard] = e.seq end
  st.next_host_seq, st.log_position, st.pending, st.outgoing = s.next_host_seq, s.log_position, s.pending, s.outgoing
  st.applied_digs, st.duplicate_digs, st.records_in, st.records_out = unpack(s.counters)
  return st
end
function R:close() end

-- the link: <dir>/to.<dest>.log, messages as "u32 length" + bytes
local L = {}
L.__index = L
function M.connect(o)
  local dir = o.url:match("^file://(.*)$")
  assert(dir, "fake link: url must be file://DIR")
  return setmetatable({ dir = dir, shard = o.shard, pos = 0, skip = o.from or 0, off = 0, published = 0,
    received = 0, dup = o.duplicate_every, dup_raw = o.duplicate_raw_every, held = nil }, L)
end
local lenbuf = ffi.new("uint32_t[1]")
function L:publish(dest, rec)
  local path = self.dir .. "/to." .. dest .. ".log"
  local fd = ffi.C.open(path, O_WRONLY + O_CREAT + O_APPEND, 420)
  assert(fd >= 0, "fake link: open " .. path)
  ffi.C.flock(fd, LOCK_EX)
  lenbuf[0] = #rec
  local msg = ffi.string(lenbuf, 4) .. rec
  assert(ffi.C.write(fd, msg, #msg) == #msg)
  ffi.C.flock(fd, LOCK_UN)
  ffi.C.close(fd)
  self.published = self.published + 1
end
-- the records r has to send, as a list of strings with their destinations
local function take(r)
  if r.apply_record then
    local _, recs = r:take_records()
    local dests = {}
    for i, rec in ipairs(recs) do dests[i] = ffi.cast("const uint16_t *", rec)[1] end
    return recs, dests
  end
  -- a real cluster-mode resolver: record format v1 (dest at 8, length at 32)
  local n, bytes = r:take_records()
  local recs, dests, off = {}, {}, 0
  local p = ffi.cast("const uint8_t *", bytes)
  for i = 1, n do
    local len = ffi.cast("const uint32_t *", p + off + 32)[0]
    recs[i] = bytes:sub(off + 1, off + len)
    dests[i] = ffi.cast("const uint16_t *", p + off + 8)[0]
    off = off + len
  end
  assert(off == #bytes, "fake link: records do not add up to the bytes")
  return recs, dests
end

function L:pump(r)
  local recs, dests = take(r)
  for i, rec in ipairs(recs) do
    local dest = dests[i]
    self:publish(dest, rec)
    if (self.dup and self.published % self.dup == 0) or (self.dup_raw and self.published % self.dup_raw == 0) then
      self:publish(dest, rec)
    end
  end
  local f = io.open(self.dir .. "/to." .. self.shard .. ".log", "rb")
  local applied = 0
  if f then
    f:seek("set", self.off)
    while true do
      local h = f:read(4)
      if not h or #h < 4 then break end
      local n = ffi.cast("const uint32_t *", h)[0]
      local rec = f:read(n)
      if not rec or #rec < n then break end
      local pos = self.pos + 1
      if pos > self.skip then
        local a, why
        if r.apply_record then a, why = r:apply_record(rec, pos) else a, why = r:apply_records(rec, pos) end
        if not a then break end   -- gap or busy: retried at the next pump
        applied = applied + a
        self.received = self.received + 1
      end
      self.pos = pos
      self.off = self.off + 4 + n
    end
    f:close()
  end
  return #recs, applied
end
function L:flush() return true end
function L:stats() return { published = self.published, received = self.received } end
function L:close() end

return M
