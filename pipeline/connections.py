"""One connection factory for every part that talks to Redis: the state and stream client, the
Celery broker (kombu), beat's schedule (celery-redbeat), the CLI commands.

A ``redis_url``/``broker_url`` is parsed once into an address of one kind; each kind knows how to
make a redis-py client, kombu's broker settings and redbeat's settings:

- ``redis://``, ``rediss://``, ``unix://``: one server (``SingleAddress``), as redis-py reads it;
- ``redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]`` (TLS:
  ``rediss+sentinel://``): the primary is found through the Sentinels (``SentinelAddress``), and
  found again after a failover. A Sentinel password, if any, is ``sentinel_password`` in the config.

- ``redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/`` (TLS: ``rediss+cluster://``): a
  Redis Cluster (``ClusterAddress``), found through any of the startup nodes; redis-py's
  ``RedisCluster`` follows MOVED/ASK and a shard's failover. It holds the state and the streams,
  and beat's schedule; never Celery's broker (kombu pipelines keys of several slots:
  celery/celery#2852), so ``broker`` refuses it.

A new kind is one more class with the same four methods and one more entry in ``SCHEMES``.

Failover is an outage, not an end: every client retries connection errors, resets, ``LOADING``
and ``READONLY`` (a demoted primary; a Sentinel-managed connection then asks the Sentinels again),
and what still fails is a transient error for ``pipeline.policy``. Messages never quote a URL,
which may hold a password.
"""
from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import redis
import redis.cluster
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from pipeline.redis_tls import broker_ssl_options

SENTINEL_PORT = 26379
CONNECT_TIMEOUT_SECONDS = 5.0
SENTINEL_SOCKET_TIMEOUT_SECONDS = 5.0
HEALTH_CHECK_SECONDS = 30
# The client rides through a short switch (a promoted replica, a reset, a restart) by itself:
# up to 10 retries, backoff with full jitter up to 2 s (about 5 s in all, 11 s at most). A longer
# outage (Sentinel's down-after-milliseconds, 30 s by default, plus an election) reaches the
# caller, whose policy retries it as transient, without limit.
RETRIES = 10
RETRY_BASE_SECONDS = 0.05
RETRY_CAP_SECONDS = 2.0
# Besides connection errors and timeouts (redis-py's own), retried as passing: a demoted primary
# (READONLY: nothing was written) and a server loading its data.
RETRIED_ERRORS = (redis.ReadOnlyError, redis.BusyLoadingError, redis.ConnectionError, redis.TimeoutError)

# Why a cluster URL cannot be the broker, and what to use: one line for `validate`.
CLUSTER_BROKER_REFUSED = ("is a Redis Cluster, which Celery cannot use as its broker (celery/celery#2852): "
                          "use a plain or Sentinel Redis (redis://, redis+sentinel://) or RabbitMQ (amqp://)")
# A cluster's shard fails over by itself (cluster-node-timeout, then a replica's election): its
# errors meanwhile (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, a dead node) are RedisCluster's to retry.
CLUSTER_PORT = 6379

_MASTER_NAME = re.compile(r"^[A-Za-z0-9._\-]+$")
_HOST = re.compile(r"^[A-Za-z0-9.\-]+$|^\[[0-9A-Fa-f:.]+\]$")


def retry_policy() -> Retry:
    return Retry(ExponentialWithJitterBackoff(cap=RETRY_CAP_SECONDS, base=RETRY_BASE_SECONDS), RETRIES,
                 supported_errors=RETRIED_ERRORS)


@dataclass(frozen=True)
class SingleAddress:
    """One server, as redis-py's ``from_url`` reads it (TLS settings in the URL's query)."""

    url: str = field(repr=False)
    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "unix")

    @classmethod
    def parse(cls, url: str) -> SingleAddress:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "unix":
            try:
                parts.port  # noqa: B018  (raises on a port that is not a number)
            except ValueError:
                raise ValueError("has a port that is not a number") from None
            if not parts.hostname:
                raise ValueError("has no host")
            _database(parts.path.lstrip("/"), allow_empty=True)  # unix://: the path is the socket's
        return cls(url)

    def client(self, sentinel_password: str | None = None, quick: bool = False) -> redis.Redis:
        return redis.Redis.from_url(self.url, **_client_settings(quick))

    def broker(self, sentinel_password: str | None = None) -> tuple[str, dict, dict | None]:
        """kombu's (``broker_url``, extra ``broker_transport_options``, ``broker_use_ssl``)."""
        return self.url, {}, broker_ssl_options(self.url)

    def redbeat(self, sentinel_password: str | None = None) -> tuple[str, dict, dict | None]:
        """redbeat's (``redbeat_redis_url``, ``redbeat_redis_options``, ``redbeat_redis_use_ssl``):
        the credentials moved out of the URL, under keys Celery masks when a worker reports its
        configuration (``celery inspect conf``, Flower), which shows ``redbeat_redis_url`` in the clear."""
        parts = urllib.parse.urlsplit(self.url)
        use_ssl = broker_ssl_options(self.url)
        if parts.password is None and parts.username is None:
            return self.url, {}, use_ssl
        options = {}
        if parts.username:
            options["username"] = urllib.parse.unquote(parts.username)
        if parts.password is not None:
            options["password"] = urllib.parse.unquote(parts.password)
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(parts._replace(netloc=host)), options, use_ssl


class _TlsAndCredentials:
    """What a Sentinel and a Cluster address both derive from their URL's userinfo and query."""

    tls: bool
    query: tuple[tuple[str, str], ...]
    username: str | None
    password: str | None

    def _tls_options(self) -> dict | None:
        if not self.tls:
            return None
        return broker_ssl_options("rediss://x/?" + urllib.parse.urlencode(self.query))

    def _credentials(self) -> dict:
        return {k: v for k, v in (("username", self.username), ("password", self.password)) if v is not None}


@dataclass(frozen=True)
class SentinelAddress(_TlsAndCredentials):
    """The primary of ``master_name``, found through any of ``sentinels``."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    query: tuple[tuple[str, str], ...] = ()  # ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs
    schemes: ClassVar[tuple[str, ...]] = ("redis+sentinel", "rediss+sentinel")

    @classmethod
    def parse(cls, url: str) -> SentinelAddress:
        scheme, _, rest = url.partition("://")
        netloc, _, path_query = rest.partition("/")
        path, _, query = path_query.partition("?")
        username, password, hostlist = _userinfo(netloc)
        sentinels = []
        for item in hostlist.split(","):
            if not item:
                raise ValueError("needs HOST:PORT of at least one Sentinel (comma-separated)")
            host, port = _host_port(item)
            sentinels.append((host, port))
        names = path.split("/")
        if not names or not names[0]:
            raise ValueError("needs the Sentinel's master name after the hosts: "
                             "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]")
        if len(names) > 2 or not _MASTER_NAME.match(names[0]):
            raise ValueError("has a master name that is not a name (letters, digits, . _ -), "
                             "or more than /MASTER_NAME/DB after the hosts")
        db = _database(names[1], allow_empty=True) if len(names) == 2 else 0
        address = cls(tuple(sentinels), names[0], db, username, password, scheme.lower().startswith("rediss"),
                      tuple(urllib.parse.parse_qsl(query)))
        address._tls_options()  # ValueError now, at validate, for a wrong ssl_cert_reqs
        return address

    def sentinel_kwargs(self, sentinel_password: str | None) -> dict:
        """How to talk to the Sentinels themselves: their own password, TLS like the data nodes."""
        kwargs: dict[str, Any] = {"socket_timeout": SENTINEL_SOCKET_TIMEOUT_SECONDS,
                                  "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS}
        if sentinel_password:
            kwargs["password"] = sentinel_password
        tls = self._tls_options()
        if tls is not None:
            kwargs.update(ssl=True, **tls)
        return kwargs

    def client(self, sentinel_password: str | None = None, quick: bool = False) -> redis.Redis:
        tls = self._tls_options()
        connection = _client_settings(quick)
        if tls is not None:
            connection.update(ssl=True, **tls)
        # Each Sentinel is asked once per discovery (the next one on an error): no retries there.
        sentinel_kwargs = {**self.sentinel_kwargs(sentinel_password), "retry": Retry(NoBackoff(), 0)}
        sentinel = redis.sentinel.Sentinel(list(self.sentinels), sentinel_kwargs=sentinel_kwargs, **connection)
        return sentinel.master_for(self.master_name, redis_class=redis.Redis, db=self.db, **self._credentials())

    def broker(self, sentinel_password: str | None = None) -> tuple[str, dict, dict | None]:
        """kombu's ``sentinel://`` transport: one ``sentinel://`` URL per Sentinel (``;``-joined),
        each with the data nodes' credentials, ``master_name`` and the Sentinels' own settings in
        ``broker_transport_options`` (Celery masks their ``password``)."""
        auth = ""
        if self.username or self.password is not None:
            auth = urllib.parse.quote(self.username or "", safe="")
            if self.password is not None:
                auth += ":" + urllib.parse.quote(self.password, safe="")
            auth += "@"
        url = ";".join(f"sentinel://{auth}{_netloc(host, port)}/{self.db}" for host, port in self.sentinels)
        options = {"master_name": self.master_name, "sentinel_kwargs": self.sentinel_kwargs(sentinel_password)}
        return url, options, self._tls_options()

    def redbeat(self, sentinel_password: str | None = None) -> tuple[str, dict, dict | None]:
        """celery-redbeat takes Sentinel as ``redis-sentinel://`` with a ``sentinels`` list in
        ``redbeat_redis_options`` (sibson/redbeat#199); the passwords sit there, masked."""
        options: dict[str, Any] = {"sentinels": [list(pair) for pair in self.sentinels],
                                   "service_name": self.master_name, "db": self.db,
                                   "socket_timeout": SENTINEL_SOCKET_TIMEOUT_SECONDS,
                                   "sentinel_kwargs": self.sentinel_kwargs(sentinel_password),
                                   **self._credentials()}
        return "redis-sentinel://", options, self._tls_options()


@dataclass(frozen=True)
class ClusterAddress(_TlsAndCredentials):
    """A Redis Cluster, found through any of its ``nodes`` (the startup nodes)."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    query: tuple[tuple[str, str], ...] = ()  # ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs
    schemes: ClassVar[tuple[str, ...]] = ("redis+cluster", "rediss+cluster")

    @classmethod
    def parse(cls, url: str) -> ClusterAddress:
        scheme, _, rest = url.partition("://")
        netloc, slash, path_query = rest.partition("/")
        path, _, query = path_query.partition("?")
        if "?" in netloc and not slash:
            netloc, _, query = netloc.partition("?")
        username, password, hostlist = _userinfo(netloc)
        nodes = []
        for item in hostlist.split(","):
            if not item:
                raise ValueError("needs HOST:PORT of at least one cluster node (comma-separated): "
                                 "redis+cluster://HOST:PORT[,HOST:PORT...]/")
            nodes.append(_host_port(item, "cluster node", CLUSTER_PORT))
        if path:
            raise ValueError("has a path after the hosts: a Redis Cluster has one database, "
                             "redis+cluster://HOST:PORT[,HOST:PORT...]/")
        address = cls(tuple(nodes), username, password, scheme.lower().startswith("rediss"),
                      tuple(urllib.parse.parse_qsl(query)))
        address._tls_options()  # ValueError now, at validate, for a wrong ssl_cert_reqs
        return address

    def client(self, sentinel_password: str | None = None, quick: bool = False,
               decode_responses: bool = False) -> redis.cluster.RedisCluster:
        connection = _client_settings(quick)
        connection.pop("retry_on_error", None)  # RedisCluster retries its own errors (ERRORS_ALLOW_RETRY)
        tls = self._tls_options()
        if tls is not None:
            connection.update(ssl=True, **tls)
        nodes = [redis.cluster.ClusterNode(host, port) for host, port in self.nodes]
        return redis.cluster.RedisCluster(startup_nodes=nodes, decode_responses=decode_responses,
                                          **self._credentials(), **connection)

    def broker(self, sentinel_password: str | None = None) -> tuple[str, dict, dict | None]:
        raise ValueError(CLUSTER_BROKER_REFUSED)

    def redbeat(self, sentinel_password: str | None = None) -> tuple[str, dict, dict | None]:
        """celery-redbeat's cluster branch (``cluster: True``): ``RedisCluster.from_url`` of the
        first node, which then learns every node; the credentials in the options (masked)."""
        host, port = self.nodes[0]
        scheme = "rediss" if self.tls else "redis"
        options: dict[str, Any] = {"cluster": True, "decode_responses": True, **self._credentials()}
        tls = self._tls_options()
        if tls is not None:
            options.update(tls)
        return f"{scheme}://{_netloc(host, port)}", options, tls


Address = SingleAddress | SentinelAddress | ClusterAddress
# scheme -> the kind of address it names; one entry per kind.
SCHEMES: dict[str, type[SingleAddress] | type[SentinelAddress] | type[ClusterAddress]] = {
    scheme: kind for kind in (SingleAddress, SentinelAddress, ClusterAddress) for scheme in kind.schemes}


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in ClusterAddress.schemes


def parse_url(url: str) -> Address:
    """The address a ``redis_url``/``broker_url`` names; ValueError (never quoting it) if none."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise ValueError("is not a Redis URL: use redis://HOST:PORT/DB, rediss:// (TLS), unix://PATH, "
                         "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB] or "
                         "redis+cluster://HOST:PORT[,HOST:PORT...]/ (rediss+... with TLS)")
    return kind.parse(url)


def redis_client(url: str, sentinel_password: str | None = None, quick: bool = False) -> redis.Redis:
    """The client every part uses for its state and stream (``Runtime.redis``, the CLI).
    ``quick``: for a readiness probe, short timeouts and no retries. For a cluster URL, a
    ``redis.cluster.RedisCluster``: the same commands, each routed to the shard of its key."""
    return cast(redis.Redis, parse_url(url).client(sentinel_password, quick))


def _client_settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"socket_connect_timeout": 1, "socket_timeout": 2, "retry": Retry(NoBackoff(), 0)}
    return {"socket_connect_timeout": CONNECT_TIMEOUT_SECONDS, "health_check_interval": HEALTH_CHECK_SECONDS,
            "retry": retry_policy(), "retry_on_error": list(RETRIED_ERRORS)}


def _userinfo(netloc: str) -> tuple[str | None, str | None, str]:
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = urllib.parse.unquote(user) or None
        password = urllib.parse.unquote(secret) if colon else None
    return username, password, hostlist


def _host_port(item: str, what: str = "Sentinel", default_port: int = SENTINEL_PORT) -> tuple[str, int]:
    if item.startswith("["):
        host, _, port_text = item[1:].partition("]")
        host, port_text = f"[{host}]", port_text.removeprefix(":")
    else:
        host, _, port_text = item.partition(":")
    if not host or not _HOST.match(host):
        raise ValueError(f"has a {what} host that is not a host name or address")
    if not port_text:
        return host.strip("[]"), default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"has a {what} port that is not a port number")
    return host.strip("[]"), int(port_text)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _database(text: str, allow_empty: bool = False) -> int:
    if allow_empty and not text:
        return 0
    if not text.isdigit():
        raise ValueError("has a database that is not a number")
    return int(text)


__all__ = ["CLUSTER_BROKER_REFUSED", "SCHEMES", "Address", "ClusterAddress", "SentinelAddress", "SingleAddress",
           "is_cluster_url", "parse_url", "redis_client", "retry_policy"]
