"""The trailpipe command: status, tail, run (embedded Redis) and the demo, as a user runs them."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC

import orjson
import psutil
import pytest
import redis
from conftest import REPO, config_dict, shared_log_files, source_dict, stop_process, upload, wait_for, write_config

from pipeline.embedded import embedded_url
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
    env = dict({k: v for k, v in os.environ.items() if k != "TRAILPIPE_REDIS_URL"}, PYTHONPATH=str(REPO))
    log = open(tmp_path / "run.log", "w+")
    process = subprocess.Popen([*CLI, "run", "-c", str(config_path), "--concurrency", "1"], cwd=tmp_path,
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    state = tmp_path / ".trailpipe"
    try:
        url = wait_for(lambda: embedded_url(state), timeout=30, what="the embedded redis-server")
        client = redis.Redis.from_url(url)
        expected = sum(len(records) for _, _, records in files)
        wait_for(lambda: client.xlen("trailpipe:events") == expected, timeout=90, what="all events")
        assert client.info("persistence")["aof_enabled"] == 1

        # Every other command reaches the embedded server through the state folder.
        status = cli("status", "-c", str(config_path), "--json", cwd=tmp_path, env=env)
        assert status.returncode == 0, status.stderr
        (row,) = json.loads(status.stdout)["sources"]
        assert row["events_emitted"] == expected and row["health"]["state"] == "ok"
        tail = cli("tail", "-c", str(config_path), "-n", "2", cwd=tmp_path, env=env)
        assert tail.returncode == 0 and len(tail.stdout.splitlines()) == 2, tail.stderr

        # A second run in the same folder refuses to start, and leaves the first alone.
        second = cli("run", "-c", str(config_path), cwd=tmp_path, env=env, timeout=60)
        assert second.returncode != 0 and "one `trailpipe run` per state folder" in second.stderr
        assert process.poll() is None and client.ping()

        # Hardened: a password nobody passed on a command line, CONFIG/MODULE/DEBUG disabled,
        # files of this user only.
        port = client.connection_pool.connection_kwargs["port"]
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).xlen("trailpipe:events")
        for command in ("CONFIG GET dir", "MODULE LIST", "DEBUG SLEEP 0"):
            with pytest.raises(redis.ResponseError, match="unknown command"):
                client.execute_command(command)
        password = (state / "redis" / "password").read_text().strip()
        for proc in psutil.process_iter(["cmdline"]):
            assert password not in " ".join(proc.info["cmdline"] or [])
        for path in (state / "redis").iterdir():
            assert path.stat().st_mode & 0o077 == 0, path
        assert state.stat().st_mode & 0o077 == 0

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        stop_process(process)
    with pytest.raises(redis.ConnectionError):  # the embedded server stopped with it
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    # Afterwards the read-only commands still show the results, from the data it left.
    status = cli("status", "-c", str(config_path), cwd=tmp_path, env=env)
    assert status.returncode == 0 and f"events emitted={expected}" in status.stdout, status.stderr


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
    # It says how to look at the results afterwards: each command runs as printed, in a shell
    # whose PATH does not hold the venv (a new user's), once the demo has stopped.
    printed = [line.strip() for line in out.splitlines() if " -c .trailpipe/demo/config.yaml" in line]
    assert len(printed) == 3 and all(line.split()[0].endswith("/bin/trailpipe") for line in printed), out
    bin_dir = os.path.dirname(sys.executable)
    shell_env = dict(os.environ, PATH=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                                       if os.path.realpath(p) != os.path.realpath(bin_dir)))
    results = [subprocess.run(line, shell=True, cwd=tmp_path, env=shell_env, capture_output=True, text=True,
                              timeout=60) for line in printed]
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert f"events emitted={match.group(1)}" in results[0].stdout
    assert len(results[1].stdout.splitlines()) == 20
    # Its secret and config are this user's only; from another folder the config works as well.
    demo = tmp_path / ".trailpipe" / "demo"
    assert {name: oct((demo / name).stat().st_mode & 0o777) for name in ("demo-secret", "config.yaml")} == {
        "demo-secret": "0o600", "config.yaml": "0o600"}
    status = cli("status", "-c", str(demo / "config.yaml"), env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert status.returncode == 0 and f"events emitted={match.group(1)}" in status.stdout, status.stderr


# -- verify ----------------------------------------------------------------------------------


def test_verify_command(tmp_path, make_runtime, s3, bucket, redis_server):
    from datetime import datetime, timedelta

    from support.cloudtrail_digests import Trail, write_public_keys

    from pipeline.discovery import discover

    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    write_public_keys(keys_dir, 0)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    trail = Trail(s3, bucket)
    for hour in range(2):
        files = [trail.put_log(start + timedelta(hours=hour, minutes=20), f"h{hour}aaaaaaaaaaaaaa")]
        digest = trail.deliver_digest(start + timedelta(hours=hour + 1), files)
    integrity_conf = {"enabled": True, "public_keys_dir": str(keys_dir)}
    runtime = make_runtime(bucket, integrity=integrity_conf)
    source = runtime.config.sources[0]
    enqueued = []
    discover(source, runtime.state, runtime.s3(source), lambda _sid, key: enqueued.append(key))
    for key in enqueued:
        ingest_object(source, key, runtime.state, runtime.s3(source), runtime.limits)
    config_path = write_config(tmp_path / "c.yaml", config_dict(
        redis_server.url, [source_dict(bucket, s3.meta.endpoint_url, integrity=integrity_conf)]))
    since, until = start.isoformat(), (start + timedelta(hours=2)).isoformat()

    result = cli("verify", "-c", str(config_path), "test-src", "--since", since, "--until", until, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["digests"] == {"valid": 2, "invalid": 0, "missing": 0}
    assert report["log_files"]["listed"] == 2 and report["log_files"]["ingested_intact"] == 2
    assert report["problems"] == []
    assert set(report["log_files"]) >= {"listed", "ingested_intact", "ingested_mismatch", "not_ingested",
                                        "dead_lettered", "unlisted"}

    s3.put_object(Bucket=bucket, Key=digest, Body=b"{}",
                  Metadata={"signature": "00", "signature-algorithm": "SHA256withRSA"})  # replaced
    result = cli("verify", "-c", str(config_path), "test-src", "--since", since, "--until", until)
    assert result.returncode == 1
    assert "digest_invalid" in result.stdout and "NOT intact" in result.stdout
    result = cli("verify", "-c", str(config_path), "test-src", "--since", "yesterday")
    assert result.returncode == 2 and "--since" in result.stderr




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


# -- expected failures: one line with a hint, exit 2 ---------------------------------------------


def test_expected_failures_are_one_line_with_a_hint(tmp_path, moto_endpoint, redis_server):
    from pipeline.redis_server import free_port

    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    dead_s3 = f"http://127.0.0.1:{free_port()}"
    configs = {
        "redis-down": config_dict(nowhere, [source_dict("some-bucket", moto_endpoint)]),
        "no-bucket": config_dict(redis_server.url, [source_dict("no-such-bucket-here", moto_endpoint)]),
        "s3-down": config_dict(redis_server.url, [source_dict("some-bucket", dead_s3)]),
        "no-permission": {"state_dir": "/sys/trailpipe-cannot-be-here", "sources": [source_dict("b-b-b", dead_s3)]},
    }
    paths = {name: str(write_config(tmp_path / f"{name}.yaml", config)) for name, config in configs.items()}
    env = {k: v for k, v in os.environ.items() if k not in ("TRAILPIPE_REDIS_URL", "TRAILPIPE_STATE_DIR")}
    cases = [
        (["status", "-c", paths["redis-down"]], "cannot reach Redis", "is `trailpipe run` or your redis_url server up?"),
        (["deadletter", "list", "-c", paths["redis-down"]], "cannot reach Redis", "redis_url"),
        (["discover", "-c", paths["redis-down"]], "cannot reach the Celery broker", "broker_url"),
        (["backfill", "-c", paths["no-bucket"], "test-src", "--since", "2026-11-01"], "NoSuchBucket",
         "hint: check the source's bucket and endpoint_url"),
        (["backfill", "-c", paths["s3-down"], "test-src", "--since", "2026-11-01"], "EndpointConnectionError",
         "check endpoint_url, the proxy and the network"),
        (["run", "-c", paths["no-permission"]], "permission denied: /sys/trailpipe-cannot-be-here",
         "give this user access"),
    ]
    processes = [subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  cwd=REPO, env=env, stdin=subprocess.DEVNULL) for args, _, _ in cases]
    for (args, cause, hint), process in zip(cases, processes):
        _, err = process.communicate(timeout=120)
        assert process.returncode == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
        assert cause in err and hint in err, (args, err)
    # A mistyped scheme is refused at load (validate too), and in TRAILPIPE_REDIS_URL, without its password.
    bad = write_config(tmp_path / "scheme.yaml", config_dict("htp://user:pw-secret@127.0.0.1:1/0",
                                                            [source_dict("some-bucket", moto_endpoint)]))
    for command in ("validate", "status"):
        result = cli(command, "-c", str(bad), env=env)
        assert result.returncode == 2 and "field 'redis_url': is not a Redis URL" in result.stderr, result.stderr
        assert "pw-secret" not in result.stderr + result.stdout
    result = cli("status", "-c", paths["no-bucket"], env=dict(env, TRAILPIPE_REDIS_URL="htp://u:pw-secret@h:1/0"))
    assert result.returncode == 2 and "TRAILPIPE_REDIS_URL is not a Redis URL" in result.stderr, result.stderr
    assert "pw-secret" not in result.stderr and "Traceback" not in result.stderr
