"""One clock, Redis's: processes whose clocks are 10 minutes ahead and behind join a fleet in
the middle of an ingest, and nothing changes: no object is handed on, nothing dead-lettered,
every event once. Real redis-server, moto S3, celery workers and beats; the skewed processes get
tests/support/skewed_clock on their PYTHONPATH (time.time, time.time_ns, datetime.now moved).
"""
from __future__ import annotations

import os
import random
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import REPO, celery_env, config_dict, source_dict, stop_process, stream_events, wait_for, write_config

from pipeline.demo_data import make_log_file
from workers.launch import celery_command

pytestmark = pytest.mark.slow

SKEWED_CLOCK = Path(__file__).parent / "support" / "skewed_clock"


def start_skewed(args: list[str], config_path: Path, log_path: Path, skew_seconds: float) -> subprocess.Popen:
    env = celery_env(config_path)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SKEWED_CLOCK), env.get("PYTHONPATH")]))
    env["TRAILPIPE_TEST_CLOCK_SKEW"] = str(skew_seconds)
    return subprocess.Popen(celery_command(*args), env=env,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, cwd=str(REPO))


def test_workers_and_a_beat_whose_clocks_are_wrong_join_mid_ingest(tmp_path, redis_server, redis_client,
                                                                    moto_endpoint, s3, bucket):
    rng = random.Random(18)
    when = datetime.now(UTC) - timedelta(hours=1)
    files = [make_log_file(rng, "123456789012", "us-east-1", when + timedelta(minutes=5 * n), 1500)
             for n in range(8)]
    for item in files:
        s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)
    expected = Counter(event_id for item in files for event_id in item.event_ids)
    config_path = write_config(tmp_path / "c.yaml", config_dict(
        redis_server.url, [source_dict(bucket, moto_endpoint, identifier="skew", eps_throttle=800)],
        batch_size=100, heartbeat_timeout_seconds=10, sweep_interval_seconds=5))
    on_time = skewed = []
    try:
        on_time = [start_skewed(["worker", "--concurrency", "1", "--loglevel", "info", "--hostname", "w0@%h"],
                                config_path, tmp_path / "w0.log", 0),
                   start_skewed(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "b0")],
                                config_path, tmp_path / "b0.log", 0)]
        wait_for(lambda: redis_client.xlen("trailpipe:events") >= 1000, 60, what="the ingest under way")
        skewed = [start_skewed(["worker", "--concurrency", "1", "--loglevel", "info", "--hostname", "ahead@%h"],
                               config_path, tmp_path / "ahead.log", 600),
                  start_skewed(["worker", "--concurrency", "1", "--loglevel", "info", "--hostname", "behind@%h"],
                               config_path, tmp_path / "behind.log", -600),
                  # A standby beat 10 minutes ahead: its sweep loop runs every 5 s all the same.
                  start_skewed(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "b1")],
                               config_path, tmp_path / "ahead-beat.log", 600)]

        def finished():
            stats = {k.decode(): int(v) for k, v in redis_client.hgetall("trailpipe:src:skew:stats").items()}
            return stats.get("objects_done", 0) + stats.get("objects_failed", 0) == len(files) and stats

        stats = wait_for(finished, 90, what="every object finished")
        assert stats.get("objects_failed", 0) == 0 and redis_client.xlen("trailpipe:deadletter") == 0
        got = Counter(e["event_id"].decode() for e in stream_events(redis_client))
        assert got == expected  # every event once
        for item in files:  # never handed on: one delivery each, no runner taken over
            record = {k.decode(): v.decode() for k, v in redis_client.hgetall(f"trailpipe:src:skew:obj:{item.key}").items()}
            assert record["state"] == "done" and record["attempts"] == "1", record
            assert "silent" not in record and "lost" not in record, record
        logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("w0", "ahead", "behind")}
        assert "outcome=superseded" not in "".join(logs.values())
        # The skewed workers did work (they joined mid-ingest and took objects).
        assert "outcome=done" in logs["ahead"] + logs["behind"], "the skewed workers took no object"
    finally:
        for process in [*skewed, *on_time]:
            stop_process(process)
