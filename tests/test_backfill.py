"""Backfill of history from the date folders, beside the live pipeline."""
from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime

from conftest import REPO, config_dict, source_dict, stream_events, write_config

from pipeline.backfill import backfill, history_keys
from pipeline.demo_data import make_log_file
from pipeline.discovery import discover
from pipeline.ingest import ingest_object


def fill(s3, bucket):
    rng = random.Random(11)
    logs = []
    for day in range(1, 6):  # Nov 1..5, two regions
        for region in ("us-east-1", "eu-west-1"):
            when = datetime(2026, 11, day, 12, tzinfo=UTC)
            log = make_log_file(rng, "111122223333", region, when, 20)
            s3.put_object(Bucket=bucket, Key=log.key, Body=log.body)
            logs.append((when.date(), log))
    return logs


def test_history_keys_by_date_folder(make_runtime, s3, bucket):
    logs = fill(s3, bucket)
    runtime = make_runtime(bucket)
    source = runtime.config.sources[0]
    keys = list(history_keys(source, runtime.s3(source), date(2026, 11, 2), date(2026, 11, 3)))
    assert sorted(keys) == sorted(log.key for day, log in logs if date(2026, 11, 2) <= day <= date(2026, 11, 3))


def test_backfill_beside_live_discovery_ingests_each_once(make_runtime, s3, bucket, redis_client):
    logs = fill(s3, bucket)
    runtime = make_runtime(bucket)
    source = runtime.config.sources[0]
    # The live pipeline has already claimed part of it.
    live = []
    discover(source, runtime.state, runtime.s3(source), lambda sid, key: live.append(key),
             now=datetime(2026, 11, 5, 13, tzinfo=UTC))
    assert len(live) == len(logs)
    for key in live[:4]:
        ingest_object(source, key, runtime.state, runtime.s3(source), runtime.limits)
    progress = backfill(source, runtime.state, runtime.s3(source), date(2026, 11, 1), date(2026, 11, 5),
                        runtime.limits)
    assert progress.objects_total == len(logs) and progress.objects_skipped == len(logs)  # all known
    assert progress.objects_done == 0
    expected = Counter(i for _, log in logs for i in log.event_ids)
    # A fresh source identity has no claims: the backfill ingests everything, once.
    other = make_runtime(bucket, identifier="history")
    src = other.config.sources[0]
    progress = backfill(src, other.state, other.s3(src), date(2026, 11, 1), date(2026, 11, 5), other.limits)
    assert progress.objects_done == len(logs) and progress.events == sum(expected.values())
    got = Counter(e["event_id"].decode() for e in stream_events(redis_client) if e["source"] == b"history")
    assert got == expected
    again = backfill(src, other.state, other.s3(src), date(2026, 11, 1), date(2026, 11, 5), other.limits)
    assert again.objects_done == 0 and again.objects_skipped == len(logs)
    assert other.state.markers("history") == {}  # backfill never moves the markers


def test_backfill_command_prints_progress(tmp_path, s3, bucket, redis_server, moto_endpoint, redis_client):
    fill(s3, bucket)
    config_path = write_config(tmp_path / "c.yaml", config_dict(redis_server.url, [source_dict(bucket, moto_endpoint)]))
    result = subprocess.run([sys.executable, "-m", "workers.cli", "backfill", "-c", str(config_path), "test-src",
                             "--since", "2026-11-04", "--until", "2026-11-05"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "backfill: objects 4/4" in result.stderr and "ev/s" in result.stderr  # plain lines off a terminal
    assert "4 objects, 80 events" in result.stdout
    assert redis_client.xlen("trailpipe:events") == 80
