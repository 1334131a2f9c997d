-- wrk script of scripts/bench_serve.py: POST the request bodies of a file (one per line) in
-- turn to /v1/events with a bearer token, and print wrk's summary as one JSON line at the end.
--   wrk -t1 -cN -dS --latency -s scripts/bench_serve.lua URL -- BODIES_FILE TOKEN TAG
--
-- The bodies are the workload's drafts cut into requests, so the service appends the stream
-- the in-process baselines append, not one request over and over. With TAG, every run id
-- ("run-…") is renamed "run-TAG<cycle>-…", where cycle counts the passes over the file: a run
-- is never continued by a later pass or a later load (a run's events stay together in the
-- log's index on run, as in the baselines' stream).

local bodies = {}   -- each body split at its run ids: pieces to join with the new prefix
local tag = ""
local headers = {}
local i, cycle = 0, 0

function init(args)
   for line in io.lines(args[1]) do
      if line ~= "" then
         -- Split once here, so a request costs one join, not a pattern search.
         local pieces, at = {}, 1
         while true do
            local s, e = line:find('"run-', at, true)
            if not s then break end
            pieces[#pieces + 1] = line:sub(at, s - 1)
            at = e + 1
         end
         pieces[#pieces + 1] = line:sub(at)
         bodies[#bodies + 1] = pieces
      end
   end
   assert(#bodies > 0, "no request body in " .. args[1])
   headers["Content-Type"] = "application/json"
   if args[2] and args[2] ~= "" then
      headers["Authorization"] = "Bearer " .. args[2]
   end
   tag = args[3] or ""
end

function request()
   i = i + 1
   if i > #bodies then
      i, cycle = 1, cycle + 1
   end
   local prefix = tag ~= "" and ('"run-' .. tag .. cycle .. '-') or '"run-'
   return wrk.format("POST", "/v1/events", headers, table.concat(bodies[i], prefix))
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
      '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
      summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean))
end
