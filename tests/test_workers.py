"""End to end with real processes: `celery worker` and `celery beat` ingest a bucket of real
CloudTrail records (../shared/data/open/) into the stream, each record exactly once.
"""
from __future__ import annotations

import gzip
import re
import subprocess
import sys
from collections import Counter

import orjson
import pytest
from conftest import (
    REPO,
    celery_env,
    config_dict,
    shared_log_files,
    source_dict,
    start_celery,
    stop_process,
    stream_events,
    upload,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

CORRUPT_KEY = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/07/31/123456789012_CloudTrail_us-east-1_20240731T2359Z_corruptcorruptco.json.gz"
DIGEST_KEY = "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/07/31/123456789012_CloudTrail-Digest_us-east-1_t_us-east-1_20240731T235900Z.json.gz"


def test_worker_and_beat_ingest_every_record_exactly_once(tmp_path, redis_server, redis_client,
                                                          moto_endpoint, s3, bucket):
    files = shared_log_files()
    upload(s3, bucket, files)
    s3.put_object(Bucket=bucket, Key=CORRUPT_KEY, Body=b"\x1f\x8b\x08\x00 this is not deflate")
    s3.put_object(Bucket=bucket, Key=DIGEST_KEY, Body=gzip.compress(b'{"Records":[{"eventID":"digest"}]}'))
    expected = Counter(orjson.dumps(r) for _, _, records in files for r in records)
    assert sum(expected.values()) >= 300

    config_path = write_config(tmp_path / "trailpipe.yaml", config_dict(
        redis_server.url, [source_dict(bucket, moto_endpoint, identifier="e2e")], batch_size=50))
    # The threads pool, as trailpipe run, the systemd unit and compose start workers.
    worker = start_celery(["worker", "--pool", "threads", "--concurrency", "8", "--loglevel", "info", "--hostname", "w1@%h"],
                          config_path, tmp_path / "worker.log")
    beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "beat-schedule")],
                        config_path, tmp_path / "beat.log")
    try:
        stats_key = "trailpipe:src:e2e:stats"

        def finished():
            stats = {k.decode(): int(v) for k, v in redis_client.hgetall(stats_key).items()}
            return stats.get("objects_done", 0) + stats.get("objects_failed", 0) == len(files) + 1 and stats

        stats = wait_for(finished, timeout=120, what="every object done or failed")
        assert stats["objects_done"] == len(files) and stats["objects_failed"] == 1
        events = stream_events(redis_client)
        got = Counter(e["event"] for e in events)
        assert got == expected  # every record present, none twice, nothing else (no digest)
        assert {e["source"] for e in events} == {b"e2e"}
        (dead,) = stream_events(redis_client, "trailpipe:deadletter")
        assert dead["object"] == CORRUPT_KEY.encode() and dead["error_class"] == b"CorruptGzip"

        # A second discovery, triggered by the CLI, finds nothing new and enqueues nothing.
        discoveries = stats["discoveries"]
        result = subprocess.run([sys.executable, "-m", "workers.cli", "discover", "-c", str(config_path), "e2e"],
                                env=celery_env(config_path), capture_output=True, text=True, timeout=60, cwd=REPO)
        assert result.returncode == 0, result.stderr
        assert "discovery of e2e enqueued on trailpipe.us-east-1" in result.stdout
        wait_for(lambda: int(redis_client.hget(stats_key, "discoveries")) > discoveries, timeout=60,
                 what="the second discovery")
        assert int(redis_client.hget(stats_key, "objects_enqueued")) == len(files) + 1
        assert redis_client.xlen("trailpipe:events") == sum(expected.values())
    finally:
        stop_process(beat)
        stop_process(worker)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "Task trailpipe.ingest_object" in log and "outcome=done" in log
    assert "CorruptGzip" in log
    assert "Traceback" not in log


def test_three_beats_on_one_source_emit_every_event_once(tmp_path, redis_server, redis_client,
                                                         moto_endpoint, s3, bucket):
    files = shared_log_files(account="210987654321")
    upload(s3, bucket, files)
    expected = Counter(orjson.dumps(r) for _, _, records in files for r in records)
    config_path = write_config(tmp_path / "trailpipe.yaml", config_dict(
        redis_server.url, [source_dict(bucket, moto_endpoint, identifier="triple")], batch_size=20))
    worker = start_celery(["worker", "--concurrency", "2", "--loglevel", "info", "--hostname", "w3@%h"],
                          config_path, tmp_path / "worker.log")
    beats = [start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / f"beat{n}")],
                          config_path, tmp_path / f"beat{n}.log") for n in range(3)]
    try:
        stats_key = "trailpipe:src:triple:stats"
        wait_for(lambda: int(redis_client.hget(stats_key, "objects_done") or 0) == len(files)
                 and int(redis_client.hget(stats_key, "discoveries") or 0) >= 1, timeout=120,
                 what="every object done")
        assert Counter(e["event"] for e in stream_events(redis_client)) == expected
        assert int(redis_client.hget(stats_key, "objects_enqueued")) == len(files)
    finally:
        for beat in beats:
            stop_process(beat)
        stop_process(worker)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    # Each beat asked for a discovery at start; the lease let them run one at a time.
    assert len(re.findall(r"Task trailpipe\.discover\[[^\]]+\] received", log)) >= 3
