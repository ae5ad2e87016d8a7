-- A verified digest lists a log file: claim it if trailpipe never did, else note what to expect.
-- KEYS[1] object hash, KEYS[2] source stats, KEYS[3] pending set, KEYS[4] awaiting set
-- ARGV[1] unused (the time is Redis's: TIME), ARGV[2] fencing token, ARGV[3] object key,
-- ARGV[4] the SHA-256 the digest records, ARGV[5] the digest's key, ARGV[6] requeue_after (ms):
-- the claim's pending deadline
-- Returns 'claimed' (the caller enqueues it: the listing missed it), 'pending' (not finished:
-- compared when it is), 'intact', 'mismatch', 'unknown' (done before hashes were kept) or
-- 'dead_lettered'. The expected hash stays on the object, so `verify` needs no digest store.
local now = redis_now_ms()
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'state', STATUS_CLAIMED, 'checkpoint', 0, 'emitted', 0, 'attempts', 0,
             'claimed_at', now, 'token', ARGV[2], 'expected_sha256', ARGV[4], 'digest', ARGV[5])
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[3])
  redis.call('ZADD', KEYS[4], now, ARGV[3])
  redis.call('HINCRBY', KEYS[2], 'objects_enqueued', 1)
  redis.call('HINCRBY', KEYS[2], 'log_files_found_by_digest', 1)
  return STATUS_CLAIMED
end
redis.call('HSET', KEYS[1], 'expected_sha256', ARGV[4], 'digest', ARGV[5])
if state == STATUS_FAILED then
  return 'dead_lettered'
end
if state == STATUS_DONE then
  local sha = redis.call('HGET', KEYS[1], 'sha256')
  if not sha then
    return 'unknown'
  end
  if sha == ARGV[4] then
    return 'intact'
  end
  return 'mismatch'
end
redis.call('ZADD', KEYS[4], now, ARGV[3])
return 'pending'
