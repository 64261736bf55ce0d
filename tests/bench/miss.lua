-- wrk script: every request a new key, so every request is a cache miss.
local n = 0
local tag = tostring(math.random(1000000000))
request = function()
  n = n + 1
  return wrk.format("GET", "/obj/" .. tag .. "-" .. n .. "?size=1024")
end
