-- wrk script: every request a new key, so every request is a cache miss.
-- wrk args: -- TAG (unique per run: a second run with the same TAG hits)
local n = 0
local tag = "t"
function init(args)
  tag = args[1] or tag
end
request = function()
  n = n + 1
  return wrk.format("GET", "/obj/" .. tag .. "-" .. n .. "?size=1024")
end
