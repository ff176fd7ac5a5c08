-- wrk script of bench/run.sh: requests are built once in init(), then
-- handed out in turn, so that the per-request cost in wrk is the same for
-- every scenario (plain proxy included) and concurrent chats never share a
-- session.  done() prints the result as one JSON line.
--
--   wrk ... -s bench.lua -- METHOD PATH BODY [IDS_FILE [THREADS]]
--
-- PATH and BODY may hold %ID%, replaced by each line of IDS_FILE; BODY is
-- a string, or @FILE for the contents of FILE ("-" for none).  Each wrk
-- thread starts at its own offset in the id list.
--
-- BENCH_NODES="PORT PORT ..." (environment) sends wrk thread k to
-- 127.0.0.1:PORT number k mod their count instead of wrk's own URL: with
-- two threads and two ports the same sessions are chatted with through
-- two nodes, half a ring of ids apart.

local thread_no = 0
local threads = {}
local nodes = {}

for port in (os.getenv("BENCH_NODES") or ""):gmatch("%d+") do
   table.insert(nodes, port)
end

function setup(thread)
   if #nodes > 0 then
      thread.addr = wrk.lookup("127.0.0.1", nodes[thread_no % #nodes + 1])[1]
   end
   thread:set("thread_no", thread_no)
   thread_no = thread_no + 1
   table.insert(threads, thread)
end

local function slurp(file)
   local f = assert(io.open(file, "rb"))
   local s = f:read("*a")
   f:close()
   return s
end

local reqs = {}
local n, i = 0, 0

function init(args)
   local method, path, body, ids_file = args[1], args[2], args[3], args[4]
   local nthreads = tonumber(args[5] or "1")
   local headers = { ["Authorization"] = os.getenv("BENCH_AUTH"),
                     ["Content-Type"] = "application/json" }

   if body == "-" then
      body = nil
   elseif body:sub(1, 1) == "@" then
      body = slurp(body:sub(2))
   end

   local ids = {}
   if ids_file and ids_file ~= "-" then
      for line in io.lines(ids_file) do
         if line ~= "" then table.insert(ids, line) end
      end
   else
      ids = { "" }
   end

   for _, id in ipairs(ids) do
      local p = path:gsub("%%ID%%", id)
      local b = body and body:gsub("%%ID%%", id) or nil
      table.insert(reqs, wrk.format(method, p, headers, b))
   end

   n = #reqs
   i = math.floor(thread_no * n / nthreads)
end

function request()
   i = i % n + 1
   return reqs[i]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests":%d,"duration_s":%.3f,"rps":%.1f,"bytes":%d,' ..
      '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"mean_ms":%.3f,' ..
      '"max_ms":%.3f,"err_connect":%d,"err_read":%d,"err_write":%d,' ..
      '"err_status":%d,"err_timeout":%d}\n',
      summary.requests, summary.duration / 1e6,
      summary.requests / (summary.duration / 1e6), summary.bytes,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.mean / 1000,
      latency.max / 1000, e.connect, e.read, e.write, e.status, e.timeout))
end
