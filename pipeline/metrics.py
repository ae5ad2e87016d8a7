"""Metrics from the shared state in Redis: one view for `trailpipe status` and Prometheus.

Every number is read from Redis when asked for, so any process (on any machine) can serve the
whole fleet's metrics; workers only count into the source's stats hash.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.state import StateStore

# S3 list prices (USD per request, us-east-1 standard): LIST/PUT class and GET class.
REQUEST_PRICE = {"ListObjectsV2": 0.005 / 1000, "ListObjects": 0.005 / 1000, "GetObject": 0.0004 / 1000,
                 "HeadObject": 0.0004 / 1000}
S3_PREFIX = "s3_requests."


def count_s3_requests(client, state: StateStore, source: str) -> None:
    """Count every HTTP request the client sends (retries too: each one is billed) in Redis."""
    stats_key = state.keys.stats(source)

    def on_send(event_name: str = "", **_):
        operation = event_name.rsplit(".", 1)[-1]
        try:
            state.redis.hincrby(stats_key, S3_PREFIX + operation, 1)
        except redis.RedisError:
            pass  # a metric must never fail an ingest

    client.meta.events.register("before-send.s3", on_send)


def marker_lag_seconds(newest_delivered_ms: int | None, now: datetime | None = None) -> float | None:
    """now - delivery time of the newest object done (None before any carries a delivery time)."""
    if newest_delivered_ms is None:
        return None
    return (now or datetime.now(timezone.utc)).timestamp() - newest_delivered_ms / 1000


def source_metrics(state: StateStore, source_id: str, prefix: str) -> dict:
    stats = state.stats(source_id)
    markers = state.markers(source_id) if state.marker_prefix(source_id) == prefix else {}
    requests = {k.removeprefix(S3_PREFIX): v for k, v in stats.items() if k.startswith(S3_PREFIX)}
    return {
        "source": source_id,
        "marker": max(markers.values(), default=""),
        "partitions": markers,
        "events_emitted": stats.get("events_emitted", 0),
        "objects_enqueued": stats.get("objects_enqueued", 0),
        "objects_done": stats.get("objects_done", 0),
        "objects_failed": stats.get("objects_failed", 0),
        "objects_dead_lettered": stats.get("objects_dead_lettered", 0),
        "objects_retried": stats.get("objects_retried", 0),
        "objects_pending": state.pending_count(source_id),
        "marker_lag_seconds": marker_lag_seconds(state.newest_delivered_ms(source_id)),
        "discoveries": stats.get("discoveries", 0),
        "last_discovery_at": stats.get("last_discovery_at"),
        "last_discovery_seconds": stats.get("last_discovery_ms", 0) / 1000,
        "discovery_seconds_total": stats.get("discovery_ms_total", 0) / 1000,
        "s3_requests": requests,
        "s3_estimated_cost_usd": round(sum(REQUEST_PRICE.get(op, 0.0) * n for op, n in requests.items()), 8),
        "throttle_wait_seconds": stats.get("throttle_wait_ms", 0) / 1000,
        "records_empty": stats.get("records_empty", 0),
    }


class TrailpipeCollector(Collector):
    """Prometheus metrics, prefixed ``trailpipe_``, labelled by ``source``; read at each scrape."""

    def __init__(self, runtime):
        self.runtime = runtime

    def collect(self):
        config = self.runtime.config
        state = self.runtime.state
        rows = [source_metrics(state, s.identifier, s.list_prefix) for s in config.sources]

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
        yield family(GaugeMetricFamily, "marker_lag_seconds",
                     "Now minus the delivery time of the newest object done", "marker_lag_seconds")
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
        stream = GaugeMetricFamily("trailpipe_stream_length", "Entries in the stream", labels=["stream"])
        stream.add_metric([config.stream], state.redis.xlen(config.stream))
        stream.add_metric([config.deadletter_stream], state.redis.xlen(config.deadletter_stream))
        yield stream


def serve(runtime, port: int, address: str = "127.0.0.1"):
    """Serve /metrics; returns the HTTP server (prometheus_client runs it in a thread)."""
    from prometheus_client import CollectorRegistry, start_http_server  # noqa: PLC0415

    registry = CollectorRegistry()
    registry.register(TrailpipeCollector(runtime))
    server, thread = start_http_server(port, addr=address, registry=registry)
    return server, thread


def wait_forever() -> None:
    while True:
        time.sleep(3600)
