-- Objects whose pending deadline has passed: a claim never started (lost message, crash between
-- claim and enqueue), a runner whose heartbeats stopped (its process or host died), a release
-- whose retry never came. Re-arm each (deadline = now + requeue_after) and return it to enqueue.
-- KEYS[1] pending set; ARGV[1] now (ms), ARGV[2] requeue_after (ms), ARGV[3] at most this many,
-- ARGV[4] the object hash key prefix (the key is that prefix .. the object key)
-- A duplicate task is harmless: the object's checkpoint lets only one runner emit each record.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local result = {}
for _, key in ipairs(due) do
  local state = redis.call('HGET', ARGV[4] .. key, 'state')
  if state == STATUS_DONE or state == STATUS_FAILED then
    redis.call('ZREM', KEYS[1], key)
  else
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), key)
    table.insert(result, key)
  end
end
return result
