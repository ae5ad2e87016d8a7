-- Record one integrity violation: an entry in the source's violations stream and its counter.
-- KEYS[1] violations stream, KEYS[2] source stats
-- ARGV[1] kind, ARGV[2] S3 key it concerns, ARGV[3] detail, ARGV[4] now (ms), ARGV[5] MAXLEN
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'kind', ARGV[1], 'key', ARGV[2],
           'detail', ARGV[3], 'at', ARGV[4])
return redis.call('HINCRBY', KEYS[2], 'integrity_violations.' .. ARGV[1], 1)
