"""The Celery app: queues per region, the beat schedule in Redis (celery-redbeat), HA beat."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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

from workers.launch import celery_command

CLI = [sys.executable, "-m", "workers.cli"]


def entry_every(redis_client, name: str) -> float | None:
    raw = redis_client.hget(f"trailpipe:redbeat:{name}", "definition")
    if raw is None:
        return None
    return json.loads(raw)["schedule"]["every"]


def sync(config_path):
    result = subprocess.run([*CLI, "schedule", "sync", "-c", str(config_path)], env=celery_env(config_path),
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_schedule_sync_adds_retimes_and_removes(tmp_path, redis_server, redis_client, moto_endpoint, bucket):
    sources = [source_dict(bucket, moto_endpoint, identifier="a", recurrence="15M"),
               source_dict(bucket, moto_endpoint, identifier="b", recurrence="2H", region="eu-west-1")]
    config_path = write_config(tmp_path / "c.yaml", config_dict(redis_server.url, sources))
    out = sync(config_path)
    assert "discover:a: every 15M on trailpipe.us-east-1" in out and "discover:b: every 2H on trailpipe.eu-west-1" in out
    assert entry_every(redis_client, "discover:a") == 900 and entry_every(redis_client, "discover:b") == 7200

    sources = [source_dict(bucket, moto_endpoint, identifier="a", recurrence="5M")]  # b removed, a re-timed
    write_config(config_path, config_dict(redis_server.url, sources))
    sync(config_path)
    assert entry_every(redis_client, "discover:a") == 300
    assert entry_every(redis_client, "discover:b") is None


def test_schedule_has_one_notification_consumer_per_queue(tmp_path, redis_server, redis_client, moto_endpoint, bucket):
    queue = {"queue_url": "https://sqs.us-east-1.amazonaws.com/111122223333/trail-events"}
    sources = [source_dict(bucket, moto_endpoint, identifier=name, recurrence="2H", sqs=queue)
               for name in ("a", "b")]  # two sources notified through one queue
    sources.append(source_dict(bucket, moto_endpoint, identifier="c"))  # listing only
    config_path = write_config(tmp_path / "c.yaml", config_dict(redis_server.url, sources))
    out = sync(config_path)
    assert "consume:a: every 20s on trailpipe.us-east-1" in out and "consume:b" not in out
    assert entry_every(redis_client, "consume:a") == 20 and entry_every(redis_client, "discover:a") == 7200
    definition = json.loads(redis_client.hget("trailpipe:redbeat:consume:a", "definition"))
    assert definition["task"] == "trailpipe.consume_notifications" and definition["args"] == ["a"]
    assert definition["options"]["expires"] == 20  # a run that waited a whole interval is dropped


@pytest.mark.slow
def test_two_beats_one_schedules(tmp_path, redis_server, redis_client, moto_endpoint, s3, bucket):
    files = shared_log_files(account="310987654321")[:10]
    upload(s3, bucket, files)
    config_path = write_config(tmp_path / "c.yaml", config_dict(
        redis_server.url, [source_dict(bucket, moto_endpoint, identifier="ha")]))
    worker = start_celery(["worker", "--concurrency", "1", "--loglevel", "info"], config_path, tmp_path / "w.log")
    beats = [start_celery(["beat", "--loglevel", "info"], config_path, tmp_path / f"beat{n}.log") for n in (1, 2)]
    try:
        wait_for(lambda: int(redis_client.hget("trailpipe:src:ha:stats", "objects_done") or 0) == len(files),
                 timeout=90, what="every object done")
        time.sleep(2)
        logs = [(tmp_path / f"beat{n}.log").read_text() for n in (1, 2)]
        assert sum("beat: Acquired lock" in log for log in logs) == 1  # one schedules, one stands by
        expected = Counter(orjson.dumps(r) for _, _, records in files for r in records)
        assert Counter(e["event"] for e in stream_events(redis_client)) == expected
        # The active beat dies: its lock expires and the standby takes over (lock timeout 90 s is
        # too long for a test; shown here by the lock key's TTL, bounded).
        ttl = redis_client.pttl("trailpipe:redbeat::lock")
        assert 0 < ttl <= 90_000
    finally:
        for beat in beats:
            stop_process(beat)
        stop_process(worker)


@pytest.mark.slow
def test_regional_workers_serve_only_their_region(tmp_path, redis_server, redis_client, moto_endpoint, s3):
    buckets = {}
    for region in ("us-east-1", "eu-west-1"):
        name = f"regional-{region}"
        s3.create_bucket(Bucket=name)
        files = shared_log_files(account="410987654321", region=region)[:6]
        upload(s3, name, files)
        buckets[region] = (name, {key for key, _, _ in files})
    sources = [source_dict(name, moto_endpoint, identifier=f"src-{region}", region=region)
               for region, (name, _) in buckets.items()]
    config_path = write_config(tmp_path / "c.yaml", config_dict(redis_server.url, sources))
    workers = {region: start_celery(["worker", "--concurrency", "1", "--loglevel", "info",
                                     "-Q", f"trailpipe.{region}", "--hostname", f"{region}@%h"],
                                    config_path, tmp_path / f"{region}.log")
               for region in buckets}
    try:
        subprocess.run([*CLI, "discover", "-c", str(config_path)], env=celery_env(config_path), check=True,
                       capture_output=True, timeout=60, cwd=REPO)
        total = sum(len(keys) for _, keys in buckets.values())
        wait_for(lambda: sum(int(redis_client.hget(f"trailpipe:src:src-{r}:stats", "objects_done") or 0)
                             for r in buckets) == total, timeout=90, what="both regions done")
        for region, (_, keys) in buckets.items():
            log = (tmp_path / f"{region}.log").read_text()
            other = next(r for r in buckets if r != region)
            assert f"discovered src-{region}" in log and f"discovered src-{other}" not in log
            assert all(key in log for key in keys)
            assert not any(key in log for key in buckets[other][1])
    finally:
        for worker in workers.values():
            stop_process(worker)


@pytest.mark.slow
def test_json_log_format(tmp_path, redis_server, redis_client, moto_endpoint, s3, bucket):
    files = shared_log_files(account="610987654321")[:2]
    upload(s3, bucket, files)
    config_path = write_config(tmp_path / "c.yaml", config_dict(
        redis_server.url, [source_dict(bucket, moto_endpoint, identifier="jsonlogs")]))
    env = dict(celery_env(config_path), TRAILPIPE_LOG_FORMAT="json")
    log_path = tmp_path / "w.log"
    worker = subprocess.Popen(celery_command("worker", "--concurrency", "1", "--loglevel", "info"), env=env, cwd=REPO, stdout=open(log_path, "wb"),
                              stderr=subprocess.STDOUT)
    try:
        subprocess.run([*CLI, "discover", "-c", str(config_path)], env=env, check=True, capture_output=True,
                       timeout=60, cwd=REPO)
        wait_for(lambda: int(redis_client.hget("trailpipe:src:jsonlogs:stats", "objects_done") or 0) == 2,
                 timeout=60, what="the objects")
    finally:
        stop_process(worker)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    objects = [line for line in lines if line.get("outcome") == "done"]
    assert {line["key"] for line in objects} == {key for key, _, _ in files}
    assert all(line["source"] == "jsonlogs" and line["records"] > 0 and "duration" in line for line in objects)
    assert any(line["message"].startswith("Task trailpipe.ingest_object") for line in lines)


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_celery_without_a_config_fails_at_once_with_one_line(command, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TRAILPIPE_CONFIG", "TRAILPIPE_REDIS_URL")}
    result = subprocess.run(celery_command(command), env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "TRAILPIPE_CONFIG is not set" in lines[0], result.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{identifier: x, bucket: B!}]\n")
    result = subprocess.run(celery_command(command),
                            env=dict(env, TRAILPIPE_CONFIG=str(bad)), cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "source 'x' field 'bucket'" in result.stderr


def test_redbeat_url_is_given_without_its_credentials():
    from workers.app import redbeat_connection

    assert redbeat_connection("redis://127.0.0.1:6379/0") == ("redis://127.0.0.1:6379/0", {})
    assert redbeat_connection("rediss://us%40r:p%3Ass@redis.local:6380/2?ssl_ca_certs=/ca.pem") == (
        "rediss://redis.local:6380/2?ssl_ca_certs=/ca.pem", {"username": "us@r", "password": "p:ss"})
    assert redbeat_connection("redis://:only-pass@h:1/0") == ("redis://h:1/0", {"password": "only-pass"})


@pytest.mark.slow
def test_no_password_in_the_configuration_a_worker_reports(tmp_path, moto_endpoint, bucket):
    """What `celery inspect conf` and Flower's worker page show: the conf table of a running worker."""
    from celery import Celery
    from support.redis_servers import with_password

    from pipeline.redis_server import RedisServer

    password = "conf-pa55-Zq19"
    with RedisServer(tmp_path / "redis", appendonly=False) as server:
        with_password(server, password)
        url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        config_path = write_config(tmp_path / "c.yaml", config_dict(url, [source_dict(bucket, moto_endpoint)]))
        worker = start_celery(["worker", "--concurrency", "1", "--hostname", "conf@%h"], config_path,
                              tmp_path / "worker.log")
        probe = Celery("probe", broker=url)
        try:
            replies = wait_for(lambda: probe.control.inspect(timeout=2).conf(), timeout=60, what="inspect conf")
            reported = json.dumps(replies)
            assert "redbeat_redis_url" in reported and "broker_url" in reported
            assert password not in reported, reported
            # The credentials still reach redbeat: the schedule is written through them.
            assert "discover:test-src" in sync(config_path)
            assert redis_client_of(url).exists("trailpipe:redbeat:discover:test-src")
        finally:
            probe.close()
            stop_process(worker)
        assert password not in (tmp_path / "worker.log").read_text()


def redis_client_of(url: str):
    import redis

    return redis.Redis.from_url(url)


BATCH_PROBE = """
import json, sys
import redis.connection
sends = []
real = redis.connection.AbstractConnection.send_packed_command
def counted(self, command, *args, **kwargs):
    sends.append(1)
    return real(self, command, *args, **kwargs)
redis.connection.AbstractConnection.send_packed_command = counted
from workers.tasks import batched_enqueues
keys = [f"AWSLogs/1/CloudTrail/us-east-1/2024/01/01/k{n}.json.gz" for n in range(int(sys.argv[1]))]
with batched_enqueues() as enqueue:
    enqueue("batched", keys[0])  # the producer's connection is made here
    before = len(sends)
    for key in keys[1:]:
        enqueue("batched", key)
    held = len(sends) - before
    buffering = enqueue.buffering
    enqueue.flush()
    flushed = len(sends) - before - held
print(json.dumps({"held": held, "flushed": flushed, "buffering": buffering}))
"""


def test_a_discovery_sends_its_ingest_tasks_in_batches(tmp_path, redis_server, redis_client, moto_endpoint, bucket):
    """The discovery task's enqueues (workers.tasks.batched_enqueues, kombu's Producer.batch):
    nothing is sent while they are held, then one round trip sends them all; each is a task
    message a worker runs as any other (the end-to-end tests: test_workers, test_chaos)."""
    config_path = write_config(tmp_path / "trailpipe.yaml", config_dict(
        redis_server.url, [source_dict(bucket, moto_endpoint, identifier="batched")]))
    queue = "trailpipe.us-east-1"
    redis_client.delete(queue)
    result = subprocess.run([sys.executable, "-c", BATCH_PROBE, "120"], env=celery_env(config_path), cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    sent = json.loads(result.stdout.strip().splitlines()[-1])
    assert sent == {"held": 0, "flushed": 1, "buffering": True}, sent
    messages = [json.loads(raw) for raw in redis_client.lrange(queue, 0, -1)]
    redis_client.delete(queue)
    assert len(messages) == 120
    assert {m["headers"]["task"] for m in messages} == {"trailpipe.ingest_object"}
    assert len({m["headers"]["id"] for m in messages}) == 120
