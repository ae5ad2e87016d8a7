-- (shared, prepended to every script that calls it) Redis's clock (TIME), in ms: every deadline,
-- heartbeat and "overdue" comparison is made on it, never on a time a process sends (the fleet's
-- processes may disagree about the time).
local function redis_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
