"""Who a runner is, and whether it is really gone.

A runner (one execution of an object's ingest task) records its process in the object's hash
when it begins (``begin_object.lua``). Another delivery of the object takes it over only when
that runner is *silent* (no heartbeat within the heartbeat timeout, by Redis's clock) or *lost*:
its process is known to be gone. Lost is decided here, only where it can be known for sure: the
runner's process ran under the same kernel (boot id) and in the same pid namespace as the caller,
and that pid is gone, a zombie, or another process now (its start time differs). A prefork pool
child killed mid-object is so found lost by the task Celery redelivers at once (seconds, not the
heartbeat timeout); on another host or container, only silence says it, within the timeout.

Nothing here reads a clock: a worker's clock may be anything.
"""
from __future__ import annotations

import os

_PROC = "/proc"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _boot_and_namespace() -> str | None:
    boot = _read(f"{_PROC}/sys/kernel/random/boot_id")
    try:
        namespace = os.stat(f"{_PROC}/self/ns/pid").st_ino
    except OSError:
        return None
    return None if not boot else f"{boot.strip()}.{namespace}"


def _stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks since boot) of a process, None if there is none."""
    text = _read(f"{_PROC}/{pid}/stat")
    if not text:
        return None
    fields = text[text.rfind(")") + 2:].split()  # after "pid (comm) ": comm may hold spaces
    return (fields[0], fields[19]) if len(fields) > 19 else None


_cache: tuple[int, str] | None = None


def process_identity() -> str:
    """``<boot id>.<pid namespace>:<pid>:<start time>`` of this process ('' where /proc is not)."""
    global _cache
    pid = os.getpid()
    if _cache is None or _cache[0] != pid:  # a forked pool child is another process
        where, stat = _boot_and_namespace(), _stat(pid)
        _cache = (pid, f"{where}:{pid}:{stat[1]}" if where and stat else "")
    return _cache[1]


def is_lost(identity: str) -> bool:
    """True only when the process ``identity`` names is known to be gone (see the module)."""
    parts = identity.split(":")
    if len(parts) != 3 or not parts[1].isdigit() or parts[0] != _boot_and_namespace():
        return False  # another host, container or boot: cannot tell, only its silence can
    _, pid, started = parts
    stat = _stat(int(pid))
    return stat is None or stat[0] in ("Z", "X") or stat[1] != started
