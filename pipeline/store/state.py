"""The shared state of every source, in one Redis database: ``StateStore``, the composition of the
stores of each area (every Redis call of trailpipe is made by one of them):

- ``pipeline.store.objects.ObjectStore``: the objects and the events and dead-letter streams;
- ``pipeline.store.sources.SourceStore``: lease, markers, partitions, throttle, newest_done,
  health, denied, stats;
- ``pipeline.store.integrity.IntegrityStore``: digest chains, awaiting log files, violations;
- ``pipeline.store.notifications.NotificationStore``: the notification consumer's keys;
- ``pipeline.store.deadletters.DeadLetterStore``: the dead letters, as listed and deleted;
- ``pipeline.store.watch.WatchStore``: the state epoch, resets, the Redis's persistence.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

from pipeline import defaults
from pipeline.heartbeat import Heartbeats
from pipeline.store.base import RedisStore, milliseconds, whole_seconds
from pipeline.store.deadletters import DeadLetterStore
from pipeline.store.integrity import IntegrityStore
from pipeline.store.notifications import NotificationStore
from pipeline.store.objects import ObjectStore
from pipeline.store.schema import Keys
from pipeline.store.sources import SourceStore
from pipeline.store.watch import WatchStore


@dataclass(frozen=True)
class StoreSettings:
    """What the stores run with: the config's values (``pipeline.settings.Settings.store``)."""

    retention: timedelta  # state_retention: how long a done object is remembered
    requeue_after: timedelta
    heartbeat_timeout: timedelta
    stream_maxlen: int | None  # None: the events stream is never trimmed
    deadletter_maxlen: int
    wait_replicas: int | None  # None: no WAIT after a batch

    def forget_horizon(self, now: datetime, margin: bool = False) -> datetime:
        """The object state of keys older than this may be forgotten (``now - state_retention``).
        ``margin``: ``defaults.RETENTION_MARGIN`` inside it, where a listing (or a notification)
        stops, so it never claims a key whose record is about to be forgotten."""
        return now - self.retention + (defaults.RETENTION_MARGIN if margin else timedelta(0))


class StateStore(ObjectStore, SourceStore, IntegrityStore, NotificationStore, DeadLetterStore, WatchStore):
    """The shared state of every source, in one Redis database: the key names (the stream names
    with them, templates: ``{source}`` is the source's hash tag) and the store's settings. Their
    durations become the seconds and milliseconds the scripts take here, once."""

    def __init__(self, client: redis.Redis, keys: Keys, settings: StoreSettings):
        RedisStore.__init__(self, client, keys)
        self.settings = settings
        self.events_stream = keys.stream
        self.deadletter_stream = keys.deadletter_stream
        self.retention_seconds = whole_seconds(settings.retention)
        self.requeue_after_ms = milliseconds(settings.requeue_after)
        self.heartbeat_timeout_ms = milliseconds(settings.heartbeat_timeout)
        self.stream_maxlen = settings.stream_maxlen or 0
        self.wait_replicas = settings.wait_replicas or 0
        self._acked_trim: bool | None = None  # asked of the server at the first trim
        self.deadletter_maxlen = settings.deadletter_maxlen
        # One thread beats for every object this process has in flight (source, key, runner).
        self.heartbeats = Heartbeats(self.heartbeat_many, settings.heartbeat_timeout.total_seconds() / 4)

    def forget_horizon(self, now: datetime, margin: bool = False) -> datetime:
        """``StoreSettings.forget_horizon``: where the kept object state ends."""
        return self.settings.forget_horizon(now, margin)
