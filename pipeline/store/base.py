"""What every store shares: the client, the key names and the scripts, and how scripts and
counts go to Redis in one round trip."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta

import redis
import redis.cluster
from redis.commands.core import Script

from pipeline.replies import as_members
from pipeline.store.schema import Keys
from pipeline.store.scripts import Scripts


def milliseconds(duration: timedelta) -> int:
    """A duration as the whole milliseconds a script takes (the config's are typed timedeltas)."""
    return int(duration.total_seconds() * 1000)


def whole_seconds(duration: timedelta) -> int:
    """A duration as the whole seconds a script takes (an EXPIRE)."""
    return int(duration.total_seconds())


def now_ms() -> int:
    """This process's clock (ms): for what it stamps about itself, never for a deadline, a
    heartbeat or a lease (the scripts read Redis's clock, ``redis_now_ms()``)."""
    return int(time.time() * 1000)


def text(raw) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def decoded(raw: dict) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def _mentions(reply, word: bytes) -> bool:
    """Whether ``word`` is one of the strings of a nested reply (COMMAND DOCS)."""
    if isinstance(reply, bytes):
        return reply.lower() == word
    if isinstance(reply, dict):
        return any(_mentions(k, word) or _mentions(v, word) for k, v in reply.items())
    if isinstance(reply, (list, tuple)):
        return any(_mentions(item, word) for item in reply)
    return False


def ping(client: redis.Redis) -> bool:
    """Whether the server answers (a readiness check)."""
    return bool(client.ping())


# One script call: (script, KEYS, ARGV).
ScriptCall = tuple[Script, list, list]


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


def execute(pipe) -> list:
    """A pipeline's replies; the first error raised."""
    replies = pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


class RedisStore:
    """A client, its key names and its scripts (each registered once per store)."""

    def __init__(self, client: redis.Redis, keys: Keys, scripts: Scripts | None = None):
        self.redis = client
        self.keys = keys
        self._scripts = scripts if scripts is not None else Scripts(client)
        self._cluster = isinstance(client, redis.cluster.RedisCluster)
        self._deferred: dict[tuple[str, str], int] = {}  # (stats key, field) -> amount not yet written
        self._deferred_lock = threading.Lock()

    def redis_now_ms(self) -> int:
        """Redis's clock (``TIME``), the one every process shares."""
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def known_sources(self) -> Iterable[str]:
        """The sources that have state (``P:sources``)."""
        return sorted(s.decode() for s in as_members(self.redis.smembers(self.keys.sources())))

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def _hash_fields_many(self, keys: Sequence[str], fields: Sequence[str]) -> list[list[bytes | None]]:
        """HMGET ``fields`` of each hash, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, list(fields))
        return pipe.execute() if keys else []

    # -- scripts and counts in one round trip ---------------------------------------------------
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

    def count(self, source: str, field: str, amount: int = 1) -> int:
        """Add to a counter of the source's stats now."""
        return int(self.redis.hincrby(self.keys.stats(source), field, amount))  # type: ignore[arg-type]
