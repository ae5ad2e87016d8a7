-- Compare-and-set the marker of one partition of a source.
-- KEYS[1] partition markers hash, KEYS[2] lease
-- ARGV[1] fencing token, ARGV[2] partition, ARGV[3] expected key ('' = none), ARGV[4] new key
-- Returns 1 when moved; 0 when the lease is no longer ours (a newer discovery holds it) or the
-- marker is not where we expected (someone else moved it): the caller stops, losing nothing.
if not holds_lease(KEYS[2], ARGV[1]) then
  return 0
end
local current = redis.call('HGET', KEYS[1], ARGV[2]) or ''
if current ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
return 1
