-- wrk script for the benchmark (bench/run.sh): one non-streaming chat completion per request,
-- and one machine-readable RESULT line at the end (latencies in ms).
-- BENCH_BODY: the JSON body (run.sh builds it, the same one the fixed-rate loadgen sends);
-- BENCH_KEY: the bearer key (the mock ignores both).
local body = os.getenv("BENCH_BODY")
local key = os.getenv("BENCH_KEY") or "sk-none"
if body == nil or body == "" then
  error("BENCH_BODY is not set")
end

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f requests=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d errors=%d\n",
    summary.requests / seconds, summary.requests,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
