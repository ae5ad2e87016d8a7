-- (shared) An object's runner, and creating a claimed object.

-- Whether the object is processing under `runner` (the execution that began it: begin_object.lua);
-- a runner presumed dead and taken over is no longer the object's and writes nothing.
local function held_by(object_key, runner)
  return redis.call('HGET', object_key, OBJ_STATE) == STATUS_PROCESSING
      and redis.call('HGET', object_key, OBJ_RUNNER) == runner
end

-- A new object hash, claimed at `now` (Redis's clock) with its counts at 0; `token` (the fencing
-- token of the discovery claiming it, '0' for a notification) if given, then more field/value pairs.
local function create_claimed(object_key, now, token, ...)
  local fields = {OBJ_STATE, STATUS_CLAIMED, OBJ_CHECKPOINT, 0, OBJ_EMITTED, 0, OBJ_ATTEMPTS, 0, OBJ_CLAIMED_AT, now}
  if token then
    table.insert(fields, OBJ_TOKEN)
    table.insert(fields, token)
  end
  for _, value in ipairs({...}) do
    table.insert(fields, value)
  end
  redis.call('HSET', object_key, unpack(fields))
end

-- A new claim waits in the pending set until `deadline` (should its task never start) and counts
-- as enqueued.
local function pend_claim(pending_key, stats_key, object, deadline)
  redis.call('ZADD', pending_key, deadline, object)
  redis.call('HINCRBY', stats_key, STAT_OBJECTS_ENQUEUED, 1)
end
