"""What one more source costs a worker process (MB of RSS), measured in one run:
S3 clients made by ``pipeline.s3.make_client`` (the shared botocore data loader), against the
same number made each with a botocore session of its own (what trailpipe did before: every
session parsed its own copy of the S3 service model).

    .venv/bin/python ops/source_memory.py [--sources 150] [--baseline-sources 20]

Each measurement runs in a fresh interpreter, so one does not warm the other's caches.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import gc, json, sys
import psutil
import botocore.session
from pipeline.config import parse_config
from pipeline.s3 import client_config, make_client

n, mode = int(sys.argv[1]), sys.argv[2]
config = parse_config({"redis_url": "redis://127.0.0.1:1/0", "sources": [
    {"identifier": f"s{i}", "bucket": "trail-bucket", "region": "us-east-1", "endpoint_url": "http://127.0.0.1:9",
     "auth": {"method": "access_key", "access_key_id": f"AKIAEXAMPLE{i:05d}", "secret_access_key": "x"}}
    for i in range(n)]})
process = psutil.Process()

def rss():
    gc.collect()
    return process.memory_info().rss / 2**20

def client(source):
    if mode == "shared":
        return make_client(source, acquire=False)
    return botocore.session.Session().create_client(  # a session (and model copy) per source
        "s3", endpoint_url=source.endpoint_url, config=client_config(source, service="s3"),
        aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")

base = rss()
clients = [client(config.sources[0])]
first = rss()
clients += [client(source) for source in config.sources[1:]]
print(json.dumps({"first_mb": first - base, "per_source_mb": (rss() - first) / (n - 1), "total_mb": rss()}))
"""


def measure(sources: int, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(sources), mode], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=150)
    parser.add_argument("--baseline-sources", type=int, default=20,
                        help="sources for the session-per-source baseline (12 MB each)")
    args = parser.parse_args()
    shared, own = measure(args.sources, "shared"), measure(args.baseline_sources, "own")
    print(f"{args.sources} sources: first S3 client {shared['first_mb']:.1f} MB (loads the models once), "
          f"then {shared['per_source_mb']:.2f} MB per source; process RSS {shared['total_mb']:.0f} MB")
    print(f"a botocore session per source ({args.baseline_sources} sources): {own['per_source_mb']:.2f} MB per "
          f"source, RSS {own['total_mb']:.0f} MB; "
          f"ratio {own['per_source_mb'] / shared['per_source_mb']:.0f}x")


if __name__ == "__main__":
    main()
