"""The fleet's sweep: one loop, in beat's process, for every source.

Every ``sweep_interval_seconds`` it enqueues again each source's unfinished objects whose
pending deadline has passed (``pipeline.discovery.sweep``: a runner that stopped beating, a claim
whose task was lost), on Redis's clock. One loop for all the sources keeps the interval whatever
their number: a schedule entry and a task per source (what came before) made beat's scheduler
and the queues carry 300 sweeps every 30 s, and with 300 sources most intervals were 60 s. It
runs in a thread beside beat's scheduler, not as a task, so a backlog in a queue does not delay
failover either. Two beats (a standby) sweeping is harmless: ``sweep_pending.lua`` re-arms each
object it returns in the same step, so one sweeper gets it.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import redis

from pipeline.config import Source
from pipeline.discovery import Enqueue, sweep
from pipeline.store import StateStore

log = logging.getLogger(__name__)


def sweep_all(sources: Sequence[Source], state: StateStore, enqueue: Enqueue) -> int:
    """Sweep every source once; returns the objects enqueued again. A source whose sweep meets a
    Redis error is skipped until the next round (logged), the others are swept."""
    requeued = 0
    for source in sources:
        try:
            requeued += sweep(source, state, enqueue)
        except redis.RedisError as exc:
            log.warning("sweep of %s: Redis unavailable (%s: %s); next round in the next interval",
                        source.identifier, type(exc).__name__, exc)
    return requeued


class Sweeper:
    """A daemon thread calling ``sweep_once()`` every ``interval`` seconds, on a fixed cadence
    (round n starts at start + n × interval; a slow round does not push the next ones back)."""

    def __init__(self, sweep_once: Callable[[], object], interval: float, name: str = "sweeper"):
        self.sweep_once = sweep_once
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sweep_once()
            except Exception:  # noqa: BLE001  (never ends the loop: the next round tries again)
                log.exception("sweep round failed; next round in %.0f s", self.interval)
            due += self.interval
            now = time.monotonic()
            if due < now:  # a round longer than the interval: start the next one now, not a burst
                due = now
            self._stop.wait(due - now)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
