"""Metrics from the shared state in Redis: one view for `trailpipe status` and Prometheus.

Every number is read from Redis when asked for, so any process (on any machine) can serve the
whole fleet's metrics; workers only count into the source's stats hash.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from pipeline.state_watch import read_persistence, resets_view
from pipeline.store import StateStore, now_ms
from pipeline.store.schema import (
    Health,
    HealthField,
    LatencyStat,
    NotificationStat,
    Stat,
    StatPrefix,
    latency_stat,
    notification_stat,
)
from pipeline.supervisor import read_parts

# S3 list prices (USD per request, us-east-1 standard): LIST/PUT class and GET class.
REQUEST_PRICE = {"ListObjectsV2": 0.005 / 1000, "ListObjects": 0.005 / 1000, "GetObject": 0.0004 / 1000,
                 "HeadObject": 0.0004 / 1000}
S3_PREFIX = StatPrefix.S3_REQUESTS
ERRORS_PREFIX = StatPrefix.ERRORS
VIOLATIONS_PREFIX = StatPrefix.INTEGRITY_VIOLATIONS  # per kind, counted by pipeline.integrity


# Counted with the object's commit (StateStore.defer_count), not in a round trip of their own.
DEFERRED_OPERATIONS = frozenset({"GetObject"})


def count_s3_requests(client, state: StateStore, source: str) -> None:
    """Count every HTTP request the client sends (retries too: each one is billed) in Redis;
    GetObject's go with the object's commit (one per object, no round trip of its own)."""
    def on_send(event_name: str = "", **_):
        operation = event_name.rsplit(".", 1)[-1]
        if operation in DEFERRED_OPERATIONS:
            state.defer_s3_request(source, operation)
            return
        try:
            state.count_s3_request(source, operation)
        except redis.RedisError:
            pass  # a metric must never fail an ingest

    client.meta.events.register("before-send.s3", on_send)


# Upper bounds (seconds) of the notification-to-stream latency histogram.
LATENCY_BUCKETS = (1, 2, 5, 10, 30, 60, 300, 900, 3600)


def note_notification_latency(state: StateStore, source: str, key: str) -> None:
    """An object is done: if a notification claimed it, count send-to-stream time in its bucket."""
    try:
        sent = state.notified_at(source, key)
        if sent is None:
            return  # claimed by the listing
        elapsed_ms = max(0, now_ms() - sent)
        bound = next((b for b in LATENCY_BUCKETS if elapsed_ms <= b * 1000), "inf")
        state.note_latency(source, elapsed_ms, str(bound))
    except redis.RedisError:
        pass  # a metric must never fail an ingest


def notification_metrics(stats: dict[str, int]) -> dict:
    """The notification consumer's counters, and the latency histogram (cumulative buckets)."""
    def by_kind(name: str) -> dict[str, int]:
        prefix = notification_stat(name) + "."
        return {k.removeprefix(prefix): v for k, v in stats.items() if k.startswith(prefix)}

    buckets, running = {}, 0
    for bound in LATENCY_BUCKETS:
        running += stats.get(latency_stat(f"{LatencyStat.LE}.{bound}"), 0)
        buckets[str(bound)] = running
    count = stats.get(latency_stat(LatencyStat.COUNT), 0)
    buckets["+Inf"] = count
    return {
        "received": by_kind(NotificationStat.RECEIVED),
        "deleted": stats.get(notification_stat(NotificationStat.DELETED), 0),
        "ignored": by_kind(NotificationStat.IGNORED),
        "enqueued": stats.get(notification_stat(NotificationStat.ENQUEUED), 0),
        "visibility_extended": stats.get(notification_stat(NotificationStat.VISIBILITY_EXTENDED), 0),
        "errors": stats.get(notification_stat(NotificationStat.ERRORS), 0),
        "latency_count": count,
        "latency_seconds_sum": stats.get(latency_stat(LatencyStat.SUM_MS), 0) / 1000,
        "latency_buckets": buckets,
    }


def _age(ms: int | None, now: float) -> float | None:
    return None if ms is None else max(0.0, now - ms / 1000)


def lag(newest_listed_ms: int | None, newest_done_ms: int | None, pending: int,
        now: datetime | None = None, discovered: bool = True) -> dict:
    """What users alert on, and nothing that grows on a quiet, caught-up source:

    - ``newest_object_age_seconds``: since the newest log file listed was delivered (a trail that
      stopped delivering, or a discovery that stopped listing, makes it grow);
    - ``ingest_lag_seconds``: how far ingestion trails delivery: newest listed minus newest done
      (0 when caught up);
    - ``caught_up``: nothing pending and the newest file listed is ingested; never for a source
      no discovery has listed yet (``discovered``), which cannot know.
    """
    at = (now or datetime.now(UTC)).timestamp()
    caught_up = discovered and pending == 0 and (newest_listed_ms is None or (newest_done_ms or 0) >= newest_listed_ms)
    if caught_up:
        ingest_lag: float | None = 0.0
    elif newest_listed_ms is None:
        ingest_lag = None  # never listed, or objects pending none with a CloudTrail delivery time
    elif newest_done_ms is None:
        ingest_lag = _age(newest_listed_ms, at)  # nothing done yet
    else:
        ingest_lag = max(0.0, (newest_listed_ms - newest_done_ms) / 1000)
    return {"newest_object_age_seconds": _age(newest_listed_ms, at),
            "newest_ingested_age_seconds": _age(newest_done_ms, at),
            "ingest_lag_seconds": ingest_lag, "caught_up": caught_up}


# trailpipe_source_up by health: 1 only when ok; degraded (some objects denied, the others
# flowing) is 0.5; failing and unknown (no discovery has ended yet) are 0.
SOURCE_UP = {Health.OK: 1.0, Health.DEGRADED: 0.5, Health.FAILING: 0.0, Health.UNKNOWN: 0.0}


def health_view(raw: dict[str, str], denied_objects: int = 0) -> dict:
    """The source's health as ``status --json`` shows it (times as ISO 8601 UTC)."""
    def iso(ms: str | None) -> str | None:
        return None if not ms else datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat()

    return {"state": raw.get(HealthField.STATE, Health.UNKNOWN.value), "error_class": raw.get(HealthField.ERROR_CLASS),
            "message": raw.get(HealthField.MESSAGE), "since": iso(raw.get(HealthField.SINCE)),
            "last_success": iso(raw.get(HealthField.LAST_SUCCESS)), "denied_objects": denied_objects}


def source_up(state: str) -> float:
    try:
        return SOURCE_UP[Health(state)]
    except ValueError:
        return 0.0


def source_metrics(state: StateStore, source_id: str, prefix: str) -> dict:
    stats = state.stats(source_id)
    markers = state.markers(source_id) if state.marker_prefix(source_id) == prefix else {}
    requests = {k.removeprefix(S3_PREFIX): v for k, v in stats.items() if k.startswith(S3_PREFIX)}
    errors = {k.removeprefix(ERRORS_PREFIX): v for k, v in stats.items() if k.startswith(ERRORS_PREFIX)}
    pending = state.pending_count(source_id)
    denied = state.denied_count(source_id)
    return {
        "source": source_id,
        "marker": max(markers.values(), default=""),
        "partitions": markers,
        "events_emitted": stats.get(Stat.EVENTS_EMITTED, 0),
        "objects_enqueued": stats.get(Stat.OBJECTS_ENQUEUED, 0),
        "objects_done": stats.get(Stat.OBJECTS_DONE, 0),
        "objects_failed": stats.get(Stat.OBJECTS_FAILED, 0),
        "objects_dead_lettered": stats.get(Stat.OBJECTS_DEAD_LETTERED, 0),
        "objects_retried": stats.get(Stat.OBJECTS_RETRIED, 0),
        "objects_pending": pending,
        "objects_denied": denied,
        "health": health_view(state.health(source_id), denied),
        "errors": errors,
        **lag(state.newest_listed_ms(source_id), state.newest_delivered_ms(source_id), pending,
              discovered=bool(stats.get(Stat.DISCOVERIES) or stats.get(Stat.LAST_DISCOVERY_AT))),
        "discoveries": stats.get(Stat.DISCOVERIES, 0),
        "last_discovery_at": stats.get(Stat.LAST_DISCOVERY_AT),
        "last_discovery_seconds": stats.get(Stat.LAST_DISCOVERY_MS, 0) / 1000,
        "discovery_seconds_total": stats.get(Stat.DISCOVERY_MS_TOTAL, 0) / 1000,
        "s3_requests": requests,
        "s3_estimated_cost_usd": round(sum(REQUEST_PRICE.get(op, 0.0) * n for op, n in requests.items()), 8),
        "throttle_wait_seconds": stats.get(Stat.THROTTLE_WAIT_MS, 0) / 1000,
        "integrity_violations": {k.removeprefix(VIOLATIONS_PREFIX): v for k, v in stats.items()
                                 if k.startswith(VIOLATIONS_PREFIX)},
        "digests_verified": stats.get(Stat.DIGESTS_VERIFIED, 0),
        "log_files_found_by_digest": stats.get(Stat.LOG_FILES_FOUND_BY_DIGEST, 0),
        "integrity_errors": stats.get(Stat.INTEGRITY_ERRORS, 0),
        "notifications": notification_metrics(stats),
        "notifications_last_error": state.notify_error(source_id),
        "records_empty": stats.get(Stat.RECORDS_EMPTY, 0),
    }


def redis_status(state: StateStore) -> dict:
    """How the Redis persists and the state resets seen: ``status --json``'s ``"redis"``."""
    persistence = read_persistence(state)
    return {**persistence.as_dict(), "persistent_gauge": persistence.gauge, **resets_view(state)}


def parts_status(state_dir) -> dict | None:
    """The running ``trailpipe run``'s parts (restarts, state), or None: ``status --json``'s ``"run"``."""
    return read_parts(state_dir)


def run_status_lines(redis_view: dict, run: dict | None) -> list[str]:
    """``trailpipe status``'s lines on Redis's persistence, state resets and `run`'s parts."""
    lines = [("redis: " if redis_view["persistent"] else "redis: WARNING: ") + redis_view["message"]]
    if redis_view["resets"]:
        lines.append(f"state resets seen: {redis_view['resets']} (last at {redis_view['last_reset_at']}, seen by "
                     f"{redis_view['last_reset_detected_by']}): the markers and object states were lost; "
                     "discovery listed the sources again from the top (or from ignore_older)")
    if run is not None:
        parts = ", ".join(f"{name} {part.get('state')} restarts={part.get('restarts', 0)}"
                          + (f" (last {part['last_exit']} at {part['last_exit_at']})" if part.get("last_exit") else "")
                          for name, part in run["parts"].items())
        lines.append(f"trailpipe run (pid {run.get('pid')}, since {run.get('started_at')}): {parts}")
    return lines


class TrailpipeCollector(Collector):
    """Prometheus metrics, prefixed ``trailpipe_``, labelled by ``source``; read at each scrape."""

    def __init__(self, runtime):
        self.runtime = runtime

    def collect(self):
        config = self.runtime.config
        state = self.runtime.state
        rows = [source_metrics(state, s.identifier, s.list_prefix) for s in config.sources]
        for row in rows:
            row["up"] = source_up(row["health"]["state"])

        def family(kind, name, doc, field, scale=1.0):
            metric = kind(f"trailpipe_{name}", doc, labels=["source"])
            for row in rows:
                if row[field] is not None:
                    metric.add_metric([row["source"]], row[field] * scale)
            return metric

        yield family(CounterMetricFamily, "events_emitted", "Events emitted to the stream", "events_emitted")
        yield family(CounterMetricFamily, "objects_enqueued", "Objects claimed and enqueued", "objects_enqueued")
        yield family(CounterMetricFamily, "objects_done", "Objects ingested completely", "objects_done")
        yield family(CounterMetricFamily, "objects_dead_lettered", "Objects dead-lettered", "objects_dead_lettered")
        yield family(GaugeMetricFamily, "objects_failed", "Objects in the dead-letter stream now", "objects_failed")
        yield family(GaugeMetricFamily, "objects_pending", "Objects claimed and not finished", "objects_pending")
        yield family(GaugeMetricFamily, "newest_object_age_seconds",
                     "Since the newest log file listed was delivered", "newest_object_age_seconds")
        yield family(GaugeMetricFamily, "ingest_lag_seconds",
                     "How far ingestion trails delivery (0 when caught up)", "ingest_lag_seconds")
        yield family(GaugeMetricFamily, "caught_up", "1 when every file listed is ingested", "caught_up")
        yield family(GaugeMetricFamily, "source_up",
                     "1 when the source is ok, 0.5 degraded (some objects denied), 0 failing or unknown", "up")
        yield family(GaugeMetricFamily, "objects_denied",
                     "Objects the source's identity may not read now (they wait)", "objects_denied")
        last = GaugeMetricFamily("trailpipe_last_discovery_timestamp_seconds",
                                 "When the last discovery ended (alert on a stalled schedule)", labels=["source"])
        errors = CounterMetricFamily("trailpipe_source_errors", "Errors met, by class",
                                     labels=["source", "error_class"])
        for row in rows:
            if row["last_discovery_at"]:
                last.add_metric([row["source"]], row["last_discovery_at"] / 1000)
            for error_class, count in sorted(row["errors"].items()):
                errors.add_metric([row["source"], error_class], count)
        yield last
        yield errors
        yield family(GaugeMetricFamily, "last_discovery_duration_seconds", "Duration of the last discovery",
                     "last_discovery_seconds")
        yield family(CounterMetricFamily, "discovery_duration_seconds", "Time spent in discoveries",
                     "discovery_seconds_total")
        yield family(CounterMetricFamily, "discoveries", "Discoveries run", "discoveries")
        yield family(CounterMetricFamily, "throttle_wait_seconds", "Time emission waited for the EPS throttle",
                     "throttle_wait_seconds")
        yield family(CounterMetricFamily, "records_empty", "Empty records ({}) read and not emitted",
                     "records_empty")
        yield family(CounterMetricFamily, "s3_estimated_cost_usd", "Estimated cost of the S3 requests (USD)",
                     "s3_estimated_cost_usd")
        requests = CounterMetricFamily("trailpipe_s3_requests", "S3 requests sent, by kind", labels=["source", "kind"])
        for row in rows:
            for kind, count in sorted(row["s3_requests"].items()):
                requests.add_metric([row["source"], kind], count)
        yield requests
        yield family(CounterMetricFamily, "digests_verified", "CloudTrail digests handled by discovery",
                     "digests_verified")
        yield family(CounterMetricFamily, "log_files_found_by_digest",
                     "Log files the listing missed, found through a digest", "log_files_found_by_digest")
        violations = CounterMetricFamily("trailpipe_integrity_violations",
                                         "Integrity violations found through CloudTrail's digests, by kind",
                                         labels=["source", "kind"])
        for row in rows:
            for kind, count in sorted(row["integrity_violations"].items()):
                violations.add_metric([row["source"], kind], count)
        yield violations
        yield from notification_families(rows)
        yield from redis_families(redis_status(state), parts_status(config.state_path))
        stream = GaugeMetricFamily("trailpipe_stream_length", "Entries in the stream", labels=["stream"])
        configured = [source.identifier for source in config.sources]
        # One stream each, or one per source ({source}): each read on its shard of a cluster.
        names = [*state.events_streams(configured), *state.deadletter_streams(configured)]
        for name, length in state.stream_lengths(names).items():
            stream.add_metric([name], length)
        yield stream


def redis_families(redis_view: dict, run: dict | None):
    """trailpipe_redis_persistent, trailpipe_state_resets_total, trailpipe_part_restarts_total{part}."""
    yield GaugeMetricFamily("trailpipe_redis_persistent",
                            "1 when the Redis persists its state (AOF or RDB save rules), 0 when it persists "
                            "nothing (a restart loses every marker: the history is ingested again), -1 when "
                            "it cannot be read", value=redis_view["persistent_gauge"])
    yield CounterMetricFamily("trailpipe_state_resets", "State resets seen (the state epoch vanished under a "
                              "running worker or beat)", value=redis_view["resets"])
    restarts = CounterMetricFamily("trailpipe_part_restarts", "Restarts of each part of `trailpipe run`",
                                   labels=["part"])
    for name, part in sorted((run or {}).get("parts", {}).items()):
        restarts.add_metric([name], part.get("restarts", 0))
    yield restarts


def notification_families(rows: list[dict]):
    """trailpipe_notifications_{received,ignored}{source,kind}, _deleted, _enqueued,
    trailpipe_notification_visibility_extended, _errors and the latency histogram."""
    for name, doc in (("received", "Notification messages received, by envelope kind"),
                      ("ignored", "Notifications (messages or objects) that led to no ingest, by kind")):
        family = CounterMetricFamily(f"trailpipe_notifications_{name}", doc, labels=["source", "kind"])
        for row in rows:
            for kind, count in sorted(row["notifications"][name].items()):
                family.add_metric([row["source"], kind], count)
        yield family
    for name, field, doc in (
            ("notifications_deleted", "deleted", "Notification messages deleted from the queue"),
            ("notifications_enqueued", "enqueued", "Objects claimed and enqueued from notifications"),
            ("notification_visibility_extended", "visibility_extended",
             "Visibility extensions of messages still being worked on"),
            ("notification_errors", "errors", "Errors of the notification consumer (messages left to the queue)")):
        family = CounterMetricFamily(f"trailpipe_{name}", doc, labels=["source"])
        for row in rows:
            family.add_metric([row["source"]], row["notifications"][field])
        yield family
    latency = HistogramMetricFamily("trailpipe_notification_to_stream_seconds",
                                    "From the notification's SQS send time to its object done in the stream",
                                    labels=["source"])
    for row in rows:
        note = row["notifications"]
        buckets = [(bound if bound == "+Inf" else str(float(bound)), count)  # Prometheus spells le "5.0"
                   for bound, count in note["latency_buckets"].items()]
        latency.add_metric([row["source"]], buckets,
                           note["latency_seconds_sum"])
    yield latency


def serve(runtime, port: int, address: str = "127.0.0.1", say=None):
    """Serve /metrics in a thread; returns (server, thread). While Redis cannot be reached (or no
    ``trailpipe run`` serves the embedded one yet) each scrape is answered 503 with one line, and
    ``say`` tells each change once (away, back); every scrape tries again, so it recovers by itself."""
    import threading  # noqa: PLC0415
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415

    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest  # noqa: PLC0415

    from pipeline.errors import ConfigError  # noqa: PLC0415

    registry = CollectorRegistry()
    registry.register(TrailpipeCollector(runtime))
    lock = threading.Lock()
    last: dict[str, str | None] = {"problem": None}

    def scrape() -> tuple[int, bytes, str]:
        try:
            with lock:
                body = generate_latest(registry)
        except (redis.RedisError, ConfigError, OSError) as exc:
            problem = (exc.problems[0] if isinstance(exc, ConfigError)
                       else f"cannot reach Redis: {exc} (is `trailpipe run` or your redis_url server up?)")
            # The next scrape connects anew (an embedded Redis restarted elsewhere has a new address).
            for cached in ("redis", "state"):
                runtime.__dict__.pop(cached, None)
            if problem != last["problem"] and say is not None:
                say(f"metrics unavailable (503): {problem}")
            last["problem"] = problem
            return 503, f"trailpipe metrics unavailable: {problem}\n".encode(), "text/plain; charset=utf-8"
        if last["problem"] is not None and say is not None:
            say("metrics available again")
        last["problem"] = None
        return 200, body, CONTENT_TYPE_LATEST

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (http.server's name)
            if self.path.split("?", 1)[0] not in ("/", "/metrics"):
                code, body, kind = 404, b"not found: the metrics are at /metrics\n", "text/plain; charset=utf-8"
            else:
                code, body, kind = scrape()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002  (no access log line per scrape)
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="trailpipe-metrics", daemon=True)
    thread.start()
    return server, thread


def wait_forever() -> None:
    while True:
        time.sleep(3600)
