-- Make the stored markers belong to the configured prefix: when the prefix changed, every
-- partition marker is cleared (QRadar's rule: a new prefix is listed from its start).
-- KEYS[1] marker hash {prefix}, KEYS[2] partition markers hash, KEYS[3] lease
-- ARGV[1] fencing token, ARGV[2] configured prefix
-- Returns 1 when markers were cleared, 0 when they already belonged to the prefix, -1 when the
-- lease is not ours.
if not holds_lease(KEYS[3], ARGV[1]) then
  return -1
end
local stored = redis.call('HGET', KEYS[1], MARKER_PREFIX)
if stored == ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], MARKER_PREFIX, ARGV[2])
if stored then
  return 1
end
return 0
