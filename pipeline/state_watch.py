"""Is trailpipe's state kept, and was it lost? Said at start, in the log, ``check``, ``status``
and the metrics, never silently.

Everything trailpipe knows (object states, markers, the schedule, the stream) lives in one
Redis. A Redis that persists nothing (no AOF, no RDB ``save`` rules) loses it all when it
restarts: discovery then starts again from the top of every prefix (no marker), so a bucket's
whole history is ingested again (bounded by a source's ``ignore_older``).

- ``read_persistence``: AOF from ``INFO persistence`` (allowed everywhere, also where CONFIG
  is renamed away, as on the embedded server, which runs AOF), RDB save rules from ``CONFIG GET
  save`` where allowed; ``unknown`` when AOF is off and the rules cannot be read.
- The state epoch (``P:epoch``, ``check_epoch.lua``): the first worker or beat on an empty Redis
  makes a random id; each worker and beat remembers the one it saw and compares it every
  ``sweep_interval_seconds`` (``StateWatch``, a thread). Gone or replaced under a process that
  remembers one = the state was reset: logged as an error, counted once per reset in
  ``P:resets`` (``status``, ``trailpipe_state_resets_total``).
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from pipeline.store.schema import Keys, ResetsField
from pipeline.store.watch import PersistenceInfo, WatchStore, server_persistence

log = logging.getLogger("trailpipe.state")

HINT = ("turn on AOF on that Redis (appendonly yes, appendfsync everysec), or at least RDB save rules; "
        "and bound what a reset source ingests with its ignore_older")
LOSS = ("a restart of it loses every object's state, the markers, the schedule and the stream; discovery "
        "then lists every source again from the top of its prefix (from now - ignore_older where set) and "
        "ingests its history again, so events already read are emitted twice")


@dataclass(frozen=True)
class Persistence:
    aof: bool
    save: str | None  # RDB save rules ("" none; None: could not be read)
    where: str = "redis_url"

    @property
    def mode(self) -> str:
        """aof, aof+rdb, rdb, none or unknown."""
        rdb = bool(self.save)
        if self.aof:
            return "aof+rdb" if rdb else "aof"
        if self.save is None:
            return "unknown"
        return "rdb" if rdb else "none"

    @property
    def persistent(self) -> bool | None:
        return {"none": False, "unknown": None}.get(self.mode, True)

    @property
    def gauge(self) -> int:
        """``trailpipe_redis_persistent``: 1 persists, 0 persists nothing, -1 cannot tell."""
        return {True: 1, False: 0, None: -1}[self.persistent]

    @property
    def message(self) -> str:
        mode = self.mode
        if mode in ("aof", "aof+rdb"):
            return f"Redis at {self.where} persists its state (AOF)"
        if mode == "rdb":
            return (f"Redis at {self.where} persists RDB snapshots only (save {self.save}): a restart loses "
                    "the writes since the last snapshot, so files ingested since are ingested again; AOF "
                    "(appendonly yes) is recommended")
        if mode == "unknown":
            return (f"Redis at {self.where} has AOF off and its RDB save rules cannot be read (CONFIG GET is "
                    f"not allowed): if it persists nothing, {LOSS}; hint: {HINT}")
        return f"Redis at {self.where} persists nothing (appendonly no, no save rules): {LOSS}; hint: {HINT}"

    def as_dict(self) -> dict:
        return {"persistent": self.persistent, "mode": self.mode, "aof": self.aof, "save": self.save,
                "message": self.message}


# From the weakest: what a Redis Cluster is said to do is what its weakest primary does.
_STRENGTH = {"none": 0, "unknown": 1, "rdb": 2, "aof": 3, "aof+rdb": 3}


def read_persistence(target: redis.Redis | WatchStore) -> Persistence:
    """How the Redis (a client's, or a store's) persists; of a Redis Cluster, its weakest primary."""
    infos: list[PersistenceInfo] = (target.persistence() if isinstance(target, WatchStore)
                                    else server_persistence(target))
    views = [Persistence(info.aof, info.save, info.where) for info in infos]
    return min(views, key=lambda view: _STRENGTH[view.mode])


def _ms_iso(raw: str | None) -> str | None:
    return None if not raw else datetime.fromtimestamp(int(raw) / 1000, UTC).isoformat()


def resets_view(store: WatchStore) -> dict:
    """What ``status`` shows: resets seen, the last one, the epoch now."""
    raw = store.resets()
    return {"resets": int(raw.get(ResetsField.COUNT, 0)), "last_reset_at": _ms_iso(raw.get(ResetsField.LAST_AT)),
            "last_reset_detected_by": raw.get(ResetsField.DETECTED_BY), "epoch": store.epoch()}


def redis_view(store: WatchStore) -> dict:
    """Persistence and resets, as ``status --json`` shows them under ``"redis"``."""
    return {**read_persistence(store).as_dict(), **resets_view(store)}


def process_name(role: str) -> str:
    return f"{role}@{socket.gethostname()} pid {os.getpid()}"


class StateWatch:
    """A worker's or beat's memory of the state epoch, compared every ``interval`` seconds."""

    def __init__(self, client: redis.Redis, keys: Keys, who: str, interval: float,
                 on_reset: Callable[[], None] | None = None):
        self.client = client
        self.keys = keys
        self.store = WatchStore(client, keys)
        self.who = who
        self.interval = interval
        self.on_reset = on_reset
        self.remembered = ""
        self.resets_seen = 0
        self._persistence: Persistence | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> int:
        """0: the state is as remembered; 1 or 2: it was reset (1: counted by this call)."""
        epoch, verdict = self.store.check_epoch(self.remembered, secrets.token_hex(8), self.who)
        if verdict:
            self.resets_seen += 1
            log.error("state reset: the Redis at %s lost trailpipe's state (epoch %s gone, now %s): markers, "
                      "object states, the schedule and perhaps the stream are gone; every source's next "
                      "discovery lists again from the top of its prefix (from now - ignore_older where set), so "
                      "log files ingested before may be emitted again. Causes: a restart of a Redis that "
                      "persists nothing, FLUSHALL/FLUSHDB, eviction (maxmemory-policy must be noeviction). "
                      "Seen by %s; counted in `trailpipe status` and trailpipe_state_resets_total",
                      self.store.address(), self.remembered, epoch, self.who)
        self.remembered = epoch
        if verdict and self.on_reset is not None:
            try:
                self.on_reset()
            except Exception as exc:  # noqa: BLE001  (the watch goes on)
                log.warning("after the state reset: %s", exc)
        return verdict

    def say_persistence(self, always: bool = False) -> Persistence:
        """Log how the Redis persists: a warning when it keeps nothing (or cannot tell)."""
        persistence = read_persistence(self.store)
        if always or persistence != self._persistence:
            if persistence.persistent:
                (log.info if persistence.mode != "rdb" else log.warning)("%s", persistence.message)
            else:
                log.warning("%s", persistence.message)
        self._persistence = persistence
        return persistence

    def _loop(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                if first:
                    self.say_persistence(always=True)
                if self.check():
                    self.say_persistence(always=True)
                elif not first:
                    self.say_persistence()  # said again only when it changed
                first = False
            except redis.RedisError as exc:  # Redis away: the next round tries again
                log.debug("state watch: %s", exc)
            self._stop.wait(self.interval)

    def start(self) -> StateWatch:
        self._thread = threading.Thread(target=self._loop, name="trailpipe-state-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


def redis_check(config) -> tuple[bool | None, str]:
    """``trailpipe check`` and ``trailpipe run``: does the config's Redis persist? (ok, text);
    ok is None when it cannot be told (unreachable, CONFIG not allowed)."""
    from pipeline.embedded import embedded_url, held_by_other  # noqa: PLC0415
    from pipeline.errors import ConfigError  # noqa: PLC0415

    if config.uses_embedded_redis and not (embedded_url(config.state_path) and held_by_other(config.state_path)):
        return True, "the embedded redis-server of `trailpipe run` persists its state (AOF on, in the state folder)"
    try:
        from pipeline.connections import redis_client  # noqa: PLC0415

        # Through the connection factory: one server, the Sentinels' primary, or every cluster primary.
        client = redis_client(config.redis_url_value(), config.sentinel_password_value(), quick=True)
        try:
            persistence = read_persistence(client)
        finally:
            client.close()
    except ConfigError as exc:
        return None, "; ".join(exc.problems)
    except (redis.RedisError, ValueError, OSError) as exc:  # unreachable, or a URL this client cannot open
        return None, f"cannot reach Redis to read how it persists: {type(exc).__name__}: {exc}"
    return persistence.persistent, persistence.message
