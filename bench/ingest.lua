-- wrk script: POST /v1/batch with 100 distinct Segment track events per request (about 420 bytes each).
-- Message ids are unique per wrk thread and request, so the server stores every event it acknowledges.
local next_thread = 1
-- Runs against one server in a row (bench/slowloris) set WAYMARK_BENCH_RUN so their message ids differ.
local run = os.getenv("WAYMARK_BENCH_RUN") or "w"
local body_headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Basic YmVuY2gta2V5Og==", -- write key "bench-key"
}

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

-- WAYMARK_BENCH_RATE (events per second) paces the thread: each request claims the next slot of a fixed
-- schedule and waits for it (wrk's delay hook), so the offered load is constant whatever the latency; unset, wrk
-- sends as fast as the server answers.
local rate = tonumber(os.getenv("WAYMARK_BENCH_RATE") or "")
local now_ms, first_slot, slots
if rate then
  local ffi = require("ffi")
  ffi.cdef [[ typedef struct { long tv_sec; long tv_nsec; } waymark_timespec; int clock_gettime(int, waymark_timespec *); ]]
  local ts = ffi.new("waymark_timespec")
  now_ms = function()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  slots = 0
  -- wrk calls delay() before every request after a connection's first; the slots are per thread, so a thread's
  -- share of the rate is the rate divided by the thread count (WAYMARK_BENCH_THREADS, default 1).
  local per_request_ms = 100 * 1000 / rate * tonumber(os.getenv("WAYMARK_BENCH_THREADS") or "1")
  function delay()
    if not first_slot then first_slot = now_ms() end
    slots = slots + 1
    local wait = first_slot + slots * per_request_ms - now_ms()
    if wait < 0 then return 0 end
    return math.floor(wait)
  end
end

local steps = { "Product Viewed", "Added to Cart", "Checkout Started", "Login Attempted", "Reviews Read",
  "Searched", "Help Article Viewed", "Feedback Submitted", "Order Completed", "Call Started" }
local counter = 0

function request()
  counter = counter + 1
  local events = {}
  for i = 1, 100 do
    local customer = (counter * 100 + i) % 50000
    events[i] = string.format(
      '{"type":"track","messageId":"%s%d-%d-%d","userId":"cust-%06d","anonymousId":"dev-%06d",' ..
      '"event":"%s","timestamp":"2026-05-01T10:%02d:%02dZ","properties":{"product":"Smart Lock",' ..
      '"price":229.0,"path":"/products/smart-lock","step_index":%d},"context":{"channel":"web",' ..
      '"library":{"name":"analytics.js","version":"5.0.0"},"userAgent":"Mozilla/5.0 (Macintosh)",' ..
      '"page":{"referrer":"https://www.google.com/"}}}',
      run, thread_id, counter, i, customer, customer, steps[(i % #steps) + 1], (counter % 60), (i % 60), i)
  end
  return wrk.format("POST", "/v1/batch", body_headers, '{"batch":[' .. table.concat(events, ",") .. ']}')
end

local failures = 0
function response(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end

function done(summary, latency, requests)
  io.write(string.format("WRK requests=%d non2xx=%d errors=%d seconds=%.3f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency:percentile(99.9) / 1e3, latency.max / 1e3))
end
