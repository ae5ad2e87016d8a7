"""``trailpipe run`` as a supervisor: its parts (the embedded redis-server, the Celery worker,
Celery beat) are its children; whatever dies is restarted with backoff and a log line.

It ends only on SIGTERM/SIGINT/SIGHUP (every part stopped cleanly, beat first, Redis last: exit 0) or
when a part keeps crashing (``max_restarts`` within ``window`` seconds: every part stopped,
exit 3, naming the part). Each Celery part runs in its own process group, so the pool
children of a worker whose main process died are stopped with it and cannot run on unseen;
and every part gets SIGTERM should the supervisor itself be killed (``die_with_parent``).
A part may wait for a precondition (worker and beat: Redis answers) before it is started: a
Redis outage costs each part at most one counted restart, however long it lasts.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("trailpipe.run")

CRASH_LOOP_EXIT = 3


@dataclass
class Part:
    name: str
    start: Callable[[], subprocess.Popen]  # starts the part, returns its process
    stop: Callable[[subprocess.Popen], None]  # stops it cleanly
    process: subprocess.Popen | None = None
    restarts: deque = field(default_factory=deque)  # monotonic times of recent restarts
    next_start: float = 0.0
    ready: Callable[[], bool] | None = None  # started only once this holds (waiting is no crash)
    waiting: bool = False


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL what is left of a part's process group (orphaned pool children)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Supervisor:
    def __init__(self, parts: list[Part], *, max_restarts: int = 5, window: float = 120.0,
                 backoff_base: float = 1.0, backoff_max: float = 30.0, poll: float = 0.5,
                 say: Callable[[str], None] = print):
        self.parts = parts
        self.max_restarts = max_restarts
        self.window = window
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.poll = poll
        self.say = say
        self._stopping = False

    def _request_stop(self, signum, _frame) -> None:
        self._stopping = True

    def run(self) -> int:
        previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            for part in self.parts:
                if part.ready is None or part.ready():
                    part.process = part.start()
                    self.say(f"{part.name} started (pid {part.process.pid})")
            while not self._stopping:
                failed = self._watch()
                if failed:
                    self.say(f"{failed.name} keeps crashing ({self.max_restarts} restarts within "
                             f"{self.window:.0f} s): giving up; see its log lines above")
                    self._stop_all()
                    return CRASH_LOOP_EXIT
                time.sleep(self.poll)
            self.say("stopping")
            self._stop_all()
            return 0
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _watch(self) -> Part | None:
        now = time.monotonic()
        for part in self.parts:
            process = part.process
            if process is not None and process.poll() is None:
                continue
            if process is not None:  # it just died
                code = process.returncode
                kill_group(process)
                part.process = None
                while part.restarts and now - part.restarts[0] > self.window:
                    part.restarts.popleft()
                if len(part.restarts) >= self.max_restarts:
                    return part
                delay = min(self.backoff_max, self.backoff_base * 2 ** len(part.restarts))
                part.next_start = now + delay
                part.restarts.append(now)
                self.say(f"{part.name} exited with code {code}; restarting in {delay:.0f} s")
            if part.process is None and now >= part.next_start and not self._stopping:
                if part.ready is not None and not part.ready():
                    if not part.waiting:
                        self.say(f"{part.name} waits for Redis before it starts")
                        part.waiting = True
                    part.next_start = now + 1.0
                    continue
                part.waiting = False
                try:
                    part.process = part.start()
                    self.say(f"{part.name} restarted (pid {part.process.pid})")
                except Exception as exc:  # noqa: BLE001  (a failed start counts as a crash)
                    self.say(f"{part.name} could not start: {exc}")
                    part.restarts.append(now)
                    if len(part.restarts) > self.max_restarts:
                        return part
                    part.next_start = now + min(self.backoff_max, self.backoff_base * 2 ** len(part.restarts))
        return None

    def _stop_all(self) -> None:
        for part in reversed(self.parts):
            if part.process is not None:
                part.stop(part.process)
                kill_group(part.process)
                part.process = None
