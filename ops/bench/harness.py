"""The benchmark: trailpipe against the floor and a naive collector, the normalizers in
process, listing at scale, and a worker's memory on a large object.

    python ops/bench/run.py [--files 60] [--min-records 100] [--max-records 5000]
                            [--concurrency 1,2] [--pool prefork] [--normalize both|off|on]
                            [--listing-objects 1000,100000] [--big-mb 200]
                            [--phases floor,naive,trailpipe,normalize,listing,memory]
                            [--tree PATH ...] [--json-out PATH] [--show-naive]

One run generates realistic CloudTrail files (``pipeline.demo_data``), serves them from a local S3
API over HTTP (a moto server in its own process, so its CPU is kept apart) and measures, each
phase on a fresh redis-server:

floor      what the hardware does at least: the files' bytes held in memory, one process,
           gunzip + orjson + pipelined XADD of the record and the 8 routing fields (event,
           event_id, event_name, event_time, source, object, account, region); none of
           trailpipe's code or costs
naive      what a user would run instead: ``ops/bench/naive_collector.py`` (list, get, gunzip,
           orjson, XADD ``event`` + ``object``, one XADD per record; no normalization), in one
           process; ``naive_pipelined`` (reported, no target) is the same with the XADDs of a
           file pipelined
trailpipe  the real pipeline: ``celery -A workers.app worker`` processes (production settings),
           one discovery, every object ingested; with each ``--concurrency``, with the default
           fields (``output_formats: []``) and with ``output_formats: [ecs, ocsf]``
normalize  ``ops/bench/normalize_bench.py`` in process: µs per record for ECS + OCSF
listing    ``pipeline.discovery.discover`` (no-op enqueue) on buckets of ``--listing-objects``
           1-byte objects: the first discovery, one with nothing new, one with ``--listing-new``
memory     a worker (concurrency 1) ingesting one object of ``--big-mb`` MB uncompressed: its
           peak RSS above idle

``--tree PATH`` runs the trailpipe phases again with workers started from another source tree (a
copy of the repository with a change applied), interleaved with the baseline: before/after
ratios from one run. The source's ``eps_throttle`` is set far above the measured rates
(``--eps-throttle``), so the pipeline's capacity is measured, not the throttle.

CPU is user + system seconds of the measured processes (the collector process, or the
worker process tree) plus the redis-server's, from psutil; the S3 server's is reported apart.
Throughput of trailpipe runs from the redis TIME before the discovery is sent to the id (a
millisecond timestamp) of the last stream entry.

The benchmark drives Celery only as a client (``send_task``), like ``trailpipe discover``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import redis
import yaml

from pipeline.demo_data import ACCOUNTS, REGIONS, LogFile, log_key, make_log_file, make_record
from pipeline.redis_server import RedisServer, free_port

REPO = Path(__file__).resolve().parents[2]
NAIVE_SCRIPT = Path(__file__).resolve().parent / "naive_collector.py"
BUCKET = "trailpipe-bench"
SOURCE_ID = "bench"
REGION = "us-east-1"
PREFIX = "AWSLogs/"
KEY_ID = "AKIABENCHTRAILPIPE00"
SECRET = "bench-secret"
STREAM = "trailpipe:events"
STEP = timedelta(minutes=5)  # CloudTrail delivers about every five minutes per account and region
PHASES = ("floor", "naive", "trailpipe", "normalize", "listing", "memory")
FORMAT_SETS = {"off": ([],), "on": (["ecs", "ocsf"],), "both": ([], ["ecs", "ocsf"])}
# The targets of issue 12, as ratios measured within one run.
TARGETS = {
    "default_over_naive_events_per_s": 1.5,  # at least, output_formats []
    "default_over_floor_cpu_per_event": 1.5,  # at most, output_formats []
    "ecs_ocsf_over_naive_events_per_s": 1.0,  # at least, output_formats [ecs, ocsf]
    "ecs_ocsf_us_per_record": 25.0,  # at most, in process
    "discovery_new_trailpipe_seconds": 0.1,  # at most: 10 new among 100,000, trailpipe's own part
    "worker_rss_above_idle_mb": 128,  # at most
}


@dataclass
class BenchOptions:
    files: int = 60
    min_records: int = 100
    max_records: int = 5000
    seed: int = 7
    concurrency: list[int] = field(default_factory=lambda: sorted({1, os.cpu_count() or 1}))
    pool: str = "prefork"
    batch_size: int = 500
    normalize: str = "both"  # both | off (output_formats []) | on (output_formats [ecs, ocsf])
    eps_throttle: int = 10_000_000  # the source's EPS cap, far above what is measured
    listing_objects: list[int] = field(default_factory=lambda: [1000, 100_000])
    listing_new: int = 10
    big_mb: int = 200
    phases: list[str] = field(default_factory=lambda: list(PHASES))
    appendonly: bool = True
    trees: list[str] = field(default_factory=list)  # other source trees to run trailpipe from too
    json_out: str | None = None
    work_dir: str | None = None
    keep: bool = False
    quiet: bool = False


def say(options: BenchOptions, message: str) -> None:
    if not options.quiet:
        print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- measuring


def _psutil():
    import psutil  # noqa: PLC0415  (a dev dependency; only the benchmark needs it)

    return psutil


def cpu_seconds(pids: list[int], tree: bool = True) -> float:
    """User + system CPU seconds of ``pids`` (and of their live and waited-for children)."""
    psutil = _psutil()
    total = 0.0
    seen = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs = [proc] + (proc.children(recursive=True) if tree else [])
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_pids(pid: int) -> list[int]:
    psutil = _psutil()
    try:
        proc = psutil.Process(pid)
        return [pid] + [c.pid for c in proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def proc_status_kb(pid: int, name: str) -> int:
    """A field of /proc/PID/status in kB (VmRSS, VmHWM); 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker_processes(pid: int) -> tuple[int, list[int]]:
    """(the celery main process, its pool processes)."""
    pids = tree_pids(pid)
    return pid, [p for p in pids if p != pid]


# --------------------------------------------------------------------------- data


def make_files(options: BenchOptions) -> list[LogFile]:
    """``files`` log files of ``min_records``..``max_records`` records over 3 accounts x 3 regions."""
    rng = random.Random(options.seed)
    partitions = [(a, r) for a in ACCOUNTS for r in REGIONS]
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    out = []
    for index in range(options.files):
        account, region = partitions[index % len(partitions)]
        when = end - STEP * (options.files - index)
        records = rng.randint(options.min_records, options.max_records)
        out.append(make_log_file(rng, account, region, when, records, prefix=""))
    return out


def write_big_file(path: Path, megabytes: int, seed: int) -> tuple[int, int]:
    """A gzip CloudTrail file of ``megabytes`` MB uncompressed, written as a stream (records made
    from a pool of 2,000, each with its own eventID). Returns (records, uncompressed bytes)."""
    rng = random.Random(seed)
    when = datetime.now(UTC) - timedelta(minutes=20)
    pool = [make_record(rng, ACCOUNTS[0], REGIONS[0], when) for _ in range(2000)]
    target = megabytes * 1_000_000
    written = records = 0
    with gzip.open(path, "wb", compresslevel=6) as out:
        head = b'{"Records":['
        out.write(head)
        written += len(head)
        while written < target:
            record = dict(pool[records % len(pool)], eventID=f"{rng.getrandbits(128):032x}")
            data = (b"," if records else b"") + orjson.dumps(record)
            out.write(data)
            written += len(data)
            records += 1
        out.write(b"]}")
        written += 2
    return records, written


# --------------------------------------------------------------------------- S3 server


def serve_s3(port: int) -> None:
    """The S3 server process: a moto server on loopback, and a stdin command channel to fill
    buckets directly in moto's backend (100,000 objects in seconds, not minutes over HTTP)."""
    import logging  # noqa: PLC0415

    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: PLC0415
    from moto.s3.models import s3_backends  # noqa: PLC0415
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("ready", flush=True)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "fill":
            bucket = command["bucket"]
            if bucket not in backend.buckets:
                backend.create_bucket(bucket, REGION)
            rng = random.Random(command["seed"])
            end = datetime.fromtimestamp(command["end"], UTC)
            partitions = [(a, r) for a in ACCOUNTS for r in REGIONS]
            body = b"x" * command.get("size", 1)
            keys = []
            for index in range(command["count"]):
                account, region = partitions[index % len(partitions)]
                key = log_key(account, region, end - STEP * (index // len(partitions)), rng)
                backend.put_object(bucket, key, body)
                if index < command.get("return_keys", 0):
                    keys.append(key)
            print(json.dumps({"ok": True, "keys": keys}), flush=True)
        elif command["op"] == "stop":
            break
    server.stop()


class S3Server:
    def __init__(self, log_path: Path):
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        env = dict(os.environ, MOTO_S3_DEFAULT_MAX_KEYS="1000")  # as S3: 1,000 keys per LIST page
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from ops.bench.harness import serve_s3; serve_s3(int(sys.argv[1]))",
             str(self.port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=str(REPO),
            env=env, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the S3 server did not start; see {self.log_path}")
        return self

    def fill(self, bucket: str, count: int, end: datetime, seed: int, return_keys: int = 0) -> list[str]:
        self.process.stdin.write(json.dumps({"op": "fill", "bucket": bucket, "count": count,
                                             "end": end.timestamp(), "seed": seed,
                                             "return_keys": return_keys}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        return answer["keys"]

    def cpu(self) -> float:
        return cpu_seconds([self.process.pid], tree=False)

    def client(self):
        import boto3  # noqa: PLC0415

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "stop"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.log.close()


# --------------------------------------------------------------------------- floor and naive


def _account(record: dict) -> str:
    account = record.get("recipientAccountId")
    if not account:
        identity = record.get("userIdentity")
        account = identity.get("accountId") if isinstance(identity, dict) else None
    return account or ""


def run_floor(files: list[LogFile], redis_url: str, batch: int = 500) -> int:
    """The floor: the files' bytes from memory, one process, gunzip + orjson + pipelined XADD
    of the record and the 8 routing fields (no S3, no state, no checkpoint, no normalization)."""
    client = redis.Redis.from_url(redis_url)
    dumps, loads = orjson.dumps, orjson.loads
    events = 0
    for log in files:
        records = loads(zlib.decompress(log.body, 47))["Records"]
        pipe = client.pipeline(transaction=False)
        for index, record in enumerate(records, 1):
            pipe.execute_command(
                "XADD", STREAM, "*", "event", dumps(record), "event_id", record.get("eventID") or "",
                "event_name", record.get("eventName") or "", "event_time", record.get("eventTime") or "",
                "source", SOURCE_ID, "object", log.key, "account", _account(record),
                "region", record.get("awsRegion") or "")
            if index % batch == 0:
                pipe.execute()
        pipe.execute()
        events += len(records)
    client.close()
    return events


def run_naive(endpoint: str, redis_url: str) -> int:
    """``ops/bench/naive_collector.py``, as a user would run it."""
    from ops.bench.naive_collector import collect  # noqa: PLC0415

    return collect(endpoint, redis_url, BUCKET, PREFIX, region_name=REGION,
                   aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)


def run_naive_pipelined(endpoint: str, redis_url: str) -> int:
    """The naive collector with one pipeline per file: what a user who knows Redis writes."""
    import boto3  # noqa: PLC0415

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                      aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
    r = redis.Redis.from_url(redis_url)
    events = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".json.gz") and "/CloudTrail-Digest/" not in obj["Key"]:
                body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
                pipe = r.pipeline(transaction=False)
                for record in orjson.loads(gzip.decompress(body))["Records"]:
                    pipe.xadd(STREAM, {"event": orjson.dumps(record), "object": obj["Key"]})
                events += len(pipe.execute())
    r.close()
    return events


def measure_in_process(name: str, redis_server: RedisServer, run) -> dict:
    """Run ``run()`` (returns events) in this process; wall time and CPU of this process + redis."""
    me = os.getpid()
    cpu0, rcpu0 = cpu_seconds([me], tree=False), cpu_seconds([redis_server.process.pid])
    t0 = time.perf_counter()
    events = run()
    seconds = time.perf_counter() - t0
    cpu1, rcpu1 = cpu_seconds([me], tree=False), cpu_seconds([redis_server.process.pid])
    return phase_result(name, events, seconds, cpu1 - cpu0, rcpu1 - rcpu0)


def phase_result(name: str, events: int, seconds: float, process_cpu: float, redis_cpu: float,
                 **extra) -> dict:
    cpu = process_cpu + redis_cpu
    return {"phase": name, "events": events, "seconds": round(seconds, 3),
            "events_per_s": round(events / seconds, 1) if seconds > 0 else None,
            "cpu_seconds": round(cpu, 3), "process_cpu_seconds": round(process_cpu, 3),
            "redis_cpu_seconds": round(redis_cpu, 3),
            "cpu_s_per_million_events": round(cpu / events * 1e6, 2) if events else None, **extra}


def stream_field_names(redis_url: str) -> list[str]:
    client = redis.Redis.from_url(redis_url)
    try:
        entries = client.xrange(STREAM, count=1)
        return sorted(k.decode() for k in entries[0][1]) if entries else []
    finally:
        client.close()


# --------------------------------------------------------------------------- trailpipe


def write_config(path: Path, redis_url: str, endpoint: str, options: BenchOptions, formats: list[str],
                 bucket: str = BUCKET, prefix: str = PREFIX) -> Path:
    source = {"identifier": SOURCE_ID, "bucket": bucket, "region": REGION, "endpoint_url": endpoint,
              "auth": {"method": "access_key", "access_key_id": KEY_ID, "secret_access_key": SECRET},
              "directory_prefix": prefix, "recurrence": "1D", "eps_throttle": options.eps_throttle}
    if formats:
        source["output_formats"] = formats
    config = {"redis_url": redis_url, "batch_size": options.batch_size, "sources": [source]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Worker:
    """``celery -A workers.app worker`` with the production settings (``workers/app.py``)."""

    def __init__(self, config_path: Path, log_path: Path, concurrency: int, pool: str, tree: Path = REPO):
        self.config_path, self.log_path = config_path, log_path
        self.concurrency, self.pool, self.tree = concurrency, pool, tree
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> Worker:
        env = dict(os.environ, TRAILPIPE_CONFIG=str(self.config_path), PYTHONUNBUFFERED="1")
        env.pop("TRAILPIPE_REDIS_URL", None)
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "info",
             "--pool", self.pool, "--concurrency", str(self.concurrency),
             "--hostname", f"bench{os.getpid()}-{self.concurrency}@%h"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=str(self.tree))  # its code first
        deadline = time.monotonic() + timeout
        while " ready." not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the celery worker did not become ready; see {self.log_path}")
            time.sleep(0.1)
        if self.pool == "prefork":  # the pool processes are up when the worker says ready
            while len(tree_pids(self.process.pid)) < 1 + self.concurrency:
                time.sleep(0.05)
        return self

    @property
    def pids(self) -> list[int]:
        return tree_pids(self.process.pid)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class DiscoverySender:
    """Sends ``trailpipe.discover`` as ``trailpipe discover`` does, from a client-only Celery app."""

    def __init__(self, broker_url: str):
        from celery import Celery  # noqa: PLC0415  (the benchmark drives Celery as a client)

        self.app = Celery("trailpipe-bench-client", broker=broker_url, set_as_current=False)
        self.app.conf.update(task_serializer="json", accept_content=["json"],
                             broker_connection_retry_on_startup=True)

    def send(self) -> None:
        self.app.send_task("trailpipe.discover", args=(SOURCE_ID,), queue=f"trailpipe.{REGION}")

    def close(self) -> None:
        self.app.close()


def wait_objects(client: redis.Redis, count: int, worker: Worker, timeout: float) -> dict[str, int]:
    stats_key = f"trailpipe:src:{SOURCE_ID}:stats"
    deadline = time.monotonic() + timeout
    while True:
        stats = {k.decode(): int(v) for k, v in client.hgetall(stats_key).items()}
        if stats.get("objects_done", 0) + stats.get("objects_failed", 0) >= count:
            return stats
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited; see {worker.log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {count} objects (stats {stats}); see {worker.log_path}")
        time.sleep(0.05)


def formats_label(formats: list[str]) -> str:
    return "_" + "_".join(formats) if formats else ""


def run_trailpipe(options: BenchOptions, work: Path, s3: S3Server, files: list[LogFile],
                  concurrency: int, formats: list[str], tree: Path | None = None) -> tuple[dict, list[str]]:
    label = formats_label(formats) + (f"-{tree.name}" if tree else "")
    name = (f"trailpipe x{concurrency} ({options.pool}) [{', '.join(formats) or 'default fields'}]"
            + (f" [{tree.name}]" if tree else ""))
    expected = sum(log.records for log in files)
    with ExitStack() as stack:
        redis_server = stack.enter_context(fresh_redis(work / f"redis-trailpipe-{concurrency}{label}", options))
        config = write_config(work / f"trailpipe-{concurrency}{label}.yaml", redis_server.url, s3.endpoint,
                              options, formats)
        worker = Worker(config, work / f"worker-{concurrency}{label}.log", concurrency, options.pool,
                        tree or REPO).start()
        stack.callback(worker.stop)
        client = redis.Redis.from_url(redis_server.url)
        stack.callback(client.close)
        sender = DiscoverySender(redis_server.url)
        stack.callback(sender.close)
        main_pid, pool_pids = worker_processes(worker.process.pid)
        idle_rss = {pid: proc_status_kb(pid, "VmRSS") for pid in [main_pid, *pool_pids]}
        pids = worker.pids
        cpu0, rcpu0, s3cpu0 = cpu_seconds(pids), cpu_seconds([redis_server.process.pid]), s3.cpu()
        seconds0, micros0 = client.time()
        sender.send()
        stats = wait_objects(client, len(files), worker, timeout=600 + expected / 500)
        pids = sorted(set(pids) | set(worker.pids))
        cpu1, rcpu1, s3cpu1 = cpu_seconds(pids), cpu_seconds([redis_server.process.pid]), s3.cpu()
        (last_id, _), = client.xrevrange(STREAM, count=1)
        end_ms = int(last_id.split(b"-")[0])
        seconds = end_ms / 1000 - (seconds0 + micros0 / 1e6)
        events = client.xlen(STREAM)
        peak = {pid: proc_status_kb(pid, "VmHWM") for pid in pids}
        pool_peaks = [peak[p] for p in pids if p != main_pid] or [peak[main_pid]]
        result = phase_result(
            name, events, seconds, cpu1 - cpu0, rcpu1 - rcpu0, concurrency=concurrency, pool=options.pool,
            output_formats=formats, tree=str(tree) if tree else None,
            expected_events=expected, objects_done=stats.get("objects_done", 0),
            objects_failed=stats.get("objects_failed", 0),
            worker_peak_rss_mb=round(max(pool_peaks) / 1024, 1),
            worker_main_peak_rss_mb=round(peak.get(main_pid, 0) / 1024, 1),
            # The same processes as the peak (the pool's; the main one only without a pool).
            worker_idle_rss_mb=round(max([idle_rss[p] for p in pool_pids] or [idle_rss[main_pid]]) / 1024, 1),
            s3_server_cpu_seconds=round(s3cpu1 - s3cpu0, 3))
        fields = stream_field_names(redis_server.url)
    return result, fields


# --------------------------------------------------------------------------- listing scale


def run_listing(options: BenchOptions, work: Path, s3: S3Server, size: int) -> dict:
    """Discoveries of a bucket of ``size`` objects: the first, one with nothing new, one with
    ``listing_new`` new objects. ``pipeline.discovery.discover`` with a no-op enqueue."""
    from pipeline.config import load_config  # noqa: PLC0415
    from pipeline.discovery import discover  # noqa: PLC0415
    from pipeline.runtime import Runtime  # noqa: PLC0415

    bucket = f"trailpipe-bench-list-{size}"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    t0 = time.perf_counter()
    s3.fill(bucket, size, now - timedelta(minutes=30), seed=options.seed)
    fill_seconds = time.perf_counter() - t0
    out: dict = {"objects": size, "fill_seconds": round(fill_seconds, 2)}
    with fresh_redis(work / f"redis-listing-{size}", options) as redis_server:
        config = load_config(write_config(work / f"listing-{size}.yaml", redis_server.url, s3.endpoint,
                                          options, [], bucket=bucket))
        runtime = Runtime(config)
        source = config.sources[0]
        client = runtime.s3(source)
        timer = {"seconds": 0.0, "started": 0.0}

        def before(**_):
            timer["started"] = time.perf_counter()

        def after(**_):
            timer["seconds"] += time.perf_counter() - timer["started"]

        client.meta.events.register("before-call.s3.ListObjectsV2", before)
        client.meta.events.register("after-call.s3.ListObjectsV2", after)
        enqueued: list[str] = []

        def run(label: str) -> None:
            enqueued.clear()
            timer["seconds"] = 0.0
            result = discover(source, runtime.state, client, lambda sid, key: enqueued.append(key))
            out[label] = {"seconds": round(result.seconds, 3), "list_requests": result.list_requests,
                          "partitions": result.partitions, "listed": result.listed,
                          "enqueued": len(enqueued), "s3_list_seconds": round(timer["seconds"], 3),
                          "trailpipe_seconds": round(result.seconds - timer["seconds"], 3)}

        run("first")
        run("nothing_new")
        s3.fill(bucket, options.listing_new, now - timedelta(minutes=10), seed=options.seed + 1)
        run("new")
        out["new"]["expected"] = options.listing_new
        runtime.redis.close()
    return out


# --------------------------------------------------------------------------- memory


def run_memory(options: BenchOptions, work: Path, s3: S3Server, formats: list[str]) -> dict:
    """A worker's peak RSS while ingesting one ``big_mb`` MB (uncompressed) object."""
    bucket = "trailpipe-bench-big"
    s3client = s3.client()
    s3client.create_bucket(Bucket=bucket)
    rng = random.Random(options.seed + 2)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    small = make_log_file(rng, ACCOUNTS[0], REGIONS[0], now - timedelta(minutes=40), 200)
    s3client.put_object(Bucket=bucket, Key=small.key, Body=small.body)
    big_key = log_key(ACCOUNTS[0], REGIONS[0], now - timedelta(minutes=20), rng)
    path = work / "big.json.gz"
    t0 = time.perf_counter()
    records, size = write_big_file(path, options.big_mb, options.seed)
    say(options, f"  big object: {records:,} records, {size / 1e6:.0f} MB uncompressed, "
                 f"{path.stat().st_size / 1e6:.1f} MB gzip (made in {time.perf_counter() - t0:.1f} s)")
    out: dict = {"uncompressed_mb": round(size / 1e6, 1), "gzip_mb": round(path.stat().st_size / 1e6, 1),
                 "records": records}
    with ExitStack() as stack:
        redis_server = stack.enter_context(fresh_redis(work / "redis-memory", options))
        config = write_config(work / "memory.yaml", redis_server.url, s3.endpoint, options,
                              formats, bucket=bucket)
        worker = Worker(config, work / "worker-memory.log", 1, "prefork").start()
        stack.callback(worker.stop)
        client = redis.Redis.from_url(redis_server.url)
        stack.callback(client.close)
        sender = DiscoverySender(redis_server.url)
        stack.callback(sender.close)
        _, (child,) = worker_processes(worker.process.pid)
        cold = proc_status_kb(child, "VmRSS")
        # Warm up on a small object (the first task builds the Runtime and the boto3 client),
        # then upload the big one and ingest it alone.
        sender.send()
        wait_objects(client, 1, worker, timeout=120)
        s3client.upload_file(str(path), bucket, big_key)
        path.unlink()
        warm = proc_status_kb(child, "VmRSS")
        reset = reset_peak_rss(child)
        t0 = time.perf_counter()
        sender.send()
        stats = wait_objects(client, 2, worker, timeout=600 + records / 500)
        seconds = time.perf_counter() - t0
        peak = proc_status_kb(child, "VmHWM")
        events = int(stats.get("events_emitted", 0))
        out.update({
            "objects_done": stats.get("objects_done", 0), "events": events,
            "seconds": round(seconds, 2), "events_per_s": round((events - small.records) / seconds, 1),
            "cold_idle_rss_mb": round(cold / 1024, 1), "warm_idle_rss_mb": round(warm / 1024, 1),
            "peak_rss_mb": round(peak / 1024, 1), "peak_reset_after_warmup": reset,
            "peak_above_idle_mb": round((peak - (warm if reset else cold)) / 1024, 1),
            "peak_above_cold_idle_mb": round((peak - cold) / 1024, 1)})
    return out


# --------------------------------------------------------------------------- the run


def fresh_redis(directory: Path, options: BenchOptions) -> RedisServer:
    shutil.rmtree(directory, ignore_errors=True)
    return RedisServer(directory, appendonly=options.appendonly)


def ratio(a, b) -> float | None:
    return round(a / b, 3) if a and b else None


def run_benchmark(options: BenchOptions) -> dict:
    """Run the phases of ``options``; return every figure (also written to ``json_out``)."""
    created = options.work_dir is None
    work = Path(options.work_dir or tempfile.mkdtemp(prefix="trailpipe-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    format_sets = FORMAT_SETS[options.normalize]
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "options": {k: v for k, v in asdict(options).items() if k not in ("json_out", "work_dir", "quiet")},
        "output_formats": [list(f) for f in format_sets], "phases": {}, "ratios": {}, "targets": {},
        "naive_collector": str(NAIVE_SCRIPT.relative_to(REPO)),
    }
    phases = results["phases"]
    try:
        with ExitStack() as stack:
            s3 = S3Server(work / "s3-server.log").start()
            stack.callback(s3.stop)
            throughput = [p for p in ("floor", "naive", "trailpipe") if p in options.phases]
            fields: dict[str, list[str]] = {}
            if throughput:
                t0 = time.perf_counter()
                files = make_files(options)
                events = sum(log.records for log in files)
                raw_bytes = sum(len(zlib.decompress(log.body, 47)) for log in files)
                results["data"] = {"files": len(files), "events": events,
                                   "gzip_mb": round(sum(len(log.body) for log in files) / 1e6, 2),
                                   "uncompressed_mb": round(raw_bytes / 1e6, 2),
                                   "avg_record_bytes": round(raw_bytes / events)}
                s3client = s3.client()
                s3client.create_bucket(Bucket=BUCKET)
                for log in files:
                    s3client.put_object(Bucket=BUCKET, Key=log.key, Body=log.body)
                say(options, f"data: {len(files)} files, {events:,} events, {raw_bytes / 1e6:.0f} MB "
                             f"uncompressed (made and uploaded in {time.perf_counter() - t0:.1f} s)")
            if "floor" in options.phases:
                say(options, "floor ...")
                with fresh_redis(work / "redis-floor", options) as server:
                    phases["floor"] = measure_in_process(
                        "floor", server, lambda: run_floor(files, server.url, options.batch_size))
                    fields["floor"] = stream_field_names(server.url)
            if "naive" in options.phases:
                say(options, "naive ...")
                with fresh_redis(work / "redis-naive", options) as server:
                    s3cpu0 = s3.cpu()
                    phases["naive"] = measure_in_process("naive", server,
                                                         lambda: run_naive(s3.endpoint, server.url))
                    phases["naive"]["s3_server_cpu_seconds"] = round(s3.cpu() - s3cpu0, 3)
                    fields["naive"] = stream_field_names(server.url)
                with fresh_redis(work / "redis-naive-pipelined", options) as server:
                    phases["naive_pipelined"] = measure_in_process(
                        "naive, XADDs pipelined (no target)", server,
                        lambda: run_naive_pipelined(s3.endpoint, server.url))
            if "trailpipe" in options.phases:
                trees = [None] + [Path(t).resolve() for t in options.trees]
                for concurrency in options.concurrency:
                    for formats in format_sets:
                        for tree in trees:  # interleaved, so a variant and the baseline see the same load
                            key = (f"trailpipe_x{concurrency}" + formats_label(formats)
                                   + (f"_{tree.name}" if tree else ""))
                            say(options, f"{key} ({options.pool}) ...")
                            result, fields[key] = run_trailpipe(options, work, s3, files, concurrency,
                                                                formats, tree)
                            phases[key] = result
            if fields:
                results["stream_fields"] = fields
            if "normalize" in options.phases:
                say(options, "normalize (in process) ...")
                from ops.bench.normalize_bench import measure  # noqa: PLC0415

                results["normalize"] = {k: round(v, 2) for k, v in measure().items()}
            if "listing" in options.phases:
                results["listing"] = []
                for size in options.listing_objects:
                    say(options, f"listing: {size:,} objects ...")
                    results["listing"].append(run_listing(options, work, s3, size))
            if "memory" in options.phases:
                say(options, f"memory: one {options.big_mb} MB object ...")
                results["memory"] = run_memory(options, work, s3, format_sets[-1])
        summarize(results)
    finally:
        if created and not options.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            results["work_dir"] = str(work)
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(results, indent=2) + "\n")
    return results


def summarize(results: dict) -> None:
    phases, ratios, targets = results["phases"], results["ratios"], results["targets"]
    floor, naive = phases.get("floor"), phases.get("naive")
    for name, phase in phases.items():
        if not name.startswith("trailpipe"):
            continue
        if naive:
            ratios[f"{name}/naive events_per_s"] = ratio(phase["events_per_s"], naive["events_per_s"])
            ratios[f"{name}/naive cpu_per_event"] = ratio(phase["cpu_s_per_million_events"],
                                                          naive["cpu_s_per_million_events"])
        if phases.get("naive_pipelined"):
            ratios[f"{name}/naive_pipelined events_per_s"] = ratio(
                phase["events_per_s"], phases["naive_pipelined"]["events_per_s"])
        if floor:
            ratios[f"{name}/floor events_per_s"] = ratio(phase["events_per_s"], floor["events_per_s"])
            ratios[f"{name}/floor cpu_per_event"] = ratio(phase["cpu_s_per_million_events"],
                                                          floor["cpu_s_per_million_events"])
    if naive and floor:
        ratios["naive/floor events_per_s"] = ratio(naive["events_per_s"], floor["events_per_s"])
        ratios["naive/floor cpu_per_event"] = ratio(naive["cpu_s_per_million_events"],
                                                    floor["cpu_s_per_million_events"])
    for name, phase in phases.items():
        if name.startswith("trailpipe") and phase.get("tree"):
            base = phases.get(f"trailpipe_x{phase['concurrency']}")
            if base:
                ratios[f"{name}/trailpipe_x{phase['concurrency']} events_per_s"] = ratio(
                    phase["events_per_s"], base["events_per_s"])
                ratios[f"{name}/trailpipe_x{phase['concurrency']} cpu_per_event"] = ratio(
                    phase["cpu_s_per_million_events"], base["cpu_s_per_million_events"])
    trailpipes = [p for n, p in phases.items() if n.startswith("trailpipe") and not p.get("tree")]
    if trailpipes:
        top = max(p["concurrency"] for p in trailpipes)  # the targets are for --concurrency 2 on 2 cores
        default = phases.get(f"trailpipe_x{top}")
        both = phases.get(f"trailpipe_x{top}_ecs_ocsf")
        if default and naive:
            value = ratio(default["events_per_s"], naive["events_per_s"])
            limit = TARGETS["default_over_naive_events_per_s"]
            targets[f"trailpipe x{top}, default fields >= {limit}x naive events/s"] = {
                "value": value, "met": value is not None and value >= limit}
        if default and floor:
            value = ratio(default["cpu_s_per_million_events"], floor["cpu_s_per_million_events"])
            limit = TARGETS["default_over_floor_cpu_per_event"]
            targets[f"trailpipe x{top}, default fields CPU/event <= {limit}x floor"] = {
                "value": value, "met": value is not None and value <= limit}
        if both and naive:
            value = ratio(both["events_per_s"], naive["events_per_s"])
            limit = TARGETS["ecs_ocsf_over_naive_events_per_s"]
            targets[f"trailpipe x{top}, [ecs, ocsf] >= {limit}x naive events/s"] = {
                "value": value, "met": value is not None and value >= limit}
        targets["every event exactly once"] = {
            "met": all(p["events"] == p["expected_events"] and p["objects_failed"] == 0
                       for n, p in phases.items() if n.startswith("trailpipe"))}
    normalize = results.get("normalize")
    if normalize:
        value = round(normalize["ecs_ocsf_batch_us"] - normalize["default_batch_us"], 1)  # as ingest runs it
        limit = TARGETS["ecs_ocsf_us_per_record"]
        targets[f"ECS + OCSF <= {limit:.0f} us per record (in process)"] = {"value": value, "met": value <= limit}
    listing = results.get("listing")
    if listing:
        one_per_partition = all(r["nothing_new"]["list_requests"] == r["nothing_new"]["partitions"]
                                and r["nothing_new"]["enqueued"] == 0 for r in listing)
        targets["nothing new = one LIST per partition"] = {
            "met": one_per_partition,
            "value": {r["objects"]: r["nothing_new"]["list_requests"] for r in listing}}
        largest = max(listing, key=lambda r: r["objects"])
        new = largest["new"]
        limit = TARGETS["discovery_new_trailpipe_seconds"]
        targets[f"{new['expected']} new among {largest['objects']:,} found, trailpipe's part < {limit * 1000:.0f} ms"] = {
            "met": new["enqueued"] == new["expected"] and new["trailpipe_seconds"] < limit,
            "value": new["trailpipe_seconds"], "s3_list_seconds": new["s3_list_seconds"],
            "seconds": new["seconds"]}
    memory = results.get("memory")
    if memory:
        targets["worker peak RSS <= 128 MB above idle"] = {
            "met": memory["peak_above_idle_mb"] <= 128 and memory["objects_done"] == 2,
            "value": memory["peak_above_idle_mb"]}


def format_report(results: dict) -> str:
    lines = []
    data = results.get("data")
    if data:
        lines.append(f"data: {data['files']} files, {data['events']:,} events, {data['uncompressed_mb']} MB "
                     f"uncompressed ({data['avg_record_bytes']} B/record), {data['gzip_mb']} MB gzip; "
                     f"{results['machine']['cpus']} CPUs; naive collector: {results['naive_collector']}")
    if results["phases"]:
        lines.append(f"{'phase':<52}{'events/s':>11}{'seconds':>9}{'CPU s/M ev':>12}{'redis part':>12}"
                     f"{'S3 srv CPU':>12}{'peak RSS MB':>13}")
        for phase in results["phases"].values():
            rss = phase.get("worker_peak_rss_mb")
            s3cpu = phase.get("s3_server_cpu_seconds")
            # A tiny run can finish within one tick of the CPU clock: no share to show then.
            redis_share = (f"{phase['redis_cpu_seconds'] / phase['cpu_seconds'] * 100:>11.0f}%"
                           if phase["cpu_seconds"] else f"{'-':>12}")
            lines.append(f"{phase['phase']:<52}{phase['events_per_s']:>11,.0f}{phase['seconds']:>9.2f}"
                         f"{phase['cpu_s_per_million_events']:>12.1f}"
                         f"{redis_share}"
                         f"{'' if s3cpu is None else f'{s3cpu:.1f} s':>12}{'' if rss is None else rss:>13}")
    for name, value in results["ratios"].items():
        lines.append(f"  {name:<42} {value}")
    normalize = results.get("normalize")
    if normalize:
        lines.append(f"normalize (in process, {normalize['records']} records): parse {normalize['parse_us']} us, "
                     f"display_name + category {normalize['default_fields_us']} us, ecs_document "
                     f"{normalize['ecs_document_us']} us, ocsf_event {normalize['ocsf_event_us']} us, "
                     f"all fields with [ecs, ocsf] serialized {normalize['ecs_ocsf_fields_us']} us per record "
                     f"one by one, {normalize['ecs_ocsf_batch_us']} us by batches of 500 (default fields: "
                     f"{normalize['default_batch_us']} us)")
    for entry in results.get("listing", []):
        for label in ("first", "nothing_new", "new"):
            r = entry[label]
            lines.append(f"listing {entry['objects']:>7,} objects, {label:<11}: {r['seconds']:6.3f} s "
                         f"({r['s3_list_seconds']:.3f} s in S3 LIST, {r['trailpipe_seconds']:.3f} s trailpipe), "
                         f"{r['list_requests']} LIST, {r['partitions']} partitions, {r['enqueued']} enqueued")
    memory = results.get("memory")
    if memory:
        lines.append(f"memory: {memory['uncompressed_mb']} MB object ({memory['records']:,} records) in "
                     f"{memory['seconds']} s; worker RSS cold idle {memory['cold_idle_rss_mb']} MB, warm idle "
                     f"{memory['warm_idle_rss_mb']} MB, peak {memory['peak_rss_mb']} MB: "
                     f"{memory['peak_above_idle_mb']} MB above idle")
    for name, target in results["targets"].items():
        value = target.get("value")
        lines.append(f"target {name}: {'MET' if target['met'] else 'NOT MET'}"
                     + ("" if value is None else f" ({value})"))
    return "\n".join(lines)


def _int_list(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> BenchOptions:
    defaults = BenchOptions()
    parser = argparse.ArgumentParser(prog="trailpipe bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--files", type=int, default=defaults.files, help="CloudTrail files")
    parser.add_argument("--min-records", type=int, default=defaults.min_records)
    parser.add_argument("--max-records", type=int, default=defaults.max_records)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--concurrency", type=_int_list, default=defaults.concurrency,
                        help="worker concurrencies to run, comma-separated")
    parser.add_argument("--pool", choices=("prefork", "threads", "solo"), default=defaults.pool)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--normalize", choices=tuple(FORMAT_SETS), default=defaults.normalize,
                        help="the trailpipe phases' output_formats: off = [], on = [ecs, ocsf], both = each")
    parser.add_argument("--eps-throttle", type=int, default=defaults.eps_throttle,
                        help="the source's eps_throttle (the default leaves throughput unthrottled)")
    parser.add_argument("--listing-objects", type=_int_list, default=defaults.listing_objects,
                        help="bucket sizes for the listing phase, comma-separated")
    parser.add_argument("--listing-new", type=int, default=defaults.listing_new)
    parser.add_argument("--big-mb", type=int, default=defaults.big_mb, help="uncompressed MB of the big object")
    parser.add_argument("--phases", default=",".join(defaults.phases),
                        help=f"comma-separated, of {', '.join(PHASES)}")
    parser.add_argument("--no-appendonly", dest="appendonly", action="store_false",
                        help="redis-server without AOF (default: AOF on, as in production)")
    parser.add_argument("--tree", dest="trees", action="append", default=[], metavar="PATH",
                        help="also run the trailpipe phases with the workers started from this source tree "
                             "(a copy of the repository with a change applied): before/after in one run")
    parser.add_argument("--json-out", metavar="PATH")
    parser.add_argument("--work-dir", metavar="DIR", help="kept after the run (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory (logs)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--show-naive", action="store_true", help="print the naive collector's code and exit")
    args = parser.parse_args(argv)
    if args.show_naive:
        print(NAIVE_SCRIPT.read_text(), end="")
        parser.exit()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if args.min_records > args.max_records or args.files < 1:
        parser.error("need --files >= 1 and --min-records <= --max-records")
    return BenchOptions(files=args.files, min_records=args.min_records, max_records=args.max_records,
                        seed=args.seed, concurrency=args.concurrency, pool=args.pool,
                        batch_size=args.batch_size, normalize=args.normalize, eps_throttle=args.eps_throttle,
                        listing_objects=args.listing_objects, listing_new=args.listing_new,
                        big_mb=args.big_mb, phases=phases, appendonly=args.appendonly, trees=args.trees,
                        json_out=args.json_out, work_dir=args.work_dir, keep=args.keep, quiet=args.quiet)


def main(argv: list[str] | None = None) -> int:
    """``python ops/bench/run.py ...`` / ``trailpipe bench ...``: print the figures; exit 0 when
    every phase ran (targets missed are reported, not an error)."""
    results = run_benchmark(parse_args(argv))
    print(format_report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
