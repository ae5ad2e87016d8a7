-- Give a dead-lettered object another chance (trailpipe deadletter retry).
-- KEYS[1] object hash, KEYS[2] pending set, KEYS[3] source stats
-- ARGV[1] object key, ARGV[2] requeue_after (ms): the pending deadline (Redis's clock)
-- Returns 1 when the object is claimed again (the caller enqueues it), 0 when it is not failed.
-- Its checkpoint is kept: records emitted before the failure are not emitted twice; the count
-- of vanished runners starts again.
if redis.call('HGET', KEYS[1], OBJ_STATE) ~= STATUS_FAILED then
  return 0
end
local now = redis_now_ms()
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], OBJ_STATE, STATUS_CLAIMED, OBJ_ATTEMPTS, 0, OBJ_CLAIMED_AT, now)
redis.call('HDEL', KEYS[1], OBJ_ERROR, OBJ_FAILED_AT, OBJ_SILENT, OBJ_LOST, OBJ_RUNNER, OBJ_PROCESS)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HINCRBY', KEYS[3], STAT_OBJECTS_FAILED, -1)
redis.call('HINCRBY', KEYS[3], STAT_OBJECTS_RETRIED, 1)
return 1
