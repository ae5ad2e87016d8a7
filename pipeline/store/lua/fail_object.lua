-- Record an object as failed for good and dead-letter it, atomically.
-- KEYS[1] object hash, KEYS[2] dead-letter stream, KEYS[3] source stats, KEYS[4] pending set
-- ARGV[1] retention (s), ARGV[2] the failing runner ('' = a caller that is no runner), ARGV[3]
-- the object key, ARGV[4] unused (the caller trims with trim_deadletters.lua, given the keys of
-- the letters it drops), then field/value pairs of the dead-letter entry (state_key: the object
-- hash, stats_key: its source's stats); the script adds `attempts` and `failed_at` (Redis's clock).
-- Returns 1 when recorded, 0 when the object was already done or failed, or is no longer the
-- runner's (taken over after it was presumed dead: it writes nothing more).
-- A failed object's hash does not expire: it lives as long as its dead letter, so a listed
-- letter can always be retried. When the stream is full, trim_deadletters.lua drops the oldest
-- letters and their objects' hashes expire after the retention (as a done object's would).
local state = redis.call('HGET', KEYS[1], OBJ_STATE)
if state == STATUS_DONE or state == STATUS_FAILED then
  return 0
end
if ARGV[2] ~= '' and not held_by(KEYS[1], ARGV[2]) then
  return 0
end
local now = redis_now_ms()
local entry = {}
for j = 5, #ARGV do
  entry[j - 4] = ARGV[j]
end
local attempts = redis.call('HGET', KEYS[1], OBJ_ATTEMPTS) or '0'
table.insert(entry, LETTER_ATTEMPTS)
table.insert(entry, attempts)
table.insert(entry, LETTER_FAILED_AT)
table.insert(entry, now)
redis.call('XADD', KEYS[2], '*', unpack(entry))
local error_class = ''
for j = 1, #entry, 2 do
  if entry[j] == LETTER_ERROR_CLASS then error_class = entry[j + 1] end
end
redis.call('HSET', KEYS[1], OBJ_STATE, STATUS_FAILED, OBJ_ERROR, error_class, OBJ_FAILED_AT, now)
redis.call('PERSIST', KEYS[1])
redis.call('HINCRBY', KEYS[3], STAT_OBJECTS_FAILED, 1)
redis.call('HINCRBY', KEYS[3], STAT_OBJECTS_DEAD_LETTERED, 1)
redis.call('ZREM', KEYS[4], ARGV[3])
return 1
