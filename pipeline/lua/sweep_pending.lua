-- Find objects claimed long ago and still not finished, and re-arm them for another enqueue.
-- KEYS[1] pending set; ARGV[1] now (ms), ARGV[2] older than (ms), ARGV[3] at most this many
-- Returns their keys. Re-arming (score = now) means each is re-enqueued once per interval, not
-- at every discovery; a duplicate task is harmless thanks to the object's checkpoint.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]),
                       'LIMIT', 0, tonumber(ARGV[3]))
for _, key in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[1], key)
end
return due
