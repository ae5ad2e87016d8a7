"""Marker, lease and per-object state in Redis.

Every write that must be atomic is one of the short Lua scripts in ``pipeline/lua/``,
registered once per client with ``register_script`` (EVALSHA, reloaded on NOSCRIPT).
Key names come from ``pipeline.keys``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import redis
import redis.cluster

from pipeline import defaults
from pipeline import runner as runner_process
from pipeline.heartbeat import Heartbeats
from pipeline.keys import SOURCE_PLACEHOLDER, Keys
from pipeline.replies import as_hash, as_members, as_optional_bytes, as_stream
from pipeline.status import TERMINAL_STATUSES, Health, Status, lua_constants

log = logging.getLogger(__name__)

SCRIPT_NAMES = (
    "acquire_lease",
    "renew_lease",
    "release_lease",
    "reset_markers",
    "advance_marker",
    "claim_object",
    "sweep_pending",
    "begin_object",
    "commit_batch",
    "fail_object",
    "release_object",
    "retry_object",
    "throttle",
    "heartbeat_object",
    "set_health",
    "trim_events",
    "trim_deadletters",
)


# Every deadline, heartbeat and "overdue" comparison is made on Redis's clock, read by the script
# itself: the fleet's processes may disagree about the time (a worker 10 minutes ahead would
# otherwise see live objects as overdue, or one behind push deadlines into the past).
LUA_NOW = """local function redis_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Shared Lua functions (``pipeline/lua/_NAME.lua``) prepended to the scripts that call them.
SCRIPT_LIBRARIES = {"throttle": ("gcra",), "commit_batch": ("gcra",)}


def _lua(name: str) -> str:
    return resources.files("pipeline").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def _load_script(name: str) -> str:
    """The script's text, headed by the object states (``STATUS_DONE`` ...) from ``Status`` and
    ``redis_now_ms()`` (Redis's clock, ``TIME``) and the shared functions it calls."""
    return (lua_constants() + LUA_NOW + "".join(_lua(f"_{lib}") for lib in SCRIPT_LIBRARIES.get(name, ()))
            + _lua(name))


def _mentions(reply, word: bytes) -> bool:
    """Whether ``word`` is one of the strings of a nested reply (COMMAND DOCS)."""
    if isinstance(reply, bytes):
        return reply.lower() == word
    if isinstance(reply, dict):
        return any(_mentions(k, word) or _mentions(v, word) for k, v in reply.items())
    if isinstance(reply, (list, tuple)):
        return any(_mentions(item, word) for item in reply)
    return False


def now_ms() -> int:
    """This process's clock (ms): for what it stamps about itself, never for a deadline, a
    heartbeat or a lease (the scripts read Redis's clock, ``redis_now_ms()``)."""
    return int(time.time() * 1000)


# One script call: (script, KEYS, ARGV).
ScriptCall = tuple[redis.commands.core.Script, list, list]


def run_scripts(client: redis.Redis, calls: Sequence[ScriptCall]) -> list:
    """Run script calls in one pipeline (one round trip per shard); their replies in order.

    A call answered NOSCRIPT (a promoted replica that never loaded it) is made again on its own
    (EVALSHA, loading the script on NOSCRIPT): a NOSCRIPT reply means it did not run, so nothing
    runs twice. On a Redis Cluster, whose client pipelines no script (redis-py blocks EVALSHA in a
    ClusterPipeline), one call after the other, each routed to its slot's shard."""
    if isinstance(client, redis.cluster.RedisCluster):
        return [script(keys=keys, args=args) for script, keys, args in calls]
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        script(keys=keys, args=args, client=pipe)
    replies = pipe.execute(raise_on_error=False)
    for index, reply in enumerate(replies):
        if isinstance(reply, redis.exceptions.NoScriptError):
            script, keys, args = calls[index]
            replies[index] = script(keys=keys, args=args)
        elif isinstance(reply, Exception):
            raise reply
    return replies




@dataclass(frozen=True)
class DeniedRead:
    """What a denied read did to its source (``StateStore.note_denied``)."""

    state: Health  # the source's health now: failing (no read works) or degraded
    denied_ms: int  # how long this object has been denied (since its first denial)
    expired: bool  # degraded and denied for at least denied_object_timeout: dead-letter it


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


class StateStore:
    """The shared state of every source, in one Redis database."""

    def __init__(self, client: redis.Redis, keys: Keys, *, events_stream: str,
                 deadletter_stream: str,
                 retention_seconds: int = int(defaults.STATE_RETENTION.total_seconds()),
                 requeue_after_seconds: int = int(defaults.REQUEUE_AFTER.total_seconds()),
                 stream_maxlen: int = 0, deadletter_maxlen: int = defaults.DEADLETTER_MAXLEN,
                 heartbeat_timeout_seconds: int = int(defaults.HEARTBEAT_TIMEOUT.total_seconds()),
                 wait_replicas: int = 0):
        self.redis = client
        # The stream names (templates: ``{source}`` is the source's hash tag) with the keys.
        self.keys = dataclasses.replace(keys, stream=events_stream, deadletter_stream=deadletter_stream)
        self.events_stream = events_stream
        self.deadletter_stream = deadletter_stream
        self.retention_seconds = retention_seconds
        self.requeue_after_ms = requeue_after_seconds * 1000
        self.heartbeat_timeout_ms = heartbeat_timeout_seconds * 1000
        self.stream_maxlen = stream_maxlen
        self.wait_replicas = wait_replicas
        self._acked_trim: bool | None = None  # asked of the server at the first trim
        self.deadletter_maxlen = deadletter_maxlen
        self._scripts = {name: client.register_script(_load_script(name)) for name in SCRIPT_NAMES}
        self._cluster = isinstance(client, redis.cluster.RedisCluster)
        self._deferred: dict[tuple[str, str], int] = {}  # (stats key, field) -> amount not yet written
        self._deferred_lock = threading.Lock()
        # One thread beats for every object this process has in flight (source, key, runner).
        self.heartbeats = Heartbeats(self.heartbeat_many, self.heartbeat_timeout_ms / 4000)

    # -- discovery lease -------------------------------------------------------------------
    def acquire_lease(self, source: str, lease_ms: int, owner: str = "") -> int:
        """A fencing token (> 0) if this caller now holds the source's discovery lease, else 0.

        ``owner`` (the Celery task id) lets a redelivered discovery take over the lease its
        killed first execution still holds, instead of waiting for it to expire.
        """
        token = self._scripts["acquire_lease"](
            keys=[self.keys.lease(source), self.keys.fence(source)], args=[lease_ms, owner])
        if token:
            self.redis.sadd(self.keys.sources(), source)
        return int(token)

    def renew_lease(self, source: str, token: int, lease_ms: int) -> bool:
        return bool(self._scripts["renew_lease"](keys=[self.keys.lease(source)], args=[token, lease_ms]))

    def release_lease(self, source: str, token: int) -> bool:
        return bool(self._scripts["release_lease"](keys=[self.keys.lease(source)], args=[token]))

    # -- marker ----------------------------------------------------------------------------
    def reset_markers(self, source: str, token: int, prefix: str) -> bool:
        """Clear the markers if they belong to another prefix; True when they were cleared."""
        return self._scripts["reset_markers"](
            keys=[self.keys.marker(source), self.keys.markers(source), self.keys.lease(source)],
            args=[token, prefix]) == 1

    def marker_prefix(self, source: str) -> str | None:
        prefix = as_optional_bytes(self.redis.hget(self.keys.marker(source), "prefix"))
        return prefix.decode() if prefix is not None else None

    def markers(self, source: str) -> dict[str, str]:
        """partition -> marker key, for the prefix the markers belong to."""
        raw = as_hash(self.redis.hgetall(self.keys.markers(source)))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def advance_marker(self, source: str, token: int, partition: str, expected: str, new: str) -> bool:
        """Compare-and-set: moves only while ``token`` holds the lease and the marker is ``expected``."""
        return bool(self._scripts["advance_marker"](
            keys=[self.keys.markers(source), self.keys.lease(source)],
            args=[token, partition, expected, new]))

    def cached_partitions(self, source: str, prefix: str) -> list[str] | None:
        raw = self.redis.get(self.keys.partitions(source))
        if raw is None:
            return None
        cached = json.loads(raw)
        return cached["partitions"] if cached.get("prefix") == prefix else None

    def cache_partitions(self, source: str, prefix: str, partitions: list[str], ttl_seconds: int) -> None:
        self.redis.set(self.keys.partitions(source),
                       json.dumps({"prefix": prefix, "partitions": partitions}), ex=ttl_seconds)

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
        text = lambda raw: raw.decode() if isinstance(raw, bytes) else str(raw)  # noqa: E731
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

    def _queue_script(self, pipe, name: str, keys: list[str], args: list) -> tuple[str, list[str], list]:
        """EVALSHA of a script into a pipeline, without redis-py's SCRIPT EXISTS round trip
        before every pipeline that holds a script: a server that lost the script (NOSCRIPT, the
        script did not run) has it run alone by ``_execute``."""
        if not self._cluster:  # (a cluster's pipeline runs no script: _execute runs it alone)
            pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)
        return name, keys, args

    def _execute(self, pipe, calls: list[tuple[str, list[str], list]], counted: list) -> list:
        """Run a pipeline of ``counted`` HINCRBYs and then the scripts of ``calls``, in order.
        On a Redis Cluster (redis-py blocks EVALSHA in a ClusterPipeline) the counts go in the
        pipeline (one round trip per shard) and each script after it on its own."""
        if self._cluster:
            replies = pipe.execute(raise_on_error=False) if counted else []
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return [*replies, *(self._scripts[name](keys=keys, args=args) for name, keys, args in calls)]
        replies = pipe.execute(raise_on_error=False)
        for index, (name, keys, args) in enumerate(calls, start=len(counted)):
            if isinstance(replies[index], redis.exceptions.NoScriptError):
                replies[index] = self._scripts[name](keys=keys, args=args)  # loads it, then runs it
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    # -- counters written with the next round trip ---------------------------------------------
    def defer_count(self, source: str, field: str, amount: int = 1) -> None:
        """Add to a counter of the source's stats with the next commit (or heartbeat round, at
        least every heartbeat_timeout/4): no round trip of its own. Counts of a process killed
        before then are lost; a metric, never the state of an object."""
        with self._deferred_lock:
            item = (self.keys.stats(source), field)
            self._deferred[item] = self._deferred.get(item, 0) + amount

    def _add_deferred(self, pipe) -> list[tuple[tuple[str, str], int]]:
        with self._deferred_lock:
            counted, self._deferred = list(self._deferred.items()), {}
        for (stats, field), amount in counted:
            pipe.hincrby(stats, field, amount)
        return counted

    def _restore_deferred(self, counted: list[tuple[tuple[str, str], int]]) -> None:
        with self._deferred_lock:
            for item, amount in counted:
                self._deferred[item] = self._deferred.get(item, 0) + amount

    def flush_counts(self) -> None:
        """Write the deferred counts now."""
        if self._deferred:
            pipe = self.redis.pipeline(transaction=False)
            counted = self._add_deferred(pipe)
            try:
                pipe.execute()
            except redis.RedisError:
                self._restore_deferred(counted)
                raise

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
            # Half the arguments to pack, send and parse; the script rebuilds the pairs.
            args.append(len(names))
            args += names
            for entry in entries:
                args += entry.values()
        else:
            args.append(0)
            for entry in entries:
                args.append(len(entry))
                for field, value in entry.items():
                    args.append(field)
                    args.append(value)
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
            pipe.execute_command("WAIT", self.wait_replicas, int(defaults.WAIT_REPLICAS_TIMEOUT.total_seconds() * 1000))
        try:
            replies = self._execute(pipe, calls, counted)[len(counted):]
        except redis.RedisError:
            self._restore_deferred(counted)
            raise
        if self.wait_replicas and int(replies[-1]) < self.wait_replicas:
            # Written, but on fewer replicas than asked within the timeout: a failover now could
            # lose this batch (its checkpoint with it, so it would be emitted again, once). Counted.
            self.redis.hincrby(self.keys.stats(source), "wait_replicas_short", 1)
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
        fields = {"source": source, "object": key, "error_class": error_class, "message": message,
                  "state_key": self.keys.object(source, key), "stats_key": self.keys.stats(source)}
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
            state_key, stats_key = fields.get(b"state_key"), fields.get(b"stats_key")
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

    def reserve_events(self, source: str, count: int, eps: int) -> float:
        """Reserve ``count`` events of the source's fleet-wide EPS budget; seconds to wait first."""
        if count <= 0:
            return 0.0
        wait_ms = self._scripts["throttle"](  # on Redis's clock: workers' clocks may disagree
            keys=[self.keys.throttle(source), self.keys.stats(source)], args=[count, eps])
        return int(wait_ms) / 1000.0

    def note_empty_records(self, source: str, count: int) -> None:
        """Count empty records (``{}``) of an object finished: never emitted, but visible."""
        self.redis.hincrby(self.keys.stats(source), "records_empty", count)

    def note_delivered(self, source: str, delivered_ms: int) -> None:
        """Remember the newest delivery time of an object done (ZADD GT keeps the maximum)."""
        self.redis.zadd(self.keys.newest_done(source), {"delivered": delivered_ms}, gt=True)

    def newest_delivered_ms(self, source: str) -> int | None:
        score = self.redis.zscore(self.keys.newest_done(source), "delivered")
        return None if score is None else int(score)

    def note_listed(self, source: str, delivered_ms: int) -> None:
        """Remember the newest delivery time of an object listed (claimed or already known)."""
        self.redis.zadd(self.keys.newest_done(source), {"listed": delivered_ms}, gt=True)

    def newest_listed_ms(self, source: str) -> int | None:
        score = self.redis.zscore(self.keys.newest_done(source), "listed")
        return None if score is None else int(score)

    # -- source health -----------------------------------------------------------------------
    def _health_event(self, source: str, event: str, error_class: str = "", message: str = "",
                      key: str = "", timeout_ms: int = 0) -> tuple[bool, str, int, bool]:
        changed, state, denied_ms, expired = self._scripts["set_health"](
            keys=[self.keys.health(source), self.keys.stats(source), self.keys.denied(source)],
            args=[event, error_class, message, key, timeout_ms])
        return (bool(changed), state.decode() if isinstance(state, bytes) else str(state), int(denied_ms),
                bool(expired))

    def set_health(self, source: str, healthy: bool, error_class: str = "", message: str = "") -> bool:
        """Record a discovery that listed the source (ok, unless objects are denied), or the source
        failing with the error's class and message (with a hint). True when the state changed."""
        if healthy:
            return self._health_event(source, "ok")[0]
        return self._health_event(source, "failing", error_class, message)[0]

    def note_denied(self, source: str, key: str, error_class: str, message: str, timeout_ms: int) -> DeniedRead:
        """The source's identity may not read ``key``: the source is failing (no read worked since
        the first denial) or degraded; counted by class."""
        _, state, denied_ms, expired = self._health_event(source, "denied", error_class, message, key, timeout_ms)
        return DeniedRead(Health(state), denied_ms, expired)

    def note_read(self, source: str, key: str) -> bool:
        """``key`` was read: no longer denied (no write unless some object is). True on a change."""
        return self._health_event(source, "read", key=key)[0]

    def forget_denied(self, source: str, key: str) -> bool:
        """``key`` left without being read (dead-lettered): it no longer counts as denied."""
        return self._health_event(source, "forget", key=key)[0]

    def denied_count(self, source: str) -> int:
        return int(self.redis.zcard(self.keys.denied(source)))

    def count_error(self, source: str, error_class: str) -> None:
        self.redis.hincrby(self.keys.stats(source), f"errors.{error_class}", 1)

    def health(self, source: str) -> dict[str, str]:
        raw = as_hash(self.redis.hgetall(self.keys.health(source)))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def stream_length(self, sources: Iterable[str] = ()) -> int:
        """Entries in the events stream; with a stream per source, in all of them (each on its shard)."""
        return sum(int(self.redis.xlen(stream)) for stream in self.events_streams(sources))

    def object_state(self, source: str, key: str) -> dict[str, str]:
        raw = as_hash(self.redis.hgetall(self.keys.object(source, key)))
        return {k.decode(): v.decode() for k, v in raw.items()}

    # -- reading ---------------------------------------------------------------------------
    def stats(self, source: str) -> dict[str, int]:
        raw = as_hash(self.redis.hgetall(self.keys.stats(source)))
        return {k.decode(): int(v) for k, v in raw.items()}

    def redis_now_ms(self) -> int:
        """Redis's clock (``TIME``), the one every process shares."""
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def note_discovery(self, source: str, duration_ms: int) -> None:
        """A discovery ended (``last_discovery_at`` on Redis's clock)."""
        when_ms = self.redis_now_ms()
        pipe = self.redis.pipeline(transaction=False)
        stats = self.keys.stats(source)
        pipe.hincrby(stats, "discoveries", 1)
        pipe.hincrby(stats, "discovery_ms_total", duration_ms)
        pipe.hset(stats, mapping={"last_discovery_at": when_ms, "last_discovery_ms": duration_ms})
        pipe.execute()

    def known_sources(self) -> Iterable[str]:
        return sorted(s.decode() for s in as_members(self.redis.smembers(self.keys.sources())))
