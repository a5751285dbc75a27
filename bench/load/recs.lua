-- GET /v1/users/{id}/recommendations?k=10 for random Online Retail customers
-- (ids 12346..18287; about 73% of them exist, the rest are cold starts).
-- RATE=N (requests/s over all connections, with CONNS=the -c value) paces each
-- connection with a fixed delay between requests; unset, wrk runs flat out.
math.randomseed(42)
local rate = tonumber(os.getenv("RATE") or "")
local conns = tonumber(os.getenv("CONNS") or "1")
request = function()
  return wrk.format("GET", "/v1/users/" .. math.random(12346, 18287) .. "/recommendations?k=10")
end
if rate then
  delay = function()
    return 1000 * conns / rate
  end
end
