"""Discovery: list a source's new objects, claim each, enqueue one ingest per object, advance
the markers.

- One discovery of a source at a time: a lease with a fencing token; markers move only by a
  compare-and-set that checks the token.
- The source is split into partitions (one per account and region under ``AWSLogs/``), each
  with its own marker, so one source covers an organization trail.
- No file missed: each partition is listed again from (its newest delivery time - lookback),
  so files that land late behind the marker are found; keys already claimed are skipped
  (object records live ``state_retention``, which covers the lookback window).
- Order per page: claim -> enqueue -> advance marker. The worst a crash can do is leave a claim
  without its task; it stays in the source's pending set, which the sweep (``sweep``: after each
  discovery and every ``sweep_interval``) reads: objects past their deadline (a claim
  never started after ``requeue_after``, a runner silent for ``heartbeat_timeout``)
  are enqueued again. A duplicate enqueue is harmless: the object's checkpoint lets only one
  task emit each record.
- ``ignore_older``: no listing reaches log files delivered before now - ignore_older (by the
  delivery time in the key, else LastModified), so a new or reset source (partitions without a
  marker: its first listing, or after the state was lost) does not ingest its whole history;
  ``backfill`` reaches the older ones. At least ``lookback``, so late files are still found.
- Health: a configuration error (pipeline.policy), an endpoint or proxy that cannot be connected
  to included, marks the source failing with its cause and a hint and ends the discovery (no
  retries: the next recurrence tries again); a discovery that lists every partition marks it ok,
  unless objects are denied (pipeline.ingest.defer_denied: failing or degraded until they read).
  What an error means is decided by the policy (``decide``/``apply``, step DISCOVERY), here for
  the listing and in ``discover_once`` (the Celery task's body) for the rest: a retry, or the
  source failing once the verdict's retry limit is reached.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.config import Source
from pipeline.digests import PublicKeys
from pipeline.integrity import discover_digests
from pipeline.layout import delivery_time, first_listing_after, start_after
from pipeline.lister import find_partitions, is_wanted, list_pages
from pipeline.policy import Do, Step, apply, classify, decide
from pipeline.store import StateStore
from pipeline.store.schema import Health, HealthField, HealthScope

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str], None]  # (source identifier, object key)


def send_enqueued(enqueue: Enqueue) -> None:
    """An enqueue that batches (``workers.tasks.BatchedEnqueue``: a flush) sends what it holds:
    each listed page's objects go to the workers as the page is done, not after the whole
    listing, and a failed send is the discovery's error (the policy's to decide)."""
    flush = getattr(enqueue, "flush", None)
    if flush is not None:
        flush()


DEFAULT_LEASE_MS = 2 * 60 * 1000  # renewed at every listed page
PARTITION_CACHE_SECONDS = 3600


@dataclass
class DiscoveryResult:
    source: str
    ran: bool = True  # False: another discovery of this source held the lease
    partitions: int = 0
    listed: int = 0
    enqueued: int = 0
    requeued: int = 0
    skipped: int = 0
    ignored_older: int = 0  # log files of a first listing delivered before now - ignore_older
    markers_cleared: bool = False
    lost_lease: bool = False
    error: str = ""  # a configuration error that marked the source failing
    list_requests: int = 0
    seconds: float = 0.0
    markers: dict[str, str] = field(default_factory=dict)
    digests: dict[str, int] = field(default_factory=dict)  # integrity: what the digests showed
    retry_in: float | None = None  # discover_once: retry the discovery in this many seconds


def source_partitions(source: Source, state: StateStore, s3) -> tuple[list[str], int]:
    """The source's partitions, from the cache when fresh; and the LIST requests it took."""
    prefix = source.list_prefix
    cached = state.cached_partitions(source.identifier, prefix)
    if cached is not None:
        return cached, 0
    calls = {"n": 0}

    def count(**_):
        calls["n"] += 1

    s3.meta.events.register("before-call.s3.ListObjectsV2", count)
    try:
        partitions = find_partitions(s3, source.bucket, prefix)
    finally:
        s3.meta.events.unregister("before-call.s3.ListObjectsV2", count)
    state.cache_partitions(source.identifier, prefix, partitions, PARTITION_CACHE_SECONDS)
    return partitions, calls["n"]


def discover(source: Source, state: StateStore, s3, enqueue: Enqueue,
             lease_ms: int = DEFAULT_LEASE_MS, now: datetime | None = None,
             owner: str = "", keys: PublicKeys | None = None) -> DiscoveryResult:
    """``owner``: the Celery task id, so a redelivered discovery takes over its own lease.
    ``keys``: CloudTrail's public keys for the digests (``Runtime.public_keys``, cached per
    process); by default the source's, asked anew."""
    started = time.monotonic()
    sid = source.identifier
    result = DiscoveryResult(sid)
    token = state.acquire_lease(sid, lease_ms, owner)
    if not token:
        result.ran = False
        log.info("discovery of %s skipped: another discovery holds the lease", sid)
        return result
    try:
        prefix = source.list_prefix
        result.markers_cleared = state.reset_markers(sid, token, prefix)
        if result.markers_cleared:
            log.info("source %s: directory prefix changed to %r, markers cleared", sid, prefix)
        partitions, result.list_requests = source_partitions(source, state, s3)
        result.partitions = len(partitions)
        markers = state.markers(sid)
        now = now or datetime.now(UTC)
        not_before = state.forget_horizon(now, margin=True)  # never back to keys about to be forgotten
        lookback = source.lookback
        cutoff = now - source.ignore_older if source.ignore_older is not None else None
        for partition in partitions:
            marker = markers.get(partition, "")
            position = start_after(partition, marker, lookback, not_before)
            if cutoff is not None:  # never before now - ignore_older: what bounds a new or reset source
                position = max(position, first_listing_after(partition, cutoff))
                if not marker:
                    log.info("source %s: first listing of %s from %s (ignore_older); older log files are "
                             "left to `trailpipe backfill`", sid, partition or "/", cutoff.isoformat())
            if not _discover_partition(source, state, s3, enqueue, token, lease_ms, partition,
                                       marker, position, result, cutoff):
                result.lost_lease = True
                break
        if source.integrity.enabled and not result.lost_lease:  # CloudTrail's digests, after the logs
            # Nor does it reconcile digests older than ignore_older.
            digests_from = max(not_before, cutoff) if cutoff is not None else not_before
            result.digests = discover_digests(source, state, s3, enqueue, token, partitions, digests_from,
                                              renew=lambda: state.renew_lease(sid, token, lease_ms), keys=keys,
                                              now=now)
        state.note_discovery(sid, int((time.monotonic() - started) * 1000))
        if state.set_health(sid, True):
            log.info("source %s is ok again", sid)
        result.requeued = sweep(source, state, enqueue, healthy=True)
        send_enqueued(enqueue)  # the digests' and the sweep's
    except Exception as exc:
        action = decide(classify(exc), 0, Step.DISCOVERY)
        if action.do is not Do.FAIL_SOURCE:
            raise  # a retry: the task's attempt decides (discover_once)
        outcome = apply(action, state, source)
        if outcome.retry_in is not None:
            raise  # Redis refused to record it: retried as the error it is
        state.note_discovery(sid, int((time.monotonic() - started) * 1000))
        result.error = outcome.reason
    finally:
        state.release_lease(sid, token)
        result.seconds = time.monotonic() - started
    log.info("discovered %s: partitions=%d listed=%d enqueued=%d requeued=%d skipped=%d "
             "list_requests=%d%s in %.2fs", sid, result.partitions, result.listed, result.enqueued,
             result.requeued, result.skipped, result.list_requests,
             f" ignored_older={result.ignored_older}" if result.ignored_older else "", result.seconds)
    return result


def discover_once(source: Source, state: StateStore, s3: Callable[[], Any], enqueue: Enqueue, attempt: int = 0,
                  owner: str = "", forget_client: Callable[[], None] | None = None,
                  keys: PublicKeys | None = None) -> DiscoveryResult:
    """``discover``, and what the error policy decides about an error it raised (building the
    client, or not the source's configuration), applied: the Celery task's body, which only
    turns a ``retry_in`` into ``self.retry``. ``s3``: builds (or returns the cached) client;
    ``attempt``: the task's retries so far; ``forget_client``: drops the cached client once the
    source is failing, so the next recurrence tries with what the user has fixed."""
    try:
        result = discover(source, state, s3(), enqueue, owner=owner, keys=keys)
    except Exception as exc:  # noqa: BLE001  (a retry, or the source failing: the policy decides)
        action = decide(classify(exc), attempt, Step.DISCOVERY)
        outcome = apply(action, state, source, forget_client=forget_client)
        return DiscoveryResult(source.identifier, ran=False, error=outcome.reason, retry_in=outcome.retry_in)
    if result.error and forget_client is not None:
        forget_client()  # the next recurrence tries with what the user has fixed
    return result


def _discover_partition(source: Source, state: StateStore, s3, enqueue: Enqueue, token: int,
                        lease_ms: int, partition: str, marker: str, position: str,
                        result: DiscoveryResult, older_than: datetime | None = None) -> bool:
    """List one partition from ``position``; False if the lease was lost (stop, lose nothing).
    ``older_than``: log files delivered before it are not claimed (ignore_older)."""
    sid = source.identifier
    for page in list_pages(s3, source.bucket, partition, position):
        result.list_requests += 1
        if not state.renew_lease(sid, token, lease_ms):
            log.warning("discovery of %s lost its lease; stopping", sid)
            return False
        if not page:
            continue
        result.listed += len(page)
        wanted_objects = [obj for obj in page if is_wanted(source, obj)]
        if older_than is not None:
            recent = [obj for obj in wanted_objects if not _delivered_before(obj, older_than)]
            result.ignored_older += len(wanted_objects) - len(recent)
            wanted_objects = recent
        wanted = [obj.key for obj in wanted_objects]
        newest_delivery = delivery_time(wanted[-1]) if wanted else None  # keys sort by delivery time
        if newest_delivery is not None:
            state.note_listed(sid, int(newest_delivery.timestamp() * 1000))
        result.skipped += len(page) - len(wanted)
        for key in state.claim_many(sid, wanted, token):
            enqueue(sid, key)
            result.enqueued += 1
        send_enqueued(enqueue)
        newest = page[-1].key
        if newest > marker:  # lookback pages lie behind the marker: it only moves forward
            if not state.advance_marker(sid, token, partition, marker, newest):
                log.warning("discovery of %s lost its lease or marker; stopping", sid)
                return False
            marker = newest
    if marker:
        result.markers[partition] = marker
    return True


def _delivered_before(obj, cutoff: datetime) -> bool:
    """Delivered before ``cutoff``: by the delivery time in a CloudTrail key, else LastModified."""
    when = delivery_time(obj.key) or obj.modified
    return when is not None and when < cutoff


def sweep(source: Source, state: StateStore, enqueue: Enqueue, healthy: bool | None = None) -> int:
    """Enqueue again the source's unfinished objects past their pending deadline; returns how
    many. A failing source's objects wait: they would only meet the same error again."""
    sid = source.identifier
    if healthy is None:
        # Objects whose read was denied are retried at each recurrence (their release set the
        # time), so a source failing only for its reads is swept too.
        health = state.health(sid)
        healthy = health.get(HealthField.STATE) != Health.FAILING or health.get(HealthField.SCOPE) == HealthScope.READ
    if not healthy:
        return 0
    requeued = 0
    for key in state.sweep_pending(sid):
        enqueue(sid, key)
        requeued += 1
    if requeued:
        log.info("sweep of %s enqueued %d unfinished object(s) again", sid, requeued)
    return requeued
