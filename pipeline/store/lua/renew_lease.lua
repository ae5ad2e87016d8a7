-- Extend the discovery lease while it is still ours (called once per listed page).
-- KEYS[1] lease; ARGV[1] our fencing token, ARGV[2] lease time in ms. Returns 1 if renewed.
if holds_lease(KEYS[1], ARGV[1]) then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
