-- Compare-and-set the marker of a source.
-- KEYS[1] marker hash, KEYS[2] lease
-- ARGV[1] fencing token, ARGV[2] prefix, ARGV[3] expected key ('' = none), ARGV[4] new key
-- Returns 1 when moved; 0 when the lease is no longer ours (a newer discovery holds it) or the
-- marker is not where we expected (someone else moved it): the caller stops, losing nothing.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
local current = redis.call('HMGET', KEYS[1], 'prefix', 'key')
local cur_key = current[2] or ''
if current[1] ~= ARGV[2] then
  cur_key = ''  -- a marker of another prefix counts as none
end
if cur_key ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], 'prefix', ARGV[2], 'key', ARGV[4])
return 1
