-- Fleet-wide EPS throttle of a source: GCRA that reserves a whole batch at once.
-- KEYS[1] the source's theoretical arrival time (TAT, ms), KEYS[2] source stats
-- ARGV[1] events in the batch, ARGV[2] events per second
-- Returns the milliseconds the caller must wait before emitting the batch (0: at once). The
-- reservation is made now, so concurrent workers queue one behind the other instead of all
-- rushing when the bucket refills: the fleet as a whole emits at most eps per second.
-- "Now" is Redis's clock, the one clock every worker shares: a worker whose clock is ahead
-- would otherwise push the TAT into the future and stall the others (or one behind, overrun).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local count = tonumber(ARGV[1])
local interval = 1000.0 / tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local wait = tat - now
local new_tat = tat + count * interval
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 60000)
if wait > 0 then
  redis.call('HINCRBY', KEYS[2], 'throttle_wait_ms', math.floor(wait))
end
return math.floor(wait)
