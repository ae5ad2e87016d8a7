-- Give a dead-lettered object another chance (trailpipe deadletter retry).
-- KEYS[1] object hash, KEYS[2] pending set, KEYS[3] source stats
-- ARGV[1] object key, ARGV[2] requeue_after (ms): the pending deadline (Redis's clock)
-- Returns 1 when the object is claimed again (the caller enqueues it), 0 when it is not failed.
-- Its checkpoint is kept: records emitted before the failure are not emitted twice; the count
-- of vanished runners starts again.
if redis.call('HGET', KEYS[1], 'state') ~= STATUS_FAILED then
  return 0
end
local now = redis_now_ms()
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], 'state', STATUS_CLAIMED, 'attempts', 0, 'claimed_at', now)
redis.call('HDEL', KEYS[1], 'error', 'failed_at', 'silent', 'lost', 'runner', 'process')
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HINCRBY', KEYS[3], 'objects_failed', -1)
redis.call('HINCRBY', KEYS[3], 'objects_retried', 1)
return 1
