-- Fleet-wide EPS throttle of a source: GCRA that reserves a whole batch at once (_gcra.lua).
-- KEYS[1] the source's theoretical arrival time (TAT, ms), KEYS[2] source stats
-- ARGV[1] events in the batch, ARGV[2] events per second
-- Returns the milliseconds the caller must wait before emitting the batch (0: at once). The
-- reservation is made now, so concurrent workers queue one behind the other instead of all
-- rushing when the bucket refills: the fleet as a whole emits at most eps per second.
-- "Now" is Redis's clock, the one clock every worker shares: a worker whose clock is ahead
-- would otherwise push the TAT into the future and stall the others (or one behind, overrun).
return reserve_events(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))
