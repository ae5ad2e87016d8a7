#!/usr/bin/env python3
"""Benchmark pipeline.parser.iter_records against whole-document orjson.

    python ops/bench/parser_bench.py [--records 1000] [--record-size 1500] [--repeat 30]
                                     [--rss-mb 200 | --no-rss]

1. Throughput: a gzip CloudTrail file of ``--records`` records of about ``--record-size``
   bytes each; best-of-``--repeat`` time (the two run in alternation) of the streaming
   parser (iterating every ``(raw, record)``) versus ``orjson.loads(zlib.decompress(data))``
   (the baseline: whole document in memory).  Prints records/s for both and the ratio streaming/whole.
2. Memory: writes a ``--rss-mb`` MB (uncompressed) gzip file to a temporary directory,
   streaming, and parses it in a fresh subprocess with each method; prints the
   subprocess's peak RSS (VmHWM).
"""
from __future__ import annotations

import argparse
import gzip
import os
import random
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipeline.demo_data import make_record as demo_record  # noqa: E402
from pipeline.parser import iter_records  # noqa: E402

BASE_TIME = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def make_record(rng: random.Random, index: int, size: int) -> dict:
    """A realistic record (pipeline.demo_data's), padded to about ``size`` bytes of JSON."""
    record = demo_record(rng, "111122223333", "eu-west-1", BASE_TIME + timedelta(seconds=index))
    missing = size - len(orjson.dumps(record))
    if missing > 0:
        record["requestParameters"]["description"] = "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(missing)
        )
    return record


def best_of(repeat: int, *funcs) -> list[float]:
    """Best time of each function, running them in alternation so that load changes on
    the machine affect all of them alike."""
    best = [float("inf")] * len(funcs)
    for _ in range(repeat):
        for i, func in enumerate(funcs):
            start = time.perf_counter()
            func()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def throughput(records: int, size: int, repeat: int) -> None:
    rng = random.Random(1)
    doc = orjson.dumps({"Records": [make_record(rng, i, size) for i in range(records)]})
    data = gzip.compress(doc, 6)

    def whole() -> None:
        orjson.loads(zlib.decompress(data, wbits=47))

    def streaming() -> None:
        for _raw, _record in iter_records(data):
            pass

    whole(), streaming()  # warm up
    t_whole, t_stream = best_of(repeat, whole, streaming)
    print(f"file: {records} records, {len(doc) / records:.0f} B/record, "
          f"{len(doc) / 2**20:.2f} MiB uncompressed, {len(data) / 2**20:.2f} MiB gzip")
    print(f"whole-document orjson: {records / t_whole:12,.0f} records/s  ({t_whole * 1000:.2f} ms)")
    print(f"streaming iter_records: {records / t_stream:12,.0f} records/s  ({t_stream * 1000:.2f} ms)")
    print(f"ratio streaming/whole time: {t_stream / t_whole:.3f}  (target <= 1.25)")


_CHILD = r"""
import sys, zlib
import orjson
sys.path.insert(0, sys.argv[3])
from pipeline.parser import iter_records
path, method = sys.argv[1], sys.argv[2]
with open(path, "rb") as handle:
    if method == "stream":
        count = sum(1 for _ in iter_records(handle))
    else:
        count = len(orjson.loads(zlib.decompress(handle.read(), wbits=47))["Records"])
peak = 0
with open("/proc/self/status") as status:
    for line in status:
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1])
print(count, peak)
"""


def peak_rss(megabytes: int) -> None:
    rng = random.Random(2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.json.gz"
        target = megabytes * 2**20
        written = count = 0
        with gzip.open(path, "wb", compresslevel=1) as out:
            out.write(b'{"Records":[')
            while written < target:
                batch = b",".join(orjson.dumps(make_record(rng, count + i, 1500)) for i in range(1000))
                out.write((b"," if count else b"") + batch)
                written += len(batch) + 1
                count += 1000
            out.write(b"]}")
        print(f"memory: {written / 2**20:.0f} MiB uncompressed ({path.stat().st_size / 2**20:.1f} MiB gzip), "
              f"{count} records")
        for method in ("stream", "whole"):
            result = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path), method, str(REPO)],
                capture_output=True, text=True, env={**os.environ},
            )
            if result.returncode:
                print(f"  {method}: failed: {result.stderr.strip()[-300:]}")
                continue
            got, peak_kib = map(int, result.stdout.split())
            label = "streaming iter_records" if method == "stream" else "whole-document orjson"
            print(f"  {label}: peak RSS {peak_kib / 1024:.1f} MiB ({got} records)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--record-size", type=int, default=1500, help="approximate bytes per record")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--rss-mb", type=int, default=200, help="uncompressed size of the memory test file")
    parser.add_argument("--no-rss", action="store_true", help="skip the memory measurement")
    args = parser.parse_args()
    throughput(args.records, args.record_size, args.repeat)
    if not args.no_rss:
        peak_rss(args.rss_mb)


if __name__ == "__main__":
    main()
