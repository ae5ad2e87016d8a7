-- Objects whose pending deadline has passed: a claim never started (lost message, crash between
-- claim and enqueue), a runner whose heartbeats stopped (its process or host died), a release
-- whose retry never came. Re-arm each (deadline = now + requeue_after) and return it to enqueue.
-- KEYS[1] pending set, KEYS[1 + i] the object hash of ARGV[1 + i]
-- ARGV[1] requeue_after (ms), ARGV[2..] the objects the caller found past their deadline
-- (ZRANGEBYSCORE just before, with Redis's TIME: a script builds no key name, so on a Redis
-- Cluster every key it touches is declared, all in the source's slot); each is checked again here.
-- "Now" is Redis's clock (TIME), the one the deadlines were written with: a sweeper whose own
-- clock is ahead never sees a live object as overdue.
-- A duplicate task is harmless: begin_object.lua refuses it while the runner beats, and the
-- checkpoint lets only one runner emit each record.
local now = redis_now_ms()
local result = {}
for i = 2, #ARGV do
  local key = ARGV[i]
  local deadline = redis.call('ZSCORE', KEYS[1], key)
  if deadline and tonumber(deadline) <= now then  -- still due (no heartbeat since it was read)
    local state = redis.call('HGET', KEYS[i], OBJ_STATE)
    if state == STATUS_DONE or state == STATUS_FAILED then
      redis.call('ZREM', KEYS[1], key)
    else
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), key)
      table.insert(result, key)
    end
  end
end
return result
