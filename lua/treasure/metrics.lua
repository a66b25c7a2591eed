-- treasure.metrics(r [, labels]) -> string: the resolver's stats() in the
-- Prometheus text exposition format (version 0.0.4), for a /metrics endpoint.
--
-- Counters (`_total`) are the cumulative stats() keys; gauges are the current
-- ones; the resolve latency quantiles are one gauge with a `quantile` label
-- (they count from the resolver's creation). Any other numeric key a backend
-- reports is exported as a gauge `treasure_<key>` so nothing is hidden.
-- `labels` is nil or a table of string -> string (or number) added to every
-- sample, e.g. { worker = tostring(ngx.worker.pid()) }. The call costs one stats() (see docs/API.md for whether it waits).
-- The resolve latency is also a Prometheus histogram,
-- `treasure_resolve_duration_us` (`_bucket{le=...}`, `_sum`, `_count`), from
-- the fixed cumulative buckets of stats() (treasure.contract's RESOLVE_BUCKETS_US), so it can
-- be aggregated across processes.
local contract = require("treasure.contract")
local BUCKETS_US, BUCKET_KEYS = contract.RESOLVE_BUCKETS_US, contract.RESOLVE_BUCKET_KEYS
local M = {}

local COUNTERS = {
  { "digs", "accepted digs" },
  { "packets", "packets produced" },
  { "found", "accepted digs that found loot" },
  { "empty", "accepted digs on a site with no charges" },
  { "nothing", "accepted digs on a block with no site" },
  { "rejected", "accepted digs out of reach" },
  { "busy", "dig/dig_batch calls refused as busy" },
}
local GAUGES = {
  { "players", "players joined" },
  { "sites", "sites present" },
  { "pending_packets", "packets resolved and not yet polled" },
  { "inflight_digs", "accepted digs whose packets are not yet all pollable" },
}
local QUANTILES = {
  { "resolve_p50_us", "0.5" }, { "resolve_p99_us", "0.99" },
  { "resolve_p999_us", "0.999" }, { "resolve_max_us", "1" },
}

local function fail(msg) error("treasure: metrics: " .. msg, 3) end

local function escape(v)
  return (v:gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"'))
end

local function label_text(r, labels)
  local names = {}
  if labels ~= nil then
    if type(labels) ~= "table" then fail("labels must be a table or nil, got " .. type(labels)) end
    for k, v in pairs(labels) do
      if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") or k:sub(1, 2) == "__" then
        fail("labels key must be a Prometheus label name, got " .. tostring(k))
      end
      if k == "quantile" or k == "le" then fail("labels key " .. k .. " is reserved") end
      if type(v) ~= "string" and type(v) ~= "number" then
        fail("labels value must be a string or number, got " .. type(v))
      end
      names[#names + 1] = k
    end
  end
  table.sort(names)
  local parts = {}
  for _, k in ipairs(names) do parts[#parts + 1] = k .. '="' .. escape(tostring(labels[k])) .. '"' end
  return table.concat(parts, ",")
end

local function num(v)
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if v % 1 == 0 and v > -2^53 and v < 2^53 then return string.format("%d", v) end
  return string.format("%.17g", v)
end

function M.render(r, labels)
  if type(r) ~= "table" and type(r) ~= "userdata" then
    fail("r must be a resolver, got " .. type(r))
  end
  local s = r:stats()
  local l = label_text(r, labels)
  local out, seen = {}, {}
  local function emit(name, kind, help, value)
    out[#out + 1] = "# HELP " .. name .. " " .. help
    out[#out + 1] = "# TYPE " .. name .. " " .. kind
    if value ~= nil then out[#out + 1] = name .. "{" .. l .. "} " .. num(value) end
  end
  for _, c in ipairs(COUNTERS) do
    seen[c[1]] = true
    emit("treasure_" .. c[1] .. "_total", "counter", c[2], s[c[1]] or 0)
  end
  for _, g in ipairs(GAUGES) do
    seen[g[1]] = true
    emit("treasure_" .. g[1], "gauge", g[2], s[g[1]] or 0)
  end
  emit("treasure_resolve_latency_us", "gauge",
    "latency from an accepted dig to its packets being pollable, microseconds, since creation")
  for _, q in ipairs(QUANTILES) do
    seen[q[1]] = true
    out[#out + 1] = "treasure_resolve_latency_us{" .. l .. (l == "" and "" or ",") .. 'quantile="' .. q[2] .. '"} ' .. num(s[q[1]] or 0)
  end
  -- the histogram: cumulative buckets, then +Inf = count, sum, count
  local hist = "treasure_resolve_duration_us"
  emit(hist, "histogram", "latency from an accepted dig to its packets being resolved, microseconds")
  local sep = l == "" and "" or ","
  for i, b in ipairs(BUCKETS_US) do
    local key = BUCKET_KEYS[i]
    seen[key] = true
    out[#out + 1] = hist .. "_bucket{" .. l .. sep .. 'le="' .. b .. '"} ' .. num(s[key] or 0)
  end
  seen.resolve_count, seen.resolve_sum_us = true, true
  out[#out + 1] = hist .. "_bucket{" .. l .. sep .. 'le="+Inf"} ' .. num(s.resolve_count or 0)
  out[#out + 1] = hist .. "_sum{" .. l .. "} " .. num(s.resolve_sum_us or 0)
  out[#out + 1] = hist .. "_count{" .. l .. "} " .. num(s.resolve_count or 0)
  local rest = {}
  for k, v in pairs(s) do
    if not seen[k] and type(v) == "number" and k:match("^[%a_][%w_]*$") then rest[#rest + 1] = k end
  end
  table.sort(rest)
  for _, k in ipairs(rest) do emit("treasure_" .. k, "gauge", "stats()." .. k, s[k]) end
  out[#out + 1] = ""
  return table.concat(out, "\n")
end

return M
