"""Redis behind Sentinels: ``redis+sentinel://`` for the state and stream, Celery's broker, beat's
schedule and every command; failover as an outage, not an end. Real servers on loopback: a
primary, its replica and three Sentinels (the same binary with --sentinel)."""
from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest
import redis
from celery import Celery
from celery.app.utils import filter_hidden_settings
from conftest import REPO, config_dict, source_dict, start_celery, stop_process, stream_events, wait_for, write_config
from support.redis_servers import SentinelGroup

from pipeline.config import parse_config
from pipeline.connections import SentinelAddress, parse_url
from pipeline.demo_data import make_bucket_files, make_log_file
from pipeline.discovery import discover
from pipeline.errors import ConfigError
from pipeline.ingest import ingest_object
from pipeline.redis_server import free_port
from pipeline.runtime import Runtime

PASSWORD = "data-pa55-Rt42"
SENTINEL_PASSWORD = "sentinel-pa55-Mw07"
CLI = [sys.executable, "-m", "workers.cli"]


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    servers = SentinelGroup(tmp_path_factory.mktemp("sentinel"), password=PASSWORD,
                            sentinel_password=SENTINEL_PASSWORD).start()
    yield servers
    servers.stop()


@pytest.fixture
def primary(group):
    client = group.client(group.primary_port())
    client.flushall()
    yield client
    client.close()


def test_url_forms():
    address = parse_url("rediss+sentinel://u%40x:p%3Aw@10.0.0.1:26379,[::1]:26380,sentinel-3/mymaster/2"
                        "?ssl_ca_certs=/ca.pem")
    assert isinstance(address, SentinelAddress)
    assert address.sentinels == (("10.0.0.1", 26379), ("::1", 26380), ("sentinel-3", 26379))
    assert (address.master_name, address.db, address.username, address.password, address.tls) == \
        ("mymaster", 2, "u@x", "p:w", True)
    assert "p:w" not in repr(address)
    url, options, use_ssl = address.broker("sp")
    assert url.split(";")[0] == "sentinel://u%40x:p%3Aw@10.0.0.1:26379/2" and "[::1]:26380" in url
    assert options["master_name"] == "mymaster" and options["sentinel_kwargs"]["password"] == "sp"
    assert use_ssl["ssl_ca_certs"] == "/ca.pem" and options["sentinel_kwargs"]["ssl"] is True
    redbeat_url, redbeat_options, _ = address.redbeat("sp")
    assert redbeat_url == "redis-sentinel://" and redbeat_options["service_name"] == "mymaster"
    assert redbeat_options["sentinels"][0] == ["10.0.0.1", 26379] and redbeat_options["password"] == "p:w"
    assert parse_url("redis+sentinel://h:1/m").db == 0
    for single in ("redis://h:6379", "redis://:pw@h:6379/3", "rediss://h/0?ssl_ca_certs=/ca.pem",
                   "unix:///run/redis.sock?db=2"):
        assert parse_url(single).broker()[0] == single  # one server: as redis-py and kombu read it


@pytest.mark.parametrize("field", ["redis_url", "broker_url"])
@pytest.mark.parametrize("url", [
    "redis+sentinel://:secret-Zz9@h1:26379/",  # no master name
    "redis+sentinel://:secret-Zz9@h1:port/master",
    "redis+sentinel://:secret-Zz9@/master",
    "redis+sentinel://:secret-Zz9@h1:26379/master/db0",
    "redis+sentinel://:secret-Zz9@h1:26379,,h2:1/master",
    "redis+sentinal://:secret-Zz9@h1:6379/master",  # a misspelt scheme (other brokers, amqp://, are Celery's)
])
def test_validate_names_the_field_never_the_value(tmp_path, field, url):
    document = {"redis_url": "redis://127.0.0.1:1/0", "sources": [source_dict("bucket-x", "http://127.0.0.1:1")]}
    document[field] = url
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    (problem,) = caught.value.problems
    assert problem.startswith(f"field '{field}': ") and "secret-Zz9" not in problem and "h1" not in problem
    if "port" not in url:
        return  # the command itself once per field, for the form without a numeric port
    path = write_config(tmp_path / "bad.yaml", document)
    result = subprocess.run([*CLI, "validate", "-c", str(path)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2 and f"field '{field}'" in result.stderr and "secret-Zz9" not in result.stderr


def sentinel_config(group: SentinelGroup, bucket: str, endpoint: str, **settings) -> dict:
    return config_dict(group.url(), [source_dict(bucket, endpoint, **settings.pop("source", {}))],
                       sentinel_password=SENTINEL_PASSWORD, **settings)


def test_every_part_finds_the_primary_through_the_sentinels(tmp_path, group, primary, s3, bucket, moto_endpoint):
    item = make_log_file(random.Random(5), "111122223333", "us-east-1", datetime(2024, 4, 4, tzinfo=UTC), 6)
    s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)
    document = sentinel_config(group, bucket, moto_endpoint)
    runtime = Runtime(parse_config(document))
    source = runtime.source("test-src")
    queued: list[str] = []
    discover(source, runtime.state, runtime.s3(source), lambda sid, key: queued.append(key))
    assert [ingest_object(source, key, runtime.state, runtime.s3(source)).outcome for key in queued] == ["done"]
    assert primary.xlen("trailpipe:events") == 6  # on the primary the Sentinels name

    config_path = write_config(tmp_path / "c.yaml", document)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *args, "-c", str(config_path)], capture_output=True, text=True, timeout=120,
                              cwd=REPO, stdin=subprocess.DEVNULL)

    status = json.loads(cli("status", "--json").stdout)
    assert status["stream_length"] == 6 and status["sources"][0]["objects_done"] == 1
    assert len(cli("tail", "-n", "3", "--raw").stdout.splitlines()) == 3
    assert cli("deadletter", "list").returncode == 0
    backfill = cli("backfill", "test-src", "--since", "2024-04-04", "--until", "2024-04-04")
    assert backfill.returncode == 0 and "1 already known" in backfill.stdout, backfill.stderr
    synced = cli("schedule", "sync")
    assert synced.returncode == 0 and primary.exists("trailpipe:redbeat:discover:test-src"), synced.stderr
    port = free_port()
    metrics = subprocess.Popen([*CLI, "metrics", "-c", str(config_path), "--port", str(port)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        text = wait_for(lambda: _get(f"http://127.0.0.1:{port}/metrics"), 60, what="the metrics endpoint")
        assert re.search(r'trailpipe_events_emitted_total\{source="test-src"\} 6(\.0)?\n', text), text
    finally:
        stop_process(metrics)

    # A real worker on kombu's sentinel:// transport; what it reports holds neither password.
    worker = start_celery(["worker", "--concurrency", "1", "--hostname", "sentinel@%h"], config_path,
                          tmp_path / "worker.log")
    from workers.app import _redis_broker

    broker_url, options, _ = _redis_broker(group.url(), SENTINEL_PASSWORD)
    probe = Celery("probe", broker=broker_url)
    probe.conf.broker_transport_options = options
    try:
        replies = wait_for(lambda: probe.control.inspect(timeout=2).conf(), timeout=60, what="inspect conf")
        reported = json.dumps(replies)
        assert "master_name" in reported and "redbeat_redis_options" in reported
        assert PASSWORD not in reported and SENTINEL_PASSWORD not in reported, reported
        assert PASSWORD not in json.dumps(filter_hidden_settings({"redbeat_redis_options": options}), default=str)
    finally:
        probe.close()
        stop_process(worker)
    log = (tmp_path / "worker.log").read_text()
    assert PASSWORD not in log and SENTINEL_PASSWORD not in log


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def test_a_demoted_primary_answering_readonly_is_followed(group, primary):
    """A manual failover demotes the primary while a client holds connections to it: its READONLY
    is transient (never an error to the caller) and the client follows the new primary. (Writes
    the old primary took between the promotion and its demotion are Redis's to lose: the
    architecture's "Failover" says why a batch is then emitted again, once.)"""
    client = parse_url(group.url()).client(SENTINEL_PASSWORD)
    old = group.primary_port()
    for _ in range(50):
        client.incr("count")
    group.sentinel(group.sentinel_ports[0]).execute_command("SENTINEL", "FAILOVER", group.master_name)
    deadline = time.monotonic() + 60
    while group.client(old).info("replication")["role"] != "slave":  # writing through the switch
        assert time.monotonic() < deadline, "the old primary was never demoted"
        client.incr("count")
        time.sleep(0.01)
    new = group.wait_promoted(old)
    wait_for(lambda: group.client(old).info("replication").get("master_link_status") == "up", 30,
             what="the demoted primary replicating the new one")
    before = int(group.client(new).get("count"))
    for _ in range(50):
        client.incr("count")  # the first meets READONLY on a kept connection: followed, not raised
    assert int(group.client(new).get("count")) == before + 50
    assert client.connection_pool.get_master_address()[1] == new


@pytest.mark.slow
def test_primary_killed_mid_ingest_worker_and_beat_go_on(tmp_path, moto_endpoint, s3, bucket):
    """SIGKILL the Sentinel-watched primary mid-ingest: its replica is promoted, the worker and
    beat (real processes) go on unattended without exiting, every event is once in the new
    primary's stream, and a file landing afterwards is found by the schedule alone."""
    servers = SentinelGroup(tmp_path / "group", password=PASSWORD, sentinel_password=SENTINEL_PASSWORD).start()
    files = make_bucket_files(seed=21, files=24, min_records=100, max_records=160)
    for log in files:
        s3.put_object(Bucket=bucket, Key=log.key, Body=log.body)
    config_path = write_config(tmp_path / "c.yaml", sentinel_config(
        servers, bucket, moto_endpoint, batch_size=50,
        source={"identifier": "ha", "eps_throttle": 250, "recurrence": "1M"}))
    worker = start_celery(["worker", "--concurrency", "2", "--loglevel", "info"], config_path, tmp_path / "worker.log")
    beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "beat-schedule")],
                        config_path, tmp_path / "beat.log")
    try:
        old = servers.primary_port()
        first = servers.client(old)
        wait_for(lambda: _safe(lambda: first.xlen("trailpipe:events")) > 600, 120, what="ingestion under way")
        killed = servers.kill_primary()
        killed_at = time.monotonic()
        new = servers.wait_promoted(old)
        promoted = time.monotonic() - killed_at
        client = servers.client(new)
        late = make_bucket_files(seed=22, files=1, min_records=40, max_records=40, start=_after(files))[0]
        s3.put_object(Bucket=bucket, Key=late.key, Body=late.body)
        expected = Counter(orjson.dumps(r) for log in [*files, late] for r in _records(log))
        total = sum(expected.values())
        wait_for(lambda: _safe(lambda: client.xlen("trailpipe:events")) >= total, 420,
                 what="every event, the late file's included, on the new primary")
        time.sleep(3)  # nothing more arrives: no batch twice
        got = Counter(e["event"] for e in stream_events(client))
        assert got == expected  # every record exactly once on the new primary
        assert worker.poll() is None and beat.poll() is None  # nothing exited
        print(f"failover: replica promoted {promoted:.1f} s after the primary was killed (port {killed.port})")
    finally:
        stop_process(beat)
        stop_process(worker, timeout=60)
        servers.stop()
    for name in ("worker.log", "beat.log"):
        text = (tmp_path / name).read_text(errors="replace")
        assert PASSWORD not in text and SENTINEL_PASSWORD not in text


def _safe(read):
    try:
        return read()
    except redis.RedisError:
        return 0


def _after(files):
    from datetime import timedelta

    from pipeline.layout import delivery_time

    return max(delivery_time(log.key) for log in files) + timedelta(days=1)


def _records(log) -> list:
    import gzip

    return orjson.loads(gzip.decompress(log.body))["Records"]


def test_wait_replicas_puts_each_batch_on_a_replica_before_the_next(group, primary, make_runtime, bucket):
    """``wait_replicas: 1``: when a commit returns, its batch is on the replica (no sleep); with
    the replica unreachable the batch still commits after the WAIT timeout, counted."""
    config = parse_config(sentinel_config(group, bucket, "http://127.0.0.1:1", wait_replicas=1, stream_maxlen=1000))
    runtime = Runtime(config)
    state = runtime.state
    replica = next(server for server in group.servers if server.port != group.primary_port())
    mirror = group.client(replica.port)
    wait_for(lambda: mirror.info("replication").get("master_link_status") == "up", 30, what="the replica in sync")
    for n in range(5):
        key = f"obj-{n}"
        state.claim("test-src", key, 0)
        state.begin("test-src", key, "r")
        written, _ = state.commit_batch("test-src", key, 0, 100, [{"event_id": f"{key}-{i}"} for i in range(100)],
                                        last=True, runner="r")
        assert written and mirror.xlen("trailpipe:events") == 100 * (n + 1)  # already replicated
    assert state.stats("test-src").get("wait_replicas_short", 0) == 0
    replica.process.send_signal(19)  # SIGSTOP: the replica stops acknowledging
    try:
        state.claim("test-src", "late", 0)
        state.begin("test-src", "late", "r")
        started = time.monotonic()
        assert state.commit_batch("test-src", "late", 0, 1, [{"event_id": "x"}], last=True, runner="r")[0]
        assert time.monotonic() - started >= 0.9  # waited its timeout, then went on
    finally:
        replica.process.send_signal(18)  # SIGCONT
    assert state.stats("test-src")["wait_replicas_short"] == 1
    runtime.redis.close()


def test_beat_survives_a_redis_outage_and_a_lost_lock(tmp_path, moto_endpoint, bucket):
    """Beat (workers.beat.Scheduler) neither exits when Redis goes away nor when its lock is gone
    after a failover: it takes the lock again and schedules on."""
    from pipeline.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    # Scheduled every 20 s: the notification consumer of a source with an SQS queue (no request
    # is made without a worker).
    notified = source_dict(bucket, moto_endpoint,
                           sqs={"queue_url": f"{moto_endpoint}/123456789012/q", "endpoint_url": moto_endpoint})
    config_path = write_config(tmp_path / "c.yaml", config_dict(server.url, [notified], sweep_interval_seconds=5))
    beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "beat-schedule")],
                        config_path, tmp_path / "beat.log")
    client = redis.Redis(port=server.port, socket_timeout=5)

    def scheduled() -> int:
        try:
            return client.llen("trailpipe.us-east-1")
        except redis.RedisError:
            return 0

    try:
        wait_for(lambda: client.exists("trailpipe:redbeat::lock"), 60, what="beat's lock")
        client.delete("trailpipe:redbeat::lock")  # as on a promoted replica that never got it
        wait_for(lambda: client.exists("trailpipe:redbeat::lock"), 30, what="the lock taken again")
        queued = scheduled()
        wait_for(lambda: scheduled() > queued, 30, what="a task scheduled after the lock came back")
        port = server.port
        server.stop()
        time.sleep(22)  # beat's ticks (a consume run due every 20 s) meet no Redis
        assert beat.poll() is None
        server = RedisServer(tmp_path / "redis", port=port, appendonly=False).start()
        wait_for(lambda: client.exists("trailpipe:redbeat::lock"), 60, what="beat back on the empty Redis")
        wait_for(lambda: scheduled() > 0, 30, what="scheduling again")
        assert beat.poll() is None
    finally:
        stop_process(beat)
        server.stop()
    text = (tmp_path / "beat.log").read_text()
    assert "Redis unavailable" in text and "taken again" in text


def test_tls_sentinels_and_nodes(tmp_path, s3, bucket, moto_endpoint):
    """``rediss+sentinel://``: the Sentinels and the data nodes over TLS, certificates verified,
    for the state and stream and for Celery's broker."""
    from support.redis_servers import tls_redis_binary
    from support.tls import make_pki

    from workers.app import _redis_broker

    binary = tls_redis_binary()
    if binary is None:
        pytest.skip("no redis-server built with TLS on this machine")
    pki = make_pki(tmp_path / "pki")
    servers = SentinelGroup(tmp_path / "tls", password=PASSWORD, sentinel_password=SENTINEL_PASSWORD, pki=pki,
                            binary=binary).start()
    try:
        item = make_log_file(random.Random(8), "111122223333", "us-east-1", datetime(2024, 4, 4, tzinfo=UTC), 4)
        s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)
        runtime = Runtime(parse_config(sentinel_config(servers, bucket, moto_endpoint)))
        source = runtime.source("test-src")
        queued: list[str] = []
        discover(source, runtime.state, runtime.s3(source), lambda sid, key: queued.append(key))
        assert [ingest_object(source, key, runtime.state, runtime.s3(source)).outcome for key in queued] == ["done"]
        assert servers.client(servers.primary_port()).xlen("trailpipe:events") == 4
        broker_url, options, use_ssl = _redis_broker(servers.url(), SENTINEL_PASSWORD)
        app = Celery("tls-sentinel-check", broker=broker_url)
        app.conf.update(broker_transport_options=options, broker_use_ssl=use_ssl,
                        broker_connection_retry_on_startup=False)
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=0)
            queue = connection.SimpleQueue("tls-sentinel-check")
            queue.put({"k": 1})
            message = queue.get(timeout=5)
            message.ack()
            assert message.payload == {"k": 1}
            queue.close()
        runtime.redis.close()
    finally:
        servers.stop()
