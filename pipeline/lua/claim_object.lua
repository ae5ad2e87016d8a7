-- Claim an S3 object for ingestion, so that it is enqueued once.
-- KEYS[1] object hash, KEYS[2] source stats
-- ARGV[1] now (ms), ARGV[2] fencing token of the discovery, ARGV[3] requeue_after (ms)
-- Returns 1: new claim, enqueue it. 2: claimed long ago and still not done (its discovery
-- crashed between claim and enqueue, or its task was lost): enqueue again; the object's
-- checkpoint makes a duplicate harmless. 0: skip (done, failed, or recently claimed).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'state', 'claimed', 'checkpoint', 0, 'emitted', 0, 'attempts', 0,
             'claimed_at', ARGV[1], 'token', ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'objects_enqueued', 1)
  return 1
end
if state == 'done' or state == 'failed' then
  return 0
end
local claimed_at = tonumber(redis.call('HGET', KEYS[1], 'claimed_at') or '0')
if tonumber(ARGV[1]) - claimed_at >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'claimed_at', ARGV[1], 'token', ARGV[2])
  return 2
end
return 0
