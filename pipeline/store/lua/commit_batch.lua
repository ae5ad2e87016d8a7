-- Emit one batch of events and move the object's checkpoint, atomically.
-- KEYS[1] object hash, KEYS[2] events stream, KEYS[3] source stats, KEYS[4] pending set,
-- KEYS[5] the source's throttle (TAT), KEYS[6] the source's newest_done zset
-- ARGV[1] expected checkpoint (records of the object handled before this batch), ARGV[2] '0', or
-- when this batch ends the object '1' or the hex SHA-256 of its uncompressed bytes, ARGV[3] retention (s) for a done object, ARGV[4] the committing runner (as it began:
-- begin_object.lua), ARGV[5] records this batch handles (excluded records count, but emit nothing),
-- ARGV[6] number of entries, ARGV[7] the object key, ARGV[8] the source's eps_throttle: the
-- batch's events are reserved in its budget first (_gcra.lua), '0' when they already are;
-- ARGV[9] the object's delivery time (ms) for newest_done when this batch ends it, '0' if none;
-- ARGV[10] n: when > 0, every entry has the n field names ARGV[11..10+n]; ARGV[11+n..] the
-- entries in order, as MessagePack arrays of rows (one, unless the batch is larger than
-- defaults.COMMIT_CHUNK_BYTES): per entry its n values (n > 0), or its field/value pairs (n = 0).
-- (Not an argument per value: the client packs the batch in one C call, Redis unpacks it in
-- one: both cheaper than a RESP argument per value, which cost each side ~1 µs per field.)
-- Returns {1, new checkpoint} when written; {0, checkpoint} when the object is done, is no longer
-- this runner's (taken over after it was presumed dead: the live runner is never refused because
-- of a stale one), or another worker moved the checkpoint: nothing written, the caller stops; {2,
-- checkpoint, ms}: the throttle asks to wait ms first; the events are reserved, nothing is
-- written: the caller waits, then commits again with ARGV[8] '0'.
-- Every check comes before the first write: Redis does not roll back a script half way.
local checkpoint = tonumber(redis.call('HGET', KEYS[1], OBJ_CHECKPOINT) or '-1')
if checkpoint ~= tonumber(ARGV[1]) or not held_by(KEYS[1], ARGV[4]) then
  return {0, checkpoint}
end
local count = tonumber(ARGV[6])
local shared = tonumber(ARGV[10])
local chunks = {}  -- unpacked before the first write (an error here writes nothing)
for c = 11 + shared, #ARGV do
  chunks[#chunks + 1] = cmsgpack.unpack(ARGV[c])
end
if ARGV[8] ~= '0' and count > 0 then
  local wait = reserve_events(KEYS[5], KEYS[3], count, tonumber(ARGV[8]))
  if wait > 0 then
    return {2, checkpoint, wait}
  end
end
local function xadd(entry)  -- never trims here: trim_events.lua does, sparing what groups still need
  redis.call('XADD', KEYS[2], '*', unpack(entry))
end
if shared > 0 then
  local entry = {}
  for j = 1, shared do
    entry[2 * j - 1] = ARGV[10 + j]
  end
  for _, rows in ipairs(chunks) do
    for r = 1, #rows do
      local row = rows[r]
      for j = 1, shared do
        entry[2 * j] = row[j]
      end
      xadd(entry)
    end
  end
else
  for _, rows in ipairs(chunks) do
    for r = 1, #rows do
      xadd(rows[r])
    end
  end
end
checkpoint = checkpoint + tonumber(ARGV[5])
redis.call('HSET', KEYS[1], OBJ_CHECKPOINT, checkpoint)
redis.call('HINCRBY', KEYS[1], OBJ_EMITTED, count)
redis.call('HINCRBY', KEYS[3], STAT_EVENTS_EMITTED, count)
if ARGV[2] ~= '0' then
  if ARGV[2] ~= '1' then
    redis.call('HSET', KEYS[1], OBJ_SHA256, ARGV[2])
  end
  redis.call('HSET', KEYS[1], OBJ_STATE, STATUS_DONE)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('HINCRBY', KEYS[3], STAT_OBJECTS_DONE, 1)
  redis.call('ZREM', KEYS[4], ARGV[7])
  if ARGV[9] ~= '0' then
    redis.call('ZADD', KEYS[6], 'GT', ARGV[9], NEWEST_DELIVERED)
  end
end
return {1, checkpoint}
