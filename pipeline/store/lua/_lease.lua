-- (shared) Whether the source's discovery lease (it holds "<token>:<owner>") still holds our
-- fencing token: every write of a discovery is made only while it does.
local function holds_lease(lease_key, token)
  return string.match(redis.call('GET', lease_key) or '', '^(%d+):') == token
end
