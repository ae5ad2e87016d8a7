#!/usr/bin/env python3
"""Compare trailpipe's ECS documents with Elastic's, record by record.

    python ops/ecs_compare.py DIR [--show 20] [--json-out PATH] [--only-expected-fields] [--ignore FIELD ...]

DIR holds Elastic's pipeline tests for the aws.cloudtrail data stream, as in a checkout of
elastic/integrations: ``packages/aws/data_stream/cloudtrail/_dev/test/pipeline/`` with
``test-*.log`` (one CloudTrail record per line) beside ``test-*.log-expected.json``
(``{"expected": [document, ...]}``, one document per line of the log; without the ``.log``,
each document's ``event.original`` is the record; a ``test-*.log-config.yml`` setting
``_conf: {retain: X}`` is honoured).  Any directory of such pairs works, so
records of your own can be checked the same way (``tests/data/ecs_expected/`` holds the
project's own; ``--only-expected-fields`` compares just the fields an expectation names).

For each record, every leaf field of Elastic's document under ``event.*``, ``user.*``,
``related.*``, ``source.*``, ``cloud.*``, ``tls.*``, ``group.*``, ``user_agent.original``,
``file.*`` and ``aws.cloudtrail.*`` is compared with trailpipe's (lists as sets where Elastic
de-duplicates), leaving out what trailpipe does not reproduce by design (``pipeline/normalize/
ecs.py``'s docstring: GeoIP ``source.geo``/``source.as``, parsed ``user_agent.*``,
``event.created``/``ingested``/``original``, ``tags``, the ``*.entity`` fields).  Fields that
trailpipe sets and Elastic does not are counted too.  Prints the agreement per field family
and the first ``--show`` differences; exits 1 when any field differs, so the next mapping
update is checked the same way.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.normalize import canonical_keys, ecs_document  # noqa: E402

FAMILIES = ("event.", "user.", "related.", "source.", "cloud.", "tls.", "group.", "user_agent.original",
            "file.", "aws.cloudtrail.", "@timestamp")
NOT_REPRODUCED = ("source.geo.", "source.as.", "event.created", "event.ingested", "event.original",
                  "user_agent.original.")
ENTITY = ".entity"


def leaves(doc, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    if isinstance(doc, dict):
        for key, value in doc.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and not path.startswith("aws.cloudtrail.flattened"):
                out.update(leaves(value, path))
            else:
                out[path] = value
    return out


def in_scope(path: str) -> bool:
    if ENTITY in path or path.startswith(NOT_REPRODUCED) or path.startswith("user_agent.") and path != "user_agent.original":
        return False
    return path.startswith(FAMILIES)


def same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        # as sets of JSON values: neither the order of a list nor that of an object's keys counts
        return sorted(json.dumps(x, sort_keys=True) for x in a) == sorted(json.dumps(x, sort_keys=True) for x in b)
    return a == b


_RETAIN = re.compile(r"^\s+retain:\s*['\"]?(\w+)", re.MULTILINE)


def retain_of(log: Path) -> str:
    """The ``_conf.retain`` a test's ``-config.yml`` sets (Elastic's default: "all")."""
    config = log.with_name(log.name + "-config.yml")
    found = _RETAIN.search(config.read_text()) if config.exists() else None
    return found.group(1) if found else "all"


def pairs(directory: Path):
    """(test name, index, record, Elastic's document, retain) for every record of ``directory``."""
    for expected_path in sorted(directory.glob("test-*.log-expected.json")):
        expected = json.loads(expected_path.read_text())["expected"]
        log = expected_path.with_name(expected_path.name[:-len("-expected.json")])
        retain = retain_of(log)
        if log.exists():
            lines = [line for line in log.read_text().splitlines() if line.strip()]
        else:
            lines = [((doc or {}).get("event") or {}).get("original") or "" for doc in expected]
        for index, (line, elastic) in enumerate(zip(lines, expected)):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # Elastic's test of a non-JSON line
            if isinstance(record, dict):
                yield log.name, index, record, elastic or {}, retain


def compare(directory: Path, only_expected: bool = False, ignore: frozenset[str] = frozenset()):
    results = []  # (test, index, field, elastic, trailpipe)
    fields = Counter()
    agree = Counter()
    for name, index, record, elastic, retain in pairs(directory):
        ours = leaves(json.loads(json.dumps(ecs_document(canonical_keys(record), retain=retain))))
        theirs = leaves(elastic)
        for path in sorted(set(theirs) if only_expected else set(ours) | set(theirs)):
            if not in_scope(path) or path in ignore:
                continue
            family = path.split(".")[0]
            fields[family] += 1
            if same(theirs.get(path), ours.get(path)):
                agree[family] += 1
            else:
                results.append((name, index, path, theirs.get(path, "<absent>"), ours.get(path, "<absent>")))
    return results, fields, agree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--show", type=int, default=20)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--only-expected-fields", action="store_true",
                        help="compare only the fields each expected document names")
    parser.add_argument("--ignore", action="append", default=[], metavar="FIELD",
                        help="leave a field out (repeatable), e.g. the fields of a rule of another version")
    args = parser.parse_args()
    diffs, fields, agree = compare(args.directory, args.only_expected_fields, frozenset(args.ignore))
    total, good = sum(fields.values()), sum(agree.values())
    print(f"{good}/{total} field comparisons agree ({good / total * 100 if total else 0:.1f}%)")
    for family in sorted(fields):
        print(f"  {family:<16} {agree[family]}/{fields[family]}")
    for test, index, path, theirs, ours in diffs[:args.show]:
        print(f"{test}#{index} {path}: elastic {theirs!r} trailpipe {ours!r}")
    if args.json_out:
        args.json_out.write_text(json.dumps({"agree": good, "total": total, "differences": diffs}, indent=1, default=str))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
