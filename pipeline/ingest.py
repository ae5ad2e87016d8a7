"""The object processor: download one S3 object, parse it, emit its records in batches.

Each batch's XADDs and the object's checkpoint are written by one Lua script, so a task that
is redelivered after a crash resumes after the last committed batch: no record is emitted
twice, none is skipped. A bad object is dead-lettered with its reason and never retried.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from itertools import islice

from botocore.exceptions import ClientError

from pipeline.config import Source
from pipeline.emitter import entry_fields, is_excluded
from pipeline.errors import BadObject
from pipeline.parser import iter_records
from pipeline.state import StateStore

log = logging.getLogger(__name__)

# S3 answers that retrying the same request can never fix.
PERMANENT_S3_ERRORS = {"NoSuchKey", "AccessDenied", "InvalidObjectState", "NoSuchBucket", "404", "403"}


@dataclass
class IngestResult:
    source: str
    key: str
    outcome: str  # done | failed | skipped (already finished) | superseded (another worker has it)
    records: int = 0
    events: int = 0
    seconds: float = 0.0
    reason: str = ""


def download(s3, source: Source, key: str) -> bytes:
    try:
        return s3.get_object(Bucket=source.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in PERMANENT_S3_ERRORS:
            message = exc.response.get("Error", {}).get("Message", "") or code
            raise BadObject(f"S3 GetObject failed: {code}: {message}", code) from None
        raise


def ingest_object(source: Source, key: str, state: StateStore, s3, batch_size: int) -> IngestResult:
    started = time.monotonic()
    sid = source.identifier
    start = state.begin(sid, key)
    if start.finished:
        return IngestResult(sid, key, "skipped", seconds=time.monotonic() - started)
    result = IngestResult(sid, key, "done")
    checkpoint = start.checkpoint
    try:
        records = iter_records(download(s3, source, key))
        remaining = islice(records, checkpoint, None)  # resume after the last committed batch
        batch = list(islice(remaining, batch_size))
        while True:
            following = list(islice(remaining, batch_size))
            entries = [entry_fields(source, key, raw, record)
                       for raw, record in batch if not is_excluded(source, record)]
            written, checkpoint = state.commit_batch(
                sid, key, checkpoint, len(batch), entries, last=not following)
            if not written:
                result.outcome = "superseded"
                break
            result.records += len(batch)
            result.events += len(entries)
            if not following:
                break
            batch = following
    except BadObject as exc:
        state.fail(sid, key, exc.error_class, exc.reason)
        result.outcome, result.reason = "failed", f"{exc.error_class}: {exc.reason}"
    result.seconds = time.monotonic() - started
    log.info("object source=%s key=%s outcome=%s records=%d events=%d duration=%.3fs%s",
             sid, key, result.outcome, result.records, result.events, result.seconds,
             f" reason={result.reason}" if result.reason else "")
    return result
