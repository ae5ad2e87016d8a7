"""The trailpipe command: status, tail, run (embedded Redis) and the demo, as a user runs them."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import orjson
import pytest
import redis

from conftest import upload, REPO, config_dict, shared_log_files, source_dict, stop_process, wait_for, write_config
from pipeline.ingest import ingest_object

CLI = [sys.executable, "-m", "workers.cli"]


def cli(*args, cwd=REPO, timeout=120, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          stdin=subprocess.DEVNULL, env=env)


def test_status_and_tail(tmp_path, make_runtime, s3, bucket, redis_server):
    files = shared_log_files()[:3]
    upload(s3, bucket, files)
    runtime = make_runtime(bucket)
    source = runtime.config.sources[0]
    for key, _, _ in files:
        ingest_object(source, key, runtime.state, runtime.s3(source), runtime.limits)
    token = runtime.state.acquire_lease(source.identifier, 1000)
    runtime.state.reset_markers(source.identifier, token, "AWSLogs/")
    runtime.state.advance_marker(source.identifier, token, "AWSLogs/", "", files[-1][0])
    total = sum(len(records) for _, _, records in files)
    config_path = write_config(tmp_path / "c.yaml", config_dict(
        redis_server.url, [source_dict(bucket, s3.meta.endpoint_url)]))

    result = cli("status", "-c", str(config_path))
    assert result.returncode == 0, result.stderr
    assert f"marker='{files[-1][0]}'" in result.stdout
    assert f"done=3 failed=0 pending=0  events emitted={total}" in result.stdout

    result = cli("status", "-c", str(config_path), "--json")
    status = json.loads(result.stdout)
    (row,) = status["sources"]
    assert row["source"] == "test-src" and row["objects_done"] == 3 and row["events_emitted"] == total
    assert row["prefix"] == "AWSLogs/" and status["stream_length"] == total

    result = cli("tail", "-c", str(config_path), "-n", "2", "--raw")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    last_records = files[-1][2][-2:]
    assert [orjson.loads(line["event"]) for line in lines] == last_records
    result = cli("tail", "-c", str(config_path), "-n", "1")
    assert last_records[-1].get("eventName", "") in result.stdout


@pytest.mark.slow
def test_run_starts_embedded_redis_and_ingests(tmp_path, moto_endpoint, s3, bucket):
    files = shared_log_files()[:4]
    upload(s3, bucket, files)
    config_path = write_config(tmp_path / "c.yaml", {"sources": [source_dict(bucket, moto_endpoint)]})
    env = {k: v for k, v in os.environ.items() if k != "TRAILPIPE_REDIS_URL"}
    log = open(tmp_path / "run.log", "w+")
    process = subprocess.Popen([*CLI, "run", "-c", str(config_path), "--concurrency", "1"], cwd=tmp_path,
                               stdout=log, stderr=subprocess.STDOUT, env=dict(env, PYTHONPATH=str(REPO)))
    try:
        port = wait_for(lambda: re.search(r"embedded redis-server on 127\.0\.0\.1:(\d+)",
                                          (tmp_path / "run.log").read_text()), timeout=30,
                        what="the embedded redis-server").group(1)
        client = redis.Redis(port=int(port))
        expected = sum(len(records) for _, _, records in files)
        wait_for(lambda: client.xlen("trailpipe:events") == expected, timeout=60, what="all events")
        assert (tmp_path / ".trailpipe" / "redis" / "redis.log").exists()
        info = client.info("persistence")
        assert info["aof_enabled"] == 1
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) is not None
    finally:
        stop_process(process)
    with pytest.raises(redis.ConnectionError):  # the embedded server stopped with it
        redis.Redis(port=int(port), socket_connect_timeout=1).ping()


@pytest.mark.slow
def test_demo_runs_headless_to_its_end(tmp_path):
    result = cli("demo", "--files", "6", "--timeout", "120", cwd=tmp_path, timeout=180,
                 env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    match = re.search(r"events:\s+(\d+) emitted of (\d+) records; stream length (\d+)", out)
    assert match and match.group(1) == match.group(2) == match.group(3), out
    assert "objects: 6 done, 0 failed of 6 log files" in out
    assert "demo complete" in out
    assert "digest-must-not-be-emitted" not in out
    assert (tmp_path / ".trailpipe" / "demo" / "worker.log").exists()


HOSTILE_KEY = ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/"
               "111122223333_CloudTrail_us-east-1_20261101T0800Z_\x1b[2J\x1b]0;owned\x07\tFAKE.json.gz")


def test_control_characters_never_reach_the_terminal(tmp_path, make_runtime, s3, bucket, redis_server):
    import gzip

    record = {"eventVersion": "1.08", "eventID": "e\x1b[31m1", "eventName": "Get\x1b]0;title\x07Object\nFAKE",
              "eventTime": "2026-11-01T08:00:00Z", "recipientAccountId": "111122223333",
              "userIdentity": {"type": "IAMUser", "userName": "mallory\x1b[8m\u202e\x9b"}}
    s3.put_object(Bucket=bucket, Key=HOSTILE_KEY, Body=gzip.compress(orjson.dumps({"Records": [record]})))
    bad_key = HOSTILE_KEY.replace("0800Z", "0805Z")
    s3.put_object(Bucket=bucket, Key=bad_key, Body=b"\x1b[5mnot gzip, not json")
    runtime = make_runtime(bucket)
    source = runtime.config.sources[0]
    assert ingest_object(source, HOSTILE_KEY, runtime.state, runtime.s3(source)).outcome == "done"
    assert ingest_object(source, bad_key, runtime.state, runtime.s3(source)).outcome == "failed"
    token = runtime.state.acquire_lease(source.identifier, 1000)
    runtime.state.reset_markers(source.identifier, token, "AWSLogs/")
    runtime.state.advance_marker(source.identifier, token, "AWSLogs/", "", HOSTILE_KEY)
    config_path = write_config(tmp_path / "c.yaml", config_dict(
        redis_server.url, [source_dict(bucket, s3.meta.endpoint_url)]))

    outputs = {}
    for name, args in {"tail": ["tail", "-n", "5"], "tail --raw": ["tail", "-n", "5", "--raw"],
                       "status": ["status"], "deadletter list": ["deadletter", "list"],
                       "deadletter list --json": ["deadletter", "list", "--json"]}.items():
        result = cli(*args, "-c", str(config_path))
        assert result.returncode == 0, (name, result.stderr)
        outputs[name] = result.stdout
        for char in "\x1b\x07\x9b\u202e":
            assert char not in result.stdout, (name, char, result.stdout)
        assert not any(line.startswith("FAKE") for line in result.stdout.splitlines()), (name, result.stdout)
    assert "Get\\x1b]0;title\\x07Object\\x0aFAKE" in outputs["tail"] and "mallory\\x1b[8m\\u202e\\x9b" in outputs["tail"]
    assert "\\x1b[2J" in outputs["status"] and "\\x1b[2J" in outputs["deadletter list"]
    assert len(outputs["deadletter list"].splitlines()) == 3  # key line, reason line, the count
    # --raw and --json stay exact (JSON escapes), so a program reading them gets the true values.
    assert json.loads(outputs["deadletter list --json"])["object"] == bad_key
    assert orjson.loads(json.loads(outputs["tail --raw"].splitlines()[-1])["event"]) == record
