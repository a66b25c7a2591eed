-- treasure.metrics(r [, labels]): stats() in the Prometheus text format, per
-- backend. (tests/runtimes parses a live server's output with prometheus_client.)

local backends = require("backends")
local metrics = require("treasure.metrics").render

local function sample(text, name, labels)
  local v = text:match("\n" .. name:gsub("_", "%%_") .. "{" .. labels:gsub("[%.%-%+\"]", "%%%0") .. "} ([^\n]+)")
  return v and tonumber(v)
end

for _, b in ipairs(backends) do
  describe("treasure.metrics on " .. b.name, function()
    it("renders every stats() key with its value, counters and gauges typed", function()
      local r = b.module.new({ seed = 1 })
      r:join(1, 0, 0, 0)
      r:add_loot_table(1, { { item = 5, weight = 1, min = 1, max = 1, rarity = 0 } })
      r:add_site(1, 0, 0, 0, 1, 3)
      for i = 1, 4 do r:dig(1, 0, 0, 0, i) end -- 3 found, 1 empty
      r:flush()
      local s = r:stats()
      local text = "\n" .. metrics(r, { worker = "7" })
      assert.equals(4, sample(text, "treasure_digs_total", 'worker="7"'))
      assert.equals(3, sample(text, "treasure_found_total", 'worker="7"'))
      assert.equals(1, sample(text, "treasure_empty_total", 'worker="7"'))
      assert.equals(s.pending_packets, sample(text, "treasure_pending_packets", 'worker="7"'))
      assert.equals(s.resolve_p99_us, sample(text, "treasure_resolve_latency_us", 'worker="7",quantile="0.99"'))
      assert.truthy(text:find("\n# TYPE treasure_digs_total counter\n", 1, true))
      assert.truthy(text:find("\n# TYPE treasure_players gauge\n", 1, true))
      local QUANTILE = { resolve_p50_us = "0.5", resolve_p99_us = "0.99", resolve_p999_us = "0.999", resolve_max_us = "1" }
      for k, q in pairs(QUANTILE) do
        assert.equals(s[k], sample(text, "treasure_resolve_latency_us", 'worker="7",quantile="' .. q .. '"'), k)
      end
      -- issue 15: the latency histogram, from the fixed buckets of stats()
      local C = require("treasure.contract")
      local HIST = { resolve_count = true, resolve_sum_us = true }
      local prev = 0
      for i, bound in ipairs(C.RESOLVE_BUCKETS_US) do
        HIST[C.RESOLVE_BUCKET_KEYS[i]] = true
        local v = sample(text, "treasure_resolve_duration_us_bucket", 'worker="7",le="' .. bound .. '"')
        assert.equals(s[C.RESOLVE_BUCKET_KEYS[i]], v)
        assert.is_true(v >= prev)
        prev = v
      end
      assert.equals(4, sample(text, "treasure_resolve_duration_us_bucket", 'worker="7",le="+Inf"'))
      assert.equals(4, sample(text, "treasure_resolve_duration_us_count", 'worker="7"'))
      assert.equals(s.resolve_sum_us, sample(text, "treasure_resolve_duration_us_sum", 'worker="7"'))
      assert.truthy(text:find("\n# TYPE treasure_resolve_duration_us histogram\n", 1, true))
      assert.has_error(function() metrics(r, { le = "v" }) end, "treasure: metrics: labels key le is reserved")
      for k, v in pairs(s) do -- nothing a backend reports is hidden
        if type(v) == "number" and not QUANTILE[k] and not HIST[k] then
          assert.truthy(text:find("treasure_" .. k, 1, true), k)
        end
      end
      r:close()
    end)

    it("escapes label values and rejects bad labels", function()
      local r = b.module.new()
      local text = metrics(r, { zone = 'a"b\\c\nd' })
      assert.truthy(text:find('zone="a\\"b\\\\c\\nd"', 1, true))
      assert.has_error(function() metrics(r, 5) end, "treasure: metrics: labels must be a table or nil, got number")
      assert.has_error(function() metrics(r, { ["1x"] = "v" }) end,
        "treasure: metrics: labels key must be a Prometheus label name, got 1x")
      assert.has_error(function() metrics(r, { quantile = "v" }) end, "treasure: metrics: labels key quantile is reserved")
      assert.has_error(function() metrics(r, { k = {} }) end, "treasure: metrics: labels value must be a string or number, got table")
      r:close()
    end)
  end)
end
