"""Every Redis key trailpipe uses, built in one place so the schema reads in one file.

Per source ``S`` (prefix ``P``, default ``trailpipe``):

  P:src:S:marker        hash  {prefix}: the configured prefix the markers belong to (a
                              different configured prefix clears them)
  P:src:S:markers       hash  partition (account/region folder, or the prefix) -> the newest
                              key listed there: the marker
  P:src:S:partitions    string  JSON {prefix, partitions}: the partitions found, cached
  P:src:S:lease         string  fencing token of the discovery that holds the lease (SET NX PX)
  P:src:S:fence         string  counter handing out fencing tokens (INCR)
  P:src:S:obj:K         hash  one S3 object K: state (claimed|processing|done|failed),
                              checkpoint (records of the object handled so far), emitted (events
                              written), attempts, claimed_at, token, error; expires
                              state_retention after done; a failed one lives as long as
                              its dead letter (then state_retention)
  P:src:S:throttle      string  GCRA theoretical arrival time (ms) of the fleet-wide EPS throttle
  P:src:S:newest_done   zset  member "delivered" scored by the newest delivery time (ms) of an
                              object done (ZADD GT: an atomic max), for the marker lag
  P:src:S:pending       zset  keys claimed and not yet done/failed, scored by claim (or last
                              re-enqueue) time in ms: the sweeper's work list
  P:src:S:stats         hash  counters: objects_enqueued, objects_done, objects_failed (now
                              dead-lettered), objects_dead_lettered (ever), objects_retried,
                              events_emitted, records_empty (empty records read, never
                              emitted), discoveries, last_discovery_at,
                              last_discovery_ms, discovery_ms_total, throttle_wait_ms,
                              s3_requests.<Operation> (HTTP requests sent, retries too)
  P:sources             set   identifiers that have state (for status)

Celery beat's schedule (celery-redbeat) lives under ``P:redbeat:``: one hash per entry
(``P:redbeat:discover:S``), ``P:redbeat::schedule`` (zset of due times), ``P:redbeat::statics``
and ``P:redbeat::lock`` (the active beat's lock).

Streams (names from the config): the events stream (default ``trailpipe:events``) and the
dead-letter stream (default ``trailpipe:deadletter``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "trailpipe"

    def _source(self, source: str) -> str:
        return f"{self.prefix}:src:{source}"

    def marker(self, source: str) -> str:
        return f"{self._source(source)}:marker"

    def markers(self, source: str) -> str:
        return f"{self._source(source)}:markers"

    def partitions(self, source: str) -> str:
        return f"{self._source(source)}:partitions"

    def lease(self, source: str) -> str:
        return f"{self._source(source)}:lease"

    def fence(self, source: str) -> str:
        return f"{self._source(source)}:fence"

    def object(self, source: str, key: str) -> str:
        return f"{self._source(source)}:obj:{key}"

    def throttle(self, source: str) -> str:
        return f"{self._source(source)}:throttle"

    def newest_done(self, source: str) -> str:
        return f"{self._source(source)}:newest_done"

    def pending(self, source: str) -> str:
        return f"{self._source(source)}:pending"

    def stats(self, source: str) -> str:
        return f"{self._source(source)}:stats"

    def sources(self) -> str:
        return f"{self.prefix}:sources"
