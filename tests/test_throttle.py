"""The EPS throttle holds for the whole fleet: two worker processes on one source throttled to
300 EPS emit at that rate, and drop nothing."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from conftest import config_dict, source_dict, start_celery, stop_process, wait_for, write_config

from pipeline.demo_data import make_log_file

pytestmark = pytest.mark.slow

EPS = 300
FILES, RECORDS = 20, 150


def test_fleet_wide_eps_throttle(tmp_path, redis_server, redis_client, moto_endpoint, s3, bucket):
    rng = random.Random(3)
    start = datetime(2026, 11, 3, tzinfo=UTC)
    expected = set()
    for n in range(FILES):
        log = make_log_file(rng, "111122223333", "us-east-1", start + timedelta(minutes=n), RECORDS)
        s3.put_object(Bucket=bucket, Key=log.key, Body=log.body)
        expected.update(log.event_ids)
    source = source_dict(bucket, moto_endpoint, identifier="throttled", eps_throttle=EPS)
    config_path = write_config(tmp_path / "c.yaml", config_dict(redis_server.url, [source], batch_size=50))
    workers = [start_celery(["worker", "--concurrency", "2", "--loglevel", "info", "--hostname", f"t{n}@%h"],
                            config_path, tmp_path / f"w{n}.log") for n in (1, 2)]
    beat = start_celery(["beat", "--schedule", str(tmp_path / "beat")], config_path, tmp_path / "beat.log")
    try:
        wait_for(lambda: redis_client.xlen("trailpipe:events") == len(expected), timeout=120,
                 what="every event")
        entries = redis_client.xrange("trailpipe:events")
        ids = {fields[b"event_id"].decode() for _, fields in entries}
        assert ids == expected and len(entries) == len(expected)  # nothing dropped, nothing doubled
        first_ms = int(entries[0][0].split(b"-")[0])
        last_ms = int(entries[-1][0].split(b"-")[0])
        rate = (len(entries) - 50) / ((last_ms - first_ms) / 1000)  # the first batch goes at once
        print(f"\nthrottle: {len(entries)} events in {(last_ms - first_ms) / 1000:.1f}s = {rate:.0f} EPS (limit {EPS})")
        assert EPS * 0.9 <= rate <= EPS * 1.1
        assert int(redis_client.hget("trailpipe:src:throttled:stats", "throttle_wait_ms")) > 0
        # Both workers did the work (the limit is the fleet's, not each worker's).
        logs = [(tmp_path / f"w{n}.log").read_text() for n in (1, 2)]
        assert all("outcome=done" in log for log in logs)
    finally:
        stop_process(beat)
        for worker in workers:
            stop_process(worker)
