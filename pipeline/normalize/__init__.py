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
whole documents (``ecs_document``/``ocsf_event`` with their defaults).  Given the entry's own
fields (``derive_batch``'s ``carried``), they also leave out the values those fields hold
(``CARRIED``: event.id is the entry's ``event_id``...); ``restore_carried`` puts them back.

One module per concern; mapping tables are data modules (``categories``,
``ecs_tables``, ``ocsf_tables``).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
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
           "ecs_document", "ocsf_event", "restore_carried", "CARRIED", "OUTPUT_FORMATS"]

OUTPUT_FORMATS = ("ecs", "ocsf")

# What a stream document leaves out because its entry carries the same text in a field of its
# own (issue 22): per document, (path, entry field).  A value is left out only where it equals
# the entry's field (a non-empty text); where the whole document has no such value but the
# entry's field has one (records whose eventID, eventName... are not text, a recipientAccountId
# missing), the stream's document holds null there instead, so ``restore_carried`` gives back
# exactly the whole document.
CARRIED: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "ecs": ((("event", "id"), "event_id"),
            (("event", "action"), "event_name"),
            (("cloud", "account", "id"), "account"),
            (("cloud", "region"), "region"),
            (("aws", "cloudtrail", "recipient_account_id"), "account")),
    "ocsf": ((("metadata", "uid"), "event_id"),
             (("api", "operation"), "event_name"),
             (("cloud", "account", "uid"), "account"),
             (("cloud", "region"), "region")),
}


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
                 payloads: bool = False, carried: Sequence[Mapping[str, Any]] | None = None,
                 ) -> list[dict[str, str | bytes]]:
    """``[derive_fields(r, output_formats, payloads) for r in records]``, computed one normalizer at a
    time over ``CHUNK`` records: run record by record, ECS and OCSF evict each other's code
    and data from the CPU's caches; over a whole batch of 500, the records themselves are
    evicted before the second normalizer reads them (``CHUNK``).  ``carried``: each record's
    entry fields (parallel to ``records``); the documents then leave out what those fields
    hold (``CARRIED``; the fields of ``CARRIED`` an entry lacks are kept in the documents)."""
    records = [canonical_keys(r) if isinstance(r, dict) else {} for r in records]
    out: list[dict[str, str | bytes]] = [
        {"display_name": record_display_name(r), "category": category(r)} for r in records]
    done: set[int] = set()  # id() of the fields redone whole by derive_fields (nesting beyond recursion)
    builders = [(name, build) for name, build in (("ecs", _ecs_full if payloads else _ecs_stream),
                                                  ("ocsf", ocsf_event if payloads else _ocsf_stream))
                if name in output_formats]
    if not builders:
        return out
    if carried is not None and len(carried) != len(records):
        raise ValueError("carried: one mapping per record")
    dumps = orjson.dumps
    for start in range(0, len(records), CHUNK):
        pairs = list(zip(out[start:start + CHUNK], records[start:start + CHUNK]))
        entries = carried[start:start + CHUNK] if carried is not None else None
        for name, build in builders:
            paths = _carried_paths(name, entries[0]) if entries else ()
            # every field of CARRIED in the entries (the default stream_fields): the written-out path first
            fast = _LEFT_OUT[name] if len(paths) == len(CARRIED[name]) else None
            for index, (fields, record) in enumerate(pairs):
                if done and id(fields) in done:
                    continue
                try:
                    document = build(record)
                    if paths:
                        entry = entries[index]  # type: ignore[index]
                        left = fast(document, entry) if fast is not None else None
                        document = left if left is not None else _leave_out_carried(document, paths, entry)
                    try:
                        fields[name] = dumps(document)
                    except TypeError:  # what orjson refuses: _to_json's fallback
                        fields[name] = _to_json(document)
                except RecursionError:
                    redone = derive_fields(record, output_formats, payloads)
                    if entries:
                        for other in redone.keys() & set(OUTPUT_FORMATS):
                            kept = _leave_out_carried(orjson.loads(redone[other]),
                                                      _carried_paths(other, entries[index]), entries[index])
                            redone[other] = _to_json(kept)
                    fields.clear()
                    fields.update(redone)
                    done.add(id(fields))
    return out


def _carried_paths(name: str, entry: Mapping[str, Any]) -> tuple[tuple[tuple[str, ...], str], ...]:
    """The (path, field) of ``CARRIED[name]`` whose field the entries hold (all alike in a batch)."""
    return tuple((path, field) for path, field in CARRIED.get(name, ()) if field in entry)


def _leave_out_carried(document: dict, paths: tuple[tuple[tuple[str, ...], str], ...],
                       entry: Mapping[str, Any]) -> dict:
    """``document`` less the values its entry carries (``CARRIED``); null where the entry has a
    value the document has not.  The containers on the way are copied, never changed in place
    (a normalizer may share them between records), and left out when nothing remains in them."""
    document = dict(document)
    fresh = {id(document)}
    for path, field in paths:
        value = entry[field]
        if value.__class__ is not str or not value:
            continue  # restore_carried puts back no empty field: nothing is left out
        chain = [document]
        holder = document
        for part in path[:-1]:
            child = holder.get(part)
            if child is None:
                child = holder[part] = {}  # absent from the whole document: the null below says so
                fresh.add(id(child))
            elif child.__class__ is not dict:
                break  # a value where a container would be: restore_carried leaves it be
            elif id(child) not in fresh:
                child = holder[part] = dict(child)
                fresh.add(id(child))
            chain.append(child)
            holder = child
        else:
            leaf = path[-1]
            if leaf not in holder:
                holder[leaf] = None
            elif holder[leaf] == value:
                del holder[leaf]
                for depth in range(len(chain) - 1, 0, -1):
                    if chain[depth]:
                        break
                    del chain[depth - 1][path[depth - 1]]
    return document


def _carried_text(entry: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
    """The entry's event_id, event_name, account and region when each is non-empty text (the
    common case the written-out paths below handle); None otherwise."""
    try:
        values = (entry["event_id"], entry["event_name"], entry["account"], entry["region"])
    except KeyError:
        return None
    return values if all(value.__class__ is str and value for value in values) else None


def _put_or_drop(holder: dict, name: str, child: dict) -> None:
    """``holder[name] = child``, or no ``name`` at all once ``child`` is empty."""
    if child:
        holder[name] = child
    else:
        del holder[name]


def _without(mapping: dict, name: str) -> dict:
    copy = dict(mapping)
    del copy[name]
    return copy


def _ecs_left_out(document: dict, entry: Mapping[str, Any]) -> dict | None:
    """``_leave_out_carried`` of an ECS document, written out for the common case (every value of
    ``CARRIED["ecs"]`` there and equal to the entry's); None otherwise (the general path then)."""
    carried = _carried_text(entry)
    if carried is None:
        return None
    event_id, event_name, account, region = carried
    event = document.get("event")
    cloud = document.get("cloud")
    aws = document.get("aws")
    if event.__class__ is not dict or cloud.__class__ is not dict or aws.__class__ is not dict:
        return None
    trail = aws.get("cloudtrail")
    cloud_account = cloud.get("account")
    if (trail.__class__ is not dict or cloud_account.__class__ is not dict
            or event.get("id") != event_id or event.get("action") != event_name
            or cloud_account.get("id") != account or trail.get("recipient_account_id") != account
            or cloud.get("region") != region):
        return None
    document = dict(document)
    event = dict(event)
    del event["id"], event["action"]
    _put_or_drop(document, "event", event)
    cloud = _without(cloud, "region")
    _put_or_drop(cloud, "account", _without(cloud_account, "id"))
    _put_or_drop(document, "cloud", cloud)
    aws = dict(aws)
    _put_or_drop(aws, "cloudtrail", _without(trail, "recipient_account_id"))
    _put_or_drop(document, "aws", aws)
    return document


def _ocsf_left_out(document: dict, entry: Mapping[str, Any]) -> dict | None:
    """``_leave_out_carried`` of an OCSF event, written out for the common case (every value of
    ``CARRIED["ocsf"]`` there and equal to the entry's); None otherwise (the general path then)."""
    carried = _carried_text(entry)
    if carried is None:
        return None
    event_id, event_name, account, region = carried
    metadata = document.get("metadata")
    api = document.get("api")
    cloud = document.get("cloud")
    if metadata.__class__ is not dict or api.__class__ is not dict or cloud.__class__ is not dict:
        return None
    cloud_account = cloud.get("account")
    if (cloud_account.__class__ is not dict or metadata.get("uid") != event_id
            or api.get("operation") != event_name or cloud_account.get("uid") != account
            or cloud.get("region") != region):
        return None
    document = dict(document)
    _put_or_drop(document, "metadata", _without(metadata, "uid"))
    _put_or_drop(document, "api", _without(api, "operation"))
    cloud = _without(cloud, "region")
    _put_or_drop(cloud, "account", _without(cloud_account, "uid"))
    _put_or_drop(document, "cloud", cloud)
    return document


_LEFT_OUT = {"ecs": _ecs_left_out, "ocsf": _ocsf_left_out}


def restore_carried(name: str, document: dict, entry: Mapping[str, Any]) -> dict:
    """The whole ``name`` ("ecs" or "ocsf") document of a stream entry: ``document`` (its
    field, parsed) with the values the stream left out because ``entry`` (its fields, text or
    bytes keys and values as redis-py returns them)
    carries them put back (``CARRIED``), and the nulls that say "absent" removed.  Changes
    ``document`` in place and returns it."""
    for path, field in CARRIED[name]:
        value = entry.get(field)
        if value is None:  # redis-py's replies: bytes keys
            value = entry.get(field.encode())  # type: ignore[call-overload]
        if value is None:
            continue  # the entry lacks the field: the document kept its value
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogatepass")
        chain = [document]
        holder = document
        for part in path[:-1]:
            child = holder.get(part)
            if child is None:
                child = holder[part] = {}
            elif not isinstance(child, dict):
                break
            chain.append(child)
            holder = child
        else:
            leaf = path[-1]
            if leaf not in holder:
                if value:
                    holder[leaf] = value
            elif holder[leaf] is None:
                del holder[leaf]
            for depth in range(len(chain) - 1, 0, -1):
                if chain[depth]:
                    break
                del chain[depth - 1][path[depth - 1]]
    return document


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
