#!/usr/bin/env python3
"""Micro-benchmark of the normalizers, in process: microseconds per record.

    python ops/bench/normalize_bench.py [--records 2000] [--repeat 5] [--open-data] [--compare TREE [--rounds 5]]

On the benchmark's generated records (``pipeline.demo_data``, ~1.1 KB each; with
``--open-data`` also the shared open data set), times ``orjson.loads`` of the record's
bytes (the parse, for scale), ``ecs_document``, ``ocsf_event`` and the stream fields of
``derive_fields(record, ("ecs", "ocsf"))`` (both documents built and serialized, plus
display_name and category), record by record and, as the pipeline calls it, over batches of
500 (``derive_batch``: each normalizer in turn over ``CHUNK`` records).  Best of ``--repeat``
runs, per record, in CPU time of this process (the machine may be shared: compare trees with
the same command back to back, e.g. on a ``git archive`` of the other commit).  Each run
starts with the normalizers' caches empty; nearly every record has its own caller,
address and event time, so the caches keyed on those seldom hit.  The cyclic collector runs
with a worker's thresholds (``pipeline.defaults.GC_THRESHOLDS``, set by
``pipeline.runtime.tune_gc``), as ingest runs the normalizers.

``--compare TREE`` measures this tree and another checkout (``git worktree add`` or a
``git archive`` of the other commit unpacked; its bench needs only ``measure``) in turn, each
in a fresh process, ``--rounds`` times, and prints the ECS + OCSF parts of both, best and
median, and their ratio: figures of one run, so a shared machine's load weighs on both alike.
"""
from __future__ import annotations

import argparse
import gc
import gzip
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson  # noqa: E402

from pipeline import defaults  # noqa: E402
from pipeline.config import Config  # noqa: E402
from pipeline.demo_data import make_bucket_files  # noqa: E402
from pipeline.normalize import clear_caches, derive_batch, derive_fields, ecs_document, ocsf_event  # noqa: E402

TARGET_US = 25.0  # issue 12: ECS + OCSF together, per record


def records(count: int, open_data: bool) -> list[bytes]:
    out: list[bytes] = []
    files = make_bucket_files(seed=11, files=max(1, count // 100 + 1), min_records=100, max_records=100)
    for log in files:
        out += [orjson.dumps(r) for r in orjson.loads(gzip.decompress(log.body))["Records"]]
    out = out[:count]
    if open_data:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from normalize_snapshot import OPEN_DATA, open_data_records  # noqa: PLC0415

        if OPEN_DATA.is_dir():
            out += [orjson.dumps(r) for _, r in open_data_records()]
    return out


def per_record_us(function, items, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        clear_caches()  # each run cold: the times and HashMap orders remembered are the run's own
        started = time.process_time()
        for item in items:
            function(item)
        best = min(best, time.process_time() - started)
    return best / len(items) * 1e6


BATCH = Config.model_fields["batch_size"].default  # the pipeline's default batch_size


def per_record_batched_us(formats, items, repeat: int) -> float:
    """As ingest runs it: with the entries' own fields (``carried``, built before the clock starts,
    as the emitter builds them for the entry anyway), which the documents then leave out."""
    from pipeline.emitter import account_of  # noqa: PLC0415

    def text(value) -> str:
        return value if isinstance(value, str) else ("" if value is None else str(value))

    carried = [{"event_id": text(r.get("eventID")), "event_name": text(r.get("eventName")),
                "event_time": text(r.get("eventTime")), "account": account_of(r), "region": text(r.get("awsRegion"))}
               for r in items]
    best = float("inf")
    for _ in range(repeat):
        clear_caches()
        started = time.process_time()
        for start in range(0, len(items), BATCH):
            derive_batch(items[start:start + BATCH], formats, carried=carried[start:start + BATCH] if formats else None)
        best = min(best, time.process_time() - started)
    return best / len(items) * 1e6


def measure(count: int = 2000, repeat: int = 5, open_data: bool = False) -> dict[str, float]:
    thresholds = gc.get_threshold()
    gc.set_threshold(*defaults.GC_THRESHOLDS)  # a worker's (pipeline.runtime.tune_gc)
    try:
        return _measure(count, repeat, open_data)
    finally:
        gc.set_threshold(*thresholds)


def _measure(count: int, repeat: int, open_data: bool) -> dict[str, float]:
    raw = records(count, open_data)
    parsed = [orjson.loads(r) for r in raw]
    both = ("ecs", "ocsf")
    return {
        "records": len(raw),
        "mean_record_bytes": sum(map(len, raw)) / len(raw),
        "parse_us": per_record_us(orjson.loads, raw, repeat),
        "ecs_document_us": per_record_us(ecs_document, parsed, repeat),
        "ocsf_event_us": per_record_us(ocsf_event, parsed, repeat),
        "default_fields_us": per_record_us(lambda r: derive_fields(r, ()), parsed, repeat),
        "ecs_ocsf_fields_us": per_record_us(lambda r: derive_fields(r, both), parsed, repeat),
        "default_batch_us": per_record_batched_us((), parsed, repeat),
        "ecs_ocsf_batch_us": per_record_batched_us(both, parsed, repeat),
    }


def stream_bytes(formats: tuple[str, ...]) -> dict[str, float]:
    """Bytes per event of the stream entries ``pipeline.emitter.batch_entries`` builds from the
    shared open data (``../shared/data/open/``), field by field (name + value, as XADD sends
    them), and ``raw``: the record's own bytes (the entry's ``event``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from normalize_snapshot import OPEN_DATA  # noqa: PLC0415

    from pipeline.config import Source  # noqa: PLC0415
    from pipeline.emitter import batch_entries  # noqa: PLC0415
    from pipeline.parser import iter_records  # noqa: PLC0415

    source = Source(identifier="open-data", bucket="open-data-bucket", auth={"method": "default_chain"}, region="us-east-1",
                    output_formats=list(formats))
    totals: dict[str, int] = {}
    events = 0
    paths = sorted((OPEN_DATA / "stratus-red-team").glob("*.json"))
    paths += [p for p in sorted((OPEN_DATA / "aws-cloudtrail-processing-library").glob("*.json*"))
              if p.name != "SerializerTestFileBadJsonFormat.json"]
    for path in paths:
        data = path.read_bytes()
        if path.parent.name == "stratus-red-team":  # a JSON list of records, not a CloudTrail file
            data = orjson.dumps({"Records": orjson.loads(data)})
        items = list(iter_records(data))
        key = f"AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/01/{path.name}"
        for entry in batch_entries(source, key, items):
            events += 1
            for name, value in entry.items():
                size = len(value.encode() if isinstance(value, str) else value)
                totals[name] = totals.get(name, 0) + len(name) + size
    out = {name: total / events for name, total in totals.items()}
    out["events"] = events
    return out


def print_stream_bytes() -> None:
    for formats in ((), ("ecs", "ocsf")):
        sizes = stream_bytes(formats)
        events = sizes.pop("events")
        raw = sizes["event"] - len("event")
        total = sum(sizes.values())
        label = f"[{', '.join(formats)}]" if formats else "default"
        print(f"stream bytes per event, {label}: {total:.0f} = {total / raw:.2f}x the raw record "
              f"({raw:.0f} B, {events:.0f} open-data events); per field (name + value):")
        print("   " + ", ".join(f"{name} {size:.0f}" for name, size in sizes.items()))
    print(f"   target with [ecs, ocsf] (issue 22): <= {STREAM_TARGET}x")


STREAM_TARGET = 3.5

_CHILD = """
import gc, json, sys
gc.set_threshold(*{thresholds!r})  # the same for both trees, whatever their bench sets
sys.path.insert(0, {tree!r})
sys.path.insert(0, {bench!r})
import normalize_bench
print(json.dumps(normalize_bench.measure({count}, {repeat}, {open_data})))
"""


def compare(other: Path, count: int, repeat: int, open_data: bool, rounds: int) -> None:
    """This tree and ``other`` measured in turn, each in a fresh process, ``rounds`` times."""
    trees = {"this tree": Path(__file__).resolve().parents[2], str(other): other.resolve()}
    parts: dict[str, dict[str, list[float]]] = {name: {"batch": [], "record": []} for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            code = _CHILD.format(tree=str(tree), bench=str(tree / "ops" / "bench"), count=count, repeat=repeat,
                                 open_data=open_data, thresholds=defaults.GC_THRESHOLDS)
            m = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                          text=True, cwd=tree).stdout)
            parts[name]["batch"].append(m["ecs_ocsf_batch_us"] - m["default_batch_us"])
            parts[name]["record"].append(m["ecs_ocsf_fields_us"] - m["default_fields_us"])
    print(f"ECS + OCSF part per record, {rounds} rounds of best of {repeat} (µs: best / median):")
    for name, figures in parts.items():
        print(f"  {name:40s} derive_batch {min(figures['batch']):5.1f} / {statistics.median(figures['batch']):5.1f}"
              f"   record by record {min(figures['record']):5.1f} / {statistics.median(figures['record']):5.1f}")
    mine, theirs = parts["this tree"]["batch"], parts[str(other)]["batch"]
    print(f"  derive_batch, this tree / other: {statistics.median(mine) / statistics.median(theirs):.2f} (medians), "
          f"{min(mine) / min(theirs):.2f} (best)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream-bytes", action="store_true",
                        help="only the stream bytes per event of the open data, default fields and [ecs, ocsf]")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--open-data", action="store_true")
    parser.add_argument("--compare", type=Path, metavar="TREE",
                        help="also measure another checkout, in turn with this one, each in a fresh process")
    parser.add_argument("--rounds", type=int, default=5, help="with --compare: how many times each tree is measured")
    args = parser.parse_args()
    if args.stream_bytes:
        print_stream_bytes()
        return 0
    if args.compare is not None:
        compare(args.compare, args.records, args.repeat, args.open_data, args.rounds)
        return 0
    m = measure(args.records, args.repeat, args.open_data)
    print(f"{m['records']} records of {m['mean_record_bytes']:.0f} bytes on average; best of {args.repeat}, per record:")
    print(f"  orjson.loads (parse)                 {m['parse_us']:7.1f} µs")
    print(f"  display_name + category              {m['default_fields_us']:7.1f} µs")
    print(f"  ecs_document                         {m['ecs_document_us']:7.1f} µs")
    print(f"  ocsf_event                           {m['ocsf_event_us']:7.1f} µs")
    print(f"  derive_fields(ecs, ocsf), serialized {m['ecs_ocsf_fields_us']:7.1f} µs"
          f"  (record by record; ECS + OCSF part: {m['ecs_ocsf_fields_us'] - m['default_fields_us']:.1f} µs)")
    extra = m["ecs_ocsf_batch_us"] - m["default_batch_us"]
    print(f"  derive_batch(ecs, ocsf), by {BATCH}      {m['ecs_ocsf_batch_us']:7.1f} µs"
          f"  (as the pipeline runs it; ECS + OCSF part: {extra:.1f} µs; target ≤ {TARGET_US:.0f} µs: "
          f"{'MET' if extra <= TARGET_US else 'NOT MET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
