-- Take the discovery lease of a source if nobody holds it.
-- KEYS[1] lease, KEYS[2] fence counter
-- ARGV[1] lease time in ms
-- Returns the fencing token (a number that only grows), or 0 when the lease is held.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
