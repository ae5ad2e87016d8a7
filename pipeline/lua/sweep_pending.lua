-- Objects whose pending deadline has passed: a claim never started (lost message, crash between
-- claim and enqueue), a runner whose heartbeats stopped (its process or host died), a release
-- whose retry never came. Re-arm each (deadline = now + requeue_after) and return it to enqueue.
-- KEYS[1] pending set; ARGV[1] requeue_after (ms), ARGV[2] at most this many,
-- ARGV[3] the object hash key prefix (the key is that prefix .. the object key)
-- "Now" is Redis's clock (TIME), the one the deadlines were written with: a sweeper whose own
-- clock is ahead never sees a live object as overdue.
-- A duplicate task is harmless: begin_object.lua refuses it while the runner beats, and the
-- checkpoint lets only one runner emit each record.
local now = redis_now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local result = {}
for _, key in ipairs(due) do
  local state = redis.call('HGET', ARGV[3] .. key, 'state')
  if state == STATUS_DONE or state == STATUS_FAILED then
    redis.call('ZREM', KEYS[1], key)
  else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), key)
    table.insert(result, key)
  end
end
return result
