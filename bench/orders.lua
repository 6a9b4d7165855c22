-- wrk script for bench/orders.py: every request carries the API key; a POST gets its own Idempotency-Key
-- (run nonce, wrk thread, counter), so every request is a new order, as with the Python client.
-- Arguments after `--`: method, path, key, nonce. The body (POST) is in the file named by BENCH_ORDERS_BODY.
-- At the end one JSON line: requests, non-2xx/3xx responses, socket errors and latency percentiles (µs).

local counter = 0
local threads = {}

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   method, path, key, nonce = args[1], args[2], args[3], args[4]
   headers = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }
   if method == "POST" then
      local file = assert(io.open(os.getenv("BENCH_ORDERS_BODY"), "rb"))
      body = file:read("*a")
      file:close()
   end
end

function request()
   if method == "POST" then
      counter = counter + 1
      headers["Idempotency-Key"] = string.format("%s-%d-%d", nonce, id, counter)
   end
   return wrk.format(method, path, headers, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, "socket_errors": %d, ' ..
      '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
