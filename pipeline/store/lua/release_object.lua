-- A task gives an object back after a transient or configuration error: the delivery does not
-- count towards the redelivery cap, and a retry resumes at the checkpoint.
-- KEYS[1] object hash, KEYS[2] pending set
-- ARGV[1] when the sweep may enqueue it again if nobody has (ms from now, Redis's clock),
-- ARGV[2] object key, ARGV[3] the releasing runner ('' = a caller that is no runner: whoever holds it).
-- Returns 1 if released; 0 when it is not processing, or another runner has taken it over
-- (this one was presumed dead): that runner's work is not undone.
if redis.call('HGET', KEYS[1], OBJ_STATE) ~= STATUS_PROCESSING or (ARGV[3] ~= '' and not held_by(KEYS[1], ARGV[3])) then
  return 0
end
redis.call('HSET', KEYS[1], OBJ_STATE, STATUS_CLAIMED)
redis.call('HDEL', KEYS[1], OBJ_RUNNER, OBJ_PROCESS)
redis.call('HINCRBY', KEYS[1], OBJ_ATTEMPTS, -1)
redis.call('ZADD', KEYS[2], redis_now_ms() + tonumber(ARGV[1]), ARGV[2])
return 1
