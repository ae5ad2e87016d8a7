-- A verified digest lists a log file: claim it if trailpipe never did, else note what to expect.
-- KEYS[1] object hash, KEYS[2] source stats, KEYS[3] pending set, KEYS[4] awaiting set
-- ARGV[1] unused (the time is Redis's: TIME), ARGV[2] fencing token, ARGV[3] object key,
-- ARGV[4] the SHA-256 the digest records, ARGV[5] the digest's key, ARGV[6] requeue_after (ms):
-- the claim's pending deadline
-- Returns 'claimed' (the caller enqueues it: the listing missed it), 'pending' (not finished:
-- compared when it is), 'intact', 'mismatch', 'unknown' (done before hashes were kept) or
-- 'dead_lettered'. The expected hash stays on the object, so `verify` needs no digest store.
local now = redis_now_ms()
local state = redis.call('HGET', KEYS[1], OBJ_STATE)
if not state then
  create_claimed(KEYS[1], now, ARGV[2], OBJ_EXPECTED_SHA256, ARGV[4], OBJ_DIGEST, ARGV[5])
  pend_claim(KEYS[3], KEYS[2], ARGV[3], now + tonumber(ARGV[6]))
  redis.call('ZADD', KEYS[4], now, ARGV[3])
  redis.call('HINCRBY', KEYS[2], STAT_LOG_FILES_FOUND_BY_DIGEST, 1)
  return RECONCILED_CLAIMED
end
redis.call('HSET', KEYS[1], OBJ_EXPECTED_SHA256, ARGV[4], OBJ_DIGEST, ARGV[5])
if state == STATUS_FAILED then
  return RECONCILED_DEAD_LETTERED
end
if state == STATUS_DONE then
  local sha = redis.call('HGET', KEYS[1], OBJ_SHA256)
  if not sha then
    return RECONCILED_UNKNOWN
  end
  if sha == ARGV[4] then
    return RECONCILED_INTACT
  end
  return RECONCILED_MISMATCH
end
redis.call('ZADD', KEYS[4], now, ARGV[3])
return RECONCILED_PENDING
