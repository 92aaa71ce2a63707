-- POST /api/v1/panels with a new accession (and a new patient) on every request.
--
--   wrk -t T -c C -d 60s -s bench/wrk/post_panels.lua \
--       -H 'Authorization: Bearer TOKEN' http://127.0.0.1:PORT -- BODY PREFIX DELAY_MS BUDGET
--
-- BODY      a panel JSON file (bench/wrk/panel.json); its accession and patient id are replaced
-- PREFIX    accessions are PREFIX<thread>-<n>: unique per run when PREFIX is
-- DELAY_MS  mean pause of a connection before each request, drawn uniformly from
--           [0.5, 1.5] x DELAY_MS so that connections do not fire in step (0: no pause);
--           C connections then send about C / (DELAY_MS + response time) requests per second
-- BUDGET    a thread stops after this many 2xx responses (0: run for the whole -d duration);
--           requests of its other connections still in flight may be stored too
--
-- done() prints one line `WRK-RESULT {json}`: requests, duration, counts per HTTP status,
-- socket errors and latency percentiles (microseconds), for the benchmark to parse.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local template, prefix, delay_ms, budget
local n, ok = 0, 0
counts = {}

function init(args)
  local file = assert(io.open(args[1], "rb"), "cannot read the panel body " .. tostring(args[1]))
  local body = file:read("*a")
  file:close()
  local replaced
  body, replaced = body:gsub('"accession"%s*:%s*"[^"]*"', '"accession": "@ACC@"', 1)
  assert(replaced == 1, "the panel body has no accession")
  body, replaced = body:gsub('("patient"%s*:%s*{%s*"id"%s*:%s*)"[^"]*"', '%1"@PAT@"', 1)
  assert(replaced == 1, "the panel body has no patient id first in its patient")
  template = body
  prefix = (args[2] or "W") .. tid .. "-"
  delay_ms = tonumber(args[3] or "0")
  budget = tonumber(args[4] or "0")
  math.randomseed(os.time() * 1000 + tid)
  wrk.method = "POST"
  wrk.path = "/api/v1/panels"
  wrk.headers["Content-Type"] = "application/json"
end

function delay()
  if delay_ms <= 0 then
    return 0
  end
  return delay_ms * (0.5 + math.random())
end

function request()
  n = n + 1
  local accession = prefix .. n
  local body = template:gsub("@ACC@", accession):gsub("@PAT@", "P-" .. accession)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status >= 200 and status < 300 then
    ok = ok + 1
    if budget > 0 and ok >= budget then
      wrk.thread:stop()
    end
  end
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
