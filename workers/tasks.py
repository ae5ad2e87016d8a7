"""Thin Celery tasks over ``pipeline``: arguments are only the source identifier and the
object key (never a secret), the work is done by plain functions tests can call directly.

Errors follow one policy (``pipeline.policy.classify``): permanent → dead letter; transient →
exponential backoff with full jitter, up to the verdict's limit, then a dead letter; throttled
→ backoff without limit; configuration → the source is marked failing and the object waits
for the next recurrence (no retry burnt, nothing dead-lettered).
"""
from __future__ import annotations

import dataclasses
import logging
import random
import threading
import uuid

import redis
from celery.exceptions import Retry
from celery.signals import worker_process_init

from pipeline.discovery import discover as discover_source
from pipeline.discovery import sweep as sweep_source
from pipeline.ingest import defer_denied
from pipeline.ingest import ingest_object as ingest_one
from pipeline.policy import ErrorKind, classify
from pipeline.runtime import Runtime
from pipeline.store.schema import ObjectField, Status
from workers.app import app, current_config

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
DISCOVERY_BACKOFF_MAX_SECONDS = 300.0

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """One Runtime per worker process, built after the fork (connections are not shared), once
    for all the threads of a threads pool."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                built = Runtime(current_config())
                built.state  # noqa: B018  (its clients and scripts, before any thread shares them)
                _runtime = built
    return _runtime


@worker_process_init.connect
def _reset_runtime_after_fork(**_):
    global _runtime
    _runtime = None


def backoff_seconds(retries: int, cap: float = BACKOFF_MAX_SECONDS) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, BACKOFF_BASE_SECONDS * 2 ** retries))


def enqueue_ingest(source_id: str, key: str) -> None:
    source = runtime().source(source_id)
    ingest_object.apply_async(args=(source_id, key), queue=source.queue_name)


@app.task(name="trailpipe.discover", bind=True, max_retries=None)
def discover(self, source_id: str) -> dict:
    rt = runtime()
    source = rt.source(source_id)
    try:
        result = discover_source(source, rt.state, rt.s3(source), enqueue_ingest, owner=self.request.id or "")
        if result.error:
            rt.forget_s3(source)  # the next recurrence tries with what the user has fixed
    except Retry:
        raise
    except Exception as exc:  # noqa: BLE001  (configuration errors are handled inside; the rest retry)
        verdict = classify(exc)
        try:
            if verdict.kind in (ErrorKind.CONFIGURATION, ErrorKind.DENIED):
                # Raised before the listing (building the client: credentials, certificates):
                # the source is failing, as for a listing that failed; the next recurrence retries.
                rt.state.set_health(source_id, False, verdict.error_class, verdict.description)
                rt.forget_s3(source)
                log.error("source %s is failing: %s", source_id, verdict.description)
                return {"source": source_id, "ran": False, "error": verdict.description}
            if verdict.retry_limit is not None and self.request.retries >= verdict.retry_limit:
                # Gave up until the next recurrence: visible as failing, with the cause.
                rt.state.set_health(source_id, False, verdict.error_class,
                                    f"discovery gave up after {self.request.retries + 1} tries: "
                                    f"{verdict.description}")
                log.error("discovery of %s gave up: %s", source_id, verdict.description)
                return {"source": source_id, "ran": False, "error": verdict.description}
            rt.state.count_error(source_id, verdict.error_class)  # set_health counts the others
        except redis.RedisError:
            pass
        log.warning("discovery of %s: %s; retry %d", source_id, verdict.description, self.request.retries + 1)
        raise self.retry(exc=exc, countdown=5 + backoff_seconds(self.request.retries, DISCOVERY_BACKOFF_MAX_SECONDS),
                         max_retries=None) from None
    return dataclasses.asdict(result)


@app.task(name="trailpipe.sweep")
def sweep(source_id: str) -> int:
    """Enqueue again the source's objects whose runner stopped beating. Beat no longer schedules
    it (its sweep loop sweeps every source, pipeline.sweeper); kept for sweeps already queued by
    an older beat and for a sweep by hand."""
    rt = runtime()
    return sweep_source(rt.source(source_id), rt.state, enqueue_ingest)


# max_retries=None here: retry(max_retries=None) alone falls back to the task's default (3), and a
# transient error (a Redis failing over) is retried without limit (the policy's retry_limit decides).
@app.task(name="trailpipe.ingest_object", bind=True, max_retries=None)
def ingest_object(self, source_id: str, key: str) -> dict:
    rt = runtime()
    source = rt.source(source_id)
    runner = uuid.uuid4().hex  # this execution; it releases the object under this name only
    try:
        return dataclasses.asdict(ingest_one(source, key, rt.state, rt.s3(source), rt.limits, runner=runner))
    except Retry:
        raise
    except Exception as exc:  # noqa: BLE001  (every error ends in a retry, a wait or a dead letter)
        verdict = classify(exc)
        countdown = backoff_seconds(self.request.retries)
        try:
            if verdict.kind is ErrorKind.CONFIGURATION:
                # The source is wrong, not the object: it waits (no retry burnt) and the sweep
                # enqueues it again once a discovery has found the source ok.
                rt.state.release(source_id, key, retry_in_seconds=source.recurrence_seconds, runner=runner)
                rt.forget_s3(source)
                rt.state.set_health(source_id, False, verdict.error_class, verdict.description)
                log.error("object source=%s key=%s waits, the source is failing: %s",
                          source_id, key, verdict.description)
                return {"source": source_id, "key": key, "outcome": "deferred", "reason": verdict.description}
            if verdict.kind is ErrorKind.DENIED:  # (ingest_one handles GetObject's own)
                return dataclasses.asdict(defer_denied(source, key, rt.state, verdict, runner))
            rt.state.count_error(source_id, verdict.error_class)  # set_health counted the one above
            limit = verdict.retry_limit
            if verdict.kind is ErrorKind.PERMANENT or (limit is not None and self.request.retries >= limit):
                error_class = verdict.error_class if verdict.kind is ErrorKind.PERMANENT else (
                    "InternalError" if verdict.error_class == "InternalError" else "RetriesExhausted")
                reason = (f"gave up after {self.request.retries + 1} tries: {verdict.description}"
                          if verdict.kind is not ErrorKind.PERMANENT else verdict.description)
                if not rt.state.fail(source_id, key, error_class, reason, runner=runner) and (
                        _held_elsewhere(rt, source_id, key)
                        or not rt.state.fail(source_id, key, error_class, reason)):
                    # Presumed dead, this execution was replaced (or the object finished): the
                    # live runner decides; this one writes nothing more.
                    return {"source": source_id, "key": key, "outcome": "superseded"}
                rt.state.forget_denied(source_id, key)
                log.error("object source=%s key=%s dead-lettered: %s", source_id, key, verdict.description)
                return {"source": source_id, "key": key, "outcome": "failed", "reason": verdict.description}
            if not rt.state.release(source_id, key, retry_in_seconds=countdown, runner=runner) and \
                    _held_elsewhere(rt, source_id, key):
                # No longer ours (taken over after this runner was presumed dead, or finished):
                # no retry, the live runner has it.
                return {"source": source_id, "key": key, "outcome": "superseded"}
        except redis.RedisError:
            pass  # Redis is away too: retry later; the sweep is the safety net
        log.warning("object source=%s key=%s: %s; retry %d", source_id, key, verdict.description,
                    self.request.retries + 1)
        raise self.retry(exc=exc, countdown=countdown, max_retries=None) from None


def _held_elsewhere(rt: Runtime, source_id: str, key: str) -> bool:
    """After this runner's release or fail was refused: another runner holds the object, or it
    finished (True); or nobody holds it, the error having come before this execution began it
    (False: retried, or dead-lettered, as before)."""
    state = rt.state.object_state(source_id, key).get(ObjectField.STATE)
    return state in (Status.PROCESSING, Status.DONE, Status.FAILED)


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
    if result.receive_failed:
        rt.forget_sqs(owner)
    return dataclasses.asdict(result)
