"""Sweep intervals with many sources: does each source's sweep keep ``sweep_interval_seconds``?

    python ops/bench/sweep_interval.py [--sources 300] [--seconds 180] [--interval 30]
                                       [--repo PATH] [--json-out PATH]

A fresh redis-server, a moto S3 server with an empty bucket, ``--sources`` sources on it, and the
fleet as an operator runs it: ``celery beat`` and one ``celery worker`` (concurrency 2, which also
runs every source's discoveries). Each sweep of a source is one ``sweep_pending.lua`` call on its
pending set, whoever makes it (beat's sweep loop, or a sweep task in a worker): they are seen
with Redis's ``MONITOR``, timestamped by Redis, so the measure does not depend on the code under
test. Reported: per-source intervals between consecutive sweeps (count, median, p95, max) and how
many were over 1.5 x the interval (a round skipped).

``--repo`` runs worker and beat from another checkout (its ``workers.app``; the same interpreter),
so the same run measures a branch and what it replaces.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import boto3
import redis
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipeline.local_s3 import LocalS3  # noqa: E402
from pipeline.processes import stop_process  # noqa: E402
from pipeline.redis_server import RedisServer  # noqa: E402
from workers.launch import celery_command  # noqa: E402

# A sweep of a source starts by reading its overdue objects (the script runs only if some are):
# MONITOR line: 1733142345.123456 [0 127.0.0.1:5555] "ZRANGEBYSCORE" "<P>:src:<S>:pending" "-inf" ...
SWEEP = re.compile(r'^(\d+\.\d+) \[[^\]]*\] "ZRANGEBYSCORE" "[^"]*:src:([^"]+):pending" "-inf"')


def watch(port: int, seen: dict[str, list[float]], stop: threading.Event) -> None:
    client = redis.Redis(port=port)
    with client.monitor() as monitor:
        connection = monitor.connection
        while not stop.is_set():
            raw = connection.read_response()
            line = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            match = SWEEP.match(line)
            if match:
                seen[match.group(2)].append(float(match.group(1)))


def run(sources: int, seconds: float, interval: int, repo: Path) -> dict:

    work = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    server = RedisServer(work / "redis", appendonly=False).start()
    moto = LocalS3().start()
    endpoint = moto.url
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIABENCH",
                 aws_secret_access_key="bench-secret").create_bucket(Bucket="sweep-bench")
    config = {"redis_url": server.url, "sweep_interval_seconds": interval, "sources": [
        {"identifier": f"s{n:03d}", "bucket": "sweep-bench", "region": "us-east-1", "endpoint_url": endpoint,
         "auth": {"method": "access_key", "access_key_id": "AKIABENCH", "secret_access_key": "bench-secret"},
         "directory_prefix": "AWSLogs/", "recurrence": "15M"} for n in range(sources)]}
    config_path = work / "trailpipe.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, TRAILPIPE_CONFIG=str(config_path), PYTHONUNBUFFERED="1")
    seen: dict[str, list[float]] = defaultdict(list)
    stop = threading.Event()
    threading.Thread(target=watch, args=(server.port, seen, stop), daemon=True).start()
    processes = [subprocess.Popen(celery_command("worker", "--concurrency", "2", "--loglevel", "warning"), env=env,
                                  cwd=str(repo), stdout=open(work / "worker.log", "ab"), stderr=subprocess.STDOUT),
                 subprocess.Popen(celery_command("beat", "--loglevel", "warning", "--schedule",
                                                 str(work / "beat-schedule")),
                                  env=env, cwd=str(repo), stdout=open(work / "beat.log", "ab"),
                                  stderr=subprocess.STDOUT)]
    try:
        time.sleep(seconds)
    finally:
        stop.set()
        for process in processes:
            stop_process(process)
        server.stop()
        moto.stop()
    gaps = sorted(b - a for times in seen.values() for a, b in zip(times, times[1:]))
    swept = sum(1 for times in seen.values() if times)
    if not gaps:
        return {"sources": sources, "sources_swept": swept, "intervals": 0}
    return {"sources": sources, "interval_seconds": interval, "seconds": seconds, "repo": str(repo),
            "sources_swept": swept, "intervals": len(gaps),
            "median_seconds": round(statistics.median(gaps), 2),
            "p95_seconds": round(gaps[min(len(gaps) - 1, int(len(gaps) * 0.95))], 2),
            "max_seconds": round(gaps[-1], 2),
            "over_1_5x": sum(1 for gap in gaps if gap > 1.5 * interval)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--interval", type=int, default=30)
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose worker and beat run")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    result = run(args.sources, args.seconds, args.interval, args.repo.resolve())
    print(json.dumps(result, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
