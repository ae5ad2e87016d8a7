"""``trailpipe run`` as a supervisor: its parts (the embedded redis-server, the Celery worker,
Celery beat) are its children; whatever dies is restarted with backoff and a log line.

A part that was up (ready) and died is always restarted, however often, with backoff (1 s,
doubling, at most 30 s; back to 1 s once it stayed up a minute): a restart fixes what killed it
(the OOM killer, an operator, a crash). The run gives up only on a part that cannot start at
all: one that exits by itself, with an error, before it is ready, ``max_start_failures`` times
in a row (a bad binary, a port taken, a config it refuses); every part is stopped and the run
exits 3 naming it. A part killed by a signal never failed to start, whenever it was killed, and
neither did a part that exited while what it waits for (Redis) was away.

It ends otherwise only on SIGTERM/SIGINT/SIGHUP (every part stopped cleanly, beat first, Redis
last: exit 0). Each Celery part runs in its own process group, so the pool children of a worker
whose main process died are stopped with it and cannot run on unseen; and every part gets
SIGTERM should the supervisor itself be killed (``die_with_parent``). A part may wait for a
precondition (worker and beat: Redis answers) before it is started: a Redis outage costs each
part at most one restart, however long it lasts.

``trailpipe demo`` drives the same supervisor from a loop of its own (it shows events as they
arrive): ``check()`` is one round of the run loop (it returns a part that cannot start), and
``stop()`` stops every part from outside that loop; ``run`` is both, with the signals.

Restarts are counted per part in ``STATE_DIR/parts.json`` (written at every change), which
``trailpipe status`` and ``trailpipe metrics`` read (``trailpipe_part_restarts_total{part}``).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.backoff import backoff

log = logging.getLogger("trailpipe.run")

CRASH_LOOP_EXIT = 3  # a part cannot start at all
PARTS_FILE = "parts.json"
MAX_START_FAILURES = 5
STABLE_SECONDS = 60.0  # up this long, a part's backoff starts again at backoff_base


@dataclass
class Part:
    name: str
    start: Callable[[], subprocess.Popen]  # starts the part, returns its process
    stop: Callable[[subprocess.Popen], None]  # stops it cleanly
    # Started only once this holds (worker and beat: Redis answers); waiting is no failure.
    wait_for: Callable[[], bool] | None = None
    # The part is up (ready): for Celery parts, the ready file its process wrote; None: as soon
    # as start() returned.
    ready: Callable[[subprocess.Popen], bool] | None = None
    hint: str = ""  # said when it cannot start
    process: subprocess.Popen | None = None
    up: bool = False
    up_since: float = 0.0
    started: bool = False  # started once: the next start is a restart
    restarts: int = 0
    start_failures: int = 0  # in a row, before it was ever ready since its last start
    streak: int = 0  # deaths since it last stayed up STABLE_SECONDS: the backoff's exponent
    next_start: float = 0.0
    waiting: bool = False
    last_exit: str = ""
    last_exit_at: str = ""


def exit_text(code: int) -> str:
    """``exited with code 1`` or ``exited with code -9 (killed by SIGKILL)``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"exited with code {code} (killed by {name})"
    return f"exited with code {code}"


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL what is left of a part's process group (orphaned pool children)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Supervisor:
    def __init__(self, parts: list[Part], *, max_start_failures: int = MAX_START_FAILURES,
                 backoff_base: float = 1.0, backoff_max: float = 30.0, stable_seconds: float = STABLE_SECONDS,
                 poll: float = 0.5, say: Callable[[str], None] = print, state_dir: Path | None = None):
        self.parts = parts
        self.max_start_failures = max_start_failures
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stable_seconds = stable_seconds
        self.poll = poll
        self.say = say
        self.parts_file = state_dir / PARTS_FILE if state_dir is not None else None
        self.started_at = _now_iso()
        self._stopping = False
        self._stopped = False

    def _request_stop(self, signum, _frame) -> None:
        self._stopping = True

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT/SIGHUP (exit 0) or a part that cannot start (exit 3)."""
        previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            self._record()
            while not self._stopping:
                failed = self.check()
                if failed:
                    self.say(self.gave_up_text(failed))
                    self._stop_all()
                    return CRASH_LOOP_EXIT
                time.sleep(self.poll)
            self.say("stopping")
            self._stop_all()
            return 0
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def check(self) -> Part | None:
        """One round of the run loop, for a caller with a loop of its own (``trailpipe demo``):
        start what is due, notice what died and restart it. Returns the part that cannot start
        (the caller then stops everything), else None. Call it every ``poll`` seconds or so."""
        if self._stopping:
            return None
        return self._watch()

    def stop(self) -> None:
        """Stop every part (in reverse order: beat first, Redis last), from outside ``run``'s loop."""
        self._stopping = True
        if not self._stopped:
            self._stop_all()

    def gave_up_text(self, part: Part) -> str:
        return (f"{part.name} cannot start: it {part.last_exit} before it was ready, "
                f"{part.start_failures} times in a row; giving up"
                + (f" ({part.hint})" if part.hint else "") + "; see its log lines above")

    def _delay(self, part: Part, now: float) -> float:
        if part.up and now - part.up_since >= self.stable_seconds:
            part.streak = 0
        delay = backoff(part.streak, self.backoff_base, self.backoff_max, jitter=False)
        part.streak += 1
        return delay

    def _watch(self) -> Part | None:
        changed = False
        for part in self.parts:
            now = time.monotonic()
            process = part.process
            if process is not None:
                code = process.poll()
                if code is None:
                    if not part.up and (part.ready is None or part.ready(process)):
                        part.up, part.up_since, part.start_failures = True, now, 0
                        self.say(f"{part.name} is ready (pid {process.pid})")
                        changed = True
                    continue
                # It just died.
                kill_group(process)
                part.process = None
                part.last_exit, part.last_exit_at = exit_text(code), _now_iso()
                note = ""
                if not part.up:
                    note = " before it was ready"
                    if self._failed_to_start(part, code):
                        part.start_failures += 1
                        if part.start_failures >= self.max_start_failures:
                            self._record()
                            return part
                        note += f" (failed start {part.start_failures} of {self.max_start_failures} in a row)"
                delay = self._delay(part, now)
                part.up = False
                part.next_start = now + delay
                self.say(f"{part.name} {part.last_exit}{note}; restarting in {delay:.0f} s")
                changed = True
            if part.process is None and now >= part.next_start and not self._stopping:
                changed |= self._start(part, now)
                if part.start_failures >= self.max_start_failures:
                    self._record()
                    return part
        if changed:
            self._record()
        return None

    def _failed_to_start(self, part: Part, code: int) -> bool:
        """Exited by itself, with an error, before it was ready, while what it waits for held."""
        if code <= 0:
            return False  # killed by a signal (or a clean exit): it did not fail to start
        return part.wait_for is None or part.wait_for()

    def _start(self, part: Part, now: float) -> bool:
        if part.wait_for is not None and not part.wait_for():
            if not part.waiting:
                self.say(f"{part.name} waits for Redis before it starts")
                part.waiting = True
            part.next_start = now + 1.0
            return False
        part.waiting = False
        part.up = False
        try:
            part.process = part.start()
        except Exception as exc:  # noqa: BLE001  (a start that raises failed to start)
            part.last_exit, part.last_exit_at = f"could not be started ({exc})", _now_iso()
            part.start_failures += 1
            part.next_start = now + self._delay(part, now)
            self.say(f"{part.name} could not start: {exc}")
            return True
        if part.started:
            part.restarts += 1
            self.say(f"{part.name} restarted (pid {part.process.pid}; restart {part.restarts})")
        else:
            part.started = True
            self.say(f"{part.name} started (pid {part.process.pid})")
        return True

    def _state(self, part: Part) -> str:
        if self._stopped:
            return "stopped"
        if part.up:
            return "up"
        if part.process is not None:
            return "starting"
        if part.waiting:
            return "waiting"
        return "restarting" if part.started else "not started"

    def _record(self) -> None:
        """Write every part's restarts and state to STATE_DIR/parts.json (atomically)."""
        if self.parts_file is None:
            return
        view = {"pid": os.getpid(), "started_at": self.started_at, "parts": {
            part.name: {"restarts": part.restarts, "state": self._state(part),
                        "pid": part.process.pid if part.process is not None else None,
                        "start_failures": part.start_failures,
                        "last_exit": part.last_exit or None, "last_exit_at": part.last_exit_at or None}
            for part in self.parts}}
        temporary = self.parts_file.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(view, indent=1))
            temporary.replace(self.parts_file)
        except OSError as exc:
            log.warning("cannot record the parts' restarts in %s: %s", self.parts_file, exc)

    def _stop_all(self) -> None:
        for part in reversed(self.parts):
            if part.process is not None:
                part.stop(part.process)
                kill_group(part.process)
                part.process = None
            part.up = False
        self._stopped = True
        self._record()


def read_parts(state_dir: Path) -> dict | None:
    """What the running ``trailpipe run`` of this state folder recorded, or None (none runs)."""
    from pipeline.embedded import held_by_other  # noqa: PLC0415  (embedded imports nothing of ours)

    try:
        view = json.loads((state_dir / PARTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    pid = view.get("pid") if isinstance(view, dict) else None
    if not isinstance(pid, int) or pid == os.getpid() or not _alive(pid) or not held_by_other(state_dir):
        return None  # written by a run that has ended: its counts say nothing now
    return view if isinstance(view, dict) and isinstance(view.get("parts"), dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
