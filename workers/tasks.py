"""Thin Celery tasks over ``pipeline``: arguments are only the source identifier and the
object key (never a secret), the work is done by plain functions tests can call directly.
"""
from __future__ import annotations

import dataclasses
import logging

import redis
from botocore.exceptions import BotoCoreError, ClientError
from celery.signals import worker_process_init

from pipeline.discovery import discover as discover_source
from pipeline.ingest import ingest_object as ingest_one
from pipeline.runtime import Runtime
from workers.app import app, current_config

log = logging.getLogger(__name__)

# Errors worth another try: S3 5xx/throttling/timeouts/resets, Redis connection trouble.
TRANSIENT_ERRORS = (ClientError, BotoCoreError, redis.ConnectionError, redis.TimeoutError,
                    ConnectionError, TimeoutError)
MAX_RETRIES = 20

_runtime: Runtime | None = None


def runtime() -> Runtime:
    """One Runtime per worker process, built after the fork (connections are not shared)."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(current_config())
    return _runtime


@worker_process_init.connect
def _reset_runtime_after_fork(**_):
    global _runtime
    _runtime = None


def enqueue_ingest(source_id: str, key: str) -> None:
    source = runtime().source(source_id)
    ingest_object.apply_async(args=(source_id, key), queue=source.queue_name)


@app.task(name="trailpipe.discover", bind=True, autoretry_for=TRANSIENT_ERRORS,
          retry_backoff=5, retry_backoff_max=300, retry_jitter=True, max_retries=MAX_RETRIES)
def discover(self, source_id: str) -> dict:
    rt = runtime()
    source = rt.source(source_id)
    result = discover_source(source, rt.state, rt.s3(source), enqueue_ingest)
    return dataclasses.asdict(result)


@app.task(name="trailpipe.ingest_object", bind=True, autoretry_for=TRANSIENT_ERRORS,
          retry_backoff=2, retry_backoff_max=300, retry_jitter=True, max_retries=MAX_RETRIES)
def ingest_object(self, source_id: str, key: str) -> dict:
    rt = runtime()
    source = rt.source(source_id)
    result = ingest_one(source, key, rt.state, rt.s3(source), rt.config.batch_size)
    return dataclasses.asdict(result)
