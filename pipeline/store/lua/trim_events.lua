-- Trim the events stream toward MAXLEN ~ ARGV[1], never dropping an entry a consumer group has
-- not acknowledged.
-- KEYS[1] events stream. ARGV[1] MAXLEN, ARGV[2] '1' when the server trims by acknowledgement
-- itself (XTRIM ... ACKED, Redis >= 8.2), else '0'.
-- Without ACKED: no group → MAXLEN ~ as asked; else MINID ~ (the oldest entry some group still
-- needs: its oldest pending entry, or the one after its last delivered) with LIMIT (the entries
-- over MAXLEN), so it trims toward MAXLEN and stops before the first entry a group needs.
-- Returns the number of entries removed.
local maxlen = tonumber(ARGV[1])
if ARGV[2] == '1' then
  return redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxlen, 'ACKED')
end
local excess = redis.call('XLEN', KEYS[1]) - maxlen
if excess <= 0 then
  return 0
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then
  return redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxlen)
end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return {tonumber(ms), tonumber(seq)}
end
local function older(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end
local needed = nil
for _, group in ipairs(groups) do
  local name, last
  for i = 1, #group, 2 do
    if group[i] == 'name' then
      name = group[i + 1]
    elseif group[i] == 'last-delivered-id' then
      last = group[i + 1]
    end
  end
  local summary = redis.call('XPENDING', KEYS[1], name)
  local candidate
  if tonumber(summary[1]) > 0 then
    candidate = parse(summary[2])
  else
    candidate = parse(last)
    candidate[2] = candidate[2] + 1
  end
  if needed == nil or older(candidate, needed) then
    needed = candidate
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d-%d', needed[1], needed[2]), 'LIMIT', excess)
