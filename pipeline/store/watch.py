"""The state epoch and the resets seen (``P:epoch``, ``P:resets``: check_epoch.lua), and how the
Redis persists (``INFO persistence``, ``CONFIG GET save``): what pipeline.state_watch judges."""
from __future__ import annotations

from dataclasses import dataclass

import redis
import redis.cluster

from pipeline.replies import as_hash
from pipeline.store.base import RedisStore, text
from pipeline.store.schema import ResetsField


@dataclass(frozen=True)
class PersistenceInfo:
    """What one server says: AOF on, its RDB save rules ("" none; None: could not be read)."""

    aof: bool
    save: str | None
    where: str


def redis_address(client: redis.Redis) -> str:
    """host:port (never the password) of the client's server, for messages."""
    if isinstance(client, redis.cluster.RedisCluster):
        return "the Redis Cluster (" + ", ".join(node.name for node in client.get_primaries()) + ")"
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return str(kwargs["path"])
    host, port = kwargs.get("host"), kwargs.get("port")
    return f"{host}:{port}" if host else "redis_url"


def server_persistence(client: redis.Redis) -> list[PersistenceInfo]:
    """How each server persists: the server, or every primary (shard) of a Redis Cluster."""
    if isinstance(client, redis.cluster.RedisCluster):
        return [info for node in client.get_primaries()
                for info in server_persistence(client.get_redis_connection(node))]
    info = client.info("persistence")
    aof = str(info.get("aof_enabled", "0")) == "1"
    save: str | None
    try:
        reply = client.config_get("save")
        value = reply.get("save", reply.get(b"save", ""))  # type: ignore[call-overload]
        save = (value.decode() if isinstance(value, bytes) else str(value)).strip()
    except redis.ResponseError:  # renamed away (the embedded server), ACL, managed services
        save = None
    return [PersistenceInfo(aof, save, redis_address(client))]


class WatchStore(RedisStore):
    """Scripts: check_epoch."""

    def check_epoch(self, remembered: str, fresh: str, who: str) -> tuple[str, int]:
        """(the epoch now, 0 | 1 (a reset, counted now) | 2 (a reset another process counted))."""
        epoch, verdict = self._scripts["check_epoch"](keys=[self.keys.epoch(), self.keys.resets()],
                                                      args=[remembered, fresh, who])
        return text(epoch), int(verdict)

    def resets(self) -> dict[str, str]:
        """``P:resets`` (ResetsField)."""
        return {k.decode(errors="replace"): v.decode(errors="replace")
                for k, v in as_hash(self.redis.hgetall(self.keys.resets())).items()}

    def epoch(self) -> str | None:
        raw = self.redis.get(self.keys.epoch())
        return raw.decode() if isinstance(raw, bytes) else None

    def persistence(self) -> list[PersistenceInfo]:
        return server_persistence(self.redis)

    def address(self) -> str:
        return redis_address(self.redis)


__all__ = ["PersistenceInfo", "ResetsField", "WatchStore", "redis_address", "server_persistence"]
