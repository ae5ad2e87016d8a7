"""CloudTrail log file -> records.

``iter_records`` is the one entry point the object processor uses: it takes the raw
object bytes (gzip or plain JSON) and yields ``(raw_json, record)`` per record, in file
order, so a checkpoint "N records emitted" always means the same N records.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator

import orjson

from pipeline.errors import BadObject

GZIP_MAGIC = b"\x1f\x8b"


def decompress(data: bytes) -> bytes:
    """Gunzip ``data`` if it is gzip (by magic bytes, not by name); return it as-is otherwise."""
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        # wbits=47 accepts gzip (and zlib) headers; concatenated members are handled below.
        out = []
        while data:
            d = zlib.decompressobj(wbits=47)
            out.append(d.decompress(data))
            out.append(d.flush())
            if not d.eof:
                raise BadObject("truncated gzip: the stream ends before its end marker", "CorruptGzip")
            data = d.unused_data
            if data and not data.startswith(GZIP_MAGIC):
                break  # trailing garbage after the last member: ignore as gzip(1) does
        return b"".join(out)
    except zlib.error as exc:
        raise BadObject(f"corrupt gzip: {exc}", "CorruptGzip") from None


def iter_records(data: bytes) -> Iterator[tuple[bytes, dict]]:
    """Yield ``(raw_json, record)`` for each record of a CloudTrail file ``{"Records": [...]}``."""
    text = decompress(data)
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadObject(f"not valid JSON: {exc}", "NotJson") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Records"), list):
        raise BadObject('not a CloudTrail file: no top-level "Records" list', "NoRecords")
    for index, record in enumerate(doc["Records"]):
        if not isinstance(record, dict):
            raise BadObject(f"record {index} is not a JSON object", "BadRecord")
        yield orjson.dumps(record), record
