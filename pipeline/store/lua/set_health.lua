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
local previous = redis.call('HGET', KEYS[1], HF_STATE)
if (event == EVENT_READ or event == EVENT_FORGET) and redis.call('EXISTS', KEYS[3]) == 0 then
  return {0, previous or '', 0, 0}  -- nothing was denied: no write per object read
end
local now = redis_now_ms()
local scope = redis.call('HGET', KEYS[1], HF_SCOPE)
local changed = 0

local function set(state)
  if previous ~= state then
    redis.call('HSET', KEYS[1], HF_STATE, state, HF_SINCE, now)
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
  local began = tonumber(redis.call('HGET', KEYS[1], HF_DENIED_SINCE) or '0')
  local read = tonumber(redis.call('HGET', KEYS[1], HF_LAST_READ_AT) or '0')
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
    redis.call('HSET', KEYS[1], HF_SCOPE, SCOPE_READ,
               HF_ERROR_CLASS, redis.call('HGET', KEYS[1], HF_DENIED_ERROR_CLASS) or '',
               HF_MESSAGE, redis.call('HGET', KEYS[1], HF_DENIED_MESSAGE) or '')
    return state
  end
  redis.call('HDEL', KEYS[1], HF_ERROR_CLASS, HF_MESSAGE, HF_SCOPE, HF_DENIED_ERROR_CLASS, HF_DENIED_MESSAGE,
             HF_DENIED_SINCE)
  return set(HEALTH_OK)
end

local state = previous or ''
local denied_ms, expired = 0, 0
if event == EVENT_FAILING then
  state = set(HEALTH_FAILING)
  redis.call('HSET', KEYS[1], HF_ERROR_CLASS, ARGV[2], HF_MESSAGE, ARGV[3], HF_LAST_ERROR_AT, now, HF_SCOPE, SCOPE_SOURCE)
  redis.call('HINCRBY', KEYS[2], PREFIX_ERRORS .. ARGV[2], 1)
elseif event == EVENT_OK then
  redis.call('HSET', KEYS[1], HF_LAST_SUCCESS, now)
  state = settle()
elseif event == EVENT_DENIED then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('HSET', KEYS[1], HF_DENIED_SINCE, now)
  end
  redis.call('ZADD', KEYS[3], 'NX', now, ARGV[4])
  redis.call('HSET', KEYS[1], HF_DENIED_ERROR_CLASS, ARGV[2], HF_DENIED_MESSAGE, ARGV[3], HF_LAST_ERROR_AT, now)
  redis.call('HINCRBY', KEYS[2], PREFIX_ERRORS .. ARGV[2], 1)
  if not (previous == HEALTH_FAILING and scope == SCOPE_SOURCE) then
    state = settle()
  end
  denied_ms = now - tonumber(redis.call('ZSCORE', KEYS[3], ARGV[4]))
  if state == HEALTH_DEGRADED and denied_ms >= tonumber(ARGV[5]) then
    expired = 1
  end
else  -- 'read' or 'forget'
  redis.call('ZREM', KEYS[3], ARGV[4])
  if event == EVENT_READ then
    redis.call('HSET', KEYS[1], HF_LAST_READ_AT, now)
  end
  if scope == SCOPE_READ then
    state = settle()
  end
end
return {changed, state, denied_ms, expired}
