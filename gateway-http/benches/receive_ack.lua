-- wrk script: the simple consumer in a loop. A request acknowledges every handle this thread has
-- received and not yet acknowledged (one POST .../ack), else receives up to 32 messages. The
-- handles of all of a thread's connections go into one list, so none is lost. At the end it
-- prints how many messages were received and acknowledged.
local group, topic = "bench_group", "bench"
local threads = {}

setup = function(thread)
  threads[#threads + 1] = thread
end

init = function(args)
  pending = {}
  received = 0
  acked = 0
end

request = function()
  if #pending > 0 then
    local body = '{"receipt_handles":[' .. table.concat(pending, ",") .. ']}'
    acked = acked + #pending
    pending = {}
    return wrk.format("POST", "/v1/groups/" .. group .. "/topics/" .. topic .. "/ack",
      { ["Content-Type"] = "application/json" }, body)
  end
  return wrk.format("POST", "/v1/groups/" .. group .. "/topics/" .. topic .. "/receive",
    { ["Content-Type"] = "application/json" }, '{"max":32,"invisible_ms":60000}')
end

response = function(status, headers, body)
  for h in string.gmatch(body, '"receipt_handle":"([^"]+)"') do
    pending[#pending + 1] = '"' .. h .. '"'
    received = received + 1
  end
end

done = function(summary, latency, requests)
  local r, a = 0, 0
  for _, t in ipairs(threads) do
    r = r + t:get("received")
    a = a + t:get("acked")
  end
  local s = summary.duration / 1e6
  io.write(string.format("received %d, acknowledged %d messages: %.0f messages/s received and acked\n", r, a, a / s))
end
