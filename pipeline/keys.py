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
                              written), attempts, claimed_at, token, error, sha256 (of its
                              uncompressed bytes, set as it becomes done), expected_sha256 and
                              digest (from the CloudTrail digest listing it); expires
                              state_retention after done; a failed one lives as long as
                              its dead letter (then state_retention)
  P:src:S:digest_chains hash  digest chain (digest folder|trail|home region[|backfill]) -> JSON
                              {key, sha256, signature}: the newest digest handled in that chain
  P:src:S:integrity_awaiting  zset  log files a digest lists whose ingestion had not finished
                              (scored by when): compared with the digest at later discoveries
  P:src:S:violations    stream  integrity violations: kind, key, detail, at (MAXLEN ~10000)
  P:src:S:throttle      string  GCRA theoretical arrival time (ms) of the fleet-wide EPS throttle
  P:src:S:newest_done   zset  "delivered": the newest delivery time (ms) of an object done;
                              "listed": of an object listed (ZADD GT: atomic maxima), for the
                              ingest lag
  P:src:S:pending       zset  keys claimed and not yet done/failed, scored by their deadline (ms):
                              claim + requeue_after, or the runner's last heartbeat + heartbeat
                              timeout; past it, the sweep enqueues the object again
  P:src:S:health        hash  state (ok|degraded|failing), scope (source|read), error_class,
                              message (with a hint), since, last_success, last_error_at,
                              last_read_at, denied_since, denied_error_class, denied_message
  P:src:S:denied        zset  objects the source's identity may not read (they wait), scored by
                              when first denied (ms, Redis's clock)
  P:src:S:stats         hash  counters: objects_enqueued, objects_done, objects_failed (now
                              dead-lettered), objects_dead_lettered (ever), objects_retried,
                              events_emitted, records_empty (empty records read, never
                              emitted), discoveries, last_discovery_at,
                              last_discovery_ms, discovery_ms_total, throttle_wait_ms,
                              wait_replicas_short (batches whose WAIT timed out),
                              s3_requests.<Operation> (HTTP requests sent, retries too),
                              errors.<ErrorClass> (errors met, by class),
                              integrity_violations.<kind>, digests_verified,
                              log_files_found_by_digest, integrity_errors;
                              the notification consumer's (see NOTIFICATION_STATS below)
  P:src:S:notify_error  string  the last error of the source's notification consumer, with a
                              hint (expires after an hour)
  P:sources             set   identifiers that have state (for status)
  P:epoch               string  the state epoch: a random id made by the first worker or beat
                              on an empty Redis; every worker and beat remembers it, so its
                              disappearance (a Redis restart without persistence, FLUSHALL,
                              eviction) is seen as a state reset (pipeline.state_watch)
  P:resets              hash  count (state resets seen), epoch (the one made after the last
                              reset), last_at (ms), detected_by, previous_epoch

Celery beat's schedule (celery-redbeat) lives under ``P:redbeat:``: one hash per entry
(``P:redbeat:discover:S``), ``P:redbeat::schedule`` (zset of due times), ``P:redbeat::statics``
and ``P:redbeat::lock`` (the active beat's lock).

Streams (names from the config): the events stream (default ``trailpipe:events``) and the
dead-letter stream (default ``trailpipe:deadletter``).

Hash tags (Redis Cluster). A ``stream`` holding ``{source}`` names one stream per source: the
placeholder becomes the source's identifier in braces (``trailpipe:events:{source}`` ->
``trailpipe:events:{acct0}``), and then every key of that source carries the same hash tag
(``P:src:{S}:...``), so a source's keys and its stream live in one hash slot, on one shard, and
every script (which receives every key it touches in KEYS) touches one slot. ``deadletter_stream``
may hold ``{source}`` too (a Redis Cluster needs it: a dead letter is written with its object's
state). The keys of no source share the tag ``{global}``: ``P:{global}:sources``,
``P:{global}:epoch``, ``P:{global}:resets`` (check_epoch.lua touches the last two together) and
beat's schedule under ``P:{global}:redbeat:`` (celery-redbeat's pipelines touch its keys together).
Without ``{source}`` in ``stream`` no key name changes.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Fields of P:src:S:stats the notification consumer counts (pipeline.sqs_consumer), read by
# pipeline.metrics: notifications.received.<kind>, .deleted, .ignored.<kind>, .enqueued,
# .visibility_extended, .errors; and notification_latency.count, .sum_ms, .le.<seconds> (a
# histogram of notification-to-stream latency, one bucket counted per object).
NOTIFICATION_STATS = "notifications."
NOTIFICATION_LATENCY = "notification_latency."
# Field of an object's hash: when the notification that claimed it was sent (ms).
NOTIFIED_AT = "notified_at"


def notification_stat(name: str, kind: str = "") -> str:
    return f"{NOTIFICATION_STATS}{name}.{kind}" if kind else f"{NOTIFICATION_STATS}{name}"


def latency_stat(name: str) -> str:
    return f"{NOTIFICATION_LATENCY}{name}"


# In ``stream``/``deadletter_stream``: the source's identifier, in braces (a hash tag).
SOURCE_PLACEHOLDER = "{source}"
DEFAULT_STREAM = "trailpipe:events"
DEFAULT_DEADLETTER_STREAM = "trailpipe:deadletter"
GLOBAL_TAG = "{global}"


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes: the first ``{...}`` with something inside, else all."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key


@dataclass(frozen=True)
class Keys:
    prefix: str = "trailpipe"
    stream: str = DEFAULT_STREAM  # may hold {source}: one stream per source, keys hash-tagged
    deadletter_stream: str = DEFAULT_DEADLETTER_STREAM  # may hold {source}

    @property
    def hash_tagged(self) -> bool:
        """Each source's keys carry its identifier as hash tag (``stream`` holds ``{source}``)."""
        return SOURCE_PLACEHOLDER in self.stream

    def _source(self, source: str) -> str:
        return f"{self.prefix}:src:{{{source}}}" if self.hash_tagged else f"{self.prefix}:src:{source}"

    def _global(self) -> str:
        return f"{self.prefix}:{GLOBAL_TAG}" if self.hash_tagged else self.prefix

    def events_stream(self, source: str) -> str:
        """The source's events stream: ``stream``, ``{source}`` replaced by ``{<identifier>}``."""
        return self.stream.replace(SOURCE_PLACEHOLDER, f"{{{source}}}")

    def deadletter(self, source: str) -> str:
        """The source's dead-letter stream (``deadletter_stream``, ``{source}`` replaced)."""
        return self.deadletter_stream.replace(SOURCE_PLACEHOLDER, f"{{{source}}}")

    def events_streams(self, sources: Iterable[str]) -> list[str]:
        """Every events stream of ``sources`` (one name without ``{source}``), in order, once each."""
        return list(dict.fromkeys(self.events_stream(source) for source in sources))

    def deadletter_streams(self, sources: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(self.deadletter(source) for source in sources))

    def redbeat_prefix(self) -> str:
        """celery-redbeat's key prefix: beat's schedule, one slot on a cluster."""
        return f"{self._global()}:redbeat:"

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

    def health(self, source: str) -> str:
        return f"{self._source(source)}:health"

    def denied(self, source: str) -> str:
        return f"{self._source(source)}:denied"

    def digest_chains(self, source: str) -> str:
        return f"{self._source(source)}:digest_chains"

    def integrity_awaiting(self, source: str) -> str:
        return f"{self._source(source)}:integrity_awaiting"

    def violations(self, source: str) -> str:
        return f"{self._source(source)}:violations"

    def notify_error(self, source: str) -> str:
        return f"{self._source(source)}:notify_error"

    def sources(self) -> str:
        return f"{self._global()}:sources"

    def epoch(self) -> str:
        return f"{self._global()}:epoch"

    def resets(self) -> str:
        return f"{self._global()}:resets"
