"""The sweep: one loop for every source (pipeline.sweeper), in beat's process."""
from __future__ import annotations

import base64
import json
import time

import pytest
from conftest import config_dict, source_dict, start_celery, stop_process, wait_for, write_config

from pipeline.config import parse_config
from pipeline.runtime import Runtime
from pipeline.sweeper import Sweeper, sweep_all


def sources(bucket: str, endpoint: str, count: int) -> list[dict]:
    return [source_dict(bucket, endpoint, identifier=f"s{n:03d}") for n in range(count)]


def test_sweep_all_enqueues_the_overdue_objects_of_every_source(redis_server, redis_client, moto_endpoint, keys):
    config = parse_config(config_dict(redis_server.url, sources("bucket-sweep", moto_endpoint, 300)))
    runtime = Runtime(config)
    state = runtime.state
    for source in config.sources:
        state.claim(source.identifier, "overdue", 1)
        state.claim(source.identifier, "fresh", 1)
        redis_client.zadd(keys.pending(source.identifier), {"overdue": 0})
    state.set_health("s007", False, "SignatureDoesNotMatch", "wrong secret")  # failing: waits
    enqueued: list[tuple[str, str]] = []
    started = time.monotonic()
    assert sweep_all(config.sources, state, lambda sid, key: enqueued.append((sid, key))) == 299
    spent = time.monotonic() - started
    assert sorted(enqueued) == [(f"s{n:03d}", "overdue") for n in range(300) if n != 7]
    assert sweep_all(config.sources, state, lambda sid, key: enqueued.append((sid, key))) == 0  # re-armed
    assert spent < 5, f"one round over 300 sources took {spent:.1f} s"


def test_the_sweeper_keeps_its_cadence_and_survives_a_failing_round():
    rounds: list[float] = []

    def once():
        rounds.append(time.monotonic())
        if len(rounds) == 2:
            raise RuntimeError("a round that fails")
        time.sleep(0.05)

    sweeper = Sweeper(once, 0.2).start()
    time.sleep(1.1)
    sweeper.stop()
    gaps = [b - a for a, b in zip(rounds, rounds[1:])]
    assert len(rounds) >= 5 and all(0.15 <= gap <= 0.3 for gap in gaps), gaps


@pytest.mark.slow
def test_beat_sweeps_every_source_every_interval(tmp_path, redis_server, redis_client, moto_endpoint, keys):
    """A real beat with 100 sources: each source's overdue object is enqueued in the first round,
    and each is swept again every interval (its re-armed deadline found due again)."""
    count = 100
    config_path = write_config(tmp_path / "c.yaml", config_dict(
        redis_server.url, sources("bucket-sweep", moto_endpoint, count), sweep_interval_seconds=5,
        requeue_after_seconds=60))
    for n in range(count):
        redis_client.hset(keys.object(f"s{n:03d}", "lost"), mapping={"state": "claimed", "checkpoint": 0})
        redis_client.zadd(keys.pending(f"s{n:03d}"), {"lost": 0})
    beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "bs")], config_path,
                        tmp_path / "beat.log")

    def swept() -> set[str]:
        found = set()
        for raw in redis_client.lrange("trailpipe.us-east-1", 0, -1):
            message = json.loads(raw)
            if message["headers"]["task"] == "trailpipe.ingest_object":
                found.add(json.loads(base64.b64decode(message["body"]))[0][0])
        return found

    try:
        wait_for(lambda: len(swept()) == count, 30, what="every source's object enqueued")
        redis_client.delete("trailpipe.us-east-1")
        for n in range(count):  # overdue again (as if requeue_after had passed): the next round finds it
            redis_client.zadd(keys.pending(f"s{n:03d}"), {"lost": 0})
        wait_for(lambda: len(swept()) == count, 12, what="every source swept again within two intervals")
    finally:
        stop_process(beat)
