"""A runner's heartbeat: while an object is being ingested, a thread tells Redis every few
seconds that its runner is alive, which keeps the object's pending deadline ahead of the sweep.

A slow object is therefore never handed to a second worker, while the object of a process or
host that died is enqueued again once its heartbeats stop (within the heartbeat timeout plus one
sweep interval).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)


class Heartbeat:
    """``with Heartbeat(beat, interval):`` calls ``beat()`` every ``interval`` seconds until the
    block ends. ``beat`` returning False means the object is no longer ours; Redis errors are
    logged and the next beat tries again (a missed beat is harmless: only stopped ones count)."""

    def __init__(self, beat: Callable[[], bool], interval: float, name: str = "heartbeat"):
        self.beat = beat
        self.interval = interval
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.beat():
                    self.lost = True
                    return
            except redis.RedisError as exc:
                log.debug("heartbeat missed: %s", exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)
