-- Claim an S3 object for ingestion, so that it is enqueued once.
-- KEYS[1] object hash, KEYS[2] source stats, KEYS[3] pending set (claimed, not finished)
-- ARGV[1] fencing token of the discovery, ARGV[2] object key,
-- ARGV[3] requeue_after (ms): the pending deadline (on Redis's clock), should its task never start
-- Returns 1: newly claimed, enqueue it. 0: known already (claimed, processing, done or failed).
-- A claim whose task never ran (a crash between claim and enqueue, a lost message) stays in
-- the pending set, where sweep_pending finds it once its deadline has passed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local now = redis_now_ms()
create_claimed(KEYS[1], now, ARGV[1])
pend_claim(KEYS[3], KEYS[2], ARGV[2], now + tonumber(ARGV[3]))
return 1
