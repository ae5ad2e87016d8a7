-- Release the discovery lease, only if it is still ours.
-- KEYS[1] lease; ARGV[1] our fencing token. Returns 1 if released.
if string.match(redis.call('GET', KEYS[1]) or '', '^(%d+):') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
