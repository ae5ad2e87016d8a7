-- Release the discovery lease, only if it is still ours.
-- KEYS[1] lease; ARGV[1] our fencing token. Returns 1 if released.
if holds_lease(KEYS[1], ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
