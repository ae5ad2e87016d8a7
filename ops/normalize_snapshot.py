#!/usr/bin/env python3
"""Snapshot the normalized outputs (display_name, category, ECS, OCSF) of a fixed set of
records, and check that the current code still produces them.

    python ops/normalize_snapshot.py write [--out tests/data/normalize_snapshot.jsonl.gz]
    python ops/normalize_snapshot.py check [--snapshot tests/data/normalize_snapshot.jsonl.gz] [--show 5]

The records: every record of the shared open data set (``../shared/data/open/``, when
present), the generated records the benchmark and demo use (``pipeline.demo_data``), and
every record ``tests/test_normalize.py`` hands to the normalizers (recorded by running
that module in this process).  The snapshot holds the records themselves and the fields
``derive_fields(record, ("ecs", "ocsf"), payloads=True)`` returned (the whole documents; the
stream's form leaves their payload copies out, checked against these by the tests), so ``check`` (and
``tests/test_normalize.py``) needs neither the open data nor the old code.  A rewrite of
the mappings must leave ``check`` at 0 differences; a deliberate mapping change shows
here field by field, and the snapshot is then written again in the same commit.

The file is gzipped JSON lines, one ``{"name", "record", "outputs"}`` object per record (a
record JSON cannot carry exactly, such as a NaN or a non-string key, is left to the tests
that build it); ``check --snapshot`` also reads the pickles of earlier commits
(``normalize_snapshot.pkl.gz``).
"""
from __future__ import annotations

import argparse
import copy
import gzip
import json
import pickle
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_SNAPSHOT = REPO / "tests" / "data" / "normalize_snapshot.jsonl.gz"
OPEN_DATA = REPO.parent / "shared" / "data" / "open"
FORMATS = ("ecs", "ocsf")


def open_data_records() -> list[tuple[str, dict]]:
    import orjson  # noqa: PLC0415

    from pipeline.parser import iter_records  # noqa: PLC0415

    out: list[tuple[str, dict]] = []
    for path in sorted((OPEN_DATA / "stratus-red-team").glob("*.json")):
        for i, record in enumerate(orjson.loads(path.read_bytes())):
            out.append((f"open/{path.name}#{i}", record))
    for path in sorted((OPEN_DATA / "aws-cloudtrail-processing-library").glob("*.json*")):
        if path.name == "SerializerTestFileBadJsonFormat.json":
            continue
        for i, (_, record) in enumerate(iter_records(path.read_bytes())):
            out.append((f"open/{path.name}#{i}", record))
    return out


def generated_records(count: int = 500) -> list[tuple[str, dict]]:
    import gzip as gz  # noqa: PLC0415

    import orjson  # noqa: PLC0415

    from pipeline.demo_data import make_bucket_files  # noqa: PLC0415

    out: list[tuple[str, dict]] = []
    for log in make_bucket_files(seed=7, files=10, min_records=50, max_records=50):
        for i, record in enumerate(orjson.loads(gz.decompress(log.body))["Records"]):
            out.append((f"demo/{log.key}#{i}", record))
    return out[:count]


def test_records() -> list[tuple[str, dict]]:
    """Every record tests/test_normalize.py passes to derive_fields/ecs_document/ocsf_event."""
    import pytest  # noqa: PLC0415

    import pipeline.normalize as normalize  # noqa: PLC0415

    seen: list[tuple[str, dict]] = []
    keys: set[bytes] = set()

    def remember(record):
        if not isinstance(record, dict):
            return
        try:
            frozen = json.dumps(record, allow_nan=False, sort_keys=False).encode()
            copied = json.loads(frozen)
        except (RecursionError, TypeError, ValueError):
            return  # too deep or not JSON: covered by the tests themselves
        if copied != record:
            return  # JSON would not give it back as it is (e.g. a tuple): likewise
        if frozen not in keys:
            keys.add(frozen)
            seen.append((f"tests/test_normalize.py#{len(seen)}", copied))

    originals = {name: getattr(normalize, name) for name in ("derive_fields", "ecs_document", "ocsf_event")}

    def wrap(function):
        def recorded(record, *args, **kwargs):
            remember(record)
            return function(record, *args, **kwargs)
        return recorded

    for name, function in originals.items():
        setattr(normalize, name, wrap(function))
    try:
        code = pytest.main(["-q", "-p", "no:cacheprovider", "-k", "not snapshot",
                            str(REPO / "tests" / "test_normalize.py")])
    finally:
        for name, function in originals.items():
            setattr(normalize, name, function)
    if code != 0:
        raise SystemExit(f"tests/test_normalize.py failed ({code}): fix the tests before snapshotting")
    return seen


def outputs(record: dict) -> dict[str, str]:
    from pipeline.normalize import derive_fields  # noqa: PLC0415

    fields = derive_fields(copy.deepcopy(record), FORMATS, payloads=True)
    return {name: value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value
            for name, value in fields.items()}


def write(path: Path) -> int:
    records = open_data_records() if OPEN_DATA.is_dir() else []
    if not records:
        print(f"warning: open data not found at {OPEN_DATA}", file=sys.stderr)
    records += generated_records()
    records += test_records()
    lines = []
    for name, record in records:
        try:
            line = json.dumps({"name": name, "record": record, "outputs": outputs(record)}, allow_nan=False)
        except (TypeError, ValueError):
            continue  # not JSON (e.g. a NaN): the tests that build it check it
        if json.loads(line)["record"] != record:
            continue
        lines.append(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=9, mtime=0))
    print(f"wrote {len(lines)} records to {path}")
    return 0


def load(path: Path) -> list[tuple[str, dict, dict[str, str]]]:
    data = gzip.decompress(path.read_bytes())
    if path.name.endswith(".pkl.gz"):  # the format of earlier commits
        return pickle.loads(data)  # noqa: S301  # the project's own file
    out = []
    for line in data.decode().splitlines():
        if line:
            entry = json.loads(line)
            out.append((entry["name"], entry["record"], entry["outputs"]))
    return out


def same(field: str, expected: str | None, actual: str | None) -> bool:
    """Whether two outputs are the same: text fields exactly, the JSON documents as JSON
    values (the order of an object's keys carries nothing, and a rewrite may change it)."""
    if expected == actual:
        return True
    if field not in FORMATS or expected is None or actual is None:
        return False
    import orjson  # noqa: PLC0415

    return orjson.loads(expected) == orjson.loads(actual)


def differences(entries, key_order: list | None = None) -> list[tuple[str, str, str, str]]:
    """(record name, field, expected, actual) for every output whose value changed;
    outputs that differ only in key order are appended to ``key_order`` when given."""
    out = []
    for name, record, expected in entries:
        actual = outputs(record)
        for field in sorted(set(expected) | set(actual)):
            a, b = expected.get(field), actual.get(field)
            if a == b:
                continue
            if same(field, a, b):
                if key_order is not None:
                    key_order.append((name, field))
            else:
                out.append((name, field, a, b))
    return out


def _json_diff(expected: str | None, actual: str | None) -> str:
    import orjson  # noqa: PLC0415

    try:
        a, b = orjson.loads(expected or "null"), orjson.loads(actual or "null")
    except orjson.JSONDecodeError:
        return f"  expected {expected!r}\n  actual   {actual!r}"
    if a == b:
        return "  same values, different key order"
    lines = []

    def walk(x, y, path):
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y), key=str):
                walk(x.get(key, "<missing>"), y.get(key, "<missing>"), f"{path}.{key}" if path else str(key))
        elif x != y:
            lines.append(f"  {path}: {x!r} -> {y!r}")

    walk(a, b, "")
    return "\n".join(lines)


def check(path: Path, show: int) -> int:
    entries = load(path)
    reordered: list = []
    diffs = differences(entries, reordered)
    print(f"{len(entries)} records: {len(diffs)} outputs differ from {path.name}; "
          f"{len(reordered)} JSON documents equal with their keys in another order")
    for name, field, expected, actual in diffs[:show]:
        print(f"{name} [{field}]")
        print(_json_diff(expected, actual) if field in FORMATS else f"  {expected!r} -> {actual!r}")
    return 1 if diffs else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("--out", type=Path, default=DEFAULT_SNAPSHOT)
    c = sub.add_parser("check")
    c.add_argument("--snapshot", type=Path, default=DEFAULT_SNAPSHOT)
    c.add_argument("--show", type=int, default=5)
    args = parser.parse_args()
    return write(args.out) if args.command == "write" else check(args.snapshot, args.show)


if __name__ == "__main__":
    sys.exit(main())
