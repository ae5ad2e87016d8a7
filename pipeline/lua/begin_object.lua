-- A task starts (or resumes) work on an object.
-- KEYS[1] object hash, KEYS[2] pending set, KEYS[3] the source's denied set
-- ARGV[1] now (ms), ARGV[2] runner id (this execution), ARGV[3] heartbeat timeout (ms), ARGV[4] object key
-- Returns {state, checkpoint, attempts, denied}. A terminal state (done, failed) means: nothing
-- to do. denied: 1 when some object of the source is denied (its reads are then reported with
-- set_health 'read'; 0 spares that round trip).
-- An object with no record (claim expired, or ingested by hand) is claimed here.
-- The object stays in the pending set with a deadline of now + heartbeat timeout, which the
-- runner's heartbeats push forward: if its process or host dies, the sweep enqueues it again.
local denied = redis.call('EXISTS', KEYS[3])
local state = redis.call('HGET', KEYS[1], 'state')
if state == STATUS_DONE or state == STATUS_FAILED then
  return {state, tonumber(redis.call('HGET', KEYS[1], 'checkpoint') or '0'), 0, denied}
end
if not state then
  redis.call('HSET', KEYS[1], 'checkpoint', 0, 'emitted', 0, 'claimed_at', ARGV[1])
end
redis.call('HSET', KEYS[1], 'state', STATUS_PROCESSING, 'started_at', ARGV[1], 'heartbeat_at', ARGV[1],
           'runner', ARGV[2])
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[3]), ARGV[4])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {STATUS_PROCESSING, tonumber(redis.call('HGET', KEYS[1], 'checkpoint')), attempts, denied}
