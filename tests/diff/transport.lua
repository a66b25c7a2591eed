-- tests/diff/transport.lua: the differential driver's stand-in for the
-- cluster transport (issue 17). It keeps the records the resolver under test
-- took (from the first backend's take_records: the backends must agree, and
-- run.lua compares them), the other source shards' synthesized streams, and
-- turns the generator's apply_records plans (gen.lua apply_piece) into one
-- record string, the same bytes for every backend. Plans only pick: what is
-- delivered moves on only when the first backend's apply_records succeeded
-- (whole or nothing), so a refused string (gap, busy, error) is re-sent
-- later, like the real transport does.
local bit = require("bit")
local rec = require("record")

local T = {}
T.__index = T

function T.new(shard, shards)
  return setmetatable({ shard = shard or 0, shards = shards or 1, own = {}, own_next = 1, others = {}, syn = {} }, T)
end

--- records taken from the resolver: the ones for this shard are delivered
-- back to it in order; the others are only used as wrong-dest records
function T:taken(bytes)
  if type(bytes) ~= "string" then return end
  for _, r in ipairs((rec.split(bytes))) do
    if r.dest == self.shard then self.own[#self.own + 1] = r.bytes
    else self.others[#self.others + 1] = r.bytes end
  end
end

local function copy_entries(es)
  local out = {}
  for i, e in ipairs(es) do
    local c = {}
    for k, v in pairs(e) do c[k] = v end
    local rs = {}
    for j, r in ipairs(e.recipients) do rs[j] = { r[1], r[2], r[3] } end
    c.recipients = rs
    out[i] = c
  end
  return out
end

-- give entries their seqs after `after`; returns the entries and the last seq
local function number(es, after)
  es = copy_entries(es)
  local s = after
  for _, e in ipairs(es) do s = s + e.dseq; e.seq = s end
  return es, s
end

function T:stream(src)
  local st = self.syn[src]
  if not st then st = { log = {}, next = 1, last_to = 0 }; self.syn[src] = st end
  return st
end

-- append a new record from `src` to its stream
function T:cut(st, src, entries, extra)
  local es, last = number(entries, st.last_to)
  local h = { src = src, dest = self.shard, prev = st.last_to, to = last + (extra or 0) }
  local r = { bytes = rec.encode(h, es), prev = h.prev, to = h.to, entries = es }
  st.log[#st.log + 1] = r
  st.last_to = h.to
  return r
end

-- a re-cut record: covers the last delivered record of `src` again and new entries after it
function T:partial(st, src, entries)
  local last = st.log[#st.log]
  local es, lastseq = number(entries, last.to)
  local all = copy_entries(last.entries)
  for _, e in ipairs(es) do all[#all + 1] = e end
  local h = { src = src, dest = self.shard, prev = last.prev, to = lastseq }
  local r = { bytes = rec.encode(h, all), prev = h.prev, to = h.to, entries = all }
  st.log[#st.log + 1] = r
  st.last_to = h.to
  return r
end

local function setbyte(s, off, b) return s:sub(1, off) .. string.char(b) .. s:sub(off + 2) end

-- a corrupted record for reason `reason` (gen.lua BAD_REASONS); returns bytes, at_end
function T:bad(p)
  local v = p.v
  local st = self.syn[p.src]
  local base = st and st.last_to or 0
  local es, last = number(p.entries, base)
  local h = { src = p.src, dest = self.shard, prev = base, to = last }
  local at_end = false
  local function fault(reason)
    local j = v % #es + 1
    local e = es[j]
    if reason == "magic" then h.magic = ({ "TRSX", "CSRT", "\0\0\0\0", "TRSR" })[v % 4 + 1]
    elseif reason == "version" then h.version = ({ 0, 2, 65535 })[v % 3 + 1]
    elseif reason == "length_small" then h.length = v % 40
    elseif reason == "length_big" then h.length = "big"; at_end = true
    elseif reason == "crc" then h.crc = true
    elseif reason == "dest" then h.dest = (self.shard + 1 + v % 65535) % 65536
    elseif reason == "src" then h.src = self.shards + v % (65536 - self.shards)
    elseif reason == "prev_ge_to" then h.prev = h.to + (v % 3 == 0 and (v % 7) or 0)
    elseif reason == "entry_trunc" then
      if v % 2 == 0 then h.digs = #es + 1 + v % 3 else es[#es].nrecipients = #es[#es].recipients + 1 + v % 4 end
    elseif reason == "trailing" then
      if v % 2 == 0 or #es == 1 then h.extra = string.rep(string.char(v % 256), 1 + v % 90) else h.digs = #es - 1 end
    elseif reason == "seq" then
      local k = v % 3
      if k == 0 then e.seq = (j == 1) and h.prev or es[j - 1].seq
      elseif k == 1 then es[#es].seq = h.to + 1 + v % 5
      else e.seq = (j == 1) and math.max(0, h.prev - v % 3) or es[j - 1].seq - 1 end
    elseif reason == "kind" then e.kind = ({ 0, 5, 255, 6 })[v % 4 + 1]
    elseif reason == "flags" then e.flags = ({ 1, 2, 3, 8, 5, 255, 128 })[v % 7 + 1]
    elseif reason == "norecip" then e.recipients = {}
    elseif reason == "recip_id" then
      local rs = e.recipients
      if #rs == 0 then rs[1] = { 1, 0, 0 } end
      local k = v % 3
      if k == 0 then rs[1][1] = 0
      elseif k == 1 then rs[#rs + 1] = { rs[#rs][1], 1, 0 } -- a repeated id
      else table.insert(rs, 1, { rs[1][1] + 1, 2, 1 }) end -- descending
    elseif reason == "recip_flags" then
      local rs = e.recipients
      if #rs == 0 then rs[1] = { 1, 0, 0 } end
      rs[v % #rs + 1][3] = 4 + v % 252
    elseif reason == "padding" then
      local offs = { 19, 22, 23, 60, 61, 62, 63 }
      local nslots = #e.recipients
      for i = 0, nslots - 1 do for b = 9, 11 do offs[#offs + 1] = 72 + 12 * i + b end end
      e.pad = { [offs[v % #offs + 1]] = 1 + v % 255 }
    elseif reason == "trunc_header" then at_end = "trunc"
    end
  end
  fault(p.reason)
  if p.second then fault(p.second) end
  local big = h.length == "big"
  if big then h.length = nil end
  local bytes = rec.encode(h, es)
  if big then
    -- past the bytes left: just past when it ends the string, else far past
    local len = #bytes + 1 + v % 3
    bytes = rec.encode(setmetatable({ length = len }, { __index = h }), es)
  end
  if at_end == "trunc" then bytes = bytes:sub(1, 1 + v % 39) end
  return bytes, at_end
end

--- the bytes for a plan, and a function committing what they deliver
function T:build(pieces)
  local vown = self.own_next
  local vsyn = {}
  local function vnext(src, st) if vsyn[src] == nil then vsyn[src] = st.next end; return vsyn[src] end
  local out, tail = {}, {}
  for _, p in ipairs(pieces) do
    local k = p[1]
    if k == "own" then
      for _ = 1, p[2] do
        if self.own[vown] then out[#out + 1] = self.own[vown]; vown = vown + 1 end
      end
    elseif k == "own_dup" then
      if vown > 1 then out[#out + 1] = self.own[p[2] % (vown - 1) + 1] end
    elseif k == "own_skip" then
      if self.own[vown + 1] then out[#out + 1] = self.own[vown + 1] end
    elseif k == "other" then
      if #self.others > 0 then out[#out + 1] = self.others[#self.others] end
    elseif k == "own_flip" then
      local r = self.own[vown]
      if r then
        local off = p[2] % #r
        out[#out + 1] = setbyte(r, off, bit.bxor(r:byte(off + 1), bit.lshift(1, p[3])))
      end
    elseif k == "syn" or k == "syn_skip" or k == "syn_partial" or k == "syn_dup" then
      local st = self:stream(p[2])
      local n = vnext(p[2], st)
      if k == "syn_dup" then
        if n > 1 then out[#out + 1] = st.log[p[3] % (n - 1) + 1].bytes end
      elseif k == "syn_partial" and n == #st.log + 1 and n > 1 then
        out[#out + 1] = self:partial(st, p[2], p[3]).bytes
        vsyn[p[2]] = n + 1
      elseif k == "syn_skip" then
        if not st.log[n] then self:cut(st, p[2], p[3], p[4]) end
        if not st.log[n + 1] then self:cut(st, p[2], p[3], p[4]) end
        out[#out + 1] = st.log[n + 1].bytes
      else
        if not st.log[n] then self:cut(st, p[2], p[3], p[4] or 0) end
        out[#out + 1] = st.log[n].bytes
        vsyn[p[2]] = n + 1
      end
    elseif k == "bad" then
      local b, at_end = self:bad(p)
      if at_end then tail[#tail + 1] = b else out[#out + 1] = b end
    else
      error("transport: unknown piece " .. tostring(k))
    end
  end
  for _, b in ipairs(tail) do out[#out + 1] = b end
  local s = table.concat(out)
  return s, function()
    self.own_next = vown
    for src, n in pairs(vsyn) do self.syn[src].next = n end
  end
end

return T
