-- The runner working on an object says it is alive: its pending deadline moves forward.
-- KEYS[1] object hash, KEYS[2] pending set
-- ARGV[1] now (ms), ARGV[2] runner id, ARGV[3] heartbeat timeout (ms), ARGV[4] object key
-- Returns 1, or 0 when the object is no longer this runner's (finished, or taken over after
-- this runner was presumed dead): the runner's next commit would be refused anyway.
if redis.call('HGET', KEYS[1], 'state') ~= STATUS_PROCESSING or redis.call('HGET', KEYS[1], 'runner') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'heartbeat_at', ARGV[1])
redis.call('ZADD', KEYS[2], 'XX', tonumber(ARGV[1]) + tonumber(ARGV[3]), ARGV[4])
return 1
