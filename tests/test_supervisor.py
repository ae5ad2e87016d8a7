"""`trailpipe run` left alone: its parts are supervised and restarted; objects in flight on a
process that died resume within two minutes, exactly once; a file landing after every kind of
process was killed is found by the schedule alone."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import orjson
import psutil
import pytest
import redis
from conftest import REPO, source_dict, stop_process, stream_events, wait_for, write_config

from pipeline.demo_data import make_bucket_files
from pipeline.embedded import embedded_url
from pipeline.supervisor import CRASH_LOOP_EXIT, Part, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def _part(name, command):
    return Part(name, lambda: subprocess.Popen(command, start_new_session=True),
                lambda process: stop_process(process, timeout=5))


def test_a_dead_part_is_restarted_and_sigterm_stops_everything(tmp_path):
    said = []
    parts = [_part("alpha", SLEEPER), _part("beta", SLEEPER)]
    supervisor = Supervisor(parts, backoff_base=0.1, poll=0.05, say=said.append)
    pid = os.getpid()

    def scenario():
        wait_for(lambda: all(p.process for p in parts), timeout=10, what="both parts")
        first = parts[0].process.pid
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: parts[0].process and parts[0].process.pid != first, timeout=10, what="a restart")
        os.kill(pid, signal.SIGTERM)

    threading.Thread(target=scenario, daemon=True).start()
    assert supervisor.run() == 0
    assert any("alpha exited with code -9; restarting" in line for line in said)
    assert any(line.startswith("alpha restarted") for line in said)
    assert said[-1] == "stopping" and all(p.process is None for p in parts)


def test_a_crash_loop_ends_the_run_naming_the_part(tmp_path):
    said = []
    parts = [_part("steady", SLEEPER), _part("flaky", [sys.executable, "-c", "raise SystemExit(7)"])]
    code = Supervisor(parts, max_restarts=3, window=60, backoff_base=0.05, poll=0.05, say=said.append).run()
    assert code == CRASH_LOOP_EXIT
    assert any("flaky keeps crashing (3 restarts within 60 s)" in line for line in said)
    assert sum("flaky exited with code 7" in line for line in said) == 3
    assert parts[0].process is None  # the steady part was stopped too


def test_waiting_for_redis_is_not_a_crash_and_sighup_stops_cleanly():
    said = []
    up = threading.Event()
    part = _part("worker", SLEEPER)
    part.ready = up.is_set
    supervisor = Supervisor([part], max_restarts=1, backoff_base=0.05, poll=0.05, say=said.append)

    def scenario():
        wait_for(lambda: any("waits for Redis" in line for line in said), timeout=10, what="waiting")
        time.sleep(1.5)  # a long outage: many polls, no restart counted
        up.set()
        wait_for(lambda: part.process is not None, timeout=10, what="the start once Redis answers")
        os.kill(os.getpid(), signal.SIGHUP)  # a closed terminal stops it cleanly, as SIGTERM does

    threading.Thread(target=scenario, daemon=True).start()
    assert supervisor.run() == 0
    assert sum("waits for Redis" in line for line in said) == 1 and said[-1] == "stopping"


def test_children_die_with_a_killed_supervisor(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from pipeline.processes import die_with_parent\n"
        f"child = subprocess.Popen({SLEEPER!r}, start_new_session=True, preexec_fn=die_with_parent)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n")], cwd=REPO)
    child_pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=20, what="the child"))
    parent.kill()  # SIGKILL: no handler runs
    parent.wait()
    wait_for(lambda: not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE,
             timeout=10, what="the child to die with its parent")


def _children(pid) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []


def _part_process(run_pid: int, word: str) -> psutil.Process | None:
    for child in _children(run_pid):
        try:
            if word in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


@pytest.mark.slow
def test_run_recovers_from_every_kind_of_kill_and_emits_every_event_once(tmp_path, moto_endpoint, s3, bucket):
    files = make_bucket_files(seed=11, files=40, min_records=100, max_records=160)
    for log in files:
        s3.put_object(Bucket=bucket, Key=log.key, Body=log.body)
    # A throttle keeps objects in flight long enough to be killed under (~40 s of work).
    config_path = write_config(tmp_path / "c.yaml", {
        "batch_size": 50,
        "sources": [source_dict(bucket, moto_endpoint, identifier="sup", eps_throttle=130)]})
    env = dict({k: v for k, v in os.environ.items() if k != "TRAILPIPE_REDIS_URL"}, PYTHONPATH=str(REPO))
    log_path = tmp_path / "run.log"
    run = subprocess.Popen([sys.executable, "-m", "workers.cli", "run", "-c", str(config_path), "--concurrency", "2"],
                           cwd=tmp_path, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    state = tmp_path / ".trailpipe"
    client = None
    try:
        url = wait_for(lambda: embedded_url(state), timeout=60, what="the embedded redis-server")
        client = redis.Redis.from_url(url, socket_timeout=5)

        def events() -> int:
            try:
                return client.xlen("trailpipe:events")
            except redis.RedisError:
                return 0

        wait_for(lambda: events() > 300, timeout=90, what="ingestion under way")
        worker = _part_process(run.pid, " worker")
        pool = _children(worker.pid)
        assert pool, "the worker has pool processes"
        pool[0].kill()  # a pool child: Celery redelivers its task at once

        wait_for(lambda: events() > 1500, timeout=120, what="ingestion after the pool child's death")
        in_flight = {key.decode() for key in client.zrangebyscore("trailpipe:src:sup:pending", "-inf", "+inf")
                     if client.hget(b"trailpipe:src:sup:obj:" + key, "state") == b"processing"}
        killed_at = time.monotonic()
        worker.kill()  # the worker's main process: its children go with it, their objects with them

        def resumed():
            return all(client.hget(f"trailpipe:src:sup:obj:{key}", "state") == b"done" for key in in_flight)

        wait_for(lambda: _safe(resumed), timeout=150, what="objects in flight on the dead worker to finish")
        failover = time.monotonic() - killed_at
        print(f"failover: {len(in_flight)} object(s) in flight on the killed worker were done {failover:.0f} s later")
        assert failover < 120  # the bound: within 2 minutes with default settings

        _part_process(run.pid, " beat").kill()
        redis_process = _part_process(run.pid, "127.0.0.1:")  # redis/valkey-server name themselves by address
        redis_process.kill()
        wait_for(lambda: _safe(lambda: client.ping()), timeout=60, what="the restarted redis-server")

        late = make_bucket_files(seed=12, files=1, min_records=30, max_records=30, start=_after(files))[0]
        s3.put_object(Bucket=bucket, Key=late.key, Body=late.body)
        expected = Counter(orjson.dumps(r) for log in [*files, late] for r in _records(log))
        total = sum(expected.values())
        wait_for(lambda: events() == total, timeout=300, what="every event, the late file's included")
        got = Counter(e["event"] for e in stream_events(client))
        assert got == expected  # every record once: none lost, none doubled
        assert run.poll() is None  # still running, unattended
        text = log_path.read_text(errors="replace")
        for part in ("worker", "beat", "redis-server"):
            assert f"trailpipe run: {part} exited with code" in text and f"trailpipe run: {part} restarted" in text

        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=90) == 0
    finally:
        stop_process(run, timeout=60)
        if client is not None:
            client.close()


def _safe(predicate):
    try:
        return predicate()
    except redis.RedisError:
        return False


def _after(files):
    from datetime import timedelta

    from pipeline.layout import delivery_time

    return max(delivery_time(log.key) for log in files) + timedelta(days=1)


def _records(log) -> list:
    import gzip

    return orjson.loads(gzip.decompress(log.body))["Records"]
