#!/usr/bin/env python3
"""The S3 client's own CPU per small GetObject: a plain boto3 client against trailpipe's.

    python ops/bench/s3_client_bench.py [--objects 300] [--rounds 5] [--batch 50]
                                        [--profile plain|trailpipe|direct]

moto (``pipeline.local_s3.LocalS3``) runs in this process, in threads; ``--objects`` small gzip
CloudTrail files (8 records each) are put into a bucket, then each round reads every one with

(a) a plain ``boto3.client('s3', endpoint_url=..., region_name=..., keys)``:
    ``get_object(...)['Body'].read()``,
(b) trailpipe's client as a worker builds it (``Runtime(config).s3(source)``: its session,
    config, certificate settings, error hooks and request counting), through botocore's call,
(c) the same client as the object processor reads with it: ``pipeline.s3.get_object`` (its
    ``DirectGet``: botocore's first request of the bucket made again, signed and sent without
    botocore's per-call machinery),

in alternation, a warm-up round first, each round in batches of ``--batch`` requests, a batch
of each in turn (short alternations: a machine shared with other work slows all alike). The
CPU is ``time.thread_time()`` of the calling thread: the client's work only (moto answers in
its own threads). Prints the median and lower quartile of the microseconds per request over
the batches of each, and the ratios to (a). ``--profile`` runs cProfile on one client's loop
instead and prints its top functions (cumulative).

Measured (2 shared cores, botocore 1.44): (a) and (b) spend 2.1-2.9 ms per request (the
machine's load moves both), b/a 0.96-0.98; (c) 1.4-1.6 ms, c/a ~0.55 (2026-12-03). About a
third of (a)'s CPU is the connection moto's HTTP/1.0 server closes after each answer (connect,
send, recv, close), which (c) pays too; a tenth http.client's header parsing; SigV4 signing
6-8%; endpoint rules ~4%; trailpipe's own hooks (request counting, error hooks) under 1%.
"""
from __future__ import annotations

import argparse
import cProfile
import gzip
import pstats
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipeline.config import parse_config  # noqa: E402
from pipeline.demo_data import make_record  # noqa: E402
from pipeline.local_s3 import LocalS3  # noqa: E402
from pipeline.redis_server import RedisServer  # noqa: E402
from pipeline.runtime import Runtime  # noqa: E402
from pipeline.s3 import get_object  # noqa: E402

KEY_ID = "AKIABENCHTRAILPIPE00"
SECRET = "bench-secret-value-0000"  # noqa: S105  (moto accepts any)
BUCKET = "bench-trail"
REGION = "us-east-1"
RECORDS_PER_OBJECT = 8
BASE_TIME = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def put_objects(s3, count: int) -> list[str]:
    rng = random.Random(7)
    s3.create_bucket(Bucket=BUCKET)
    keys = []
    for number in range(count):
        when = BASE_TIME + timedelta(minutes=5 * number)
        records = [make_record(rng, "111122223333", REGION, when) for _ in range(RECORDS_PER_OBJECT)]
        key = f"AWSLogs/111122223333/CloudTrail/{REGION}/2024/05/01/file-{number:05d}.json.gz"
        s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(orjson.dumps({"Records": records})))
        keys.append(key)
    return keys


def read_all(client, keys: list[str]) -> float:
    """Thread CPU seconds per request of reading every key once."""
    started = time.thread_time()
    for key in keys:
        client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return (time.thread_time() - started) / len(keys)


class Direct:
    """(c): trailpipe's client read as the object processor reads (``pipeline.s3.get_object``)."""

    def __init__(self, client):
        self.client = client

    def get_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803  (boto3's names)
        return get_object(self.client, Bucket, Key)


def trailpipe_client(endpoint: str, redis_url: str):
    source = {"identifier": "bench-src", "bucket": BUCKET, "region": REGION, "endpoint_url": endpoint,
              "auth": {"method": "access_key", "access_key_id": KEY_ID, "secret_access_key": SECRET},
              "directory_prefix": "AWSLogs/", "recurrence": "1M"}
    runtime = Runtime(parse_config({"redis_url": redis_url, "sources": [source]}))
    return runtime.s3(runtime.source("bench-src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=50, help="requests per client before the other's turn")
    parser.add_argument("--profile", choices=("plain", "trailpipe", "direct"))
    parser.add_argument("--sort", default="cumulative", help="with --profile: pstats sort key")
    parser.add_argument("--top", type=int, default=45, help="with --profile: functions printed")
    parser.add_argument("--dump", help="with --profile: also write the pstats data to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, RedisServer(directory) as redis_server, LocalS3() as local:
        plain = boto3.client("s3", endpoint_url=local.url, region_name=REGION,
                             aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
        keys = put_objects(plain, args.objects)
        ours = trailpipe_client(local.url, redis_server.url)
        clients = {"plain": plain, "trailpipe": ours, "direct": Direct(trailpipe_client(local.url, redis_server.url))}
        for client in clients.values():
            read_all(client, keys)  # warm-up: connections, models, caches
        if args.profile:
            profiler = cProfile.Profile(time.thread_time)  # CPU, not the waits
            profiler.enable()
            for _ in range(args.rounds):
                read_all(clients[args.profile], keys)
            profiler.disable()
            if args.dump:
                profiler.dump_stats(args.dump)
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
            return
        times: dict[str, list[float]] = {name: [] for name in clients}
        batches = [keys[start:start + args.batch] for start in range(0, len(keys), args.batch)]
        for _ in range(args.rounds):
            for batch in batches:
                for name, client in clients.items():
                    times[name].append(read_all(client, batch))
        print(f"{args.objects} objects x {args.rounds} rounds, in batches of {args.batch}; "
              "client thread CPU per GetObject + read:")
        summary = {name: (statistics.median(values), statistics.quantiles(values, n=4)[0])
                   for name, values in times.items()}
        for letter, (name, (median, quartile)) in zip("abc", summary.items()):
            print(f"  ({letter}) {name:9s}  median {median * 1e6:6.0f} us   lower quartile {quartile * 1e6:6.0f} us")
        for letter, name in (("b", "trailpipe"), ("c", "direct")):
            print(f"  ratio {letter}/a: median {summary[name][0] / summary['plain'][0]:.2f}, "
                  f"lower quartile {summary[name][1] / summary['plain'][1]:.2f}")


if __name__ == "__main__":
    main()
