-- GET /v1/users/{id}/recommendations?k=10 for random Online Retail customers
-- (ids 12346..18287; about 73% of them exist, the rest are cold starts).
math.randomseed(42)
request = function()
  return wrk.format("GET", "/v1/users/" .. math.random(12346, 18287) .. "/recommendations?k=10")
end
