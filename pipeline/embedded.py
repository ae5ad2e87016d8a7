"""The embedded redis-server of ``trailpipe run`` (a config without ``redis_url``), and how every
other command finds it.

State folder (``state_dir``, default ``./.trailpipe``; umask 077, so this user's only):

  run.lock            held (flock) by the one ``trailpipe run`` of this folder
  redis/              the server's data (AOF), log and 0600 ``redis.conf``
  redis/password      a random password, made once, 0600
  redis/connection    the URL of the running server (password included), 0600; other commands
                      (status, tail, metrics, discover ...) and the Celery children read it

Without a running ``trailpipe run``, read-only commands start the server on the same data for
as long as they run (holding the lock, so no ``run`` starts beside them).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from pipeline.redis_server import RedisServer, free_port

LOCK_FILE = "run.lock"
REDIS_FOLDER = "redis"
CONNECTION_FILE = "connection"
PASSWORD_FILE = "password"


class AlreadyRunning(RuntimeError):
    """Another ``trailpipe run`` holds this state folder."""


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def make_state_dir(state_dir: Path) -> Path:
    old = os.umask(0o077)
    try:
        (state_dir / REDIS_FOLDER).mkdir(parents=True, exist_ok=True, mode=0o700)
    finally:
        os.umask(old)
    os.chmod(state_dir, 0o700)
    os.chmod(state_dir / REDIS_FOLDER, 0o700)
    return state_dir


def embedded_url(state_dir: Path) -> str | None:
    """The URL the running embedded server recorded, or None."""
    try:
        return (state_dir / REDIS_FOLDER / CONNECTION_FILE).read_text().strip() or None
    except OSError:
        return None


class RunLock:
    """One ``trailpipe run`` per state folder: an exclusive flock, released when the process ends
    (however it ends), so a crash never leaves a stale lock behind."""

    def __init__(self, state_dir: Path):
        self.path = make_state_dir(state_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise AlreadyRunning(f"{self.path.parent} is in use by trailpipe (pid {holder}): one "
                                 "`trailpipe run` per state folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def held_by_other(state_dir: Path) -> bool:
    path = state_dir / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class EmbeddedRedis:
    """A hardened redis-server under the state folder: loopback only, a random password kept in a
    0600 file (never on a command line), CONFIG/MODULE/DEBUG disabled, AOF on. Restarted on the
    same port and password, so workers reconnect by themselves."""

    def __init__(self, state_dir: Path):
        self.state_dir = make_state_dir(state_dir)
        self.folder = self.state_dir / REDIS_FOLDER
        self.server = RedisServer(self.folder, port=free_port(), password=self._password())

    def _password(self) -> str:
        path = self.folder / PASSWORD_FILE
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(32))
        return path.read_text().strip()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def process(self):
        return self.server.process

    def start(self) -> EmbeddedRedis:
        """Start it and wait until it answers."""
        self.server.start()
        _write_private(self.folder / CONNECTION_FILE, self.server.url + "\n")
        return self

    def spawn(self):
        """Start it and return its process at once (``trailpipe run``: ``answers`` says when it
        is up, so a restart that loads a long AOF keeps nothing else waiting)."""
        process = self.server.spawn()
        _write_private(self.folder / CONNECTION_FILE, self.server.url + "\n")
        return process

    def answers(self) -> bool:
        return self.server.answers()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            (self.folder / CONNECTION_FILE).unlink()
        self.server.stop()


@contextlib.contextmanager
def reachable(config, serve_data: bool = True) -> Iterator[None]:
    """Make ``config.redis_url_value()`` work for a command: a configured Redis as it is; the
    embedded one of a running ``trailpipe run``; else (``serve_data``: short, read-only commands
    only, since it holds the run lock meanwhile) its data, served for this command only."""
    state_dir = config.state_path
    if not config.uses_embedded_redis or held_by_other(state_dir) or not serve_data:
        yield
        return
    if not (state_dir / REDIS_FOLDER / PASSWORD_FILE).exists():
        yield  # nothing was ever run here: redis_url_value() explains what to do
        return
    with RunLock(state_dir):
        server = EmbeddedRedis(state_dir).start()
        try:
            yield
        finally:
            server.stop()
