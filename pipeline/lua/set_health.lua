-- A source's health, on Redis's clock (TIME). ARGV[1], the event:
--   'ok'      a discovery listed the source: ok, unless objects are denied (then as below)
--   'failing' a configuration error (or a discovery that gave up): failing, scope 'source'
--   'denied'  object ARGV[4] may not be read: remembered in the denied set (first time kept);
--             failing when no read worked since the denials began, else degraded (scope 'read')
--   'read'    object ARGV[4] was read: out of the denied set; ok once the set is empty
--   'forget'  object ARGV[4] left (dead-lettered): out of the denied set, nothing was read
-- A source-level failure outranks denied reads until a discovery works. `since` moves only on
-- a change. 'failing' and 'denied' count the error by class.
-- KEYS[1] health hash, KEYS[2] stats hash, KEYS[3] denied set (object key -> first denied, ms)
-- ARGV[2] error class, ARGV[3] message, ARGV[4] object key, ARGV[5] denied_object_timeout (ms)
-- Returns {changed (0|1), state, ms the object has been denied, expired (0|1)}: expired when
-- the source is degraded and the object has been denied for at least the timeout.
local event = ARGV[1]
local previous = redis.call('HGET', KEYS[1], 'state')
if (event == 'read' or event == 'forget') and redis.call('EXISTS', KEYS[3]) == 0 then
  return {0, previous or '', 0, 0}  -- nothing was denied: no write per object read
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local scope = redis.call('HGET', KEYS[1], 'scope')
local changed = 0

local function set(state)
  if previous ~= state then
    redis.call('HSET', KEYS[1], 'state', state, 'since', now)
    changed = 1
  end
  return state
end

-- With objects denied: degraded when a read worked since the denials began (`denied_since`:
-- the set was last empty then), else failing.
local function denied_state()
  if redis.call('EXISTS', KEYS[3]) == 0 then
    return nil
  end
  local began = tonumber(redis.call('HGET', KEYS[1], 'denied_since') or '0')
  local read = tonumber(redis.call('HGET', KEYS[1], 'last_read_at') or '0')
  if read >= began then
    return HEALTH_DEGRADED
  end
  return HEALTH_FAILING
end

-- After a read, a discovery or a forget: the denied reads decide, or the source is ok.
local function settle()
  local state = denied_state()
  if state then
    set(state)
    redis.call('HSET', KEYS[1], 'scope', 'read',
               'error_class', redis.call('HGET', KEYS[1], 'denied_error_class') or '',
               'message', redis.call('HGET', KEYS[1], 'denied_message') or '')
    return state
  end
  redis.call('HDEL', KEYS[1], 'error_class', 'message', 'scope', 'denied_error_class', 'denied_message',
             'denied_since')
  return set(HEALTH_OK)
end

local state = previous or ''
local denied_ms, expired = 0, 0
if event == 'failing' then
  state = set(HEALTH_FAILING)
  redis.call('HSET', KEYS[1], 'error_class', ARGV[2], 'message', ARGV[3], 'last_error_at', now, 'scope', 'source')
  redis.call('HINCRBY', KEYS[2], 'errors.' .. ARGV[2], 1)
elseif event == 'ok' then
  redis.call('HSET', KEYS[1], 'last_success', now)
  state = settle()
elseif event == 'denied' then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('HSET', KEYS[1], 'denied_since', now)
  end
  redis.call('ZADD', KEYS[3], 'NX', now, ARGV[4])
  redis.call('HSET', KEYS[1], 'denied_error_class', ARGV[2], 'denied_message', ARGV[3], 'last_error_at', now)
  redis.call('HINCRBY', KEYS[2], 'errors.' .. ARGV[2], 1)
  if not (previous == HEALTH_FAILING and scope == 'source') then
    state = settle()
  end
  denied_ms = now - tonumber(redis.call('ZSCORE', KEYS[3], ARGV[4]))
  if state == HEALTH_DEGRADED and denied_ms >= tonumber(ARGV[5]) then
    expired = 1
  end
else  -- 'read' or 'forget'
  redis.call('ZREM', KEYS[3], ARGV[4])
  if event == 'read' then
    redis.call('HSET', KEYS[1], 'last_read_at', now)
  end
  if scope == 'read' then
    state = settle()
  end
end
return {changed, state, denied_ms, expired}
