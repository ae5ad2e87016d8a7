"""Chaos: 200 objects (100k events) through two real worker processes while a driver SIGKILLs
worker children, restarts the Redis server once (AOF on), and S3 traffic goes through a proxy
that fails about 10% of requests. At the end every eventID is in the stream exactly once and
every object is done or dead-lettered with a reason.
"""
from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from datetime import UTC

import psutil
import pytest
import redis
from conftest import config_dict, source_dict, start_celery, stop_process, wait_for, write_config
from support.fault_proxy import FaultProxy

from pipeline.demo_data import ACCOUNTS, REGIONS, make_log_file
from pipeline.redis_server import RedisServer

pytestmark = pytest.mark.slow

OBJECTS = int(os.environ.get("TRAILPIPE_CHAOS_OBJECTS", "200"))
RECORDS_PER_OBJECT = int(os.environ.get("TRAILPIPE_CHAOS_RECORDS", "500"))
MIN_KILLS = 20
MAX_KILLS = 40
TIMEOUT_SECONDS = 420


def generate_bucket(s3, bucket):
    from datetime import datetime, timedelta

    rng = random.Random(42)
    start = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    expected: Counter[str] = Counter()
    for index in range(OBJECTS):
        log = make_log_file(rng, ACCOUNTS[index % 3], REGIONS[(index // 3) % 3],
                            start + timedelta(minutes=index), RECORDS_PER_OBJECT)
        s3.put_object(Bucket=bucket, Key=log.key, Body=log.body)
        expected.update(log.event_ids)
    return expected


def worker_children(workers) -> list[psutil.Process]:
    children = []
    for worker in workers:
        try:
            children += psutil.Process(worker.pid).children()
        except psutil.NoSuchProcess:
            pass
    return children


def read_stats(client) -> dict[str, int]:
    try:
        return {k.decode(): int(v) for k, v in client.hgetall("trailpipe:src:chaos:stats").items()}
    except redis.RedisError:
        return {}


def test_chaos(tmp_path, moto_endpoint, s3, bucket):
    run_chaos(tmp_path, moto_endpoint, s3, bucket)


def run_chaos(tmp_path, moto_endpoint, s3, bucket, **settings):
    """The scenario; ``settings`` go into the config (``broker_url``: tests/test_rabbitmq.py)."""
    expected = generate_bucket(s3, bucket)
    assert len(expected) == OBJECTS * RECORDS_PER_OBJECT  # eventIDs are unique

    server = RedisServer(tmp_path / "redis", extra_args=("--appendfsync", "always")).start()
    proxy = FaultProxy(moto_endpoint, fault_rate=0.10).start()
    source = source_dict(bucket, proxy.url, identifier="chaos", directory_prefix="AWSLogs/")
    config_path = write_config(tmp_path / "chaos.yaml", config_dict(
        server.url, [source], batch_size=100, requeue_after_seconds=60, visibility_timeout_seconds=90, **settings))
    workers = [start_celery(["worker", "--concurrency", "2", "--loglevel", "info", "--hostname", f"chaos{n}@%h"],
                            config_path, tmp_path / f"worker{n}.log") for n in (1, 2)]
    beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "beat-schedule")],
                        config_path, tmp_path / "beat.log")
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    rng = random.Random(7)
    kills = restarts = 0
    started = time.monotonic()
    try:
        # Children killed while the pool is still starting make Celery give up ("Could not start
        # worker processes"): the chaos begins once both workers are ready.
        wait_for(lambda: all("ready." in (tmp_path / f"worker{n}.log").read_text(errors="replace")
                             for n in (1, 2)), timeout=60, what="both workers ready")
        while time.monotonic() - started < TIMEOUT_SECONDS:
            dead_workers = [n for n, w in enumerate(workers, 1) if w.poll() is not None]
            assert not dead_workers, "worker processes exited: " + "\n".join(
                f"worker{n} (exit {workers[n - 1].returncode}), its log ends:\n"
                + "".join((tmp_path / f"worker{n}.log").read_text(errors="replace").splitlines(True)[-40:])
                for n in dead_workers)
            stats = read_stats(client)
            finished = stats.get("objects_done", 0) + stats.get("objects_failed", 0)
            if finished >= OBJECTS and kills >= MIN_KILLS:
                break
            if restarts == 0 and stats.get("events_emitted", 0) >= len(expected) // 3:
                server.stop()  # SIGTERM: AOF (fsync always) holds every write made
                time.sleep(1.5)
                server.start()
                restarts += 1
                continue
            children = worker_children(workers) if kills < MAX_KILLS else []
            if children:
                victim = rng.choice(children)
                try:
                    victim.send_signal(signal.SIGKILL)
                    kills += 1
                except psutil.NoSuchProcess:
                    pass
            time.sleep(rng.uniform(0.2, 0.8))
        elapsed = time.monotonic() - started
        proxy.enabled = False
        stats = read_stats(client)
        stream = Counter()
        last = "-"
        while True:  # read the stream in pages
            page = client.xrange("trailpipe:events", min=last, count=10_000)
            if last != "-":
                page = page[1:]
            if not page:
                break
            stream.update(fields[b"event_id"].decode() for _, fields in page)
            last = page[-1][0]
        duplicates = sum(count - 1 for count in stream.values() if count > 1)
        losses = sum(1 for event_id in expected if event_id not in stream)
        dead = client.xrange("trailpipe:deadletter")
        print(f"\nchaos: objects={OBJECTS} events={len(expected)} emitted={sum(stream.values())} "
              f"duplicates={duplicates} losses={losses} kills={kills} redis_restarts={restarts} "
              f"s3_requests={proxy.counts['requests']} faults={proxy.faults} "
              f"({', '.join(f'{k}={v}' for k, v in sorted(proxy.counts.items()) if k != 'requests')}) "
              f"dead_lettered={len(dead)} done={stats.get('objects_done')} seconds={elapsed:.1f}")
        assert kills >= MIN_KILLS and restarts == 1 and proxy.faults > 0
        assert duplicates == 0, f"{duplicates} events emitted twice"
        dead_keys = {fields[b"object"].decode() for _, fields in dead}
        assert all(fields[b"message"] for _, fields in dead)
        if losses:  # only the records of dead-lettered objects may be missing, and none should be
            raise AssertionError(f"{losses} events lost; dead letters: {[(f[b'object'], f[b'message']) for _, f in dead]}")
        assert stats.get("objects_done", 0) + stats.get("objects_failed", 0) == OBJECTS
        assert not dead_keys, f"objects dead-lettered under chaos: {dead_keys}"
    finally:
        stop_process(beat)
        for worker in workers:
            stop_process(worker, timeout=40)
        proxy.stop()
        server.stop()
