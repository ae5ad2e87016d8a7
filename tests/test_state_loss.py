"""State loss is said, not silent: a Redis that persists nothing is reported (status, metrics,
check, the log); a reset under a running worker and beat is logged, counted once and shown;
``ignore_older`` bounds what a new or reset source ingests, while backfill still reaches it."""
from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest
import redis
from conftest import REPO, config_dict, source_dict, stop_process, wait_for, write_config
from prometheus_client import CollectorRegistry, generate_latest

from pipeline.backfill import backfill
from pipeline.config import load_config, parse_config
from pipeline.demo_data import make_bucket_files
from pipeline.discovery import discover
from pipeline.metrics import TrailpipeCollector
from pipeline.redis_server import RedisServer
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.state_watch import StateWatch, read_persistence


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=dict({k: v for k, v in os.environ.items() if not k.startswith("TRAILPIPE_")},
                                                PYTHONPATH=str(REPO)))


def _scrape(config_path) -> str:
    registry = CollectorRegistry()
    runtime = Runtime(load_config(config_path))
    registry.register(TrailpipeCollector(runtime))
    try:
        return generate_latest(registry).decode()
    finally:
        runtime.redis.close()


def test_a_redis_that_persists_nothing_is_reported_in_status_metrics_and_check(tmp_path, moto_endpoint, bucket):
    server = RedisServer(tmp_path / "volatile", appendonly=False).start()  # --appendonly no --save ""
    try:
        client = redis.Redis(port=server.port)
        assert client.config_get("appendonly") == {"appendonly": "no"} and client.config_get("save") == {"save": ""}
        config_path = write_config(tmp_path / "c.yaml", config_dict(server.url, [source_dict(bucket, moto_endpoint)]))

        view = orjson.loads(_cli("status", "-c", str(config_path), "--json", cwd=tmp_path).stdout)["redis"]
        assert view["persistent"] is False and view["mode"] == "none"
        assert f"Redis at 127.0.0.1:{server.port} persists nothing (appendonly no, no save rules)" in view["message"]
        assert "ingests its history again" in view["message"] and "appendonly yes" in view["message"]

        text = _cli("status", "-c", str(config_path), cwd=tmp_path).stdout
        assert f"redis: WARNING: Redis at 127.0.0.1:{server.port} persists nothing" in text

        assert "\ntrailpipe_redis_persistent 0.0\n" in _scrape(config_path)

        check = _cli("check", "-c", str(config_path), cwd=tmp_path).stdout
        assert f"[WARN] persistence: Redis at 127.0.0.1:{server.port} persists nothing" in check

        client.config_set("save", "60 1")  # RDB snapshots: it keeps something
        assert read_persistence(client).mode == "rdb" and "\ntrailpipe_redis_persistent 1.0\n" in _scrape(config_path)
        client.config_set("save", "")
        client.config_set("appendonly", "yes")
        wait_for(lambda: read_persistence(client).mode == "aof", timeout=10, what="AOF on")
        check = _cli("check", "-c", str(config_path), cwd=tmp_path).stdout
        assert f"[ok]   persistence: Redis at 127.0.0.1:{server.port} persists its state (AOF)" in check
        client.close()
    finally:
        server.stop()


def test_a_redis_that_hides_config_and_has_aof_off_cannot_be_told(tmp_path):
    """CONFIG renamed away (as on the embedded server, which has AOF on): read from INFO alone."""
    server = RedisServer(tmp_path / "hidden", appendonly=False, password="pw-for-this-test").start()
    try:
        client = redis.Redis(port=server.port, password="pw-for-this-test")
        persistence = read_persistence(client)
        assert persistence.mode == "unknown" and persistence.persistent is None and persistence.gauge == -1
        assert "CONFIG GET is not allowed" in persistence.message
        client.close()
    finally:
        server.stop()


def test_the_epoch_counts_each_reset_once_whoever_sees_it(redis_client):
    keys = Settings.default().keys
    first = StateWatch(redis_client, keys, "worker@a", 5)
    second = StateWatch(redis_client, keys, "beat@b", 5)
    assert first.check() == 0 and second.check() == 0 and first.remembered == second.remembered
    redis_client.flushall()
    late = StateWatch(redis_client, keys, "worker@c", 5)  # started after the reset: it cannot know
    assert late.check() == 0
    assert second.check() == 1  # the epoch changed under it: a reset, counted now
    assert first.check() == 2  # seen again, not counted again
    assert int(redis_client.hget(keys.resets(), "count")) == 1
    assert first.remembered == second.remembered == late.remembered
    redis_client.delete(keys.epoch())  # gone again (eviction, FLUSHDB): the first to look counts it
    assert first.check() == 1 and second.check() == 2 and late.check() == 2
    assert int(redis_client.hget(keys.resets(), "count")) == 2


@pytest.mark.slow
def test_a_reset_under_a_running_worker_and_beat_is_logged_and_shown(tmp_path, moto_endpoint, s3, bucket):
    """FLUSHALL under `trailpipe run` (worker + beat) on the test's own Redis: the reset is logged,
    counted once and shown; beat, whose redbeat lock vanished too, is restarted and lists again."""
    server = RedisServer(tmp_path / "redis").start()  # the test's own Redis: FLUSHALL hurts nobody else
    run = None
    try:
        for log in make_bucket_files(seed=3, files=3):
            s3.put_object(Bucket=bucket, Key=log.key, Body=log.body)
        config_path = write_config(tmp_path / "c.yaml", config_dict(
            server.url, [source_dict(bucket, moto_endpoint, identifier="reset")], sweep_interval_seconds=5,
            state_dir=str(tmp_path / "state")))
        env = dict({k: v for k, v in os.environ.items() if not k.startswith("TRAILPIPE_")}, PYTHONPATH=str(REPO))
        log_path = tmp_path / "run.log"
        run = subprocess.Popen([sys.executable, "-m", "workers.cli", "run", "-c", str(config_path), "--concurrency",
                                "1"], cwd=tmp_path, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(server.url)
        logs = lambda: log_path.read_text(errors="replace")  # noqa: E731
        wait_for(lambda: logs().count("persists its state (AOF)") >= 3, timeout=90,
                 what="run, worker and beat saying how Redis persists")
        wait_for(lambda: client.hget("trailpipe:src:reset:stats", "objects_done") == b"3", timeout=90,
                 what="the files ingested")
        epoch = client.get("trailpipe:epoch")
        assert epoch and "state reset" not in logs()

        client.flushall()  # what a restart of a Redis that persists nothing does
        wait_for(lambda: "state reset: the Redis at" in logs(), timeout=60, what="the reset logged")
        assert f"(epoch {epoch.decode()} gone" in logs()
        wait_for(lambda: client.hget("trailpipe:src:reset:stats", "objects_done") == b"3", timeout=120,
                 what="the source listed again from the top and ingested again")

        view = orjson.loads(_cli("status", "-c", str(config_path), "--json", cwd=tmp_path).stdout)["redis"]
        assert view["resets"] == 1 and view["epoch"] not in (None, epoch.decode())
        assert view["last_reset_detected_by"].split("@")[0] in ("worker", "beat")
        text = _cli("status", "-c", str(config_path), cwd=tmp_path).stdout
        assert "state resets seen: 1 (last at" in text
        assert "\ntrailpipe_state_resets_total 1.0\n" in _scrape(config_path)
        client.close()
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=90) == 0
    finally:
        if run is not None:
            stop_process(run, timeout=60)
        server.stop()


# -- ignore_older --------------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _files(s3, bucket, start: datetime, count: int, seed: int):
    files = make_bucket_files(seed=seed, files=count, min_records=5, max_records=10, start=start)
    for log in files:
        s3.put_object(Bucket=bucket, Key=log.key, Body=log.body)
    return files


def test_ignore_older_bounds_a_new_or_reset_source_and_backfill_still_reaches_the_rest(
        make_runtime, s3, bucket, redis_client):
    old = _files(s3, bucket, NOW - timedelta(days=10), 6, seed=1)  # delivered 10 days ago
    # In one partition: one file half an hour before the cutoff (now - 3 days), one after it.
    edge = _files(s3, bucket, NOW - timedelta(days=3, minutes=30), 1, seed=2)
    recent = _files(s3, bucket, NOW - timedelta(days=3) + timedelta(minutes=30), 1, seed=6)
    recent += _files(s3, bucket, NOW - timedelta(hours=5), 6, seed=3)
    runtime = make_runtime(bucket, ignore_older="3D")
    source = runtime.config.sources[0]
    enqueued: list[str] = []

    def discover_now():
        enqueued.clear()
        return discover(source, runtime.state, runtime.s3(source), lambda sid, key: enqueued.append(key), now=NOW)

    first = discover_now()  # the first listing: only what was delivered in the last 3 days
    assert sorted(enqueued) == sorted(log.key for log in recent)
    assert first.ignored_older == 0  # the listing started at the cutoff: the old files were not even listed

    # The edge file lies within lookback (2H) of its partition's marker, but before the cutoff:
    # the lookback never reaches behind now - ignore_older either.
    again = discover_now()
    assert enqueued == [] and again.enqueued == 0

    redis_client.flushall()  # the state is lost: the source starts over, bounded again
    discover_now()
    assert sorted(enqueued) == sorted(log.key for log in recent)

    progress = backfill(source, runtime.state, runtime.s3(source), date(2026, 11, 1), NOW.date(), runtime.limits)
    assert progress.objects_done == len(old) + len(edge)  # backfill reaches them
    assert progress.objects_skipped == len(recent)  # already claimed by the listing: once


def test_without_ignore_older_a_new_source_ingests_everything(make_runtime, s3, bucket):
    files = _files(s3, bucket, NOW - timedelta(days=10), 3, seed=4) + _files(s3, bucket, NOW, 2, seed=5)
    runtime = make_runtime(bucket)
    source = runtime.config.sources[0]
    assert source.ignore_older is None
    enqueued: list[str] = []
    discover(source, runtime.state, runtime.s3(source), lambda sid, key: enqueued.append(key), now=NOW)
    assert sorted(enqueued) == sorted(log.key for log in files)


def test_ignore_older_filters_keys_without_a_delivery_time_by_last_modified(make_runtime, s3, bucket):
    """Keys of another layout carry no delivery time: S3's LastModified decides (all new here)."""
    for n in range(3):
        s3.put_object(Bucket=bucket, Key=f"AWSLogs/custom/{n}.json.gz", Body=gzip.compress(b'{"Records": []}'))
    runtime = make_runtime(bucket, ignore_older="1D")
    source = runtime.config.sources[0]
    enqueued: list[str] = []
    now = datetime.now(UTC)
    result = discover(source, runtime.state, runtime.s3(source), lambda sid, key: enqueued.append(key), now=now)
    assert len(enqueued) == 3 and result.ignored_older == 0
    runtime.redis.flushall()
    later = discover(source, runtime.state, runtime.s3(source), lambda sid, key: enqueued.append(key),
                     now=now + timedelta(days=2))  # two days on, a reset: they are older than a day
    assert later.enqueued == 0 and later.ignored_older == 3


def test_ignore_older_must_cover_lookback():
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config(config_dict("redis://127.0.0.1:1/0", [source_dict("b-bucket", "http://127.0.0.1:1",
                                                                       ignore_older="1H")]))
    assert caught.value.problems == ["source 'test-src' field 'ignore_older': must be at least the source's "
                                     "lookback (2H), or late files inside it would be ignored"]
