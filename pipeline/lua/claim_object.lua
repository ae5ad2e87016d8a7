-- Claim an S3 object for ingestion, so that it is enqueued once.
-- KEYS[1] object hash, KEYS[2] source stats, KEYS[3] pending set (claimed, not finished)
-- ARGV[1] now (ms), ARGV[2] fencing token of the discovery, ARGV[3] object key,
-- ARGV[4] requeue_after (ms): the pending deadline, should its task never start
-- Returns 1: newly claimed, enqueue it. 0: known already (claimed, processing, done or failed).
-- A claim whose task never ran (a crash between claim and enqueue, a lost message) stays in
-- the pending set, where sweep_pending finds it once its deadline has passed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', STATUS_CLAIMED, 'checkpoint', 0, 'emitted', 0, 'attempts', 0,
           'claimed_at', ARGV[1], 'token', ARGV[2])
redis.call('ZADD', KEYS[3], tonumber(ARGV[1]) + tonumber(ARGV[4]), ARGV[3])
redis.call('HINCRBY', KEYS[2], 'objects_enqueued', 1)
return 1
