-- The result line every wrk script of the bench prints from done(): one line
-- "BENCHJSON {...}" with wrk's counts, socket errors, latency percentiles (microseconds), the
-- script's own per-thread counters summed over threads, and the first bad response seen.
-- Loaded with dofile by call.lua (wrk has no module path of its own). bench/peers/churn, the
-- session-churn generator, prints the same line.

local M = {}

local function jstr(s)
  return '"' .. string.gsub(s or "", '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

-- counters: names of the integer globals each thread keeps (read with thread:get).
function M.write(summary, latency, threads, counters)
  local sums, fb = {}, ""
  for _, name in ipairs(counters) do sums[name] = 0 end
  for _, t in ipairs(threads) do
    for _, name in ipairs(counters) do sums[name] = sums[name] + (t:get(name) or 0) end
    if fb == "" then fb = t:get("first_bad") or "" end
  end
  local own = {}
  for _, name in ipairs(counters) do own[#own + 1] = string.format('"%s":%d', name, sums[name]) end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,%s,'
    .. '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,'
    .. '"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d,"lat_mean_us":%.1f,'
    .. '"first_bad":%s}\n',
    summary.requests, summary.duration, summary.bytes, table.concat(own, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean, jstr(fb)))
end

return M
