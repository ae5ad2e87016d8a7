"""Thin Celery tasks over ``pipeline``: arguments are only the source identifier and the
object key (never a secret), the work is done by plain functions tests can call directly.

Errors: transient ones (S3 5xx, SlowDown/throttling, timeouts, connection resets, Redis
connection errors, backpressure) are retried with exponential backoff and jitter, without
limit for throttling and backpressure; anything else unexpected is retried a few times and
then dead-lettered with its reason, so no object is silently dropped and none loops forever.
"""
from __future__ import annotations

import dataclasses
import logging
import random

import redis
import urllib3.exceptions
from botocore.exceptions import BotoCoreError, ClientError
from celery.exceptions import Retry
from celery.signals import worker_process_init

from pipeline.discovery import discover as discover_source
from pipeline.ingest import Backpressure
from pipeline.ingest import ingest_object as ingest_one
from pipeline.runtime import Runtime
from workers.app import app, current_config

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (ClientError, BotoCoreError, urllib3.exceptions.HTTPError, redis.ConnectionError,
                    redis.TimeoutError, redis.BusyLoadingError, ConnectionError, TimeoutError, Backpressure)
THROTTLING_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                    "TooManyRequestsException", "503"}
MAX_TRANSIENT_RETRIES = 30  # about 2.5 hours of backoff; throttling and backpressure: no limit
MAX_UNEXPECTED_RETRIES = 3
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0

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


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** retries))


def is_throttling(exc: BaseException) -> bool:
    if isinstance(exc, Backpressure):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return error.get("Code") in THROTTLING_CODES
    return False


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def enqueue_ingest(source_id: str, key: str) -> None:
    source = runtime().source(source_id)
    ingest_object.apply_async(args=(source_id, key), queue=source.queue_name)


@app.task(name="trailpipe.discover", bind=True, autoretry_for=TRANSIENT_ERRORS,
          retry_backoff=5, retry_backoff_max=300, retry_jitter=True, max_retries=MAX_TRANSIENT_RETRIES)
def discover(self, source_id: str) -> dict:
    rt = runtime()
    source = rt.source(source_id)
    result = discover_source(source, rt.state, rt.s3(source), enqueue_ingest, owner=self.request.id or "")
    return dataclasses.asdict(result)


@app.task(name="trailpipe.ingest_object", bind=True)
def ingest_object(self, source_id: str, key: str) -> dict:
    rt = runtime()
    source = rt.source(source_id)
    try:
        return dataclasses.asdict(ingest_one(source, key, rt.state, rt.s3(source), rt.limits))
    except Retry:
        raise
    except Exception as exc:  # noqa: BLE001  (every error ends in a retry or a dead letter)
        transient = isinstance(exc, TRANSIENT_ERRORS)
        limit = None if is_throttling(exc) else (MAX_TRANSIENT_RETRIES if transient else MAX_UNEXPECTED_RETRIES)
        try:
            rt.state.release(source_id, key)
            if limit is not None and self.request.retries >= limit:
                error_class = "RetriesExhausted" if transient else "InternalError"
                rt.state.fail(source_id, key, error_class,
                              f"gave up after {self.request.retries + 1} tries: {describe(exc)}")
                log.error("object source=%s key=%s dead-lettered: %s", source_id, key, describe(exc))
                return {"source": source_id, "key": key, "outcome": "failed", "reason": describe(exc)}
        except redis.RedisError:
            pass  # Redis is away too: retry later; the pending sweep is the safety net
        log.warning("object source=%s key=%s: %s; retry %d", source_id, key, describe(exc),
                    self.request.retries + 1)
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries), max_retries=None)


# -- notifications (issue 15): one run per queue, started by beat every RUN_SECONDS ----------
from pipeline.sqs_consumer import consume, note_error, queue_sources  # noqa: E402


@app.task(name="trailpipe.consume_notifications", bind=True)
def consume_notifications(self, source_id: str) -> dict:
    """Long-poll the source's SQS queue for one run; errors are counted, never raised: the next
    run (beat) is the retry, and what a message holds never fails the source."""
    rt = runtime()
    owner = rt.source(source_id)
    try:
        client = rt.sqs(owner)  # credentials, certificate checks: may fail before any request
    except Exception as exc:  # noqa: BLE001
        note_error(rt.state, source_id, exc, "SQS client")
        return {"source": source_id, "errors": 1}
    result = consume(owner, queue_sources(rt.config, owner), rt.state, client, enqueue_ingest)
    return dataclasses.asdict(result)
