-- A task gives an object back after a transient error (S3 throttling, a timeout...): the
-- delivery does not count towards the redelivery cap, and a retry resumes at the checkpoint.
-- KEYS[1] object hash. Returns 1 if released.
if redis.call('HGET', KEYS[1], 'state') ~= 'processing' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'claimed')
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
return 1
