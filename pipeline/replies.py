"""Redis replies as our clients return them, for the type checker.

Our clients never set ``decode_responses``, so replies hold bytes; redis-py annotates them for
both kinds of client (``bytes | str``, streams as optional).  These are casts: no conversion,
no runtime check.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import cast

StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]


def as_optional_bytes(reply: object) -> bytes | None:
    return cast("bytes | None", reply)


def as_hash(reply: object) -> dict[bytes, bytes]:
    """HGETALL's reply."""
    return cast("dict[bytes, bytes]", reply)


def as_members(reply: object) -> Iterable[bytes]:
    """SMEMBERS's or ZRANGE's (without scores) reply."""
    return cast("Iterable[bytes]", reply)


def as_stream(reply: object) -> StreamEntries:
    """XRANGE's / XREVRANGE's reply: (entry id, fields) pairs."""
    return cast(StreamEntries, reply)


def as_read(reply: object) -> list[tuple[bytes, StreamEntries]]:
    """XREAD's reply: (stream, entries) pairs."""
    return cast("list[tuple[bytes, StreamEntries]]", reply)
