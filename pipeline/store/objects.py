"""The objects of a source and the streams: claim, begin, heartbeat, commit (the events stream),
release, fail (the dead-letter stream), retry, the sweep of the pending set."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgpack
import redis
import redis.cluster

from pipeline import defaults
from pipeline import runner as runner_process
from pipeline.heartbeat import Heartbeats
from pipeline.replies import as_hash, as_members, as_read, as_stream
from pipeline.store.base import RedisStore, _mentions, decoded, milliseconds, run_scripts, text
from pipeline.store.schema import SOURCE_PLACEHOLDER, TERMINAL_STATUSES, DeadLetterField, Stat, Status

log = logging.getLogger(__name__)


def packed_rows(rows: list) -> list[bytes]:
    """``rows`` as MessagePack arrays, in order, each at most ``COMMIT_CHUNK_BYTES`` (unless it is
    one row): one in the common case. Redis refuses an argument over its proto-max-bulk-len
    (512 MB by default, less on some services), and a refused batch would fail its object on
    every try; a value of its own was at most a record (MAX_RECORD_BYTES) before. Only str and
    bytes go in: MessagePack would carry None, numbers or booleans as other Lua types, which the
    script would write wrongly or fail on half way."""
    for row in rows:
        for value in row:
            if type(value) is not str and type(value) is not bytes:
                raise TypeError(f"a stream entry value must be str or bytes, not {type(value).__name__}")
    return _packed(rows)


def _packed(rows: list) -> list[bytes]:
    packed = msgpack.packb(rows, use_bin_type=False)
    if len(packed) <= defaults.COMMIT_CHUNK_BYTES or len(rows) <= 1:
        return [packed]
    half = len(rows) // 2
    return _packed(rows[:half]) + _packed(rows[half:])


@dataclass(frozen=True)
class ObjectStart:
    state: Status  # processing, or a terminal state (nothing to do)
    checkpoint: int  # records of the object already handled
    attempts: int
    taken: bool = True  # False: another runner holds it and is alive (nothing to do either)
    silent: int = 0  # deliveries taken over because their runner stopped heartbeating
    lost: int = 0  # deliveries taken over because their runner's process was gone
    holder: str = ""  # not taken: the live runner that holds it
    denied: bool = True  # some object of the source is denied: a read must be reported (note_read)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATUSES

    @property
    def vanished(self) -> int:
        """Deliveries whose runner vanished without finishing (what makes a poison object)."""
        return self.silent + self.lost


@dataclass(frozen=True)
class _Begun:
    start: ObjectStart
    holder_process: str  # not taken: the holder's process (pipeline.runner.process_identity)


class ObjectStore(RedisStore):
    """Scripts: claim_object, sweep_pending, begin_object, heartbeat_object, commit_batch,
    trim_events, release_object, fail_object, trim_deadletters, retry_object."""

    events_stream: str
    deadletter_stream: str
    retention_seconds: int
    requeue_after_ms: int
    heartbeat_timeout_ms: int
    stream_maxlen: int
    deadletter_maxlen: int
    wait_replicas: int
    heartbeats: Heartbeats
    _acked_trim: bool | None

    # -- objects ---------------------------------------------------------------------------
    def claim(self, source: str, key: str, token: int) -> bool:
        """True if this caller claimed the object (and must enqueue it); False if it was known."""
        return self.claim_many(source, [key], token) == [key]

    def claim_many(self, source: str, keys: list[str], token: int) -> list[str]:
        """Claim each key (one round trip); return those newly claimed, which the caller enqueues."""
        if not keys:
            return []
        script = self._scripts["claim_object"]
        replies = run_scripts(self.redis, [
            (script, [self.keys.object(source, key), self.keys.stats(source), self.keys.pending(source)],
             [token, key, self.requeue_after_ms]) for key in keys])
        return [key for key, claimed in zip(keys, replies) if claimed]

    def sweep_pending(self, source: str, limit: int = 1000) -> list[str]:
        """Unfinished objects past their pending deadline (a claim never started, a runner whose
        heartbeats stopped): re-armed for ``requeue_after``; the caller enqueues them again."""
        now = self.redis_now_ms()  # Redis's clock, as the deadlines were written (the script checks again)
        # Those past their deadline, read first: the script is given each one's hash in KEYS
        # (a script builds no key name: on a cluster every key it touches must be declared).
        found = [key.decode() for key in as_members(self.redis.zrangebyscore(
            self.keys.pending(source), "-inf", now, start=0, num=limit))]
        if not found:
            return []
        due = self._scripts["sweep_pending"](
            keys=[self.keys.pending(source), *(self.keys.object(source, key) for key in found)],
            args=[self.requeue_after_ms, *found])
        return [key.decode() for key in due]

    def pending_count(self, source: str) -> int:
        return int(self.redis.zcard(self.keys.pending(source)))

    def begin(self, source: str, key: str, runner: str = "", process: str | None = None) -> ObjectStart:
        """Start (or resume) work on an object as ``runner`` (of ``process``, this one by default),
        who must then send heartbeats. Held by another runner, the object is taken over only if
        that runner is silent (no heartbeat within the heartbeat timeout, on Redis's clock) or its
        process is known to be gone (``pipeline.runner.is_lost``); else ``taken`` is False."""
        process = runner_process.process_identity() if process is None else process
        keys = [self.keys.object(source, key), self.keys.pending(source), self.keys.denied(source)]
        begun = self._begin(keys, [runner, self.heartbeat_timeout_ms, key, process, ""])
        if not begun.start.taken and not begun.start.finished and runner_process.is_lost(begun.holder_process):
            # Its process is gone (a pool child killed): no need to wait for its silence.
            begun = self._begin(keys, [runner, self.heartbeat_timeout_ms, key, process, begun.start.holder])
        return begun.start

    def _begin(self, keys: list[str], args: list) -> _Begun:
        state, checkpoint, attempts, taken, silent, lost, holder, holder_process, denied = \
            self._scripts["begin_object"](keys=keys, args=args)
        return _Begun(ObjectStart(Status(text(state)), int(checkpoint), int(attempts), bool(taken), int(silent),
                                  int(lost), text(holder), bool(denied)), text(holder_process))

    def heartbeat(self, source: str, key: str, runner: str) -> bool:
        """``runner`` is alive and still on the object: push its pending deadline forward."""
        return bool(self._scripts["heartbeat_object"](
            keys=[self.keys.object(source, key), self.keys.pending(source)],
            args=[runner, self.heartbeat_timeout_ms, key]))

    def heartbeat_many(self, beats: Sequence[tuple[str, str, str]]) -> list[bool]:
        """``heartbeat`` for each (source, key, runner), in one round trip (with the counts
        deferred since the last one: ``defer_count``)."""
        if not beats and not self._deferred:
            return []
        pipe = self.redis.pipeline(transaction=False)
        counted = self._add_deferred(pipe)
        calls = [self._queue_script(pipe, "heartbeat_object", [self.keys.object(source, key),
                                                               self.keys.pending(source)],
                                    [runner, self.heartbeat_timeout_ms, key]) for source, key, runner in beats]
        try:
            replies = self._execute(pipe, calls, counted)
        except redis.RedisError:
            self._restore_deferred(counted)
            raise
        return [bool(reply) for reply in replies[len(counted):]]

    def commit_batch(self, source: str, key: str, expected: int, records: int,
                     entries: Sequence[Mapping[str, str | bytes]], last: bool,
                     sha256: str | None = None, eps: int = 0, delivered_ms: int = 0,
                     runner: str = "") -> tuple[bool, int]:
        """XADD ``entries`` and move the checkpoint from ``expected`` by ``records``, atomically.

        ``sha256`` (with ``last``): hex SHA-256 of the object's uncompressed bytes, kept in its
        state (field ``sha256``) as the object becomes done, for digest reconciliation.
        ``eps``: the source's ``eps_throttle``; the entries are reserved in its fleet-wide budget
        in the same round trip, and when the throttle asks to wait, this waits, then writes.
        ``delivered_ms`` (with ``last``): the object's delivery time, for ``newest_done``.

        Returns (written, checkpoint). Not written means the object is no longer ``runner``'s
        (taken over after it was presumed dead), another worker moved the checkpoint or the object
        is already done: the caller must stop, as its batch is somebody else's.
        """
        ending = (sha256 or "1") if last else "0"  # the last batch carries the object's hash
        args: list[str | bytes | int] = [expected, ending, self.retention_seconds, runner, records, len(entries), key,
                                         eps or 0, delivered_ms if last and delivered_ms else 0]
        names = tuple(entries[0]) if entries else ()
        if names and all(tuple(entry) == names for entry in entries):
            # Every entry has the same fields (the emitter's): the names once, then only values.
            args.append(len(names))
            args += names
            rows: list = [tuple(entry.values()) for entry in entries]
        else:
            args.append(0)
            rows = [[item for pair in entry.items() for item in pair] for entry in entries]
        # The batch as MessagePack (commit_batch.lua unpacks it): packed in one C call, where a
        # RESP argument per value cost the worker ~1 µs each in redis-py.
        args += packed_rows(rows)
        keys = [self.keys.object(source, key), self.keys.events_stream(source), self.keys.stats(source),
                self.keys.pending(source), self.keys.throttle(source), self.keys.newest_done(source)]
        while True:
            reply = self._commit(source, keys=keys, args=args)
            if int(reply[0]) != 2:
                return bool(reply[0]), int(reply[1])
            time.sleep(int(reply[2]) / 1000.0)  # reserved: waits, never drops; then written
            args[7] = 0

    def _commit(self, source: str, keys: list[str], args: list) -> list:
        """The commit script, with the counts deferred so far, then (opt-in) the trim and
        ``WAIT`` for replicas: those on the same connection in one round trip (WAIT counts the
        replicas that have this connection's writes)."""
        if not self.stream_maxlen and not self.wait_replicas and not self._deferred:
            return self._scripts["commit_batch"](keys=keys, args=args)
        trim = self.stream_maxlen and self.acked_trim()  # (asked of the server once, before the pipeline)
        pipe = self.redis.pipeline(transaction=False)
        counted = self._add_deferred(pipe)
        calls = [self._queue_script(pipe, "commit_batch", keys, args)]
        if self.stream_maxlen:
            calls.append(self._queue_script(pipe, "trim_events", [keys[1]], [self.stream_maxlen, int(trim)]))
        if self.wait_replicas:  # (never on a cluster: validate refuses wait_replicas there)
            pipe.execute_command("WAIT", self.wait_replicas, milliseconds(defaults.WAIT_REPLICAS_TIMEOUT))
        try:
            replies = self._execute(pipe, calls, counted)[len(counted):]
        except redis.RedisError:
            self._restore_deferred(counted)
            raise
        if self.wait_replicas and int(replies[-1]) < self.wait_replicas:
            # Written, but on fewer replicas than asked within the timeout: a failover now could
            # lose this batch (its checkpoint with it, so it would be emitted again, once). Counted.
            self.count(source, Stat.WAIT_REPLICAS_SHORT)
            log.warning("batch on %d of %d replicas within %s", int(replies[-1]), self.wait_replicas,
                        defaults.WAIT_REPLICAS_TIMEOUT)
        return replies[0]

    def acked_trim(self) -> bool:
        """Whether the server trims streams by acknowledgement (``XTRIM ... ACKED``, Redis >= 8.2),
        read from ``COMMAND DOCS XTRIM`` once (older servers: the MINID bound of trim_events.lua)."""
        if self._acked_trim is None:
            try:
                # (on a cluster, asked of one node: the command names no key to route by)
                client = self.redis
                if isinstance(client, redis.cluster.RedisCluster):
                    client = client.get_redis_connection(client.get_random_node())
                docs = client.execute_command("COMMAND DOCS", "XTRIM")
            except redis.ResponseError:  # before Redis 7: no COMMAND DOCS, no ACKED either
                docs = None
            self._acked_trim = _mentions(docs, b"acked")
        return self._acked_trim

    def events_streams(self, sources: Iterable[str] = ()) -> list[str]:
        """The events streams of ``sources`` and of every source with state: one name unless
        ``stream`` holds ``{source}`` (then one per source, each on its source's shard)."""
        if not self.keys.hash_tagged:
            return [self.events_stream]
        return self.keys.events_streams([*sources, *self.known_sources()])

    def deadletter_streams(self, sources: Iterable[str] = ()) -> list[str]:
        if SOURCE_PLACEHOLDER not in self.deadletter_stream:
            return [self.deadletter_stream]
        return self.keys.deadletter_streams(sorted({*sources, *self.known_sources()}))

    def trim_events(self, source: str | None = None) -> int:
        """Trim the stream (of ``source``; None: every one) to ``stream_maxlen`` (approximately)
        now, sparing what groups still need."""
        if not self.stream_maxlen:
            return 0
        streams = [self.keys.events_stream(source)] if source is not None else self.events_streams()
        return sum(int(self._scripts["trim_events"](keys=[stream], args=[self.stream_maxlen, int(self.acked_trim())]))
                   for stream in streams)

    def stream_backlog(self, limit: int | None = None, source: str | None = None) -> int:
        """What the slowest consumer group has not acknowledged: its entries not yet delivered
        (XINFO GROUPS ``lag``) plus those delivered and not acknowledged (``pending``). Without a
        group, the stream's length. Where the server gives no lag (Redis < 7, or entries deleted
        after the group's position), the entries after its last-delivered-id are counted, up to
        ``limit`` + 1 (enough to tell whether it is over ``limit``). With a stream per source
        (``{source}``): the stream of ``source``; None: the largest backlog of them all."""
        streams = [self.keys.events_stream(source)] if source is not None else self.events_streams()
        return max((self._stream_backlog(stream, limit) for stream in streams), default=0)

    def _stream_backlog(self, stream: str, limit: int | None) -> int:
        pipe = self.redis.pipeline(transaction=False)
        pipe.xlen(stream)
        pipe.xinfo_groups(stream)
        length, groups = pipe.execute(raise_on_error=False)
        if isinstance(length, Exception):
            raise length
        if isinstance(groups, redis.ResponseError) or not groups:  # no stream yet, or no group
            return int(length)
        if isinstance(groups, Exception):
            raise groups
        backlog = 0
        for group in groups:
            pending = int(group["pending"])
            lag = group.get("lag")
            if lag is None:
                bound = None if limit is None else max(0, limit + 1 - pending)
                lag = self._entries_after(stream, group["last-delivered-id"], bound)
            backlog = max(backlog, pending + int(lag))
        return backlog

    def _entries_after(self, stream: str, last_id: bytes | str, bound: int | None, page: int = 1000) -> int:
        start = last_id.decode() if isinstance(last_id, bytes) else last_id
        count = 0
        while bound is None or count < bound:
            size = page if bound is None else min(page, bound - count)
            entries = self.redis.xrange(stream, min="(" + start, max="+", count=size)
            if not entries:
                break
            count += len(entries)
            last = entries[-1][0]
            start = last.decode() if isinstance(last, bytes) else str(last)
        return count

    def fail(self, source: str, key: str, error_class: str, message: str, runner: str = "") -> bool:
        """Dead-letter the object with its reason; False if it was already done or failed, or
        (``runner`` given) is no longer that runner's: a runner presumed dead writes nothing.

        The failed object's record is kept for as long as its dead letter is listed (so
        ``deadletter retry`` always finds it); the stream holds at most ``deadletter_maxlen``
        letters, and the record of a letter dropped for that is forgotten ``retention`` later."""
        # state_key/stats_key: the record the letter points to and its source's counters, so
        # the trim (in Lua) can expire the one and count the letter out of the other.
        # failed_at and attempts are added by the script (failed_at on Redis's clock).
        fields = {DeadLetterField.SOURCE: source, DeadLetterField.OBJECT: key, DeadLetterField.ERROR_CLASS: error_class,
                  DeadLetterField.MESSAGE: message, DeadLetterField.STATE_KEY: self.keys.object(source, key),
                  DeadLetterField.STATS_KEY: self.keys.stats(source)}
        args: list[str | int] = [self.retention_seconds, runner, key, self.deadletter_maxlen]
        for field, value in fields.items():
            args += [field, value]
        stream = self.keys.deadletter(source)
        recorded = bool(self._scripts["fail_object"](
            keys=[self.keys.object(source, key), stream, self.keys.stats(source), self.keys.pending(source)],
            args=args))
        if recorded:
            self._trim_deadletters(stream)
        return recorded

    def _trim_deadletters(self, stream: str) -> int:
        """Drop the oldest letters over ``deadletter_maxlen``; their objects' records then expire
        after the retention and leave the count of failed objects. The letters are read first,
        so the script is given each one's object and stats keys (it builds no key name)."""
        excess = int(self.redis.xlen(stream)) - self.deadletter_maxlen
        if excess <= 0:
            return 0
        keys: list[str | bytes] = [stream]
        args: list[str | bytes | int] = [self.retention_seconds]
        for entry_id, fields in as_stream(self.redis.xrange(stream, count=excess)):
            state_key = fields.get(DeadLetterField.STATE_KEY.encode())
            stats_key = fields.get(DeadLetterField.STATS_KEY.encode())
            args += [entry_id, 1 if state_key else 0, 1 if state_key and stats_key else 0]
            if state_key:
                keys.append(state_key)
                if stats_key:
                    keys.append(stats_key)
        return int(self._scripts["trim_deadletters"](keys=keys, args=args))

    def release(self, source: str, key: str, retry_in_seconds: float = 0.0, runner: str = "") -> bool:
        """Give the object back after a transient error: the retry does not count as a crash.
        False when it is not processing, or (``runner`` given) no longer that runner's.

        Should the retry never come (its worker died holding it), the sweep enqueues the object
        once ``retry_in_seconds`` plus the heartbeat timeout have passed."""
        return bool(self._scripts["release_object"](
            keys=[self.keys.object(source, key), self.keys.pending(source)],
            args=[int(retry_in_seconds * 1000) + self.heartbeat_timeout_ms, key, runner]))

    def retry_failed(self, source: str, key: str) -> bool:
        """Claim a dead-lettered object again (keeping its checkpoint); the caller enqueues it."""
        return bool(self._scripts["retry_object"](
            keys=[self.keys.object(source, key), self.keys.pending(source), self.keys.stats(source)],
            args=[key, self.requeue_after_ms]))

    def object_state(self, source: str, key: str) -> dict[str, str]:
        return decoded(as_hash(self.redis.hgetall(self.keys.object(source, key))))

    def object_fields(self, source: str, keys: Sequence[str], *fields: str) -> list[list[str | None]]:
        """``fields`` of each object's hash (None: absent), in one round trip."""
        replies = self._hash_fields_many([self.keys.object(source, key) for key in keys], fields)
        return [[None if value is None else text(value) for value in values] for values in replies]

    def stream_length(self, sources: Iterable[str] = ()) -> int:
        """Entries in the events stream; with a stream per source, in all of them (each on its shard)."""
        return sum(int(self.redis.xlen(stream)) for stream in self.events_streams(sources))

    def stream_lengths(self, streams: Sequence[str]) -> dict[str, int]:
        """Each stream's length, in one round trip (per shard on a cluster)."""
        pipe = self.redis.pipeline(transaction=False)
        for name in streams:
            pipe.xlen(name)
        return {name: int(length) for name, length in zip(streams, pipe.execute() if streams else [])}

    def newest_entries(self, stream: str, count: int):
        """The newest ``count`` entries of a stream, newest first: (id, fields) pairs."""
        return as_stream(self.redis.xrevrange(stream, count=count))

    def read_streams(self, after: Mapping[str, bytes | str], count: int, block_ms: int):
        """XREAD: the entries of each stream after its id, waiting up to ``block_ms`` for some:
        (stream, entries) pairs."""
        return as_read(self.redis.xread(dict(after), count=count, block=block_ms))  # type: ignore[arg-type]

    def stream_length_of(self, stream: str) -> int:
        return int(self.redis.xlen(stream))
