-- Take the discovery lease of a source if nobody holds it, or if its holder is an earlier
-- execution of the same discovery (the same Celery task, redelivered after its worker died).
-- KEYS[1] lease, KEYS[2] fence counter
-- ARGV[1] lease time in ms, ARGV[2] owner (the task id; '' = never take over)
-- The lease holds "<token>:<owner>". Returns the new fencing token (a number that only grows),
-- or 0 when another discovery holds the lease. A newer token makes every write of an older
-- holder fail, so a takeover is safe even if the earlier execution is somehow still running.
local current = redis.call('GET', KEYS[1])
if current then
  local owner = string.match(current, '^%d+:(.*)$')
  if ARGV[2] == '' or owner ~= ARGV[2] then
    return 0
  end
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[2], 'PX', ARGV[1])
return token
