"""Every Redis name trailpipe uses: the keys (``Keys``), and every field of a hash, member of a
fixed zset, field of a stream entry and counter of the stats hash, as an enum, so the schema reads
in this one file (``docs/architecture.md`` "Redis key schema" is checked against it, by
``tests/test_store_boundary.py``). The Lua scripts get these names as constants (``OBJ_STATE``,
``STATUS_DONE``, ``STAT_OBJECTS_DONE`` ...: ``lua_constants``), so a name is spelled once.

Per source ``S`` (prefix ``P``, default ``trailpipe``) every key is ``P:src:S:<name>``; the keys of
no source are ``P:<name>``. ``KEY_SCHEMA`` lists them with their type and fields.

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

Celery beat's schedule (celery-redbeat) lives under ``P:redbeat:``: one hash per entry
(``P:redbeat:discover:S``), ``P:redbeat::schedule`` (zset of due times), ``P:redbeat::statics``
and ``P:redbeat::lock`` (the active beat's lock).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum

# -- the object lifecycle ---------------------------------------------------------------------


class Status(str, Enum):
    """The lifecycle of one S3 object (``P:src:S:obj:K`` ``state``):

        claimed ──begin──▶ processing ──last batch──▶ done
           ▲                  │  │
           └──release─────────┘  └──bad object / poison / retries exhausted──▶ failed
                                                  (deadletter retry: failed ──▶ claimed)
    """

    CLAIMED = "claimed"  # listed and enqueued, no worker has started it (or one gave it back)
    PROCESSING = "processing"  # a worker holds it; its heartbeat keeps it from the sweep
    DONE = "done"  # every record emitted; the record expires state_retention later
    FAILED = "failed"  # dead-lettered with its reason; lives as long as its dead letter

    def __str__(self) -> str:
        return self.value


TERMINAL_STATUSES = frozenset({Status.DONE, Status.FAILED})


class Health(str, Enum):
    """A source's health (``P:src:S:health`` ``state``; ``trailpipe_source_up``: 1, 0.5, 0, 0)."""

    OK = "ok"  # its last discovery listed every partition and no object is denied
    DEGRADED = "degraded"  # some objects may not be read (they wait), the others flow
    FAILING = "failing"  # a configuration error, an endpoint that cannot be reached, or no read works
    UNKNOWN = "unknown"  # no discovery has ended yet (never stored: the absence of a state)

    def __str__(self) -> str:
        return self.value


# -- fields -----------------------------------------------------------------------------------


class ObjectField(StrEnum):
    """The hash of one S3 object, ``P:src:S:obj:K``. Expires state_retention after done; a failed
    one lives as long as its dead letter (then state_retention)."""

    STATE = "state"  # a Status
    CHECKPOINT = "checkpoint"  # records of the object handled so far
    EMITTED = "emitted"  # events written
    ATTEMPTS = "attempts"  # deliveries that did not end cleanly
    CLAIMED_AT = "claimed_at"  # ms, Redis's clock
    TOKEN = "token"  # fencing token of the discovery that claimed it (0: a notification)
    NOTIFIED_AT = "notified_at"  # SQS send time (ms) of the notification that claimed it
    STARTED_AT = "started_at"
    RUNNER = "runner"  # the execution working on it
    PROCESS = "process"  # its process (pipeline.runner.process_identity)
    HEARTBEAT_AT = "heartbeat_at"  # its runner's last beat (Redis's clock)
    SILENT = "silent"  # runners taken over because they stopped beating
    LOST = "lost"  # runners taken over because their process was gone
    ERROR = "error"  # the error class it failed with
    FAILED_AT = "failed_at"
    SHA256 = "sha256"  # of its uncompressed bytes, set as it becomes done
    EXPECTED_SHA256 = "expected_sha256"  # from the CloudTrail digest listing it
    DIGEST = "digest"  # that digest's key


class MarkerField(StrEnum):
    """``P:src:S:marker``."""

    PREFIX = "prefix"  # the configured prefix the markers belong to


class PartitionsField(StrEnum):
    """``P:src:S:partitions``: a JSON object, cached."""

    PREFIX = "prefix"
    PARTITIONS = "partitions"


class HealthField(StrEnum):
    """``P:src:S:health``."""

    STATE = "state"  # a Health (none: unknown)
    SCOPE = "scope"  # a HealthScope
    ERROR_CLASS = "error_class"
    MESSAGE = "message"  # with a hint
    SINCE = "since"  # the last change
    LAST_SUCCESS = "last_success"
    LAST_ERROR_AT = "last_error_at"
    LAST_READ_AT = "last_read_at"  # written only while objects are denied
    DENIED_SINCE = "denied_since"  # when the denied set last became non-empty
    DENIED_ERROR_CLASS = "denied_error_class"  # of the last denial
    DENIED_MESSAGE = "denied_message"


class HealthScope(StrEnum):
    SOURCE = "source"  # a configuration error
    READ = "read"  # denied reads


class HealthEvent(StrEnum):
    """What set_health.lua is told."""

    OK = "ok"  # a discovery listed the source
    FAILING = "failing"  # a configuration error (or a discovery that gave up)
    DENIED = "denied"  # an object may not be read
    READ = "read"  # an object was read
    FORGET = "forget"  # an object left (dead-lettered) without being read


class NewestDone(StrEnum):
    """The members of ``P:src:S:newest_done`` (ZADD GT: atomic maxima), scored by delivery time (ms)."""

    DELIVERED = "delivered"  # of the newest object done
    LISTED = "listed"  # of the newest object listed


class ViolationField(StrEnum):
    """An entry of ``P:src:S:violations``."""

    KIND = "kind"
    KEY = "key"
    DETAIL = "detail"
    AT = "at"


class ResetsField(StrEnum):
    """``P:resets``."""

    COUNT = "count"  # state resets seen
    EPOCH = "epoch"  # made after the last one
    LAST_AT = "last_at"  # ms
    DETECTED_BY = "detected_by"
    PREVIOUS_EPOCH = "previous_epoch"


class DeadLetterField(StrEnum):
    """An entry of the dead-letter stream."""

    SOURCE = "source"
    OBJECT = "object"
    ERROR_CLASS = "error_class"
    MESSAGE = "message"
    ATTEMPTS = "attempts"
    FAILED_AT = "failed_at"
    STATE_KEY = "state_key"  # the object hash it points to (for the trim)
    STATS_KEY = "stats_key"  # its source's stats


class Reconciled(StrEnum):
    """What reconcile_log_file.lua answers for a log file a digest lists."""

    CLAIMED = "claimed"  # never claimed: claimed now (the caller enqueues it)
    PENDING = "pending"  # not finished: compared when it is
    INTACT = "intact"
    MISMATCH = "mismatch"
    UNKNOWN = "unknown"  # done before hashes were kept
    DEAD_LETTERED = "dead_lettered"


# -- the stats hash -----------------------------------------------------------------------------


class Stat(StrEnum):
    """Counters of ``P:src:S:stats`` (besides the families of ``StatPrefix``)."""

    OBJECTS_ENQUEUED = "objects_enqueued"
    OBJECTS_DONE = "objects_done"
    OBJECTS_FAILED = "objects_failed"  # dead-lettered now
    OBJECTS_DEAD_LETTERED = "objects_dead_lettered"  # ever
    OBJECTS_RETRIED = "objects_retried"
    EVENTS_EMITTED = "events_emitted"
    RECORDS_EMPTY = "records_empty"  # empty records read, never emitted
    DISCOVERIES = "discoveries"
    LAST_DISCOVERY_AT = "last_discovery_at"  # ms, Redis's clock
    LAST_DISCOVERY_MS = "last_discovery_ms"
    DISCOVERY_MS_TOTAL = "discovery_ms_total"
    THROTTLE_WAIT_MS = "throttle_wait_ms"
    WAIT_REPLICAS_SHORT = "wait_replicas_short"  # batches whose WAIT timed out
    DIGESTS_VERIFIED = "digests_verified"
    LOG_FILES_FOUND_BY_DIGEST = "log_files_found_by_digest"
    INTEGRITY_ERRORS = "integrity_errors"


class StatPrefix(StrEnum):
    """Families of counters of ``P:src:S:stats``: the prefix, then what is counted."""

    S3_REQUESTS = "s3_requests."  # .<Operation>: HTTP requests sent, retries too
    ERRORS = "errors."  # .<ErrorClass>: errors met, by class
    INTEGRITY_VIOLATIONS = "integrity_violations."  # .<kind>
    NOTIFICATIONS = "notifications."  # the notification consumer's (NotificationStat)
    NOTIFICATION_LATENCY = "notification_latency."  # a histogram (LatencyStat)


class NotificationStat(StrEnum):
    """``notifications.<name>[.<kind>]``, counted by pipeline.sqs_consumer."""

    RECEIVED = "received"  # .<kind>: messages, by envelope kind
    DELETED = "deleted"
    IGNORED = "ignored"  # .<kind>
    ENQUEUED = "enqueued"
    VISIBILITY_EXTENDED = "visibility_extended"
    ERRORS = "errors"


class LatencyStat(StrEnum):
    """``notification_latency.<name>``: notification-to-stream latency, one bucket counted per object."""

    COUNT = "count"
    SUM_MS = "sum_ms"
    LE = "le"  # .<seconds>: the bucket


KINDED_NOTIFICATION_STATS = frozenset({NotificationStat.RECEIVED, NotificationStat.IGNORED})


def stat(prefix: StatPrefix, name: str) -> str:
    """A counter of a family: ``errors.AccessDenied``, ``s3_requests.GetObject`` ..."""
    return f"{prefix}{name}"


def notification_stat(name: str, kind: str = "") -> str:
    return f"{StatPrefix.NOTIFICATIONS}{name}.{kind}" if kind else f"{StatPrefix.NOTIFICATIONS}{name}"


def latency_stat(name: str) -> str:
    return f"{StatPrefix.NOTIFICATION_LATENCY}{name}"


# -- the constants of the Lua scripts -----------------------------------------------------------

# Each enum's members become ``local <NAME>_<MEMBER> = '<value>'`` at the head of the scripts that
# use them (only those: Lua allows 200 locals per function).
LUA_NAMES: dict[str, type[Enum]] = {
    "STATUS": Status, "HEALTH": Health, "OBJ": ObjectField, "MARKER": MarkerField, "HF": HealthField,
    "SCOPE": HealthScope, "EVENT": HealthEvent, "NEWEST": NewestDone, "VIOLATION": ViolationField,
    "RESETS": ResetsField, "LETTER": DeadLetterField, "RECONCILED": Reconciled, "STAT": Stat,
    "PREFIX": StatPrefix,
}


def lua_constant_table() -> dict[str, str]:
    """Every Lua constant name -> its value."""
    return {f"{name}_{member.name}": str(member.value) for name, enum in LUA_NAMES.items() for member in enum}


def lua_constants(text: str | None = None) -> str:
    """``local STATUS_CLAIMED = 'claimed'`` ... for the head of a Lua script: those ``text`` uses
    (None: all)."""
    # the words of ``text`` once (a name is used where it is a whole word), not one regex per name
    words = None if text is None else set(re.findall(r"\w+", text))
    return "".join(f"local {name} = '{value}'\n" for name, value in lua_constant_table().items()
                   if words is None or name in words)


# -- keys ---------------------------------------------------------------------------------------

# In ``stream``/``deadletter_stream``: the source's identifier, in braces (a hash tag).
SOURCE_PLACEHOLDER = "{source}"
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
    """The names of every key, from the config's key_prefix, stream and deadletter_stream
    (``pipeline.settings.Settings.keys``; ``Settings.default().keys`` without a config)."""

    prefix: str
    stream: str  # may hold {source}: one stream per source, keys hash-tagged
    deadletter_stream: str  # may hold {source}

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


@dataclass(frozen=True)
class KeySchema:
    """One key: the ``Keys`` method naming it, its type, and its fields (hash fields, fixed zset
    members, stream entry fields, JSON fields; ``<...>``: a family)."""

    method: str
    type: str
    fields: tuple[str, ...] = ()


def _values(*enums: type[Enum]) -> tuple[str, ...]:
    return tuple(str(member.value) for enum in enums for member in enum)


def stats_fields() -> tuple[str, ...]:
    """Every counter of the stats hash, families as ``prefix<what>``."""
    notifications = tuple(notification_stat(name, "<kind>" if name in KINDED_NOTIFICATION_STATS else "")
                          for name in NotificationStat)
    latency = tuple(latency_stat("le.<seconds>" if name is LatencyStat.LE else name) for name in LatencyStat)
    return (*_values(Stat), stat(StatPrefix.S3_REQUESTS, "<Operation>"), stat(StatPrefix.ERRORS, "<ErrorClass>"),
            stat(StatPrefix.INTEGRITY_VIOLATIONS, "<kind>"), *notifications, *latency)


# Every key of the state, in the order docs/architecture.md lists them.
KEY_SCHEMA: tuple[KeySchema, ...] = (
    KeySchema("marker", "hash", _values(MarkerField)),
    KeySchema("markers", "hash"),  # partition -> the newest key listed there
    KeySchema("partitions", "string", _values(PartitionsField)),
    KeySchema("lease", "string"),
    KeySchema("fence", "string"),
    KeySchema("object", "hash", _values(ObjectField)),
    KeySchema("digest_chains", "hash"),  # chain -> JSON pipeline.digests.Link
    KeySchema("integrity_awaiting", "zset"),
    KeySchema("violations", "stream", _values(ViolationField)),
    KeySchema("throttle", "string"),
    KeySchema("newest_done", "zset", _values(NewestDone)),
    KeySchema("pending", "zset"),
    KeySchema("health", "hash", _values(HealthField)),
    KeySchema("denied", "zset"),
    KeySchema("stats", "hash", stats_fields()),
    KeySchema("notify_error", "string"),
    KeySchema("sources", "set"),
    KeySchema("epoch", "string"),
    KeySchema("resets", "hash", _values(ResetsField)),
    KeySchema("redbeat_prefix", "prefix"),  # celery-redbeat's keys under it
    KeySchema("events_stream", "stream"),  # the emitter's entries (pipeline.emitter)
    KeySchema("deadletter", "stream", _values(DeadLetterField)),
)


def key_pattern(keys: Keys, method: str) -> str:
    """The key a method names, with ``S`` for the source and ``K`` for the object key."""
    build = getattr(keys, method)
    if method == "object":
        return build("S", "K")
    if method in ("sources", "epoch", "resets", "redbeat_prefix"):
        return build()
    return build("S")
