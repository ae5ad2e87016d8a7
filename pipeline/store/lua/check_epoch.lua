-- The state epoch: a random id the first process creates in an empty Redis, and every worker
-- and beat remembers. Found gone (or replaced) under a process that remembers one, the state was
-- reset (a Redis restart without persistence, FLUSHALL, eviction): counted once per new epoch.
-- KEYS[1] epoch string, KEYS[2] resets hash
-- ARGV[1] the epoch this process remembers ('' at its start), ARGV[2] a fresh id to create if
-- there is none, ARGV[3] who asks (for the record)
-- Returns {epoch now, 0 | 1 (a reset, counted now) | 2 (a reset another process counted)}.
local current = redis.call('GET', KEYS[1])
if current and (ARGV[1] == '' or current == ARGV[1]) then
  return {current, 0}
end
if not current then
  current = ARGV[2]
  redis.call('SET', KEYS[1], current)
  if ARGV[1] == '' then
    return {current, 0}  -- an empty Redis, seen first by a process that remembers nothing
  end
end
if redis.call('HGET', KEYS[2], RESETS_EPOCH) == current then
  return {current, 2}
end
redis.call('HINCRBY', KEYS[2], RESETS_COUNT, 1)
redis.call('HSET', KEYS[2], RESETS_EPOCH, current, RESETS_LAST_AT, redis_now_ms(), RESETS_DETECTED_BY, ARGV[3],
           RESETS_PREVIOUS_EPOCH, ARGV[1])
return {current, 1}
