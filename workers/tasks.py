"""Thin Celery tasks over ``pipeline``: arguments are only the source identifier and the
object key (never a secret), the work is done by plain functions tests can call directly.

Errors follow one policy (``pipeline.policy``: ``classify``, ``decide``, ``apply``), applied by
the task's body (``pipeline.ingest.process_object``, ``pipeline.discovery.discover_once``):
permanent → dead letter; transient → exponential backoff with full jitter, up to the verdict's
limit, then a dead letter; throttled → backoff without limit; configuration → the source is
marked failing and the object waits for the next recurrence (no retry burnt, nothing
dead-lettered). A task only turns a retry outcome into ``self.retry(countdown=...)``.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from celery.signals import worker_process_init
from kombu import exceptions as kombu_errors

from pipeline import defaults
from pipeline.discovery import discover_once
from pipeline.discovery import sweep as sweep_source
from pipeline.ingest import process_object
from pipeline.runtime import Runtime
from workers.app import app, current_config

log = logging.getLogger(__name__)
# What a failed batch of publishes raises (kombu 5.7; before it there are no batches).
BatchPublishError: type[Exception] = getattr(kombu_errors, "BatchPublishError", type("NoBatches", (Exception,), {}))

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


def enqueue_ingest(source_id: str, key: str) -> None:
    source = runtime().source(source_id)
    ingest_object.apply_async(args=(source_id, key), queue=source.queue_name)


class BatchedEnqueue:
    """``enqueue_ingest`` with its messages sent in batches of up to ``ENQUEUE_BATCH`` (kombu's
    ``Producer.batch``: a Redis pipeline): one broker round trip per batch instead of one per
    object, and about half the CPU of each publish (issue 22). The discovery sends what it holds
    at the end of each listed page (``flush``); a producer of the app's pool is held only while
    a batch is open, never through the listing. A broker that cannot batch (RabbitMQ, or a Redis
    connection that retries on its own) publishes each at once. A failed send raises the
    broker's own error (the batch's cause), for the policy; the objects it held are claimed, and
    the sweep enqueues them again."""

    def __init__(self):
        self._producing = None  # the pool's producer context while a batch is open
        self._producer = None
        self._batch = None
        self._declared: set[str] = set()  # the queues this batch declared (once each)

    def __call__(self, source_id: str, key: str) -> None:
        if self._producer is None:
            self._producing = app.producer_or_acquire()
            self._producer = self._producing.__enter__()
            if hasattr(self._producer, "batch"):  # (kombu before 5.7: one by one)
                self._batch = self._producer.batch(max_size=defaults.ENQUEUE_BATCH)
                self._batch.__enter__()
        queue = runtime().source(source_id).queue_name
        options: dict = {}
        if queue in self._declared and self.buffering:
            # Declared with this batch's first message to it (over the network, retried as kombu
            # retries); the others only buffer (the network is the flush's): no declaration to
            # look up in kombu's cache, no retry wrapper with nothing to retry: ~20% less CPU
            # per publish (ops/bench/enqueue_bench.py). Where each publish goes out at once
            # (RabbitMQ), each keeps both.
            options.update(retry=False, declare=[])
        self._declared.add(queue)
        try:
            ingest_object.apply_async(args=(source_id, key), queue=queue, producer=self._producer, **options)
        except BatchPublishError as exc:  # a full batch was sent as this one joined it
            self._end(exc)
            raise exc.__cause__ or exc from None
        except BaseException:
            try:  # what the batch already holds still goes out; this error is the policy's
                self._end(None)
            except Exception:  # noqa: BLE001  (claimed objects: the sweep enqueues them)
                log.debug("the held enqueues were not sent either", exc_info=True)
            raise

    @property
    def buffering(self) -> bool:
        """Whether the open batch holds its messages for the flush (kombu's Redis transport)
        rather than publishing each at once (RabbitMQ, a Redis connection that retries on its
        own): known from kombu's batch state once a message went in; unknown counts as not."""
        state = getattr(self._batch, "state", None)
        return getattr(state, "session", None) is not None

    def flush(self) -> None:
        try:
            self._end(None)
        except BatchPublishError as exc:
            raise exc.__cause__ or exc from None

    def _end(self, error: BaseException | None) -> None:
        """Without an error the batch sends what it holds, with one it drops it; the producer
        goes back to the pool either way."""
        batch, producing = self._batch, self._producing
        self._batch = self._producing = self._producer = None
        self._declared.clear()
        try:
            if batch is not None:
                batch.__exit__(type(error) if error else None, error, None)
        finally:
            if producing is not None:
                producing.__exit__(None, None, None)


@contextmanager
def batched_enqueues() -> Iterator[BatchedEnqueue]:
    """A ``BatchedEnqueue`` for one discovery; what is left unsent at its end (after an error
    the policy handled) is sent, or, if that fails too, left to the sweep with a warning."""
    enqueue = BatchedEnqueue()
    try:
        yield enqueue
    finally:
        try:
            enqueue.flush()
        except Exception as exc:  # noqa: BLE001  (claimed objects: the sweep enqueues them)
            log.warning("enqueue of the last objects failed (%s: %s); the sweep enqueues them again",
                        type(exc).__name__, exc)


@app.task(name="trailpipe.discover", bind=True, max_retries=None)
def discover(self, source_id: str) -> dict:
    rt = runtime()
    source = rt.source(source_id)
    with batched_enqueues() as enqueue:
        result = discover_once(source, rt.state, lambda: rt.s3(source), enqueue, attempt=self.request.retries,
                               owner=self.request.id or "", forget_client=lambda: rt.forget_s3(source),
                               keys=rt.public_keys(source))
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in, max_retries=None)
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
    result = process_object(source, key, rt.state, lambda: rt.s3(source), rt.limits, attempt=self.request.retries,
                            forget_client=lambda: rt.forget_s3(source))
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in, max_retries=None)
    return dataclasses.asdict(result)


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
