"""What a process needs to run the pipeline, built once per process from the config: the
settings (``pipeline.settings.Settings``), the Redis client, the state store, and every client
and cache of a source: its S3 client, its SQS client, its CloudTrail public keys (clients pool
connections and keys are kept, so they are reused across tasks; ``forget_*`` drops them).
"""
from __future__ import annotations

import gc
import threading
from functools import cached_property

import redis

from pipeline import defaults
from pipeline.config import Config, Source
from pipeline.connections import redis_client
from pipeline.digests import PublicKeys, public_keys_for
from pipeline.ingest import IngestLimits
from pipeline.metrics import count_s3_requests
from pipeline.s3 import make_client, make_sqs_client
from pipeline.settings import Settings
from pipeline.store import StateStore
from pipeline.store.schema import Keys


def tune_gc() -> None:
    """A process that ingests (a worker, a backfill): the garbage collector's thresholds raised
    (``defaults.GC_THRESHOLDS``) and what exists so far (modules, the S3 model) frozen out of
    its walks."""
    gc.set_threshold(*defaults.GC_THRESHOLDS)
    gc.freeze()


class Runtime:
    def __init__(self, config: Config, quick_redis: bool = False):
        """``quick_redis``: fail fast instead of riding through an outage (a scrape must answer
        within Prometheus's timeout, 10 s, even while Redis is away)."""
        self.config = config
        self.quick_redis = quick_redis
        self._s3_clients: dict[str, object] = {}
        self._sqs_clients: dict[str, object] = {}
        self._public_keys: dict[str, PublicKeys] = {}  # CloudTrail's, per source (ListPublicKeys cached)
        self._lock = threading.Lock()

    @cached_property
    def redis(self) -> redis.Redis:
        # One server or the primary found through Sentinels; failovers retried (pipeline.connections).
        return redis_client(self.config.redis_url_value(), self.config.sentinel_password_value(),
                            quick=self.quick_redis)

    @cached_property
    def settings(self) -> Settings:
        return Settings.of(self.config)

    @property
    def keys(self) -> Keys:
        return self.settings.keys

    @cached_property
    def state(self) -> StateStore:
        return StateStore(self.redis, self.keys, self.settings.store)

    @property
    def limits(self) -> IngestLimits:
        return self.settings.ingest

    def source(self, identifier: str) -> Source:
        return self.config.source(identifier)

    def s3(self, source: Source):
        with self._lock:
            client = self._s3_clients.get(source.identifier)
            if client is None:
                client = self._s3_clients[source.identifier] = make_client(source)
                count_s3_requests(client, self.state, source.identifier)
            return client

    def forget_s3(self, source: Source) -> None:
        """Drop the source's clients after a configuration error (its S3 client, and its public
        key source with its CloudTrail clients and the keys they fetched): the next try builds
        them anew, so a fixed secret file, certificate or proxy password is picked up without a
        restart."""
        with self._lock:
            self._s3_clients.pop(source.identifier, None)
            self._public_keys.pop(source.identifier, None)

    def public_keys(self, source: Source) -> PublicKeys:
        """CloudTrail's public keys for the source's digests (its ``public_keys_dir``, else
        ListPublicKeys through its own clients), one per process; the keys found are kept."""
        with self._lock:
            keys = self._public_keys.get(source.identifier)
            if keys is None:
                keys = self._public_keys[source.identifier] = public_keys_for(source)
            return keys

    def sqs(self, source: Source):
        """The client of the source's notification queue (``sqs``), made once per process."""
        with self._lock:
            client = self._sqs_clients.get(source.identifier)
            if client is None:
                client = self._sqs_clients[source.identifier] = make_sqs_client(source)
            return client

    def forget_sqs(self, source: Source) -> None:
        """Drop the queue's client after SQS refused it: a fixed secret or policy is picked up."""
        with self._lock:
            self._sqs_clients.pop(source.identifier, None)
