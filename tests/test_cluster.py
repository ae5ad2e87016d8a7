"""Redis Cluster: ``redis+cluster://`` for the state and streams, each source's keys and stream in
one hash slot (``{source}`` in ``stream``), commands that read across shards, and a shard's
primary killed mid-ingest. Real servers on loopback: redis-servers in cluster mode joined by
``redis-cli --cluster create``."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import fields

import orjson
import pytest
import redis
from conftest import REPO, config_dict, source_dict, start_celery, stop_process, wait_for, write_config
from redis.crc import key_slot
from support.redis_servers import RedisClusterGroup

from pipeline.config import parse_config
from pipeline.connections import ClusterAddress, parse_url
from pipeline.demo_data import make_bucket_files
from pipeline.discovery import discover
from pipeline.errors import ConfigError
from pipeline.ingest import ingest_object
from pipeline.redis_server import RedisServer
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.store.schema import Keys

CLI = [sys.executable, "-m", "workers.cli"]
STREAM = "trailpipe:events:{source}"
DEADLETTERS = "trailpipe:deadletter:{source}"
needs_cli = pytest.mark.skipif(RedisClusterGroup.redis_cli() is None,
                               reason="redis-cli (or valkey-cli) is missing: it builds the cluster (--cluster create)")


# -- fast: no server ------------------------------------------------------------------------------
def _key_methods(keys: Keys, source: str) -> dict[str, str]:
    one = {"object": keys.object(source, "AWSLogs/1/CloudTrail/{odd}/x.json.gz")}
    for name in ("marker", "markers", "partitions", "lease", "fence", "throttle", "newest_done", "pending", "stats",
                 "health", "denied", "digest_chains", "integrity_awaiting", "violations", "notify_error",
                 "events_stream", "deadletter"):
        one[name] = getattr(keys, name)(source)
    return one


def test_each_source_keys_share_one_slot_and_plain_names_do_not_change():
    tagged = Keys("trailpipe", STREAM, DEADLETTERS)
    slots = {}
    for source in ("acct0", "acct1", "111122223333.prod-eu"):
        names = _key_methods(tagged, source)
        assert {key_slot(name.encode()) for name in names.values()} == {key_slot(source.encode())}, names
        slots[source] = key_slot(source.encode())
    assert tagged.events_stream("acct0") == "trailpipe:events:{acct0}"
    assert tagged.stats("acct0") == "trailpipe:src:{acct0}:stats"
    glob = [tagged.sources(), tagged.epoch(), tagged.resets(), tagged.redbeat_prefix() + ":schedule",
            tagged.redbeat_prefix() + "discover:acct0", tagged.redbeat_prefix() + ":lock"]
    assert len({key_slot(name.encode()) for name in glob}) == 1  # check_epoch, redbeat's pipelines
    # No {source} in the stream: every name as before (a plain Redis, the default).
    plain = Settings.default().keys
    assert plain.stats("acct0") == "trailpipe:src:acct0:stats" and plain.events_stream("acct0") == "trailpipe:events"
    assert (plain.sources(), plain.epoch(), plain.resets(), plain.redbeat_prefix()) == \
        ("trailpipe:sources", "trailpipe:epoch", "trailpipe:resets", "trailpipe:redbeat:")
    assert plain.deadletter("acct0") == "trailpipe:deadletter"


_CALL = re.compile(r"redis\.p?call\(\s*'([A-Za-z]+)'\s*,\s*([^,)]+)(?:,\s*([^,)]+))?")
_NO_KEY = {"TIME"}
_SUBCOMMAND = {"XINFO"}  # XINFO GROUPS key


def test_every_script_gets_every_key_it_touches_in_KEYS():
    """On a cluster a script may touch only keys it was given (all of one slot): no key name is
    built inside Lua, none read from data."""
    folder = REPO / "pipeline" / "store" / "lua"
    # Library files (_name.lua, prepended to the scripts that use them): their functions' key
    # parameters, by position; every caller must pass KEYS[...] there.
    key_params: dict[str, list[int]] = {}
    for path in sorted(folder.glob("_*.lua")):
        text = path.read_text()
        used = {key.strip() for _, key, _ in _CALL.findall(text)}
        for name, params in re.findall(r"local function (\w+)\(([^)]*)\)", text):
            names = [param.strip() for param in params.split(",")]
            key_params[name] = [index for index, param in enumerate(names) if param in used]
    assert key_params, "the library functions were not found"
    for path in sorted(folder.glob("*.lua")):
        text = path.read_text()
        library = path.name.startswith("_")
        aliases = set(re.findall(r"(\w+) = KEYS\[", text))  # locals bound to a declared key
        if library:
            aliases |= {p.strip() for params in re.findall(r"local function \w+\(([^)]*)\)", text)
                        for p in params.split(",")}
        for command, first, second in _CALL.findall(text):
            if command.upper() in _NO_KEY:
                continue
            key = (second if command.upper() in _SUBCOMMAND else first).strip()
            assert key.startswith("KEYS[") or key in aliases, f"{path.name}: {command} on {key}"
        for name, positions in key_params.items():
            for call in ([] if library else re.findall(rf"\b{name}\(([^)]*)\)", text)):
                args = [arg.strip() for arg in call.split(",")]
                assert all(args[i].startswith("KEYS[") for i in positions), f"{path.name}: {name}({call})"


def test_cluster_url_forms():
    address = parse_url("rediss+cluster://u%40x:p%3Aw@10.0.0.1:7000,[::1]:7001,node-3/?ssl_ca_certs=/ca.pem")
    assert isinstance(address, ClusterAddress)
    assert address.nodes == (("10.0.0.1", 7000), ("::1", 7001), ("node-3", 6379))
    assert (address.username, address.password, address.tls) == ("u@x", "p:w", True)
    assert "p:w" not in repr(address)
    url, options, use_ssl = address.redbeat()
    assert url == "rediss://10.0.0.1:7000" and options["cluster"] is True and options["password"] == "p:w"
    assert use_ssl["ssl_ca_certs"] == "/ca.pem"
    with pytest.raises(ValueError, match="celery/celery#2852"):
        address.broker()
    assert parse_url("redis+cluster://h:7000").nodes == (("h", 7000),)
    assert {f.name for f in fields(ClusterAddress)} >= {"nodes", "password"}


CLUSTER = "redis+cluster://:secret-Zz9@h1:7000,h2:7001/"
PLAIN = "redis://:secret-Zz9@h3:6379/0"


@pytest.mark.parametrize(("settings", "field", "words"), [
    ({"broker_url": PLAIN, "deadletter_stream": DEADLETTERS}, "stream", "must contain {source}"),
    ({"broker_url": PLAIN, "stream": STREAM}, "deadletter_stream", "must contain {source}"),
    ({"stream": STREAM, "deadletter_stream": DEADLETTERS}, "broker_url", "amqp://"),
    ({"broker_url": CLUSTER, "stream": STREAM, "deadletter_stream": DEADLETTERS}, "broker_url", "amqp://"),
    ({"broker_url": PLAIN, "stream": STREAM, "deadletter_stream": DEADLETTERS, "wait_replicas": 1},
     "wait_replicas", "Redis Cluster"),
    ({"broker_url": PLAIN, "stream": "e:{source}:{x}", "deadletter_stream": DEADLETTERS}, "stream", "braces"),
])
def test_validate_names_the_field_and_what_to_use(settings, field, words):
    document = {"redis_url": CLUSTER, "sources": [source_dict("bucket-x", "http://127.0.0.1:1")], **settings}
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    (problem,) = caught.value.problems
    assert problem.startswith(f"field '{field}': ") and words in problem and "\n" not in problem
    assert "secret-Zz9" not in problem and "h1" not in problem
    if field == "broker_url" and "broker_url" in settings:
        assert "plain or Sentinel Redis" in problem


def test_validate_command_refuses_a_cluster_broker(tmp_path):
    document = config_dict(CLUSTER, [source_dict("bucket-x", "http://127.0.0.1:1")], broker_url=CLUSTER,
                           stream=STREAM, deadletter_stream=DEADLETTERS)
    path = write_config(tmp_path / "bad.yaml", document)
    result = subprocess.run([*CLI, "validate", "-c", str(path)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2 and "field 'broker_url'" in result.stderr and "amqp://" in result.stderr
    assert "secret-Zz9" not in result.stderr + result.stdout


# -- on a real cluster ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if RedisClusterGroup.redis_cli() is None:
        pytest.skip("redis-cli (or valkey-cli) is missing: it builds the cluster (--cluster create)")
    servers = RedisClusterGroup(tmp_path_factory.mktemp("cluster"), primaries=3, replicas=0).start()
    yield servers
    servers.stop()


@pytest.fixture
def cluster_client(cluster):
    client = parse_url(cluster.url()).client()
    client.flushall()  # every primary: our own throwaway cluster
    yield client
    client.close()


def spread_sources(cluster: RedisClusterGroup, count: int, per_node: int = 1) -> list[str]:
    """Source identifiers whose keys land on different primaries (``per_node`` on each)."""
    chosen: dict[int, list[str]] = {}
    for n in range(1000):
        name = f"acct{n}"
        port = cluster.primary_of(name)
        if len(chosen.setdefault(port, [])) < per_node:
            chosen[port].append(name)
        if sum(len(names) for names in chosen.values()) >= count:
            break
    return [name for names in chosen.values() for name in names][:count]


def cluster_document(cluster: RedisClusterGroup, broker: str, sources: list[dict], **settings) -> dict:
    return config_dict(cluster.url(), sources, broker_url=broker, stream=STREAM, deadletter_stream=DEADLETTERS,
                       **settings)


def _files_of(source: str, seed: int, files: int, records: tuple[int, int]):
    return make_bucket_files(seed=seed, files=files, min_records=records[0], max_records=records[1],
                             prefix=f"{source}/")


def test_state_streams_and_every_command_across_shards(tmp_path, cluster, cluster_client, s3, bucket,
                                                       moto_endpoint, redis_server):
    """Three sources on three primaries: discovery, ingest, the sweep, dead letters and trimming
    each touch one slot; status, tail, metrics, deadletter and beat's schedule read and write
    across the shards."""
    names = spread_sources(cluster, 3)
    assert len({cluster.primary_of(name) for name in names}) == 3
    expected = {}
    for index, name in enumerate(names):
        files = _files_of(name, seed=30 + index, files=2, records=(5, 9))
        for log in files:
            s3.put_object(Bucket=bucket, Key=log.key, Body=log.body)
        expected[name] = sum(len(_records(log)) for log in files)
    sources = [source_dict(bucket, moto_endpoint, identifier=name, directory_prefix=f"{name}/AWSLogs/")
               for name in names]
    document = cluster_document(cluster, redis_server.url, sources, stream_maxlen=1000)
    runtime = Runtime(parse_config(document))
    for name in names:
        source = runtime.source(name)
        queued: list[str] = []
        discover(source, runtime.state, runtime.s3(source), lambda sid, key: queued.append(key))
        assert [ingest_object(source, key, runtime.state, runtime.s3(source)).outcome for key in queued] == \
            ["done", "done"]
        stream = f"trailpipe:events:{{{name}}}"
        with cluster.node(cluster.primary_of(name)) as node:
            assert node.xlen(stream) == expected[name]  # on the primary of the source's slot
        assert runtime.state.stream_backlog(source=name) == expected[name]
    # The sweep, a dead letter and its trim: scripts with their keys declared, one slot each.
    state = runtime.state
    state.claim(names[0], "stale", 0)
    cluster_client.zadd(runtime.keys.pending(names[0]), {"stale": 0})
    assert state.sweep_pending(names[0]) == ["stale"]
    state.begin(names[0], "stale", "r")
    assert state.fail(names[0], "stale", "NotJson", "not json")
    for n in range(3):
        state.claim(names[1], f"bad{n}", 0)
        assert state.fail(names[1], f"bad{n}", "NotJson", "not json")
    assert state.trim_events() == 0  # under stream_maxlen: nothing to trim, on any shard
    runtime.redis.close()

    path = write_config(tmp_path / "c.yaml", document)

    def cli(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([*CLI, *args, "-c", str(path)], capture_output=True, text=True, timeout=120,
                                cwd=REPO, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        return result

    status = json.loads(cli("status", "--json").stdout)
    assert status["stream_length"] == sum(expected.values())
    assert status["streams"] == {f"trailpipe:events:{{{name}}}": expected[name] for name in names}
    assert [row["events_emitted"] for row in status["sources"]] == [expected[name] for name in names]
    assert status["redis"]["mode"] == "none"  # every primary read: they persist nothing
    assert len(cli("tail", "-n", "5", "--raw").stdout.splitlines()) == 5
    letters = [json.loads(line) for line in cli("deadletter", "list", "--json").stdout.splitlines()]
    assert sorted(letter["object"] for letter in letters) == ["bad0", "bad1", "bad2", "stale"]
    backfill = cli("backfill", names[0], "--since", "2026-11-01", "--until", "2026-11-01")
    assert "2 already known" in backfill.stdout, backfill.stdout  # claims on the source's shard
    assert cli("schedule", "sync").returncode == 0  # celery-redbeat on the cluster, one slot
    assert cluster_client.exists(f"trailpipe:{{global}}:redbeat:discover:{names[0]}")

    from prometheus_client.core import CollectorRegistry

    from pipeline.metrics import TrailpipeCollector

    registry = CollectorRegistry()
    registry.register(TrailpipeCollector(Runtime(parse_config(document), quick_redis=True)))
    for name in names:
        assert registry.get_sample_value("trailpipe_events_emitted_total", {"source": name}) == expected[name]
        assert registry.get_sample_value("trailpipe_stream_length",
                                         {"stream": f"trailpipe:events:{{{name}}}"}) == expected[name]
    assert registry.get_sample_value("trailpipe_stream_length", {"stream": f"trailpipe:deadletter:{{{names[1]}}}"}) == 3


# -- slow: a shard's primary killed mid-ingest ---------------------------------------------------
@needs_cli
@pytest.mark.slow
def test_primary_killed_mid_ingest_every_event_once(tmp_path, s3, bucket, moto_endpoint):
    """Three primaries with a replica each; sources' streams on at least two of them; the primary
    holding one source's stream is SIGKILLed mid-ingest. Real worker and beat processes, the
    broker on a separate plain redis-server: every event once in its source's stream."""
    servers = RedisClusterGroup(tmp_path / "cluster", primaries=3, replicas=1).start()
    broker = RedisServer(tmp_path / "broker", appendonly=False).start()
    try:
        names = spread_sources(servers, 3)
        expected: dict[str, Counter] = {}
        for index, name in enumerate(names):
            files = _files_of(name, seed=40 + index, files=6, records=(90, 130))
            for log in files:
                s3.put_object(Bucket=bucket, Key=log.key, Body=log.body)
            expected[name] = Counter(orjson.dumps(record) for log in files for record in _records(log))
        sources = [source_dict(bucket, moto_endpoint, identifier=name, directory_prefix=f"{name}/AWSLogs/",
                               eps_throttle=150) for name in names]
        path = write_config(tmp_path / "c.yaml", cluster_document(servers, broker.url, sources, batch_size=40))
        worker = start_celery(["worker", "--concurrency", "3", "--loglevel", "info"], path, tmp_path / "worker.log")
        beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "beat-schedule")],
                            path, tmp_path / "beat.log")
        client = parse_url(servers.url()).client()
        streams = {name: f"trailpipe:events:{{{name}}}" for name in names}
        try:
            victim = names[0]
            wait_for(lambda: _safe(lambda: client.xlen(streams[victim])) > 150, 120, what="ingestion under way")
            old = servers.primary_of(streams[victim])
            before = client.xlen(streams[victim])
            servers.kill(old)
            killed = time.monotonic()
            new = servers.wait_failed_over(streams[victim], old)
            took = time.monotonic() - killed
            total = {name: sum(counter.values()) for name, counter in expected.items()}
            assert before < total[victim]  # killed mid-ingest
            wait_for(lambda: all(_safe(lambda n=name: client.xlen(streams[n])) >= total[name] for name in names),
                     240, what="every event in its source's stream")
            time.sleep(3)  # nothing more arrives: no batch twice
            homes = set()
            for name in names:
                got = Counter(fields[b"event"] for _, fields in client.xrange(streams[name]))
                assert got == expected[name], name  # every record exactly once, in its own stream
                homes.add(servers.primary_of(streams[name]))
            assert len(homes) >= 2 and servers.primary_of(streams[victim]) == new
            assert worker.poll() is None and beat.poll() is None  # nothing exited
            print(f"cluster failover: replica {new} took over {took:.1f} s after primary {old} was killed")
        finally:
            client.close()
            stop_process(beat)
            stop_process(worker, timeout=60)
    finally:
        broker.stop()
        servers.stop()


def _safe(read):
    try:
        return read()
    except (redis.RedisError, redis.exceptions.RedisClusterException):
        return 0


def _records(log) -> list:
    import gzip

    return orjson.loads(gzip.decompress(log.body))["Records"]

