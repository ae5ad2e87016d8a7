-- Remember the newest digest handled in one chain, only while our discovery holds the lease.
-- KEYS[1] digest chains hash, KEYS[2] lease, KEYS[3] source stats
-- ARGV[1] fencing token, ARGV[2] chain, ARGV[3] JSON {key, sha256, signature}
-- Returns 1 when stored, 0 when the lease is no longer ours (the digest is handled again).
if not holds_lease(KEYS[2], ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('HINCRBY', KEYS[3], STAT_DIGESTS_VERIFIED, 1)
return 1
