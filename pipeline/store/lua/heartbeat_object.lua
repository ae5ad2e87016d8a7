-- The runner working on an object says it is alive: its pending deadline moves forward.
-- KEYS[1] object hash, KEYS[2] pending set
-- ARGV[1] runner id, ARGV[2] heartbeat timeout (ms), ARGV[3] object key
-- Returns 1, or 0 when the object is no longer this runner's (finished, or taken over after
-- this runner was presumed dead): the runner stops, its next commit would be refused anyway.
-- The time is Redis's (TIME), like every deadline: never the worker's clock.
if not held_by(KEYS[1], ARGV[1]) then
  return 0
end
local now = redis_now_ms()
redis.call('HSET', KEYS[1], OBJ_HEARTBEAT_AT, now)
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[2]), ARGV[3])
return 1
