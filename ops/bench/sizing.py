"""Sizing: what one Redis must hold, and what ``wait_replicas`` costs, measured in one run.

    python ops/bench/sizing.py [--objects 200] [--records 100] [--shared DIR] [--rounds 3] [--json-out PATH]

On a fresh redis-server (the one trailpipe embeds) with one replica, the ingest path's writes
are replayed as a worker makes them (claim, begin, commit_batch per batch of ``batch_size``, the
last batch marking the object done), without S3, for the default fields and for
``output_formats: [ecs, ocsf]``. Then:

- bytes per event in the stream: ``MEMORY USAGE`` of the stream (every node: ``SAMPLES 0``) over
  its length, beside the raw record's bytes;
- bytes per object in the state: ``MEMORY USAGE`` of each done object's hash (what stays for
  ``state_retention``), averaged;
- the cost of ``wait_replicas: 1`` (a ``WAIT`` after each batch, on the same connection): the
  time to commit the same objects with and without, interleaved ``--rounds`` times, as a ratio;
- the sizing table these make (events/s x hours of consumer outage -> stream memory;
  objects/day x retention -> state memory).

Records are ``pipeline.demo_data``'s (realistic CloudTrail records), or with ``--shared DIR`` the
JSON files of a directory like ``../shared/data/open`` (real ones).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.config import parse_config  # noqa: E402
from pipeline.demo_data import make_record  # noqa: E402
from pipeline.emitter import batch_entries  # noqa: E402
from pipeline.redis_server import RedisServer  # noqa: E402
from pipeline.runtime import Runtime  # noqa: E402

GB = 1e9


def records_from(shared: Path | None, count: int, rng: random.Random) -> list[dict]:
    if shared is None:
        when = datetime(2024, 7, 31, tzinfo=UTC)
        return [make_record(rng, "123456789012", "us-east-1", when) for _ in range(count)]
    found: list[dict] = []
    for path in sorted(shared.glob("*/*.json")):
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        found += [r for r in (doc["Records"] if isinstance(doc, dict) else doc) if isinstance(r, dict)]
    if not found:
        raise SystemExit(f"no CloudTrail records in {shared}")
    return [found[i % len(found)] for i in range(count)]


def runtime_for(url: str, formats: list[str], wait_replicas: int | None) -> Runtime:
    source = {"identifier": "size", "bucket": "sizing-bucket", "region": "us-east-1",
              "auth": {"method": "default_chain"}, "output_formats": formats}
    return Runtime(parse_config({"redis_url": url, "sources": [source], "wait_replicas": wait_replicas}))


def replay(runtime: Runtime, records: list[bytes], objects: int, per_object: int, tag: str) -> float:
    """The writes of ``objects`` objects ingested by a worker; seconds spent in commits."""
    state, source = runtime.state, runtime.config.sources[0]
    batch_size = runtime.config.batch_size
    spent = 0.0
    for n in range(objects):
        key = (f"AWSLogs/123456789012/CloudTrail/us-east-1/2024/07/31/"
               f"123456789012_CloudTrail_us-east-1_20240731T{n // 60:02d}{n % 60:02d}Z_{tag}{n:05d}.json.gz")
        state.claim_many(source.identifier, [key], 0)
        state.begin(source.identifier, key, "bench")
        items = records[(n * per_object) % len(records):][:per_object] or records[:per_object]
        checkpoint = 0
        for start in range(0, len(items), batch_size):
            batch = [(raw, orjson.loads(raw)) for raw in items[start:start + batch_size]]
            entries = batch_entries(source, key, batch)
            began = time.perf_counter()
            _, checkpoint = state.commit_batch(source.identifier, key, checkpoint, len(batch), entries,
                                               last=start + batch_size >= len(items), runner="bench")
            spent += time.perf_counter() - began
    return spent


def memory(client, key: str) -> int:
    return int(client.memory_usage(key, samples=0) or 0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--records", type=int, default=100, help="records per object")
    parser.add_argument("--shared", type=Path, help="a directory of CloudTrail JSON files (*/*.json)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds for the WAIT cost")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    rng = random.Random(7)
    raws = [orjson.dumps(r) for r in records_from(args.shared, args.objects * args.records, rng)]
    result: dict = {"objects": args.objects, "records_per_object": args.records,
                    "raw_record_bytes": round(statistics.fmean(len(r) for r in raws), 1)}
    with tempfile.TemporaryDirectory() as folder:
        primary = RedisServer(Path(folder) / "primary", appendonly=False,
                              extra_args=("--repl-diskless-sync-delay", "0")).start()
        replica = RedisServer(Path(folder) / "replica", appendonly=False,
                              extra_args=("--replicaof", "127.0.0.1", str(primary.port))).start()
        try:
            result["server"] = primary_version(primary)
            for label, formats in (("default", []), ("ecs+ocsf", ["ecs", "ocsf"])):
                runtime = runtime_for(primary.url, formats, None)
                runtime.redis.flushall()
                replay(runtime, raws, args.objects, args.records, label)
                client, keys = runtime.redis, runtime.keys
                length = client.xlen(runtime.config.stream)
                objects = [memory(client, keys.object("size", key.decode().split(":obj:", 1)[1]))
                           for key in client.scan_iter(match=keys.object("size", "*"), count=1000)]
                result[label] = {"stream_bytes_per_event": round(memory(client, runtime.config.stream) / length, 1),
                                 "state_bytes_per_object": round(statistics.fmean(objects), 1),
                                 "events": length, "objects_done": len(objects)}
                runtime.redis.close()
            result["wait_replicas"] = wait_cost(primary.url, raws, args)
        finally:
            replica.stop()
            primary.stop()
    result["table"] = sizing_table(result)
    print(report(result))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def primary_version(server: RedisServer) -> str:
    import redis  # noqa: PLC0415

    info = redis.Redis(port=server.port).info("server")
    return f"valkey {info['valkey_version']}" if "valkey_version" in info else f"redis {info['redis_version']}"


def wait_cost(url: str, raws: list[bytes], args) -> dict:
    """Commit time with ``wait_replicas: 1`` over without, same objects, interleaved rounds."""
    objects = max(20, args.objects // 4)
    plain, waiting = [], []
    for round_ in range(args.rounds):
        for wait, times in ((None, plain), (1, waiting)):
            runtime = runtime_for(url, [], wait)
            runtime.redis.flushall()
            times.append(replay(runtime, raws, objects, args.records, f"w{round_}{wait or 0}"))
            shortfalls = runtime.state.stats("size").get("wait_replicas_short", 0)
            assert shortfalls == 0, "the replica did not keep up: the measure would be the timeout's"
            runtime.redis.close()
    batches = objects * -(-args.records // 500)
    return {"ratio": round(statistics.median(waiting) / statistics.median(plain), 2),
            "us_per_batch_without": round(statistics.median(plain) / batches * 1e6, 1),
            "us_per_batch_with": round(statistics.median(waiting) / batches * 1e6, 1)}


def sizing_table(result: dict) -> dict:
    table: dict = {"stream_gb": {}, "state_gb": {}}
    for label in ("default", "ecs+ocsf"):
        per_event = result[label]["stream_bytes_per_event"]
        for eps in (1_000, 10_000):
            for hours in (1, 4, 24):
                table["stream_gb"][f"{label} {eps}/s x {hours}h"] = round(per_event * eps * hours * 3600 / GB, 1)
    per_object = result["default"]["state_bytes_per_object"]
    for per_day in (10_000, 100_000, 1_000_000):
        for days in (1, 7):
            table["state_gb"][f"{per_day}/day x {days}D"] = round(per_object * per_day * days / GB, 2)
    return table


def report(result: dict) -> str:
    lines = [f"server {result['server']}; {result['objects']} objects x {result['records_per_object']} records; "
             f"raw record {result['raw_record_bytes']} bytes"]
    for label in ("default", "ecs+ocsf"):
        row = result[label]
        lines.append(f"{label:9} stream {row['stream_bytes_per_event']} bytes/event; state "
                     f"{row['state_bytes_per_object']} bytes/object done")
    wait = result["wait_replicas"]
    lines.append(f"wait_replicas: 1 costs {wait['ratio']}x the commit time ({wait['us_per_batch_without']} -> "
                 f"{wait['us_per_batch_with']} us per batch)")
    lines += [f"  stream {name}: {gb} GB" for name, gb in result["table"]["stream_gb"].items()]
    lines += [f"  state {name}: {gb} GB" for name, gb in result["table"]["state_gb"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
