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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

import orjson
import redis
import yaml

from pipeline import defaults
from pipeline.demo_data import ACCOUNTS, REGIONS, LogFile, log_key, make_log_file, make_record
from pipeline.redis_server import RedisServer, free_port
from workers.launch import celery_command

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
PHASES = ("floor", "naive", "trailpipe", "small", "latency", "normalize", "listing", "memory")
SMALL_BUCKET = "trailpipe-bench-small"
BACKFILL_BUCKET = "trailpipe-bench-backfill"
FORMAT_SETS = {"off": ([],), "on": (["ecs", "ocsf"],), "both": ([], ["ecs", "ocsf"])}
# The targets of issues 12 and 22, as ratios measured within one run; "naive" is the pipelined
# script (ops/bench/naive_collector.py).
TARGETS = {
    "default_over_naive_events_per_s": 1.5,  # at least, output_formats []
    "default_over_floor_cpu_per_event": 1.25,  # at most, output_formats []
    "ecs_ocsf_over_naive_events_per_s": 0.75,  # at least, output_formats [ecs, ocsf]
    "small_over_naive_objects_per_s": 1.5,  # at least, small files on loopback
    "small_cpu_ms_per_object": 3.5,  # at most: trailpipe's processes, Redis and the S3 server apart
    "latency_over_naive_objects_per_s": 5.0,  # at least, small files behind --s3-delay-ms
    "latency_over_loopback_objects_per_s": 0.7,  # at least: the wait hidden, not paid
    "event_only_stream_bytes_over_raw": 1.1,  # at most: stream_fields [event], Redis memory per event
    "ecs_ocsf_stream_bytes_over_raw": 3.5,  # at most: output_formats [ecs, ocsf], default fields
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
    concurrency: list[int] = field(default_factory=lambda: [defaults.WORKER_CONCURRENCY])
    pool: str = defaults.WORKER_POOL
    processes: int = os.cpu_count() or 1  # worker processes, as `trailpipe run` starts them
    small_files: int = 600
    small_records: int = 8
    s3_delay_ms: int = 40
    backfill_files: int = 5000
    profile: bool = False  # py-spy samples of the small phase's workers: where the CPU goes
    repeat: int = 1  # small and latency phases: runs of each, interleaved; the median is reported
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


def make_files(options: BenchOptions, count: int | None = None, min_records: int | None = None,
               max_records: int | None = None, seed: int | None = None) -> list[LogFile]:
    """``files`` log files of ``min_records``..``max_records`` records over 3 accounts x 3 regions,
    one every five minutes per account and region (as CloudTrail delivers)."""
    count = options.files if count is None else count
    low = options.min_records if min_records is None else min_records
    high = options.max_records if max_records is None else max_records
    rng = random.Random(options.seed if seed is None else seed)
    partitions = [(a, r) for a in ACCOUNTS for r in REGIONS]
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    out = []
    for index in range(count):
        account, region = partitions[index % len(partitions)]
        when = end - STEP * ((count - index) // len(partitions))
        records = rng.randint(low, high)
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


def delayed(app, delay_ms: int):
    """A WSGI wrapper answering each request after ``delay_ms``: S3's time to first byte. The
    wait sleeps in the request's own thread (the server is threaded), so it costs no CPU and
    requests wait side by side, as they do on S3."""
    delay = delay_ms / 1000

    def answer(environ, start_response):
        time.sleep(delay)
        return app(environ, start_response)

    return answer


def serve_s3(port: int, delayed_port: int = 0, delay_ms: int = 0) -> None:
    """The S3 server process: a moto server on loopback (and, with ``delayed_port``, the same
    backend on a second port answering each request after ``delay_ms``), and a stdin command
    channel to fill buckets directly in moto's backend (100,000 objects in seconds, not minutes
    over HTTP)."""
    import base64  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: PLC0415
    from moto.s3.models import s3_backends  # noqa: PLC0415
    from moto.server import (  # noqa: PLC0415
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,  # noqa: PLC0415
    )
    from werkzeug.serving import make_server  # noqa: PLC0415

    from pipeline.local_s3 import LocalS3  # noqa: PLC0415

    server = LocalS3(port).start()
    slow = None
    if delayed_port:
        slow = make_server("127.0.0.1", delayed_port, delayed(DomainDispatcherApplication(create_backend_app), delay_ms),
                           threaded=True, request_handler=MotoRequestHandler)
        threading.Thread(target=slow.serve_forever, daemon=True).start()
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
        elif command["op"] == "load":  # objects from a file of JSON lines {key, body (base64)}
            bucket = command["bucket"]
            if bucket not in backend.buckets:
                backend.create_bucket(bucket, REGION)
            with open(command["path"]) as lines:
                for item in map(json.loads, lines):
                    backend.put_object(bucket, item["key"], base64.b64decode(item["body"]))
            print(json.dumps({"ok": True, "keys": []}), flush=True)
        elif command["op"] == "stop":
            break
    if slow is not None:
        slow.shutdown()
    server.stop()


class S3Server:
    def __init__(self, log_path: Path, delay_ms: int = 0):
        self.port = free_port()
        self.delayed_port = free_port() if delay_ms > 0 else 0
        self.delay_ms = delay_ms
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def delayed_endpoint(self) -> str:
        """The same buckets, each request answered after ``delay_ms`` (S3's first-byte wait)."""
        return f"http://127.0.0.1:{self.delayed_port}" if self.delayed_port else self.endpoint

    def start(self) -> S3Server:
        env = dict(os.environ, MOTO_S3_DEFAULT_MAX_KEYS="1000")  # as S3: 1,000 keys per LIST page
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from ops.bench.harness import serve_s3; "
             "serve_s3(*map(int, sys.argv[1:]))", str(self.port), str(self.delayed_port), str(self.delay_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=str(REPO), env=env, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the S3 server did not start; see {self.log_path}")
        return self

    def _command(self, command: dict) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def fill(self, bucket: str, count: int, end: datetime, seed: int, return_keys: int = 0) -> list[str]:
        return self._command({"op": "fill", "bucket": bucket, "count": count, "end": end.timestamp(),
                              "seed": seed, "return_keys": return_keys})["keys"]

    def load(self, bucket: str, files: list[LogFile], path: Path) -> None:
        """Put ``files`` into ``bucket`` straight into the backend (no HTTP: no delay either)."""
        import base64  # noqa: PLC0415

        with open(path, "w") as out:
            for log in files:
                out.write(json.dumps({"key": log.key, "body": base64.b64encode(log.body).decode()}) + "\n")
        self._command({"op": "load", "bucket": bucket, "path": str(path)})
        path.unlink()

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


def run_naive(endpoint: str, redis_url: str, bucket: str = BUCKET) -> int:
    """``ops/bench/naive_collector.py``, as a user would run it (each file's XADDs pipelined)."""
    from ops.bench.naive_collector import collect  # noqa: PLC0415

    return collect(endpoint, redis_url, bucket, PREFIX, region_name=REGION,
                   aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)


def run_naive_unpipelined(endpoint: str, redis_url: str, bucket: str = BUCKET) -> int:
    """The naive collector waiting for each XADD's reply (one round trip per record): an extra,
    labelled, no target is against it."""
    import boto3  # noqa: PLC0415

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                      aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
    r = redis.Redis.from_url(redis_url)
    events = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".json.gz") and "/CloudTrail-Digest/" not in obj["Key"]:
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                for record in orjson.loads(gzip.decompress(body))["Records"]:
                    r.xadd(STREAM, {"event": orjson.dumps(record), "object": obj["Key"]})
                    events += 1
    r.close()
    return events


def run_naive_phase(name: str, work: Path, options: BenchOptions, s3: S3Server, endpoint: str,
                    bucket: str, objects: int, runner=run_naive) -> tuple[dict, list[str]]:
    with fresh_redis(work / f"redis-{name}", options) as server:
        s3cpu0 = s3.cpu()
        result = measure_in_process(name, server, lambda: runner(endpoint, server.url, bucket))
        result["s3_server_cpu_seconds"] = round(s3.cpu() - s3cpu0, 3)
        result["objects"] = objects
        result["objects_per_s"] = round(objects / result["seconds"], 1) if result["seconds"] > 0 else None
        result["cpu_ms_per_object"] = round(result["cpu_seconds"] / objects * 1000, 2)
        client = redis.Redis.from_url(server.url)
        result.update(stream_memory(client, result["events"]))
        client.close()
        return result, stream_field_names(server.url)


def measure_in_process(name: str, redis_server: RedisServer, run) -> dict:
    """Run ``run()`` (returns events) in this process; wall time and CPU of this process + redis."""
    me = os.getpid()
    cpu0, rcpu0 = cpu_seconds([me], tree=False), cpu_seconds([redis_server.process.pid])
    t0 = time.perf_counter()
    events = run()
    seconds = time.perf_counter() - t0
    cpu1, rcpu1 = cpu_seconds([me], tree=False), cpu_seconds([redis_server.process.pid])
    client = redis.Redis.from_url(redis_server.url)
    try:
        commands = redis_command_usec(client)
    finally:
        client.close()
    return phase_result(name, events, seconds, cpu1 - cpu0, rcpu1 - rcpu0, redis_command_usec=commands)


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
                 bucket: str = BUCKET, prefix: str = PREFIX, stream_fields: list[str] | None = None) -> Path:
    source = {"identifier": SOURCE_ID, "bucket": bucket, "region": REGION, "endpoint_url": endpoint,
              "auth": {"method": "access_key", "access_key_id": KEY_ID, "secret_access_key": SECRET},
              "directory_prefix": prefix, "recurrence": "1D", "eps_throttle": options.eps_throttle}
    if formats:
        source["output_formats"] = formats
    if stream_fields:
        source["stream_fields"] = stream_fields
    config = {"redis_url": redis_url, "batch_size": options.batch_size, "sources": [source]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Worker:
    """``processes`` × ``celery -A workers.app worker`` with the production settings
    (``workers/app.py``), as ``trailpipe run`` starts them: ``--pool``, ``--concurrency``."""

    def __init__(self, config_path: Path, log_path: Path, concurrency: int, pool: str, tree: Path = REPO,
                 processes: int = 1):
        self.config_path, self.log_path = config_path, log_path
        self.concurrency, self.pool, self.tree, self.processes = concurrency, pool, tree, processes
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    @property
    def process(self) -> subprocess.Popen:
        return self.procs[0]

    def start(self, timeout: float = 120) -> Worker:
        env = dict(os.environ, TRAILPIPE_CONFIG=str(self.config_path), PYTHONUNBUFFERED="1")
        env.pop("TRAILPIPE_REDIS_URL", None)
        self.files = []
        for index in range(self.processes):
            path = self.log_path if index == 0 else self.log_path.with_suffix(f".{index}.log")
            self.logs.append(path)
            log = open(path, "ab")
            self.files.append(log)
            self.procs.append(subprocess.Popen(
                celery_command("worker", "--loglevel", "info", "--pool", self.pool, "--concurrency",
                               str(self.concurrency), "--hostname", f"bench{os.getpid()}-{self.concurrency}-{index}@%h"),
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(self.tree)))  # its code first
        deadline = time.monotonic() + timeout
        for path, process in zip(self.logs, self.procs):
            while " ready." not in path.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the celery worker did not become ready; see {path}")
                time.sleep(0.1)
            if self.pool == "prefork":  # the pool processes are up when the worker says ready
                while len(tree_pids(process.pid)) < 1 + self.concurrency:
                    time.sleep(0.05)
        return self

    @property
    def pids(self) -> list[int]:
        return [pid for process in self.procs for pid in tree_pids(process.pid)]

    def working_pids(self) -> list[int]:
        """The processes that run tasks: the pool children (prefork), else the workers themselves."""
        out = []
        for process in self.procs:
            children = [p for p in tree_pids(process.pid) if p != process.pid]
            out += children if self.pool == "prefork" else [process.pid]
        return out

    def exited(self) -> bool:
        return any(process.poll() is not None for process in self.procs)

    def stop(self) -> None:
        for process in self.procs:
            if process.poll() is None:
                process.terminate()
        for process in self.procs:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.files:
            log.close()


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
        if worker.exited():
            raise RuntimeError(f"the worker exited; see {worker.log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {count} objects (stats {stats}); see {worker.log_path}")
        time.sleep(0.05)


def formats_label(formats: list[str]) -> str:
    return "_" + "_".join(formats) if formats else ""


def run_trailpipe(options: BenchOptions, work: Path, s3: S3Server, files: list[LogFile],
                  concurrency: int, formats: list[str], tree: Path | None = None, *, bucket: str = BUCKET,
                  endpoint: str | None = None, tag: str = "", profile: str | None = None,
                  stream_fields: list[str] | None = None) -> tuple[dict, list[str]]:
    """One trailpipe run over ``files`` (in ``bucket``, served at ``endpoint``): workers started,
    one discovery, every object ingested. ``profile``: py-spy samples of the worker processes
    into that file, split by what the CPU went to (``cpu_split``)."""
    label = tag + formats_label(formats) + (f"-{tree.name}" if tree else "")
    name = (f"trailpipe{' ' + tag if tag else ''} {options.processes}x{concurrency} ({options.pool}) "
            f"[{', '.join(formats) or 'default fields'}]" + (f" [{tree.name}]" if tree else ""))
    expected = sum(log.records for log in files)
    with ExitStack() as stack:
        redis_server = stack.enter_context(fresh_redis(work / f"redis-trailpipe-{concurrency}{label}", options))
        config = write_config(work / f"trailpipe-{concurrency}{label}.yaml", redis_server.url,
                              endpoint or s3.endpoint, options, formats, bucket=bucket, stream_fields=stream_fields)
        worker = Worker(config, work / f"worker-{concurrency}{label}.log", concurrency, options.pool,
                        tree or REPO, processes=options.processes).start()
        stack.callback(worker.stop)
        client = redis.Redis.from_url(redis_server.url)
        stack.callback(client.close)
        sender = DiscoverySender(redis_server.url)
        stack.callback(sender.close)
        working = worker.working_pids()
        idle_rss = {pid: proc_status_kb(pid, "VmRSS") for pid in working}
        sampler = Sampler(working, Path(profile)).start() if profile else None
        pids = worker.pids
        cpu0, rcpu0, s3cpu0 = cpu_seconds(pids), cpu_seconds([redis_server.process.pid]), s3.cpu()
        seconds0, micros0 = client.time()
        sender.send()
        stats = wait_objects(client, len(files), worker, timeout=600 + expected / 500)
        pids = sorted(set(pids) | set(worker.pids))
        cpu1, rcpu1, s3cpu1 = cpu_seconds(pids), cpu_seconds([redis_server.process.pid]), s3.cpu()
        split = sampler.stop() if sampler else None
        (last_id, _), = client.xrevrange(STREAM, count=1)
        end_ms = int(last_id.split(b"-")[0])
        seconds = end_ms / 1000 - (seconds0 + micros0 / 1e6)
        events = client.xlen(STREAM)
        # The peak of a process is at least what it held when idle (VmHWM can be reset, and a
        # pool child may be replaced): each one's peak includes its idle sample.
        peak = {pid: max(proc_status_kb(pid, "VmHWM"), idle_rss.get(pid, 0)) for pid in working}
        memory = stream_memory(client, events)
        commands = redis_command_usec(client)
        result = phase_result(
            name, events, seconds, cpu1 - cpu0, rcpu1 - rcpu0, concurrency=concurrency, pool=options.pool,
            processes=options.processes, output_formats=formats, tree=str(tree) if tree else None,
            stream_fields=stream_fields,
            expected_events=expected, objects=len(files), objects_done=stats.get("objects_done", 0),
            objects_failed=stats.get("objects_failed", 0),
            objects_per_s=round(len(files) / seconds, 1) if seconds > 0 else None,
            cpu_ms_per_object=round((cpu1 - cpu0 + rcpu1 - rcpu0) / len(files) * 1000, 2),
            process_cpu_ms_per_object=round((cpu1 - cpu0) / len(files) * 1000, 2),
            redis_cpu_ms_per_object=round((rcpu1 - rcpu0) / len(files) * 1000, 2),
            worker_peak_rss_mb=round(max(peak.values() or [0]) / 1024, 1),
            worker_idle_rss_mb=round(max(idle_rss.values() or [0]) / 1024, 1),
            s3_server_cpu_seconds=round(s3cpu1 - s3cpu0, 3), redis_command_usec=commands, **memory)
        if split is not None:
            result["cpu_split"] = {part: {"share": share, "ms_per_object": round(
                share * (cpu1 - cpu0) / len(files) * 1000, 2)} for part, share in split.items()}
        fields = stream_field_names(redis_server.url)
    return result, fields


def redis_command_usec(client: redis.Redis, top: int = 8) -> dict[str, dict]:
    """Where redis-server's time went (``INFO commandstats``, commands a script runs counted
    under their own name too): the ``top`` commands by total time, with calls and µs per call."""
    stats = client.info("commandstats")
    rows = sorted(stats.items(), key=lambda item: -item[1]["usec"])[:top]
    return {name.removeprefix("cmdstat_"): {"calls": row["calls"], "usec": row["usec"],
                                            "usec_per_call": row["usec_per_call"]} for name, row in rows}


def stream_memory(client: redis.Redis, events: int, sample: int = 500) -> dict:
    """Redis memory per stream entry (``MEMORY USAGE`` of the whole stream, every entry), and
    the bytes of each field (its name and value) in a sample of entries."""
    if not events:
        return {}
    used = client.memory_usage(STREAM, samples=0) or 0
    entries = client.xrange(STREAM, count=sample)
    per_field: dict[str, float] = {}
    for _, fields in entries:
        for name, value in fields.items():
            per_field[name.decode()] = per_field.get(name.decode(), 0) + len(name) + len(value)
    return {"stream_bytes_per_event": round(used / events, 1),
            "stream_field_bytes": {name: round(total / len(entries), 1) for name, total in per_field.items()}}


# The parts trailpipe's CPU goes to. A sample is trailpipe's own code when its innermost frame
# of trailpipe (pipeline/, workers/) is not one of the parts' and calls into none; otherwise the
# part of that frame or of the first library it calls (Redis called by kombu is the broker's,
# called by pipeline/store/ the scripts'); samples outside trailpipe's code are Celery's when
# Celery or kombu is on the stack.
CPU_PARTS = (
    ("Celery and the broker", ("celery/", "kombu/", "billiard/", "vine/", "amqp/", "redbeat/", "workers/app.py")),
    ("S3 client", ("botocore/", "boto3/", "urllib3/", "s3transfer/", "http/client", "pipeline/s3.py",
                   "pipeline/credentials.py")),
    ("Redis scripts", ("redis/", "hiredis", "pipeline/store/", "pipeline/heartbeat.py")),
    ("parsing", ("pipeline/parser.py", "orjson", "gzip.py", "zlib", "pipeline/emitter.py",
                 "pipeline/normalize/", "hashlib")),
)
OWN_CODE = ("(pipeline/", "(workers/", "/pipeline/", "/workers/")
OTHER = "trailpipe's own code (ingest, logging, threads)"


def _part(frame: str) -> str | None:
    for part, needles in CPU_PARTS:
        if any(needle in frame for needle in needles):
            return part
    return None


def classify_stack(stack: str) -> str:
    """The part a py-spy stack (``frame;frame;…``, outermost first) belongs to."""
    frames = stack.split(";")
    own = [index for index, frame in enumerate(frames) if any(mark in frame for mark in OWN_CODE)]
    if not own:
        return "Celery and the broker" if any(_part(f) == "Celery and the broker" for f in frames) else "other"
    for frame in frames[own[-1]:]:
        part = _part(frame)
        if part is not None:
            return part
    return OTHER


class Sampler:
    """py-spy (``pip install py-spy``) sampling the worker processes while they work."""

    def __init__(self, pids: list[int], path: Path, rate: int = 200):
        self.pids, self.path, self.rate = pids, path, rate
        self.procs: list[subprocess.Popen] = []

    def start(self) -> Sampler:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        for index, pid in enumerate(self.pids):
            self.procs.append(subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--rate", str(self.rate), "--nonblocking", "--format", "raw",
                 "--output", f"{self.path}.{index}", "--threads", "--gil"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)  # py-spy attaches
        return self

    def stop(self) -> dict[str, float]:
        for proc in self.procs:
            proc.send_signal(2)  # SIGINT: py-spy writes what it sampled
        counts: dict[str, int] = {}
        for index, proc in enumerate(self.procs):
            proc.wait(timeout=60)
            path = Path(f"{self.path}.{index}")
            for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    part = classify_stack(stack)
                    counts[part] = counts.get(part, 0) + int(count)
        total = sum(counts.values())
        return {part: round(n / total, 3) for part, n in sorted(counts.items(), key=lambda kv: -kv[1])} if total else {}


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


@contextmanager
def fresh_redis(directory: Path, options: BenchOptions) -> Iterator[RedisServer]:
    """A redis-server of its own for one phase, in ``directory``, removed after it (unless
    ``--keep``): each phase's AOF (half a gigabyte with ``[ecs, ocsf]``) would otherwise stay on
    disk until the whole run ends."""
    shutil.rmtree(directory, ignore_errors=True)
    with RedisServer(directory, appendonly=options.appendonly) as server:
        yield server
    if not options.keep:
        shutil.rmtree(directory, ignore_errors=True)


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
            delay = options.s3_delay_ms if "latency" in options.phases else 0
            s3 = S3Server(work / "s3-server.log", delay_ms=delay).start()
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
                                   "avg_record_bytes": round(raw_bytes / events),
                                   "raw_record_bytes": raw_record_bytes(files)}
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
                phases["naive"], fields["naive"] = run_naive_phase("naive", work, options, s3, s3.endpoint,
                                                                   BUCKET, len(files))
                phases["naive_unpipelined"], _ = run_naive_phase(
                    "naive, one XADD round trip per record (no target)", work, options, s3, s3.endpoint,
                    BUCKET, len(files), runner=run_naive_unpipelined)
            if "trailpipe" in options.phases:
                trees = [None] + [Path(t).resolve() for t in options.trees]
                for concurrency in options.concurrency:
                    for formats in format_sets:
                        for tree in trees:  # interleaved, so a variant and the baseline see the same load
                            key = (f"trailpipe_x{concurrency}" + formats_label(formats)
                                   + (f"_{tree.name}" if tree else ""))
                            say(options, f"{key} ({options.processes} x {options.pool}) ...")
                            result, fields[key] = run_trailpipe(options, work, s3, files, concurrency,
                                                                formats, tree)
                            phases[key] = result
                if [] in format_sets:  # a user who reads only `event`: its Redis memory
                    key = f"trailpipe_x{options.concurrency[-1]}_event_only"
                    say(options, f"{key} (stream_fields: [event]) ...")
                    phases[key], fields[key] = run_trailpipe(options, work, s3, files, options.concurrency[-1], [],
                                                             tag="event-only", stream_fields=["event"])
            if "small" in options.phases or "latency" in options.phases:
                run_small_phases(options, work, s3, results, fields)
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


def raw_record_bytes(files: list[LogFile]) -> float:
    """The mean size of a record as the stream's ``event`` holds it (compact JSON)."""
    total = count = 0
    for log in files:
        for record in orjson.loads(zlib.decompress(log.body, 47))["Records"]:
            total += len(orjson.dumps(record))
            count += 1
    return round(total / count, 1) if count else 0.0


def run_small_phases(options: BenchOptions, work: Path, s3: S3Server, results: dict,
                     fields: dict[str, list[str]]) -> None:
    """Small files (``--small-files`` × ``--small-records``), as real buckets mostly hold:
    ``small`` on loopback, ``latency`` behind an S3 answering each request after
    ``--s3-delay-ms``; the naive script and trailpipe (its defaults) in each, and in ``latency``
    a ``trailpipe backfill`` of ``--backfill-files`` small files."""
    phases = results["phases"]
    files = make_files(options, options.small_files, options.small_records, options.small_records,
                       seed=options.seed + 10)
    s3.load(SMALL_BUCKET, files, work / "small.jsonl")
    events = sum(log.records for log in files)
    results["small_data"] = {"files": len(files), "events": events, "records_per_file": options.small_records,
                             "s3_delay_ms": options.s3_delay_ms if "latency" in options.phases else None}
    concurrency = options.concurrency[-1]
    delayed = s3.delayed_endpoint
    latency = "latency" in options.phases
    runs: dict[str, list[dict]] = {}
    for turn in range(options.repeat):  # interleaved: each variant sees the machine's load alike
        say(options, f"small: {len(files)} files × {options.small_records} records (run {turn + 1}) ...")
        result, fields["small_naive"] = run_naive_phase(
            "small files, naive", work, options, s3, s3.endpoint, SMALL_BUCKET, len(files))
        runs.setdefault("small_naive", []).append(result)
        result, fields["small_trailpipe"] = run_trailpipe(
            options, work, s3, files, concurrency, [], bucket=SMALL_BUCKET, tag="small")
        runs.setdefault("small_trailpipe", []).append(result)
        for tree in options.trees:  # --tree: the same from another source tree, interleaved
            tree_path = Path(tree).resolve()
            result, _ = run_trailpipe(options, work, s3, files, concurrency, [], tree_path,
                                      bucket=SMALL_BUCKET, tag="small")
            runs.setdefault(f"small_trailpipe_{tree_path.name}", []).append(result)
        if latency:
            say(options, f"latency: every S3 request answered after {options.s3_delay_ms} ms (run {turn + 1}) ...")
            result, _ = run_naive_phase(f"small files, S3 +{options.s3_delay_ms} ms, naive", work, options, s3,
                                        delayed, SMALL_BUCKET, len(files))
            runs.setdefault("latency_naive", []).append(result)
            result, _ = run_trailpipe(options, work, s3, files, concurrency, [], bucket=SMALL_BUCKET,
                                      endpoint=delayed, tag=f"S3 +{options.s3_delay_ms} ms")
            runs.setdefault("latency_trailpipe", []).append(result)
    for name, results_of in runs.items():  # the run of median objects/s, with every run's figures
        ranked = sorted(results_of, key=lambda r: r["objects_per_s"] or 0)
        phase = phases[name] = dict(ranked[len(ranked) // 2], runs_objects_per_s=[r["objects_per_s"] for r in results_of])
        if len(results_of) > 1 and "process_cpu_ms_per_object" in phase:  # CPU: the median of the runs' too
            phase["runs_process_cpu_ms_per_object"] = [r["process_cpu_ms_per_object"] for r in results_of]
            phase["process_cpu_ms_per_object"] = median(phase["runs_process_cpu_ms_per_object"])
            phase["redis_cpu_ms_per_object"] = median([r["redis_cpu_ms_per_object"] for r in results_of])
            phase["cpu_ms_per_object"] = round(phase["process_cpu_ms_per_object"] + phase["redis_cpu_ms_per_object"], 2)
    if options.profile:
        say(options, "small: trailpipe again under py-spy (where the CPU goes) ...")
        phases["small_trailpipe_profiled"], _ = run_trailpipe(
            options, work, s3, files, concurrency, [], bucket=SMALL_BUCKET, tag="small-profiled",
            profile=str(work / "py-spy"))
    if not latency:
        return
    results["latency_measured_ms"] = measure_delay(s3)
    if options.backfill_files:
        say(options, f"backfill: {options.backfill_files} small files behind the delay ...")
        phases["backfill"] = run_backfill(options, work, s3)


def measure_delay(s3: S3Server, requests: int = 5) -> float:
    """The delayed server's answer time as a client sees it (HeadBucket, median, ms)."""
    import boto3  # noqa: PLC0415

    client = boto3.client("s3", endpoint_url=s3.delayed_endpoint, region_name=REGION,
                          aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
    client.head_bucket(Bucket=SMALL_BUCKET)
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        client.head_bucket(Bucket=SMALL_BUCKET)
        times.append((time.perf_counter() - t0) * 1000)
    return round(sorted(times)[len(times) // 2], 1)


def run_backfill(options: BenchOptions, work: Path, s3: S3Server) -> dict:
    """``trailpipe backfill`` (its defaults) of ``backfill_files`` small files behind the delay."""
    files = make_files(options, options.backfill_files, options.small_records, options.small_records,
                       seed=options.seed + 20)
    s3.load(BACKFILL_BUCKET, files, work / "backfill.jsonl")
    days = sorted({delivered.date() for log in files if (delivered := _delivered(log.key))})
    with fresh_redis(work / "redis-backfill", options) as server:
        config = write_config(work / "backfill.yaml", server.url, s3.delayed_endpoint, options, [],
                              bucket=BACKFILL_BUCKET)
        env = dict(os.environ)
        env.pop("TRAILPIPE_REDIS_URL", None)
        rcpu0 = cpu_seconds([server.process.pid])
        t0 = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "workers.cli", "backfill", "-c", str(config), SOURCE_ID,
                                    "--since", f"{days[0]:%Y-%m-%d}", "--until", f"{days[-1]:%Y-%m-%d}"],
                                   cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        psutil = _psutil()
        watched = psutil.Process(process.pid)
        cpu = 0.0
        while process.poll() is None:
            try:
                t = watched.cpu_times()
                cpu = t.user + t.system
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)
        out, err = process.communicate()
        seconds = time.perf_counter() - t0
        if process.returncode != 0:
            raise RuntimeError(f"trailpipe backfill failed: {err[-2000:]}")
        client = redis.Redis.from_url(server.url)
        events = client.xlen(STREAM)
        client.close()
        result = phase_result(f"trailpipe backfill, S3 +{options.s3_delay_ms} ms (its defaults)", events, seconds,
                              cpu, cpu_seconds([server.process.pid]) - rcpu0, objects=len(files),
                              expected_events=sum(log.records for log in files),
                              objects_per_s=round(len(files) / seconds, 1), summary=out.strip())
    return result


def _delivered(key: str):
    from pipeline.layout import delivery_time  # noqa: PLC0415

    return delivery_time(key)


def summarize_small(results: dict) -> None:
    """Ratios and targets of the small and latency phases (issue 22)."""
    phases, ratios, targets = results["phases"], results["ratios"], results["targets"]
    naive, trailpipe = phases.get("small_naive"), phases.get("small_trailpipe")
    if naive and trailpipe:
        value = ratio(trailpipe["objects_per_s"], naive["objects_per_s"])
        ratios["small_trailpipe/small_naive objects_per_s"] = value
        limit = TARGETS["small_over_naive_objects_per_s"]
        targets[f"small files, loopback: trailpipe >= {limit}x naive objects/s"] = {
            "value": value, "met": value is not None and value >= limit}
        limit = TARGETS["small_cpu_ms_per_object"]
        value = trailpipe["process_cpu_ms_per_object"]
        targets[f"small files: trailpipe's CPU per object <= {limit} ms (its processes; Redis "
                f"{trailpipe['redis_cpu_ms_per_object']} ms apart)"] = {"value": value, "met": value <= limit}
    delayed_naive, delayed = phases.get("latency_naive"), phases.get("latency_trailpipe")
    if delayed_naive and delayed:
        value = ratio(delayed["objects_per_s"], delayed_naive["objects_per_s"])
        ratios["latency_trailpipe/latency_naive objects_per_s"] = value
        limit = TARGETS["latency_over_naive_objects_per_s"]
        targets[f"small files behind S3 latency: trailpipe >= {limit}x naive objects/s"] = {
            "value": value, "met": value is not None and value >= limit}
    if delayed and trailpipe:
        value = ratio(delayed["objects_per_s"], trailpipe["objects_per_s"])
        ratios["latency_trailpipe/small_trailpipe objects_per_s"] = value
        limit = TARGETS["latency_over_loopback_objects_per_s"]
        targets[f"small files behind S3 latency: trailpipe >= {limit:.0%} of its loopback objects/s"] = {
            "value": value, "met": value is not None and value >= limit}
    for name, phase in phases.items():
        if name.startswith("small_trailpipe_") and phase.get("tree") and naive and trailpipe:
            ratios[f"{name}/small_naive objects_per_s"] = ratio(phase["objects_per_s"], naive["objects_per_s"])
            ratios[f"small_trailpipe/{name} objects_per_s"] = ratio(trailpipe["objects_per_s"], phase["objects_per_s"])
            ratios[f"small_trailpipe/{name} process CPU per object"] = ratio(
                trailpipe["process_cpu_ms_per_object"], phase["process_cpu_ms_per_object"])
    for name in ("small_trailpipe", "latency_trailpipe"):
        if name in phases:
            targets.setdefault("every event exactly once", {"met": True})
            phase = phases[name]
            if phase["events"] != phase["expected_events"] or phase["objects_failed"]:
                targets["every event exactly once"] = {"met": False}


def summarize(results: dict) -> None:
    phases, ratios, targets = results["phases"], results["ratios"], results["targets"]
    floor, naive = phases.get("floor"), phases.get("naive")
    summarize_small(results)
    raw = (results.get("data") or {}).get("raw_record_bytes")
    for name, phase in phases.items():
        if raw and phase.get("stream_bytes_per_event") and not name.startswith(("small", "latency")):
            ratios[f"{name} stream bytes/raw record"] = round(phase["stream_bytes_per_event"] / raw, 2)
    only = next((p for n, p in phases.items() if n.endswith("_event_only")), None)
    if raw and only and only.get("stream_bytes_per_event"):
        value = round(only["stream_bytes_per_event"] / raw, 2)
        limit = TARGETS["event_only_stream_bytes_over_raw"]
        targets[f"stream_fields [event]: Redis memory per event <= {limit}x the raw record"] = {
            "value": value, "met": value <= limit}
    both = next((p for n, p in phases.items() if n.startswith("trailpipe") and n.endswith("_ecs_ocsf")
                 and not p.get("tree")), None)
    if raw and both and both.get("stream_bytes_per_event"):
        value = round(both["stream_bytes_per_event"] / raw, 2)
        limit = TARGETS["ecs_ocsf_stream_bytes_over_raw"]
        targets[f"[ecs, ocsf]: Redis memory per event <= {limit}x the raw record"] = {
            "value": value, "met": value <= limit}
    for name, phase in phases.items():
        if not name.startswith("trailpipe"):
            continue
        if naive:
            ratios[f"{name}/naive events_per_s"] = ratio(phase["events_per_s"], naive["events_per_s"])
            ratios[f"{name}/naive cpu_per_event"] = ratio(phase["cpu_s_per_million_events"],
                                                          naive["cpu_s_per_million_events"])
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
        once = all(p["events"] == p["expected_events"] and p["objects_failed"] == 0
                   for n, p in phases.items() if n.startswith("trailpipe"))
        targets["every event exactly once"] = {"met": once and targets.get("every event exactly once",
                                                                            {"met": True})["met"]}
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
    small = results.get("small_data")
    if small:
        lines.append(f"small files: {small['files']} × {small['records_per_file']} records"
                     + (f"; S3 delay {small['s3_delay_ms']} ms (measured {results.get('latency_measured_ms')} ms "
                        "per request)" if small["s3_delay_ms"] else ""))
    for phase in results["phases"].values():
        if phase.get("objects_per_s"):
            lines.append(f"  {phase['phase']:<58} {phase['objects_per_s']:>8,.1f} objects/s"
                         + (f", CPU {phase['cpu_ms_per_object']:.2f} ms per object" if phase.get("cpu_ms_per_object")
                            else "")
                         + (f" ({phase['process_cpu_ms_per_object']:.2f} its processes + "
                            f"{phase['redis_cpu_ms_per_object']:.2f} Redis)" if "process_cpu_ms_per_object" in phase
                            else "")
                         + (f", {phase['stream_bytes_per_event']:,.0f} stream B/event"
                            if phase.get("stream_bytes_per_event") else "")
                         + (f" (medians of runs at {', '.join(f'{r:,.1f}' for r in phase['runs_objects_per_s'])}"
                            + (f" objects/s, {', '.join(f'{r:.2f}' for r in phase['runs_process_cpu_ms_per_object'])}"
                               " ms" if phase.get("runs_process_cpu_ms_per_object") else "") + ")"
                            if len(phase.get("runs_objects_per_s") or ()) > 1 else ""))
    for phase in results["phases"].values():
        sizes = phase.get("stream_field_bytes")
        if sizes and not phase["phase"].startswith(("small", "trailpipe small-profiled")):
            lines.append(f"  stream bytes per event, {phase['phase']}: {phase.get('stream_bytes_per_event')} in Redis; "
                         + ", ".join(f"{k} {v:,.0f}" for k, v in sizes.items()))
    for phase in results["phases"].values():
        if phase.get("cpu_split"):
            lines.append(f"  CPU of {phase['phase']} by part (py-spy samples; ms per object of its processes):")
        for part, share in (phase.get("cpu_split") or {}).items():
            lines.append(f"      {part:<56} {share['share']:>6.1%}  {share['ms_per_object']:.2f} ms per object")
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
    parser.add_argument("--pool", choices=("prefork", "threads", "solo", "gevent"), default=defaults.pool)
    parser.add_argument("--processes", type=int, default=defaults.processes,
                        help="worker processes (as `trailpipe run` starts: one per core), each --concurrency")
    parser.add_argument("--small-files", type=int, default=defaults.small_files,
                        help="files of the small and latency phases")
    parser.add_argument("--small-records", type=int, default=defaults.small_records, help="records per small file")
    parser.add_argument("--s3-delay-ms", type=int, default=defaults.s3_delay_ms,
                        help="latency phase: each S3 request answered after this many ms")
    parser.add_argument("--backfill-files", type=int, default=defaults.backfill_files,
                        help="latency phase: small files of the `trailpipe backfill` run (0: none)")
    parser.add_argument("--repeat", type=int, default=defaults.repeat,
                        help="small and latency phases: runs of each, interleaved (the median run is reported)")
    parser.add_argument("--profile", action="store_true",
                        help="small phase: trailpipe once more under py-spy, its CPU split by part")
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
                        seed=args.seed, concurrency=args.concurrency, pool=args.pool, processes=args.processes,
                        small_files=args.small_files, small_records=args.small_records,
                        s3_delay_ms=args.s3_delay_ms, backfill_files=args.backfill_files, profile=args.profile,
                        repeat=max(1, args.repeat),
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
