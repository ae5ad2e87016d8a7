"""Prometheus metrics and `status --json`, read from the shared state after a real ingest."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime

from conftest import REPO, config_dict, shared_log_files, source_dict, stop_process, upload, wait_for, write_config
from prometheus_client.parser import text_string_to_metric_families

from pipeline.discovery import discover
from pipeline.ingest import ingest_object
from pipeline.layout import delivery_time
from pipeline.metrics import lag, note_notification_latency, notification_families, source_metrics
from pipeline.redis_server import free_port


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_lag_does_not_grow_on_a_quiet_caught_up_source():
    ms = lambda hour: int(datetime(2026, 11, 1, hour, tzinfo=UTC).timestamp() * 1000)  # noqa: E731
    later = datetime(2026, 11, 1, 20, tzinfo=UTC)
    quiet = lag(ms(8), ms(8), pending=0, now=later)
    assert quiet["caught_up"] and quiet["ingest_lag_seconds"] == 0
    assert quiet["newest_object_age_seconds"] == 12 * 3600  # the trail's silence shows here, not as lag
    behind = lag(ms(9), ms(7), pending=3, now=later)
    assert not behind["caught_up"] and behind["ingest_lag_seconds"] == 2 * 3600
    nothing_done = lag(ms(9), None, pending=1, now=later)
    assert nothing_done["ingest_lag_seconds"] == 11 * 3600
    assert lag(None, None, pending=0, now=later) == {"newest_object_age_seconds": None,
                                                     "newest_ingested_age_seconds": None,
                                                     "ingest_lag_seconds": 0.0, "caught_up": True}


def test_notification_latency_histogram(make_runtime, bucket, redis_client, keys):
    runtime = make_runtime(bucket)
    state = runtime.state
    now = int(datetime.now(UTC).timestamp() * 1000)
    for key, sent_ago_ms in (("a", 400), ("b", 3_500), ("c", 4_000_000)):  # buckets 1 s, 5 s, +Inf
        redis_client.hset(keys.object("test-src", key), mapping={"state": "done", "notified_at": now - sent_ago_ms})
        note_notification_latency(state, "test-src", key)
    redis_client.hset(keys.object("test-src", "listed"), "state", "done")  # claimed by the listing
    note_notification_latency(state, "test-src", "listed")
    redis_client.hincrby(keys.stats("test-src"), "notifications.received.s3", 3)
    redis_client.hincrby(keys.stats("test-src"), "notifications.ignored.test", 1)
    row = source_metrics(state, "test-src", "AWSLogs/")
    note = row["notifications"]
    assert note["latency_count"] == 3 and 4_003.8 < note["latency_seconds_sum"] < 4_010
    assert note["latency_buckets"]["1"] == 1 and note["latency_buckets"]["2"] == 1
    assert note["latency_buckets"]["5"] == 2 and note["latency_buckets"]["3600"] == 2
    assert note["latency_buckets"]["+Inf"] == 3
    assert note["received"] == {"s3": 3} and note["ignored"] == {"test": 1}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in notification_families([row]) for s in family.samples}
    src = ("source", "test-src")
    assert samples[("trailpipe_notifications_received_total", (("kind", "s3"), src))] == 3
    assert samples[("trailpipe_notifications_ignored_total", (("kind", "test"), src))] == 1
    assert samples[("trailpipe_notification_to_stream_seconds_bucket", (("le", "5.0"), src))] == 2
    assert samples[("trailpipe_notification_to_stream_seconds_count", (src,))] == 3


def test_metrics_endpoint_and_status_json(tmp_path, make_runtime, s3, bucket, redis_server, moto_endpoint):
    files = shared_log_files()[:5]
    upload(s3, bucket, files)
    runtime = make_runtime(bucket)
    source = runtime.config.sources[0]
    queued = []
    discover(source, runtime.state, runtime.s3(source), lambda sid, key: queued.append(key))
    for key in queued:
        ingest_object(source, key, runtime.state, runtime.s3(source), runtime.limits)
    events = sum(len(records) for _, _, records in files)

    config_path = write_config(tmp_path / "c.yaml", config_dict(redis_server.url, [source_dict(bucket, moto_endpoint)]))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "workers.cli", "metrics", "-c", str(config_path), "--port", str(port)],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        samples = wait_for(lambda: _try_scrape(port), timeout=30, what="the metrics endpoint")
        src = (("source", "test-src"),)
        assert samples[("trailpipe_events_emitted_total", src)] == events
        assert samples[("trailpipe_objects_done_total", src)] == 5
        assert samples[("trailpipe_objects_dead_lettered_total", src)] == 0
        assert samples[("trailpipe_discoveries_total", src)] == 1
        assert samples[("trailpipe_s3_requests_total", (("kind", "GetObject"), ("source", "test-src")))] == 5
        lists = samples[("trailpipe_s3_requests_total", (("kind", "ListObjectsV2"), ("source", "test-src")))]
        assert lists >= 2  # partition search + the partition's listing
        assert samples[("trailpipe_s3_estimated_cost_usd_total", src)] > 0
        assert samples[("trailpipe_stream_length", (("stream", "trailpipe:events"),))] == events
        newest = max(delivery_time(key) for key in queued)  # the data is from 2024
        age = samples[("trailpipe_newest_object_age_seconds", src)]
        assert abs(age - (datetime.now(UTC) - newest).total_seconds()) < 60
        assert samples[("trailpipe_ingest_lag_seconds", src)] == 0 and samples[("trailpipe_caught_up", src)] == 1
        assert samples[("trailpipe_source_up", src)] == 1
        assert abs(samples[("trailpipe_last_discovery_timestamp_seconds", src)]
                   - datetime.now(UTC).timestamp()) < 120
    finally:
        stop_process(server)

    result = subprocess.run([sys.executable, "-m", "workers.cli", "status", "-c", str(config_path), "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    (row,) = json.loads(result.stdout)["sources"]
    assert row["events_emitted"] == events and row["objects_done"] == 5
    assert row["s3_requests"]["GetObject"] == 5 and row["caught_up"] and row["ingest_lag_seconds"] == 0
    assert row["health"]["state"] == "ok" and row["health"]["last_success"]
    assert set(row["health"]) == {"state", "error_class", "message", "since", "last_success", "denied_objects"}


def _try_scrape(port):
    try:
        return scrape(port)
    except OSError:
        return None


def test_integrity_violations_in_metrics_and_status(tmp_path, make_runtime, bucket, redis_server, moto_endpoint):
    from pipeline.metrics import TrailpipeCollector

    runtime = make_runtime(bucket)
    store = runtime.state
    store.record_violation("test-src", "digest_missing", "AWSLogs/d1.json.gz", "deleted?")
    store.record_violation("test-src", "digest_missing", "AWSLogs/d2.json.gz", "deleted?")
    store.record_violation("test-src", "log_file_hash_mismatch", "AWSLogs/l.json.gz", "other hash")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in TrailpipeCollector(runtime).collect() for s in family.samples}
    assert samples[("trailpipe_integrity_violations_total",
                    (("kind", "digest_missing"), ("source", "test-src")))] == 2
    assert samples[("trailpipe_integrity_violations_total",
                    (("kind", "log_file_hash_mismatch"), ("source", "test-src")))] == 1
    assert [v["key"] for v in store.violations("test-src")][0] == "AWSLogs/l.json.gz"  # newest first

    config_path = write_config(tmp_path / "c.yaml", config_dict(redis_server.url, [source_dict(bucket, moto_endpoint)]))
    result = subprocess.run([sys.executable, "-m", "workers.cli", "status", "-c", str(config_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "violations: digest_missing=2, log_file_hash_mismatch=1" in result.stdout, result.stdout


def test_never_discovered_source_is_not_caught_up():
    fresh = lag(None, None, pending=0, discovered=False)
    assert not fresh["caught_up"] and fresh["ingest_lag_seconds"] is None


def test_metrics_answers_503_in_one_line_while_redis_is_away_and_recovers(tmp_path, bucket, moto_endpoint):
    """`trailpipe metrics` with its Redis down: each scrape a 503 with one line, one log line per
    change, no traceback; Redis up again at the same address: the next scrape serves."""
    import urllib.error

    from pipeline.redis_server import RedisServer

    redis_port, port = free_port(), free_port()
    config_path = write_config(tmp_path / "c.yaml", config_dict(f"redis://127.0.0.1:{redis_port}/0",
                                                                [source_dict(bucket, moto_endpoint)]))
    process = subprocess.Popen([sys.executable, "-m", "workers.cli", "metrics", "-c", str(config_path),
                                "--port", str(port)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    server = None
    try:
        def answer():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()
            except OSError:
                return None

        code, body = wait_for(answer, 30, what="metrics listening")
        assert code == 503 and len(body.strip().splitlines()) == 1 and "cannot reach Redis" in body, body
        assert answer()[0] == 503
        server = RedisServer(tmp_path / "redis", port=redis_port).start()
        code, body = answer()
        assert code == 200 and "trailpipe_source_up" in body
    finally:
        stop_process(process)
        if server is not None:
            server.stop()
    log = process.stderr.read()
    assert "Traceback" not in log
    assert log.count("metrics unavailable (503)") == 1 and "metrics available again" in log, log


def test_metrics_without_a_run_says_so_and_does_not_wait(tmp_path, bucket, moto_endpoint):
    port = free_port()
    config = {"state_dir": str(tmp_path / "state"), "sources": [source_dict(bucket, moto_endpoint)]}
    config_path = write_config(tmp_path / "c.yaml", config)
    env = {k: v for k, v in os.environ.items() if k not in ("TRAILPIPE_REDIS_URL", "TRAILPIPE_STATE_DIR")}
    process = subprocess.Popen([sys.executable, "-m", "workers.cli", "metrics", "-c", str(config_path),
                                "--port", str(port)], cwd=REPO, stderr=subprocess.PIPE, text=True, env=env)
    try:
        import urllib.error

        def answer():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()
            except OSError:
                return None

        code, body = wait_for(answer, 30, what="metrics listening")
        assert code == 503 and "trailpipe run" in body and len(body.strip().splitlines()) == 1, body
        # `trailpipe run` starts its embedded Redis (and records its address): metrics serve it.
        from pipeline.embedded import EmbeddedRedis

        embedded = EmbeddedRedis(tmp_path / "state").start()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                assert response.status == 200 and "trailpipe_source_up" in response.read().decode()
        finally:
            embedded.stop()
    finally:
        stop_process(process)
    log = process.stderr.read()
    assert "no `trailpipe run` serves" in log and "Traceback" not in log, log
