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

import dataclasses

import redis

from pipeline import defaults
from pipeline.heartbeat import Heartbeats
from pipeline.store.base import RedisStore
from pipeline.store.deadletters import DeadLetterStore
from pipeline.store.integrity import IntegrityStore
from pipeline.store.notifications import NotificationStore
from pipeline.store.objects import ObjectStore
from pipeline.store.schema import Keys
from pipeline.store.sources import SourceStore
from pipeline.store.watch import WatchStore


class StateStore(ObjectStore, SourceStore, IntegrityStore, NotificationStore, DeadLetterStore, WatchStore):
    """The shared state of every source, in one Redis database."""

    def __init__(self, client: redis.Redis, keys: Keys, *, events_stream: str,
                 deadletter_stream: str,
                 retention_seconds: int = int(defaults.STATE_RETENTION.total_seconds()),
                 requeue_after_seconds: int = int(defaults.REQUEUE_AFTER.total_seconds()),
                 stream_maxlen: int = 0, deadletter_maxlen: int = defaults.DEADLETTER_MAXLEN,
                 heartbeat_timeout_seconds: int = int(defaults.HEARTBEAT_TIMEOUT.total_seconds()),
                 wait_replicas: int = 0):
        # The stream names (templates: ``{source}`` is the source's hash tag) with the keys.
        keys = dataclasses.replace(keys, stream=events_stream, deadletter_stream=deadletter_stream)
        RedisStore.__init__(self, client, keys)
        self.events_stream = events_stream
        self.deadletter_stream = deadletter_stream
        self.retention_seconds = retention_seconds
        self.requeue_after_ms = requeue_after_seconds * 1000
        self.heartbeat_timeout_ms = heartbeat_timeout_seconds * 1000
        self.stream_maxlen = stream_maxlen
        self.wait_replicas = wait_replicas
        self._acked_trim: bool | None = None  # asked of the server at the first trim
        self.deadletter_maxlen = deadletter_maxlen
        # One thread beats for every object this process has in flight (source, key, runner).
        self.heartbeats = Heartbeats(self.heartbeat_many, self.heartbeat_timeout_ms / 4000)

