-- GET /v1/search?q=..&k=10 with 1 to 3 random words of the demo shop's title vocabulary
-- (each word matches thousands of products in a 100k catalog: a heavy, realistic-length query).
-- USERS=N adds &user=u0000x for a random one of the first N demo users (personal re-ranking).
-- WORDS=N makes every query exactly N words; MODE=keyword|semantic|hybrid adds &mode=.
math.randomseed(42)
local words = {"paper","green","cream","blue","rustic","metal","white","cotton","retro","black",
  "ceramic","botanical","pink","striped","red","polka","dot","vintage","recycled","modern","heart",
  "wooden","glass","floral","silver","scandi","gold","bamboo","star","linen","enamel","bag","tea",
  "set","card","candle","plates","lunch","doormat","light","mug","lantern","holder","cushion"}
local users = tonumber(os.getenv("USERS") or "0")
local fixed = tonumber(os.getenv("WORDS") or "0")
local mode = os.getenv("MODE")
request = function()
  local n = fixed > 0 and fixed or math.random(1, 3)
  local q = {}
  for i = 1, n do q[i] = words[math.random(#words)] end
  local path = "/v1/search?k=10&q=" .. table.concat(q, "%20")
  if mode then path = path .. "&mode=" .. mode end
  if users > 0 then path = path .. string.format("&user=u%05d", math.random(1, users)) end
  return wrk.format("GET", path)
end
