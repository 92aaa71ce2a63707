-- GET one path on every request (the same one), e.g. a page of the review queue.
--
--   wrk -t T -c C -d 10s -s bench/wrk/get.lua \
--       -H 'Authorization: Bearer TOKEN' http://127.0.0.1:PORT -- PATH
--
-- done() prints one line `WRK-RESULT {json}` in the shape of post_panels.lua's: requests,
-- duration, counts per HTTP status, socket errors and latency percentiles (microseconds).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

counts = {}

function init(args)
  wrk.method = "GET"
  wrk.path = args[1] or "/"
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local theirs = thread:get("counts") or {}
    for status, count in pairs(theirs) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests": %d, "duration_us": %d, "statuses": {%s}, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, table.concat(parts, ", "),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max
  ))
end
