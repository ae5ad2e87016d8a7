"""Runners' heartbeats: while objects are being ingested, one thread per process tells Redis
every few seconds that their runners are alive (one round trip for all of them), which keeps
each object's pending deadline ahead of the sweep.

A slow object is therefore never handed to a second worker, while the object of a process or
host that died is enqueued again once its heartbeats stop (within the heartbeat timeout plus one
sweep interval). A process holds many objects in flight (Celery's threads pool, a backfill): one
thread and one round trip beat for all of them, not one thread per object.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import redis

log = logging.getLogger(__name__)


class Beating:
    """One object being beaten for: ``lost`` once Redis says it is no longer its runner's."""

    __slots__ = ("_hub", "item", "lost")

    def __init__(self, hub: Heartbeats, item: Hashable):
        self._hub, self.item, self.lost = hub, item, False

    def __enter__(self) -> Beating:
        return self

    def __exit__(self, *exc) -> None:
        self._hub.forget(self)


class Heartbeats:
    """``with heartbeats.watch(item) as beating:`` has ``beat_many`` called with ``item`` among
    the others in flight every ``interval`` seconds until the block ends. A False answer for an
    item means its object is no longer ours (``beating.lost``); Redis errors are logged and the
    next round tries again (a missed beat is harmless: only stopped ones count). The thread runs
    while objects are in flight, and one round after."""

    def __init__(self, beat_many: Callable[[Sequence[Any]], list[bool]], interval: float,
                 name: str = "heartbeats"):
        self.beat_many = beat_many
        self.interval = interval
        self.name = name
        self._beating: set[Beating] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, item: Hashable) -> Beating:
        beating = Beating(self, item)
        with self._lock:
            self._beating.add(beating)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        return beating

    def forget(self, beating: Beating) -> None:
        with self._lock:
            self._beating.discard(beating)

    @property
    def in_flight(self) -> int:
        return len(self._beating)

    def beat_now(self) -> None:
        """One round: every object in flight beats (the thread calls this every interval)."""
        with self._lock:
            current = list(self._beating)
        try:
            answers = self.beat_many([beating.item for beating in current])
        except redis.RedisError as exc:
            log.debug("heartbeats missed: %s", exc)
            return
        for beating, alive in zip(current, answers):
            if not alive:
                beating.lost = True
                self.forget(beating)

    def _run(self) -> None:
        """Every interval, a round; the thread ends after a round with nothing in flight (the
        next ``watch`` starts another)."""
        pause = threading.Event()  # never set: waits the interval
        while True:
            pause.wait(self.interval)
            self.beat_now()
            with self._lock:
                if not self._beating:
                    self._thread = None
                    return
