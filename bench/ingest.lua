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
  io.write(string.format("WRK requests=%d non2xx=%d errors=%d seconds=%.3f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
