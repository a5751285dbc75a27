-- POST /v1/events with batches of $BATCH events (default 100) (durable before each reply).
math.randomseed(7)
local n = 0
request = function()
  local parts = {}
  for i = 1, (tonumber(os.getenv("BATCH")) or 100) do
    n = n + 1
    parts[i] = string.format('{"user_id":"load%d","item_id":"%d","type":"view","event_id":"w%d-%d"}',
      n % 5000, 20000 + (n % 3000), math.random(1, 1e9), n)
  end
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"},
    '{"events":[' .. table.concat(parts, ",") .. ']}')
end
