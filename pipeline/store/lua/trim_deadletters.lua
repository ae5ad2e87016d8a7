-- Drop the oldest dead letters (over deadletter_maxlen): each one's object record expires after
-- the retention (as a done object's would) and leaves its source's count of failed objects.
-- KEYS[1] dead-letter stream, then per letter, in order: its object hash (state_key) and its
-- source's stats (stats_key), where the letter names them (read by the caller: a script builds
-- no key name, so on a Redis Cluster every key it touches is declared, all in one slot)
-- ARGV[1] retention (s), then per letter: entry id, '1'|'0' (a state_key follows in KEYS),
-- '1'|'0' (a stats_key follows)
-- Returns the number of letters dropped. A letter already gone (another trim) is skipped.
local k = 2
local dropped = 0
for i = 2, #ARGV, 3 do
  local id, state_key, stats_key = ARGV[i], nil, nil
  if ARGV[i + 1] == '1' then
    state_key = KEYS[k]
    k = k + 1
  end
  if ARGV[i + 2] == '1' then
    stats_key = KEYS[k]
    k = k + 1
  end
  if #redis.call('XRANGE', KEYS[1], id, id) > 0 then
    if state_key and redis.call('HGET', state_key, OBJ_STATE) == STATUS_FAILED then
      redis.call('EXPIRE', state_key, ARGV[1])
      if stats_key then
        redis.call('HINCRBY', stats_key, STAT_OBJECTS_FAILED, -1)
      end
    end
    dropped = dropped + redis.call('XDEL', KEYS[1], id)
  end
end
return dropped
