"""The object processor: download one S3 object, parse it as a stream, emit its records in
batches.

Each batch's XADDs and the object's checkpoint are written by one Lua script, so a task that
is redelivered after a crash resumes after the last committed batch: no record is emitted
twice, none is skipped. A bad object is dead-lettered with its reason and never retried; an
object whose workers keep dying (a poison object) is dead-lettered after ``max_attempts``.
Other errors propagate out of ``ingest_object``; ``process_object`` (the Celery task's body)
hands them to the error policy (``pipeline.policy.decide``/``apply``): released for a retry
(the task turns the outcome into ``self.retry``), waiting, or dead-lettered.
"""
from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from typing import Any

from botocore.exceptions import ClientError

from pipeline import defaults
from pipeline.config import Config, Source, declared_defaults
from pipeline.emitter import batch_entries
from pipeline.errors import Backpressure, BadObject
from pipeline.heartbeat import Beating
from pipeline.layout import delivery_time
from pipeline.metrics import note_notification_latency
from pipeline.parser import Hasher, ParseLimits, RecordReader
from pipeline.policy import Do, ErrorKind, Verdict, apply, classify, decide
from pipeline.s3 import get_object
from pipeline.store import ObjectStart, StateStore

log = logging.getLogger(__name__)

BACKPRESSURE_POLL_SECONDS = 0.5
WHOLE_READ_BYTES = 1 << 20  # compressed objects up to this size are read in one go
# Threads of a process parsing a batch at once, whatever the objects in flight (the threads pool):
# dozens of threads taking turns at one core's CPU work thrash it; they wait their turn here.
CPU_SLOTS = threading.BoundedSemaphore(defaults.CPU_SLOTS_PER_PROCESS)
__all__ = ["Backpressure", "IngestLimits", "IngestResult", "ingest_object", "process_object"]


@dataclass
class IngestResult:
    source: str
    key: str
    outcome: str  # done | failed | skipped (already finished) | superseded (another worker has it)
    #               | deferred (its read is denied, or the source is failing: it waits for the next
    #               recurrence) | retry (process_object: released, to be retried in ``retry_in`` s)
    records: int = 0
    events: int = 0
    seconds: float = 0.0
    reason: str = ""
    retry_in: float | None = None


@dataclass(frozen=True)
class IngestLimits:
    """The config's settings for ingesting an object (``pipeline.settings.Settings.ingest``)."""

    batch_size: int
    max_attempts: int
    stream_high_watermark: int | None
    backpressure_max_wait: timedelta

    @classmethod
    def of(cls, config: Config) -> IngestLimits:
        return cls(config.batch_size, config.max_attempts, config.stream_high_watermark, config.backpressure_max_wait)

    @classmethod
    def default(cls) -> IngestLimits:
        """Without a config: the defaults the config declares."""
        return cls.of(declared_defaults(Config))


def open_object(s3, source: Source, key: str):
    """The object's body as a stream; permanent S3 errors and oversize objects are BadObject."""
    try:
        response = get_object(s3, source.bucket, key)
    except ClientError as exc:
        verdict = classify(exc)
        if verdict.kind is ErrorKind.PERMANENT:
            hint = f"; {verdict.hint}" if verdict.hint else ""
            raise BadObject(f"S3 GetObject failed: {verdict.error_class}: {verdict.message}{hint}",
                            verdict.error_class) from None
        raise
    size = int(response.get("ContentLength") or 0)
    if size > source.max_object_bytes:
        response["Body"].close()
        raise BadObject(f"object is {size} bytes, over the source's max_object_bytes of "
                        f"{source.max_object_bytes}", "TooLarge")
    if 0 < size <= WHOLE_READ_BYTES:
        # A small object (most CloudTrail files) is read at once: its connection goes back to
        # the pool for the next GetObject (a stream closed before its end closes it instead).
        return Whole(response["Body"].read())
    return response["Body"]


class Whole(io.BytesIO):
    """A body read whole: a file like the stream it replaces; the object processor hands the
    parser its bytes (``getvalue``), which it reads in place."""


def read_records(source: Source, body, hasher: Hasher | None = None) -> RecordReader:
    """The records of a body ``open_object`` returned, under the source's caps: the one record
    path (the object processor and ``trailpipe check``)."""
    return RecordReader(body.getvalue() if isinstance(body, Whole) else body, ParseLimits.of(source), hasher=hasher)


def wait_below_watermark(state: StateStore, limits: IngestLimits, source: str | None = None) -> None:
    """Backpressure, not loss: while the slowest consumer group has more than the high watermark
    of entries not acknowledged (no group: while the stream is that long), wait for it."""
    if limits.stream_high_watermark is None:
        return
    deadline = time.monotonic() + limits.backpressure_max_wait.total_seconds()
    while state.stream_backlog(limits.stream_high_watermark, source) > limits.stream_high_watermark:
        if time.monotonic() > deadline:
            stream = state.keys.events_stream(source) if source is not None else state.events_stream
            raise Backpressure(f"stream {stream}: its slowest consumer group (or, with none, "
                               f"the stream) is over the high watermark of {limits.stream_high_watermark} "
                               "entries not acknowledged")
        time.sleep(BACKPRESSURE_POLL_SECONDS)


def _take(records, count: int) -> tuple[list, BadObject | None]:
    """Up to ``count`` (raw, record) pairs, fewer once their raw bytes reach ``BATCH_MAX_BYTES``,
    and the BadObject that stopped the file early, if one did."""
    taken = []
    size, most = 0, defaults.BATCH_MAX_BYTES
    try:
        for item in islice(records, count):
            taken.append(item)
            size += len(item[0])
            if size >= most:
                break
    except BadObject as exc:
        return taken, exc
    return taken, None


def ingest_object(source: Source, key: str, state: StateStore, s3,
                  limits: IngestLimits | None = None, runner: str = "") -> IngestResult:
    """``runner``: who works on the object (the caller releases it under that name after an
    error); a fresh one by default. ``limits``: the config's (``Runtime.limits``); by default
    those of a config that sets none."""
    started = time.monotonic()
    limits = limits or IngestLimits.default()
    sid = source.identifier
    runner = runner or uuid.uuid4().hex
    start = state.begin(sid, key, runner)
    if start.finished:
        state.forget_denied(sid, key)  # finished elsewhere: no longer waiting (a no-op unless denied)
        return IngestResult(sid, key, "skipped", seconds=time.monotonic() - started)
    if not start.taken:  # a duplicate delivery: the runner holding it is alive (it beats)
        log.info("object source=%s key=%s skipped: runner %s holds it and is alive", sid, key, start.holder)
        return IngestResult(sid, key, "skipped", reason="held by a live runner",
                            seconds=time.monotonic() - started)
    with state.heartbeats.watch((sid, key, runner)) as heartbeat:  # the process's one heartbeat thread
        try:
            result = _ingest_started(source, key, state, s3, limits, start, heartbeat, runner)
        except ClientError as exc:
            verdict = classify(exc)
            if decide(verdict).do is not Do.DENIED:
                raise
            result = defer_denied(source, key, state, verdict, runner)
    if result.outcome != "done":
        state.flush_counts()  # done: they went with the last commit
    result.seconds = time.monotonic() - started
    log.info("object source=%s key=%s outcome=%s records=%d events=%d duration=%.3fs%s",
             sid, key, result.outcome, result.records, result.events, result.seconds,
             f" reason={result.reason}" if result.reason else "",
             extra={"source": sid, "key": key, "outcome": result.outcome, "records": result.records,
                    "events": result.events, "duration": round(result.seconds, 3), "reason": result.reason})
    return result


def process_object(source: Source, key: str, state: StateStore, s3: Callable[[], Any],
                   limits: IngestLimits | None = None, attempt: int = 0, runner: str = "",
                   forget_client: Callable[[], None] | None = None) -> IngestResult:
    """``ingest_object``, and what the error policy decides about the error it raised, applied:
    the Celery task's body, which only turns a ``retry`` outcome into ``self.retry``.
    ``s3``: builds (or returns the cached) client; building it may fail too (credentials,
    certificates). ``attempt``: the task's retries so far. ``forget_client``: drops the cached
    client once the source is failing. Every error ends in a retry, a wait or a dead letter."""
    runner = runner or uuid.uuid4().hex  # this execution; it releases the object under this name only
    try:
        return ingest_object(source, key, state, s3(), limits, runner=runner)
    except Exception as exc:  # noqa: BLE001  (the policy decides; nothing is dropped silently)
        action = decide(classify(exc), attempt)
    outcome = apply(action, state, source, key, runner, forget_client)
    return IngestResult(source.identifier, key, outcome.outcome, reason=outcome.reason, retry_in=outcome.retry_in)


def defer_denied(source: Source, key: str, state: StateStore, verdict: Verdict, runner: str) -> IngestResult:
    """The source's identity may not read ``key``: what the policy does about it
    (pipeline.policy: the object waits for the next recurrence, or is dead-lettered once denied
    for ``denied_object_timeout`` while the source is degraded)."""
    outcome = apply(decide(verdict), state, source, key, runner)
    return IngestResult(source.identifier, key, outcome.outcome, reason=outcome.reason, retry_in=outcome.retry_in)


def _ingest_started(source: Source, key: str, state: StateStore, s3, limits: IngestLimits,
                    start: ObjectStart, heartbeat: Beating, runner: str) -> IngestResult:
    sid = source.identifier
    result = IngestResult(sid, key, "done")
    checkpoint = start.checkpoint
    reader = None
    try:
        if start.vanished >= limits.max_attempts:
            # Only deliveries whose runner really vanished count (a release, a refused duplicate
            # or a superseded runner do not): each said what it saw.
            seen = [f"{n} stopped heartbeating" for n in (start.silent,) if n] + \
                   [f"{n} whose worker process was gone" for n in (start.lost,) if n]
            raise BadObject(f"{start.vanished} deliveries whose runner vanished without finishing "
                            f"({', '.join(seen)}), the last at record {checkpoint}: a poison object",
                            "TooManyAttempts")
        body = open_object(s3, source, key)
        # Reported only while some object of the source is denied (begin said so): no round trip else.
        if start.denied and state.note_read(sid, key):
            log.info("source %s: object %s is readable again", sid, key)
        try:
            # Caps on what the object may inflate to: hostile input is dead-lettered (parser).
            # The SHA-256 of the uncompressed bytes, for digest reconciliation (a resumed
            # delivery re-reads every byte, so it is whole); only for integrity sources.
            hasher = hashlib.sha256() if source.integrity.enabled else None
            reader = read_records(source, body, hasher)
            remaining = islice(iter(reader), checkpoint, None)  # resume after the last committed batch
            delivered = delivery_time(key)
            with CPU_SLOTS:
                batch, error = _take(remaining, limits.batch_size)
            while True:
                # Parsing and the entries hold one of the process's CPU slots; the waits (S3,
                # the commit's round trip, the throttle, backpressure) do not.
                with CPU_SLOTS:
                    # Read one batch ahead, so the batch that ends the object is known as the last.
                    following, error = (_take(remaining, limits.batch_size) if error is None else ([], error))
                    entries = batch_entries(source, key, batch)
                wait_below_watermark(state, limits, sid)
                last = not following and error is None
                if heartbeat.lost:  # another runner has it now: stop at once, write nothing more
                    result.outcome = "superseded"
                    break
                # The throttle's reservation (it waits, never drops), the batch and, with the last
                # one, the object done and its delivery time: one round trip.
                written, checkpoint = state.commit_batch(
                    sid, key, checkpoint, len(batch), entries, last=last,
                    sha256=hasher.hexdigest() if last and hasher else None, eps=source.eps_throttle,
                    delivered_ms=int(delivered.timestamp() * 1000) if delivered is not None else 0,
                    runner=runner)
                if not written:  # refused: another runner has it now (or moved on): stop, undo nothing
                    result.outcome = "superseded"
                    break
                result.records += len(batch)
                result.events += len(entries)
                if last:
                    break
                if not following:
                    assert error is not None  # not last, so the batch ended early
                    raise error  # the good records before it are committed, exactly once
                batch = following
        finally:
            body.close()
        if result.outcome == "done":
            if source.sqs is not None:  # only notified objects have a latency: no round trip otherwise
                note_notification_latency(state, sid, key)
    except BadObject as exc:
        reason = exc.reason
        if checkpoint:
            reason += f" (the {checkpoint} records before it were emitted)"
        if state.fail(sid, key, exc.error_class, reason, runner=runner):
            state.count_error(sid, exc.error_class)  # every error met is counted, dead-lettered ones too
            state.forget_denied(sid, key)
            result.outcome, result.reason = "failed", f"{exc.error_class}: {reason}"
        else:  # no longer ours (taken over, or finished by another runner): it decides
            result.outcome = "superseded"
    if reader is not None and reader.empty and result.outcome in ("done", "failed"):
        # Empty records ({}) are never emitted; counted once per object finished (the reader
        # re-reads from the start on a resume, so this is the whole file's count).
        state.note_empty_records(sid, reader.empty)
    return result
