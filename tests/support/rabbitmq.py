"""RabbitMQ for the tests, never the machine's own queues.

- ``machine_vhost()``: a vhost of its own on the RabbitMQ that runs on this machine
  (127.0.0.1:5672, guest/guest), made with ``rabbitmqctl`` and deleted after; the test is
  skipped, with the reason, where there is no such server or no right to make a vhost.
- ``PrivateRabbitMQ``: a RabbitMQ node of the test's own (the ``rabbitmq-server`` of this
  machine, on free loopback ports, its data in a temporary folder) for settings that RabbitMQ
  3.10 has only node-wide, such as a small ``consumer_timeout``: changing them on the shared
  node would change them for every vhost.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.redis_server import free_port

HOST, PORT = "127.0.0.1", 5672
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the script itself: /usr/sbin's switches user


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _ctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def machine_vhost() -> Iterator[str]:
    """The amqp:// URL of a fresh vhost on the machine's RabbitMQ, deleted afterwards."""
    if not _listening(HOST, PORT):
        pytest.skip(f"no RabbitMQ listening on {HOST}:{PORT}")
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: no way to make a vhost of the test's own")
    vhost = f"trailpipe-test-{uuid.uuid4().hex[:10]}"
    made = _ctl("add_vhost", vhost)
    if made.returncode != 0:
        pytest.skip(f"cannot make a RabbitMQ vhost (rabbitmqctl add_vhost: {made.stderr.strip()[:200]})")
    try:
        allowed = _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        if allowed.returncode != 0:
            pytest.skip(f"cannot give guest the test vhost: {allowed.stderr.strip()[:200]}")
        yield f"amqp://guest:guest@{HOST}:{PORT}/{vhost}"
    finally:
        _ctl("delete_vhost", vhost)


def list_queues(vhost: str) -> dict[str, str]:
    """Queue name → type (``quorum``, ``classic``) in a vhost of the machine's RabbitMQ."""
    listed = _ctl("list_queues", "-p", vhost, "--no-table-headers", "--quiet", "name", "type")
    assert listed.returncode == 0, listed.stderr
    return dict(line.split("\t")[:2] for line in listed.stdout.splitlines() if "\t" in line)


class PrivateRabbitMQ:
    """A RabbitMQ node on free loopback ports, with its own data folder and settings."""

    def __init__(self, directory: Path, consumer_timeout_ms: int, tick_ms: int = 500):
        self.directory = directory
        self.consumer_timeout_ms = consumer_timeout_ms
        self.tick_ms = tick_ms  # how often a channel checks its consumers' timeouts (60 s by default)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout: float = 60) -> PrivateRabbitMQ:
        if not os.path.exists(RABBITMQ_SERVER) or shutil.which("erl") is None:
            pytest.skip("rabbitmq-server is not installed: no private RabbitMQ node")
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.port}\nconsumer_timeout = {self.consumer_timeout_ms}\n")
        (self.directory / "advanced.config").write_text(
            f"[{{rabbit, [{{channel_tick_interval, {self.tick_ms}}}]}}].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")
        dist_port = free_port()
        env = dict(
            os.environ, HOME=str(self.directory), RABBITMQ_CONF_ENV_FILE=str(self.directory / "rabbitmq-env.conf"),
            RABBITMQ_NODENAME=f"trailpipe-test-{self.port}@localhost", RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(dist_port), ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_MNESIA_BASE=str(self.directory / "mnesia"), RABBITMQ_LOG_BASE=str(self.directory / "log"),
            RABBITMQ_CONFIG_FILE=str(self.directory / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.directory / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.directory / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.directory / "pid"))
        log = open(self.directory / "server.log", "ab")
        self.process = subprocess.Popen([RABBITMQ_SERVER], env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _listening("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.directory / "server.log").read_text(errors="replace")[-400:]
                pytest.skip(f"a private RabbitMQ node did not start: {tail}")
            time.sleep(0.3)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # the node stops cleanly on SIGTERM
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None
