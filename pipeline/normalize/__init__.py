"""Derived stream fields for a CloudTrail record.

``derive_fields(record, output_formats)`` returns the fields added to each stream
entry: ``display_name`` (humanized eventName), ``category`` (QRadar-style low-level
category) and, when asked for, ``ecs`` (the document Elastic's aws.cloudtrail pipeline
would index) and ``ocsf`` (an OCSF 1.1.0 event), each as compact JSON in UTF-8 bytes
(what the stream stores: no str round trip).

The stream's documents leave out what only copies the record, which the entry carries
itself in ``event`` (issue 22): ECS as Elastic's pipeline writes it with ``retain: none``
(no payload text, no ``aws.cloudtrail.flattened`` payload objects), OCSF without
``unmapped`` and ``api.request.data``/``api.response.data``.  ``payloads=True`` gives the
whole documents (``ecs_document``/``ocsf_event`` with their defaults).

One module per concern; mapping tables are data modules (``categories``,
``ecs_tables``, ``ocsf_tables``).
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import orjson

from . import common, javaish
from . import ecs as _ecs
from . import ocsf as _ocsf
from .casing import canonical_keys
from .category import category
from .display import display_name, record_display_name
from .ecs import ecs_document
from .ocsf import ocsf_event

__all__ = ["canonical_keys", "clear_caches", "derive_batch", "derive_fields", "display_name", "category",
           "ecs_document", "ocsf_event", "OUTPUT_FORMATS"]

OUTPUT_FORMATS = ("ecs", "ocsf")


def derive_fields(record: dict, output_formats: Sequence[str] = (), payloads: bool = False) -> dict[str, str | bytes]:
    """Stream fields derived from ``record``: display_name and category as str, the
    documents as UTF-8 JSON bytes (without the payload copies unless ``payloads``)."""
    if not isinstance(record, dict):
        record = {}
    record = canonical_keys(record)
    try:
        return _derive(record, output_formats, payloads)
    except RecursionError:
        # nesting deeper than Python's recursion limit (orjson accepts 1024 levels): the
        # deep parts are kept as JSON text
        return _derive(_shallow(record, MAX_DEPTH), output_formats, payloads)


MAX_DEPTH = 200


def derive_batch(records: Sequence[dict], output_formats: Sequence[str] = (),
                 payloads: bool = False) -> list[dict[str, str | bytes]]:
    """``[derive_fields(r, output_formats, payloads) for r in records]``, computed one normalizer at a
    time over ``CHUNK`` records: run record by record, ECS and OCSF evict each other's code
    and data from the CPU's caches; over a whole batch of 500, the records themselves are
    evicted before the second normalizer reads them (``CHUNK``)."""
    records = [canonical_keys(r) if isinstance(r, dict) else {} for r in records]
    out: list[dict[str, str | bytes]] = [
        {"display_name": record_display_name(r), "category": category(r)} for r in records]
    done: set[int] = set()  # id() of the fields redone whole by derive_fields (nesting beyond recursion)
    builders = [(name, build) for name, build in (("ecs", _ecs_full if payloads else _ecs_stream),
                                                  ("ocsf", ocsf_event if payloads else _ocsf_stream))
                if name in output_formats]
    if not builders:
        return out
    dumps = orjson.dumps
    for start in range(0, len(records), CHUNK):
        pairs = list(zip(out[start:start + CHUNK], records[start:start + CHUNK]))
        for name, build in builders:
            for fields, record in pairs:
                if done and id(fields) in done:
                    continue
                try:
                    document = build(record)
                    try:
                        fields[name] = dumps(document)
                    except TypeError:  # what orjson refuses: _to_json's fallback
                        fields[name] = _to_json(document)
                except RecursionError:
                    redone = derive_fields(record, output_formats, payloads)
                    fields.clear()
                    fields.update(redone)
                    done.add(id(fields))
    return out


# derive_batch runs each normalizer over this many records in turn: few enough that the
# records are still in the CPU's caches for the second normalizer, enough that each
# normalizer's code and data stay there too.  Measured per record, both formats, on the
# micro-benchmark's records (an earlier version): record by record ~33 µs, by 8 ~29; 128 against
# 500 at once 0-1 µs less.  With today's normalizers 1 to 500 all measure 17-19 µs, within the
# shared machine's noise.
CHUNK = 128


def clear_caches() -> None:
    """Forget what the normalizers remember between records (times, HashMap orders), so
    a benchmark's repeated runs each start cold."""
    common.clear_caches()
    javaish.clear_caches()
    _ocsf.clear_caches()
    _ecs.clear_caches()


def _ecs_full(record: dict) -> dict:
    return ecs_document(record)


def _ecs_stream(record: dict) -> dict:
    return ecs_document(record, "none")


def _ocsf_stream(record: dict) -> dict:
    return ocsf_event(record, False)


def _derive(record: dict, output_formats: Sequence[str], payloads: bool) -> dict[str, str | bytes]:
    fields: dict[str, str | bytes] = {
        "display_name": record_display_name(record),
        "category": category(record),
    }
    if "ecs" in output_formats:
        fields["ecs"] = _to_json(ecs_document(record) if payloads else ecs_document(record, "none"))
    if "ocsf" in output_formats:
        fields["ocsf"] = _to_json(ocsf_event(record, payloads))
    return fields


def _shallow(value: Any, depth: int) -> Any:
    """``value`` with what lies ``depth`` levels down replaced by its JSON text."""
    if isinstance(value, (dict, list)) and depth <= 0:
        return _deep_json(value)
    if isinstance(value, dict):
        return {key: _shallow(item, depth - 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_shallow(item, depth - 1) for item in value]
    return value


def _to_json(document: Any) -> bytes:
    """Compact JSON, UTF-8.  Records from ``pipeline.parser`` always fit orjson; a record
    built elsewhere may hold what orjson refuses (integers beyond 64 bits, non-JSON
    types), which the standard library writes instead."""
    try:
        return orjson.dumps(document)
    except TypeError:
        return json.dumps(_plain(document), ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode("utf-8", "surrogatepass")


def _plain(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become null (as orjson writes them), other
    non-JSON values their ``str``."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int)):
        return value
    return str(value)


class _Text(str):
    """JSON text already rendered, on ``_deep_json``'s stack."""


def _deep_json(value: Any) -> str:
    """Compact JSON of an arbitrarily deep value, without recursion."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text):
            out.append(item)
        elif isinstance(item, dict):
            out.append("{")
            stack.append(_Text("}"))
            entries = list(item.items())
            for index in range(len(entries) - 1, -1, -1):
                key, child = entries[index]
                stack.append(child)
                stack.append(_Text(("," if index else "") + json.dumps(str(key), ensure_ascii=False) + ":"))
        elif isinstance(item, (list, tuple)):
            out.append("[")
            stack.append(_Text("]"))
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_Text(","))
        else:
            out.append(json.dumps(_plain(item), ensure_ascii=False))
    return "".join(out)
