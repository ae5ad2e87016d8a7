-- Record a source's health: 'ok' after a discovery that worked, 'failing' after a configuration
-- error (or a discovery that gave up). `since` moves only when the state changes.
-- KEYS[1] health hash, KEYS[2] stats hash
-- ARGV[1] state ('ok' | 'failing'), ARGV[2] now (ms), ARGV[3] error class, ARGV[4] message
-- Returns 1 when the state changed.
local previous = redis.call('HGET', KEYS[1], 'state')
local changed = 0
if previous ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', ARGV[1], 'since', ARGV[2])
  changed = 1
end
if ARGV[1] == 'ok' then
  redis.call('HSET', KEYS[1], 'last_success', ARGV[2])
  redis.call('HDEL', KEYS[1], 'error_class', 'message')
else
  redis.call('HSET', KEYS[1], 'error_class', ARGV[3], 'message', ARGV[4], 'last_error_at', ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'errors.' .. ARGV[3], 1)
end
return changed
