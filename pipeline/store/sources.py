"""A source's keys: the discovery lease and fence, the markers, the partitions cache, the EPS
throttle, ``newest_done``, the health and denied set, the stats hash and the set of sources."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from pipeline.replies import as_hash, as_optional_bytes
from pipeline.store.base import RedisStore, decoded, milliseconds, text
from pipeline.store.schema import (
    Health,
    HealthEvent,
    MarkerField,
    NewestDone,
    PartitionsField,
    Stat,
    StatPrefix,
    stat,
)


@dataclass(frozen=True)
class DeniedRead:
    """What a denied read did to its source (``StateStore.note_denied``)."""

    state: Health  # the source's health now: failing (no read works) or degraded
    denied_ms: int  # how long this object has been denied (since its first denial)
    expired: bool  # degraded and denied for at least denied_object_timeout: dead-letter it


class SourceStore(RedisStore):
    """Scripts: acquire_lease, renew_lease, release_lease, reset_markers, advance_marker, throttle,
    set_health."""

    # -- discovery lease -------------------------------------------------------------------
    def acquire_lease(self, source: str, lease_ms: int, owner: str = "") -> int:
        """A fencing token (> 0) if this caller now holds the source's discovery lease, else 0.

        ``owner`` (the Celery task id) lets a redelivered discovery take over the lease its
        killed first execution still holds, instead of waiting for it to expire.
        """
        token = self._scripts["acquire_lease"](
            keys=[self.keys.lease(source), self.keys.fence(source)], args=[lease_ms, owner])
        if token:
            self.redis.sadd(self.keys.sources(), source)
        return int(token)

    def renew_lease(self, source: str, token: int, lease_ms: int) -> bool:
        return bool(self._scripts["renew_lease"](keys=[self.keys.lease(source)], args=[token, lease_ms]))

    def release_lease(self, source: str, token: int) -> bool:
        return bool(self._scripts["release_lease"](keys=[self.keys.lease(source)], args=[token]))

    # -- marker ----------------------------------------------------------------------------
    def reset_markers(self, source: str, token: int, prefix: str) -> bool:
        """Clear the markers if they belong to another prefix; True when they were cleared."""
        return self._scripts["reset_markers"](
            keys=[self.keys.marker(source), self.keys.markers(source), self.keys.lease(source)],
            args=[token, prefix]) == 1

    def marker_prefix(self, source: str) -> str | None:
        prefix = as_optional_bytes(self.redis.hget(self.keys.marker(source), MarkerField.PREFIX))
        return prefix.decode() if prefix is not None else None

    def markers(self, source: str) -> dict[str, str]:
        """partition -> marker key, for the prefix the markers belong to."""
        return decoded(as_hash(self.redis.hgetall(self.keys.markers(source))))

    def advance_marker(self, source: str, token: int, partition: str, expected: str, new: str) -> bool:
        """Compare-and-set: moves only while ``token`` holds the lease and the marker is ``expected``."""
        return bool(self._scripts["advance_marker"](
            keys=[self.keys.markers(source), self.keys.lease(source)],
            args=[token, partition, expected, new]))

    def cached_partitions(self, source: str, prefix: str) -> list[str] | None:
        raw = self.redis.get(self.keys.partitions(source))
        if raw is None:
            return None
        cached = json.loads(raw)  # type: ignore[arg-type]
        return cached[PartitionsField.PARTITIONS] if cached.get(PartitionsField.PREFIX) == prefix else None

    def cache_partitions(self, source: str, prefix: str, partitions: list[str], ttl_seconds: int) -> None:
        self.redis.set(self.keys.partitions(source),
                       json.dumps({PartitionsField.PREFIX: prefix, PartitionsField.PARTITIONS: partitions}),
                       ex=ttl_seconds)

    # -- throttle, newest delivery times ------------------------------------------------------
    def reserve_events(self, source: str, count: int, eps: int) -> float:
        """Reserve ``count`` events of the source's fleet-wide EPS budget; seconds to wait first."""
        if count <= 0:
            return 0.0
        wait_ms = self._scripts["throttle"](  # on Redis's clock: workers' clocks may disagree
            keys=[self.keys.throttle(source), self.keys.stats(source)], args=[count, eps])
        return int(wait_ms) / 1000.0

    def note_delivered(self, source: str, delivered_ms: int) -> None:
        """Remember the newest delivery time of an object done (ZADD GT keeps the maximum)."""
        self.redis.zadd(self.keys.newest_done(source), {NewestDone.DELIVERED: delivered_ms}, gt=True)

    def newest_delivered_ms(self, source: str) -> int | None:
        score = self.redis.zscore(self.keys.newest_done(source), NewestDone.DELIVERED)
        return None if score is None else int(score)  # type: ignore[arg-type]

    def note_listed(self, source: str, delivered_ms: int) -> None:
        """Remember the newest delivery time of an object listed (claimed or already known)."""
        self.redis.zadd(self.keys.newest_done(source), {NewestDone.LISTED: delivered_ms}, gt=True)

    def newest_listed_ms(self, source: str) -> int | None:
        score = self.redis.zscore(self.keys.newest_done(source), NewestDone.LISTED)
        return None if score is None else int(score)  # type: ignore[arg-type]

    # -- source health -----------------------------------------------------------------------
    def _health_event(self, source: str, event: HealthEvent, error_class: str = "", message: str = "",
                      key: str = "", timeout_ms: int = 0) -> tuple[bool, str, int, bool]:
        changed, state, denied_ms, expired = self._scripts["set_health"](
            keys=[self.keys.health(source), self.keys.stats(source), self.keys.denied(source)],
            args=[str(event), error_class, message, key, timeout_ms])
        return bool(changed), text(state), int(denied_ms), bool(expired)

    def set_health(self, source: str, healthy: bool, error_class: str = "", message: str = "") -> bool:
        """Record a discovery that listed the source (ok, unless objects are denied), or the source
        failing with the error's class and message (with a hint). True when the state changed."""
        if healthy:
            return self._health_event(source, HealthEvent.OK)[0]
        return self._health_event(source, HealthEvent.FAILING, error_class, message)[0]

    def note_denied(self, source: str, key: str, error_class: str, message: str, timeout: timedelta) -> DeniedRead:
        """The source's identity may not read ``key``: the source is failing (no read worked since
        the first denial) or degraded; counted by class. ``timeout``: denied this long while the
        source is degraded, the read has ``expired`` (the source's denied_object_timeout)."""
        _, state, denied_ms, expired = self._health_event(source, HealthEvent.DENIED, error_class, message, key,
                                                          milliseconds(timeout))
        return DeniedRead(Health(state), denied_ms, expired)

    def note_read(self, source: str, key: str) -> bool:
        """``key`` was read: no longer denied (no write unless some object is). True on a change."""
        return self._health_event(source, HealthEvent.READ, key=key)[0]

    def forget_denied(self, source: str, key: str) -> bool:
        """``key`` left without being read (dead-lettered): it no longer counts as denied."""
        return self._health_event(source, HealthEvent.FORGET, key=key)[0]

    def denied_count(self, source: str) -> int:
        return int(self.redis.zcard(self.keys.denied(source)))  # type: ignore[arg-type]

    def health(self, source: str) -> dict[str, str]:
        return decoded(as_hash(self.redis.hgetall(self.keys.health(source))))

    # -- stats -------------------------------------------------------------------------------
    def stats(self, source: str) -> dict[str, int]:
        raw = as_hash(self.redis.hgetall(self.keys.stats(source)))
        return {k.decode(): int(v) for k, v in raw.items()}

    def count_error(self, source: str, error_class: str) -> None:
        self.count(source, stat(StatPrefix.ERRORS, error_class))

    def count_s3_request(self, source: str, operation: str) -> None:
        """One HTTP request sent to S3 (retries too: each one is billed)."""
        self.count(source, stat(StatPrefix.S3_REQUESTS, operation))

    def defer_s3_request(self, source: str, operation: str) -> None:
        """``count_s3_request`` with the next commit (``defer_count``)."""
        self.defer_count(source, stat(StatPrefix.S3_REQUESTS, operation))

    def note_empty_records(self, source: str, count: int) -> None:
        """Count empty records (``{}``) of an object finished: never emitted, but visible."""
        self.count(source, Stat.RECORDS_EMPTY, count)

    def note_discovery(self, source: str, duration_ms: int) -> None:
        """A discovery ended (``last_discovery_at`` on Redis's clock)."""
        when_ms = self.redis_now_ms()
        pipe = self.redis.pipeline(transaction=False)
        stats = self.keys.stats(source)
        pipe.hincrby(stats, Stat.DISCOVERIES, 1)
        pipe.hincrby(stats, Stat.DISCOVERY_MS_TOTAL, duration_ms)
        pipe.hset(stats, mapping={Stat.LAST_DISCOVERY_AT: when_ms, Stat.LAST_DISCOVERY_MS: duration_ms})
        pipe.execute()
