-- Record one integrity violation: an entry in the source's violations stream and its counter.
-- KEYS[1] violations stream, KEYS[2] source stats
-- ARGV[1] kind, ARGV[2] S3 key it concerns, ARGV[3] detail, ARGV[4] now (ms), ARGV[5] MAXLEN
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', VIOLATION_KIND, ARGV[1], VIOLATION_KEY, ARGV[2],
           VIOLATION_DETAIL, ARGV[3], VIOLATION_AT, ARGV[4])
return redis.call('HINCRBY', KEYS[2], PREFIX_INTEGRITY_VIOLATIONS .. ARGV[1], 1)
