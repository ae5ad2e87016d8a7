-- (shared, prepended to throttle.lua and commit_batch.lua) The source's fleet-wide EPS throttle:
-- GCRA reserving `count` events at once on Redis's clock (TIME), the one clock every worker
-- shares. Returns the milliseconds the caller must wait before emitting them (0: at once).
local function reserve_events(tat_key, stats_key, count, eps)
  local now = redis_now_ms()
  local interval = 1000.0 / eps
  local tat = tonumber(redis.call('GET', tat_key) or '0')
  if tat < now then
    tat = now
  end
  local wait = tat - now
  local new_tat = tat + count * interval
  redis.call('SET', tat_key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 60000)
  if wait > 0 then
    redis.call('HINCRBY', stats_key, STAT_THROTTLE_WAIT_MS, math.floor(wait))
  end
  return math.floor(wait)
end
