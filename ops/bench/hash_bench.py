#!/usr/bin/env python3
"""Cost of keeping each object's SHA-256 (digest reconciliation) on the ingest hot path.

    python ops/bench/hash_bench.py [--records 2000] [--record-size 1500] [--repeat 20]

1. Parser: one gzip CloudTrail file through ``iter_records`` with and without
   ``hasher=sha256()``, in alternation, best of ``--repeat``; records/s of each and the ratio.
2. Whole ingest: ``pipeline.ingest.ingest_object`` of the same file (body served from memory,
   so S3 costs nothing; a fresh redis-server on loopback) with the SHA-256 kept, and with the
   hasher replaced by one that does nothing; CPU of this process plus redis-server per run,
   best of ``--repeat``, and the ratio.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import random
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from parser_bench import best_of, make_record  # noqa: E402

from pipeline.parser import iter_records  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--record-size", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(7)
    doc = orjson.dumps({"Records": [make_record(rng, i, args.record_size) for i in range(args.records)]})
    data = gzip.compress(doc, compresslevel=6, mtime=0)

    def plain():
        for _ in iter_records(data):
            pass

    def hashed():
        hasher = hashlib.sha256()
        for _ in iter_records(data, hasher=hasher):
            pass
        assert hasher.hexdigest() == hashlib.sha256(doc).hexdigest()

    t_plain, t_hashed = best_of(args.repeat, plain, hashed)
    print(f"file: {args.records} records, {len(doc) / 1e6:.1f} MB uncompressed, {len(data) / 1e6:.1f} MB gzip")
    print(f"iter_records:              {args.records / t_plain:12,.0f} records/s  ({t_plain * 1000:.1f} ms)")
    print(f"iter_records + SHA-256:    {args.records / t_hashed:12,.0f} records/s  ({t_hashed * 1000:.1f} ms)")
    print(f"ratio hashed/plain time:   {t_hashed / t_plain:.3f}")
    ingest_ratio(data, args.repeat)


class _NoHash:
    def update(self, _data):
        pass

    def hexdigest(self):
        return "1"  # commit_batch's plain "last" flag: no hash stored


def ingest_ratio(data: bytes, repeat: int) -> None:
    import io  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    import psutil  # noqa: PLC0415

    from pipeline import ingest  # noqa: PLC0415
    from pipeline.config import parse_config  # noqa: PLC0415
    from pipeline.redis_server import RedisServer  # noqa: PLC0415
    from pipeline.runtime import Runtime  # noqa: PLC0415

    class MemoryS3:
        def get_object(self, Bucket, Key):  # noqa: N803
            return {"Body": io.BytesIO(data), "ContentLength": len(data)}

        def head_object(self, Bucket, Key):  # noqa: N803
            return {"ContentLength": len(data)}

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            config = parse_config({"redis_url": server.url, "stream_maxlen": 100000, "sources": [{
                "identifier": "bench", "bucket": "bench-bucket", "region": "us-east-1",
                "auth": {"method": "default_chain"}, "eps_throttle": 10 ** 9,
                "integrity": {"enabled": True}}]})
            runtime = Runtime(config)
            source = config.sources[0]
            redis_proc = psutil.Process(server.process.pid)
            real = ingest.hashlib.sha256

            def cpu() -> float:  # this process to the nanosecond, redis-server in clock ticks
                b = redis_proc.cpu_times()
                return time.process_time() + b.user + b.system

            def run(n: int, hashed: bool) -> float:
                ingest.hashlib.sha256 = real if hashed else _NoHash
                try:
                    start = cpu()
                    key = f"AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/{'h' if hashed else 'p'}{n}.json.gz"
                    assert ingest.ingest_object(source, key, runtime.state, MemoryS3(), runtime.limits).outcome == "done"
                    return cpu() - start
                finally:
                    ingest.hashlib.sha256 = real

            plain, hashed = float("inf"), float("inf")
            for n in range(repeat):
                plain = min(plain, run(n, False))
                hashed = min(hashed, run(n, True))
            kept = runtime.state.object_state("bench", "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/h0.json.gz")
            assert len(kept["sha256"]) == 64
        finally:
            server.stop()
    print(f"ingest_object CPU (process + redis-server), best of {repeat}: without hash {plain * 1000:.1f} ms, "
          f"with SHA-256 kept {hashed * 1000:.1f} ms, ratio {hashed / plain:.3f}")


if __name__ == "__main__":
    main()
