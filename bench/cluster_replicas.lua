-- wrk script for bench/cluster_replicas.py. Env: BENCH_MODE=get|confirm, BENCH_TOKEN, and for
-- confirm BENCH_IDS (a file of "<transfer id> <confirmation id>" lines), BENCH_THREAD_BASE and
-- BENCH_THREADS_ALL so two wrk processes take disjoint lines. Each thread confirms its own lines,
-- each once; a 2xx/3xx is the only acceptable answer, and wrk counts any other.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  mode = os.getenv("BENCH_MODE")
  headers = { ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"), ["Content-Type"] = "application/json" }
  items = {}
  if mode == "confirm" then
    local slot = tonumber(os.getenv("BENCH_THREAD_BASE")) + tid
    local slots = tonumber(os.getenv("BENCH_THREADS_ALL"))
    local n = 0
    for line in io.lines(os.getenv("BENCH_IDS")) do
      if n % slots == slot then
        table.insert(items, line)
      end
      n = n + 1
    end
  end
  next_item = 1
end

function request()
  if mode == "get" then
    return wrk.format("GET", "/api/timebank/members/me", headers)
  end
  local line = items[next_item]
  next_item = next_item + 1
  if line == nil then
    -- Out of prepared services: a request that fails (404), so the run shows it.
    line = "00000000-0000-0000-0000-000000000000 00000000-0000-4000-8000-000000000000"
  end
  local transfer, confirmation = line:match("(%S+) (%S+)")
  return wrk.format("POST", "/api/timebank/transfers/" .. transfer .. "/confirm", headers,
    '{"id":"' .. confirmation .. '"}')
end
