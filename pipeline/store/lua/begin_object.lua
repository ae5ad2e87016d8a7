-- A task starts (or resumes) work on an object.
-- KEYS[1] object hash, KEYS[2] pending set, KEYS[3] the source's denied set
-- ARGV[1] runner id (this execution), ARGV[2] heartbeat timeout (ms), ARGV[3] object key,
-- ARGV[4] the runner's process (pipeline.runner.process_identity), ARGV[5] a runner the caller
-- found lost (its process is gone, pipeline.runner.is_lost), or ''
-- Returns {state, checkpoint, attempts, taken, silent, lost, holder, holder process, denied}
-- (denied: 1 when some object of the source is denied: its reads are then reported with
-- set_health 'read'; 0 spares that round trip):
--   a terminal state (done, failed): nothing to do;
--   processing, taken 1: this runner has it now;
--   processing, taken 0: another runner holds it and is alive (it beat within the heartbeat
--     timeout, on Redis's clock): nothing written; holder and its process are returned, so the
--     caller can tell whether that process is gone (then it calls again naming it in ARGV[5]).
-- An object held by another runner is taken over only when that runner is silent (its last
-- heartbeat is older than the heartbeat timeout by Redis's clock) or lost (ARGV[5]); each such
-- takeover counts in `silent` or `lost`: deliveries whose runner vanished without finishing
-- (what makes a poison object), unlike a release, a refusal or a duplicate delivery.
-- An object with no record (claim expired, or ingested by hand) is claimed here.
-- The object stays in the pending set with a deadline of now + heartbeat timeout, which the
-- runner's heartbeats push forward: if its process or host dies, the sweep enqueues it again.
-- Every check comes before the first write.
local now = redis_now_ms()
local denied = redis.call('EXISTS', KEYS[3])
local state = redis.call('HGET', KEYS[1], OBJ_STATE)
if state == STATUS_DONE or state == STATUS_FAILED then
  return {state, tonumber(redis.call('HGET', KEYS[1], OBJ_CHECKPOINT) or '0'), 0, 0, 0, 0, '', '', denied}
end
local silent = tonumber(redis.call('HGET', KEYS[1], OBJ_SILENT) or '0')
local lost = tonumber(redis.call('HGET', KEYS[1], OBJ_LOST) or '0')
local vanished = nil
if state == STATUS_PROCESSING then
  local holder = redis.call('HGET', KEYS[1], OBJ_RUNNER)
  if holder and holder ~= ARGV[1] then
    local beat = tonumber(redis.call('HGET', KEYS[1], OBJ_HEARTBEAT_AT) or '0')
    if beat + tonumber(ARGV[2]) <= now then
      vanished = OBJ_SILENT
    elseif ARGV[5] ~= '' and holder == ARGV[5] then
      vanished = OBJ_LOST
    else
      return {STATUS_PROCESSING, tonumber(redis.call('HGET', KEYS[1], OBJ_CHECKPOINT) or '0'),
              tonumber(redis.call('HGET', KEYS[1], OBJ_ATTEMPTS) or '0'), 0, silent, lost, holder,
              redis.call('HGET', KEYS[1], OBJ_PROCESS) or '', denied}
    end
  end
end
if vanished == OBJ_SILENT then
  silent = redis.call('HINCRBY', KEYS[1], OBJ_SILENT, 1)
elseif vanished == OBJ_LOST then
  lost = redis.call('HINCRBY', KEYS[1], OBJ_LOST, 1)
end
if not state then
  create_claimed(KEYS[1], now)
end
redis.call('HSET', KEYS[1], OBJ_STATE, STATUS_PROCESSING, OBJ_STARTED_AT, now, OBJ_HEARTBEAT_AT, now,
           OBJ_RUNNER, ARGV[1], OBJ_PROCESS, ARGV[4])
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3])
local attempts = redis.call('HINCRBY', KEYS[1], OBJ_ATTEMPTS, 1)
return {STATUS_PROCESSING, tonumber(redis.call('HGET', KEYS[1], OBJ_CHECKPOINT)), attempts, 1, silent, lost, '', '', denied}
