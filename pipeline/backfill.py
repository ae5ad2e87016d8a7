"""Backfill: ingest a source's history between two dates from its date folders.

Safe beside the live schedule: every key is claimed first, exactly as discovery claims it, so a
file the live pipeline already has (or gets) is ingested once; the markers are not touched.
Objects forgotten after ``state_retention`` can be claimed again, so backfilling a range that
was ingested longer ago than that emits it again: that is what a backfill of old data is for.

An error is classified and handled by the one error policy (``pipeline.policy.decide``/``apply``),
as for a live object at its first try: a transient one releases the object for the pending
sweep (a backfill has no retry of its own: ``objects_deferred``); a configuration error marks the
source failing with its hint (``error``) and the object waits for the next recurrence; a denied
read waits the same way; a permanent one is dead-lettered.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta

from pipeline import defaults
from pipeline.config import Source
from pipeline.ingest import IngestLimits, IngestResult, ingest_object
from pipeline.layout import delivery_time, partition_of
from pipeline.lister import find_partitions, is_wanted, list_pages
from pipeline.policy import Do, apply, classify, decide
from pipeline.store import StateStore


@dataclass
class BackfillProgress:
    objects_total: int = 0
    objects_done: int = 0
    objects_failed: int = 0
    objects_skipped: int = 0  # already claimed by the live pipeline or an earlier backfill
    objects_deferred: int = 0  # an error: left to the live pipeline (its pending sweep, or the next recurrence)
    events: int = 0
    error: str = ""  # the configuration error that marked the source failing, with its hint
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.events / elapsed if elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        finished = self.objects_done + self.objects_failed + self.objects_deferred
        remaining = self.objects_total - self.objects_skipped - finished
        if finished == 0:
            return None
        return remaining * (time.monotonic() - self.started) / finished


def days(since: date, until: date) -> Iterator[date]:
    day = since
    while day <= until:
        yield day
        day += timedelta(days=1)


def history_keys(source: Source, s3, since: date, until: date) -> Iterator[str]:
    """Log files of the source delivered from ``since`` to ``until`` (inclusive), by date folder."""
    for partition in find_partitions(s3, source.bucket, source.list_prefix):
        region_folder = partition_of(partition)
        if region_folder is None:  # no CloudTrail layout: list it all, keep what carries a date
            for page in list_pages(s3, source.bucket, partition, ""):
                for obj in page:
                    when = delivery_time(obj.key)
                    if is_wanted(source, obj) and when is not None and since <= when.date() <= until:
                        yield obj.key
            continue
        for day in days(since, until):
            folder = f"{region_folder}{day:%Y/%m/%d}/"
            if not folder.startswith(partition) and not partition.startswith(folder):
                continue  # a narrow prefix below the day folder: outside it
            prefix = folder if folder.startswith(partition) else partition
            for page in list_pages(s3, source.bucket, prefix, ""):
                yield from (obj.key for obj in page if is_wanted(source, obj))


def backfill(source: Source, state: StateStore, s3, since: date, until: date, limits: IngestLimits,
             workers: int = defaults.BACKFILL_WORKERS,
             report: Callable[[BackfillProgress], None] | None = None) -> BackfillProgress:
    progress = BackfillProgress()
    keys = list(history_keys(source, s3, since, until))
    progress.objects_total = len(keys)
    claimed = state.claim_many(source.identifier, keys, token=0)
    progress.objects_skipped = len(keys) - len(claimed)
    if report:
        report(progress)

    def one(key: str) -> IngestResult:
        runner = uuid.uuid4().hex  # released under this name only: never a live worker's object
        try:
            return ingest_object(source, key, state, s3, limits, runner=runner)
        except Exception as exc:  # noqa: BLE001  (the policy decides: released, waiting or dead-lettered)
            action = decide(classify(exc))
            outcome = apply(action, state, source, key, runner)
            if action.do is Do.WAIT and outcome.outcome == "deferred":
                progress.error = outcome.reason  # the source is failing: say why
            return IngestResult(source.identifier, key, outcome.outcome, reason=outcome.reason)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(one, claimed):
            if result.outcome in ("retry", "deferred"):
                progress.objects_deferred += 1
            elif result.outcome == "failed":
                progress.objects_failed += 1
            else:
                progress.objects_done += 1
                progress.events += result.events
            if report:
                report(progress)
    return progress
