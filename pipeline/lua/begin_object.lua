-- A task starts (or resumes) work on an object.
-- KEYS[1] object hash; ARGV[1] now (ms)
-- Returns {state, checkpoint, attempts}. state 'done'/'failed' means: nothing to do.
-- An object with no record (claim expired, or ingested by hand) is claimed here.
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' or state == 'failed' then
  return {state, tonumber(redis.call('HGET', KEYS[1], 'checkpoint') or '0'), 0}
end
if not state then
  redis.call('HSET', KEYS[1], 'checkpoint', 0, 'emitted', 0, 'claimed_at', ARGV[1])
end
redis.call('HSET', KEYS[1], 'state', 'processing', 'started_at', ARGV[1])
redis.call('PERSIST', KEYS[1])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {'processing', tonumber(redis.call('HGET', KEYS[1], 'checkpoint')), attempts}
