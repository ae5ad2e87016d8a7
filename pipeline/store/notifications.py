"""What the notification consumer keeps: when a notification claimed an object (``notified_at``),
its counters and latency histogram (``notifications.*``, ``notification_latency.*``) and its last
error (``P:src:S:notify_error``)."""
from __future__ import annotations

from collections.abc import Sequence

from pipeline.replies import as_optional_bytes
from pipeline.store.base import RedisStore, execute
from pipeline.store.schema import LatencyStat, ObjectField, latency_stat, notification_stat


class NotificationStore(RedisStore):
    def mark_notified(self, source: str, keys: Sequence[str], sent_ms: int) -> None:
        """The notification sent at ``sent_ms`` claimed these objects (before their enqueue, so
        the ingest always finds it)."""
        if not keys:
            return
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hset(self.keys.object(source, key), ObjectField.NOTIFIED_AT, sent_ms)
        execute(pipe)

    def notified_at(self, source: str, key: str) -> int | None:
        """When the notification that claimed the object was sent (ms); None: the listing claimed it."""
        sent = self.redis.hget(self.keys.object(source, key), ObjectField.NOTIFIED_AT)
        return None if sent is None else int(sent)  # type: ignore[arg-type]

    def count_notification(self, source: str, name: str, kind: str = "", amount: int = 1) -> None:
        """``notifications.<name>[.<kind>]`` += amount."""
        self.count(source, notification_stat(name, kind), amount)

    def note_latency(self, source: str, elapsed_ms: int, bucket: str) -> None:
        """One notification-to-stream latency, in its histogram bucket (``le.<bucket>``)."""
        stats = self.keys.stats(source)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(stats, latency_stat(LatencyStat.COUNT), 1)
        pipe.hincrby(stats, latency_stat(LatencyStat.SUM_MS), elapsed_ms)
        pipe.hincrby(stats, latency_stat(f"{LatencyStat.LE}.{bucket}"), 1)
        execute(pipe)

    def set_notify_error(self, source: str, message: str, ttl_seconds: int) -> None:
        """The consumer's last error (with a hint), for ``status``; expires after ``ttl_seconds``."""
        self.redis.set(self.keys.notify_error(source), message, ex=ttl_seconds)

    def notify_error(self, source: str) -> str | None:
        raw = as_optional_bytes(self.redis.get(self.keys.notify_error(source)))
        return raw.decode(errors="replace") if raw is not None else None
