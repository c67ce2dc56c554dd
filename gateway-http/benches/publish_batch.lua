-- wrk script: POST a JSON batch of 32 messages of 1 KiB each (text bodies).
local body = string.rep("x", 1024)
local items = {}
for i = 1, 32 do
  items[i] = '{"body":"' .. body .. '"}'
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"messages":[' .. table.concat(items, ",") .. ']}'
