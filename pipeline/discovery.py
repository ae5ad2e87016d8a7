"""Discovery: list a source's new objects, claim each, enqueue one ingest per object, advance
the marker.

Order per listed page: claim -> enqueue -> advance marker. The worst a crash can do is leave a
claim without its task (or a task lost with its queue); such a claim stays in the source's
pending set, and every discovery first sweeps it: claims older than ``requeue_after_seconds``
and not finished are enqueued again. A duplicate enqueue is harmless: the object's checkpoint
lets only one task emit each record.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.config import Source
from pipeline.lister import is_wanted, list_pages
from pipeline.state import StateStore, now_ms

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str], None]  # (source identifier, object key)

DEFAULT_LEASE_MS = 15 * 60 * 1000


@dataclass
class DiscoveryResult:
    source: str
    ran: bool = True  # False: another discovery of this source held the lease
    listed: int = 0
    enqueued: int = 0
    requeued: int = 0
    skipped: int = 0
    marker: str = ""
    prefix_changed: bool = False
    seconds: float = 0.0


def discover(source: Source, state: StateStore, s3, enqueue: Enqueue,
             lease_ms: int = DEFAULT_LEASE_MS) -> DiscoveryResult:
    started = time.monotonic()
    result = DiscoveryResult(source.identifier)
    token = state.acquire_lease(source.identifier, lease_ms)
    if not token:
        result.ran = False
        log.info("discovery of %s skipped: another discovery holds the lease", source.identifier)
        return result
    try:
        for key in state.sweep_pending(source.identifier):
            enqueue(source.identifier, key)
            result.requeued += 1
        prefix = source.list_prefix
        marker = state.get_marker(source.identifier)
        expected = marker.start_after(prefix)
        result.prefix_changed = marker.prefix is not None and marker.prefix != prefix
        if result.prefix_changed:
            log.info("source %s: prefix changed from %r to %r, marker cleared",
                     source.identifier, marker.prefix, prefix)
        for page in list_pages(s3, source, expected):
            if not page:
                continue
            for obj in page:
                result.listed += 1
                if not is_wanted(source, obj):
                    result.skipped += 1
                    continue
                if state.claim(source.identifier, obj.key, token):
                    enqueue(source.identifier, obj.key)
                    result.enqueued += 1
            last_key = page[-1].key
            if not state.advance_marker(source.identifier, token, prefix, expected, last_key):
                log.warning("discovery of %s lost its lease or marker; stopping", source.identifier)
                break
            expected = last_key
        result.marker = expected
        state.note_discovery(source.identifier, now_ms())
    finally:
        state.release_lease(source.identifier, token)
        result.seconds = time.monotonic() - started
    log.info("discovered %s: listed=%d enqueued=%d requeued=%d skipped=%d marker=%r in %.2fs",
             source.identifier, result.listed, result.enqueued, result.requeued, result.skipped,
             result.marker, result.seconds)
    return result
