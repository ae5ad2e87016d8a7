"""CloudTrail log file -> records, streamed with bounded memory.

``RecordReader`` is the one record path (the object processor and ``trailpipe check``, both
through ``ingest.read_records``; ``iter_records`` is its shorthand): it takes the raw
object (``bytes`` or a binary file-like object with ``.read(n)``, gzip or plain JSON) and
yields ``(raw_json, record)`` per record, in file order, so a checkpoint "N records
emitted" always means the same N records.

How it streams
--------------
* gzip is inflated chunk by chunk (``zlib.decompressobj``, output capped per call), so at
  most one chunk of uncompressed text is held besides the record being parsed;
  concatenated gzip members are followed, trailing garbage after the last member is
  ignored (as gzip(1) does).
* The top-level object is walked token by token (a handful of tokens); values of keys
  other than ``Records`` are located and validated one by one, whatever their type.
* Inside the ``Records`` array each record's extent is found without a Python loop over
  its bytes: records of a CloudTrail file all begin the same way (``{"eventVersion"``),
  so the next record's start is found with ``bytes.find`` and the candidate slice is
  handed to ``orjson.loads``.  A candidate is only accepted when orjson parses it as one
  complete object, which can only happen at the true end of the record (a proper prefix
  of an object is never a complete object, and trailing bytes are rejected), so the
  guess can never split a record wrongly.  When the guess fails (last record of the
  array, a file whose records start differently, ...) the exact scanner takes over: a
  regex that skips over strings in C and stops only at brackets, tracking depth.
* Every byte of the document is validated (records and other values by orjson, the
  punctuation between them by the walker), so a file is accepted exactly when
  ``orjson.loads`` would accept it (except that orjson's nesting limit of 1024 levels
  applies to each record rather than to the whole file).

* Hostile input is capped (``ParseLimits``, per source in the config): what the object
  inflates to (``max_uncompressed_bytes``), one record or other value (``max_record_bytes``),
  and the records one object may hold (``max_records_per_object``).  The window on the text
  grows geometrically (at least doubling when a value spans it), so a huge value costs
  linear time, never quadratic.  Empty records (``{}``) are counted (``RecordReader.empty``)
  and not yielded.

Errors are ``BadObject(reason, error_class)`` with error_class one of CorruptGzip,
NotJson, NotUtf8, NoRecords, BadRecord, UncompressedTooLarge, RecordTooLarge,
TooManyRecords.  Because the file is streamed, such an error can be raised after some
records have already been yielded (a truncated gzip, a malformed record in the middle, a
cap reached): the records before it are always the same ones.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any, Protocol

import orjson

from pipeline.errors import BadObject

GZIP_MAGIC = b"\x1f\x8b"

READ_SIZE = 256 * 1024  # compressed bytes read from a file-like object at a time
OUT_SIZE = 1024 * 1024  # most uncompressed bytes produced by one inflate call
FAST_WINDOW = 4 * OUT_SIZE  # how far ahead the record-start guess may look
MAX_FAST_MISSES = 8  # consecutive failed guesses before the guess is abandoned for the file

_loads = orjson.loads
_dumps = orjson.dumps
_JSONDecodeError = orjson.JSONDecodeError

# Everything up to and including the next bracket outside strings (strings skipped whole).
_BRACKET = re.compile(rb'(?:[^"{}\[\]]++|"(?:[^"\\]++|\\.)*+")*+([{}\[\]])', re.S)
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.S)
_SCALAR = re.compile(rb'[^ \t\r\n,:\[\]{}"]++')
_WS = re.compile(rb"[ \t\r\n]*+")
# "{", optional whitespace, then the first key: how each record of the file begins.
_FIRST_KEY = re.compile(rb'\{[ \t\r\n]*+"(?:[^"\\]++|\\.)*+"', re.S)

_WS_BYTES = b" \t\r\n"
_OPEN = (ord("{"), ord("["))


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class ParseLimits:
    """What one object may hold before it is dead-lettered: a source's ``max_*`` settings."""

    max_uncompressed_bytes: int
    max_record_bytes: int
    max_records_per_object: int

    @classmethod
    def of(cls, source: Any) -> ParseLimits:
        """The limits a config ``Source`` sets."""
        return cls(source.max_uncompressed_bytes, source.max_record_bytes, source.max_records_per_object)

    @classmethod
    def default(cls, **changes: int) -> ParseLimits:
        """The limits of a source that sets none (the config's defaults), with ``changes``."""
        return dataclasses.replace(_declared_limits(), **changes)


@functools.cache
def _declared_limits() -> ParseLimits:
    from pipeline.config import Source, declared_defaults  # noqa: PLC0415  (the parser runs without a config)

    return ParseLimits.of(declared_defaults(Source))


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _too_large(what: str, limit: int, name: str, error_class: str) -> BadObject:
    return BadObject(f"{what} the source's {name} of {limit} bytes", error_class)


# --------------------------------------------------------------------------- input


def _is_buffer(data: Any) -> bool:
    return isinstance(data, (bytes, bytearray, memoryview))


def _read_chunks(read, size: int) -> Iterator[bytes]:
    while True:
        chunk = read(size)
        if not chunk:
            return
        yield chunk if isinstance(chunk, bytes) else bytes(chunk)


def _gunzip(pieces: Iterable[Any]) -> Iterator[bytes]:
    """Inflate gzip members from ``pieces`` (compressed chunks), ``OUT_SIZE`` at a time."""
    inflater = None  # None between members: the next two bytes must be the gzip magic
    carry = b""
    try:
        for piece in chain(pieces, (None,)):
            final = piece is None
            data = carry + (b"" if final else piece) if carry else (b"" if final else piece)
            carry = b""
            while True:
                if inflater is None:
                    if len(data) < 2:
                        if not final:
                            carry = bytes(data)
                        break
                    if bytes(data[:2]) != GZIP_MAGIC:
                        return  # trailing garbage after the last member: ignored like gzip(1)
                    inflater = zlib.decompressobj(wbits=47)
                out = inflater.decompress(data, OUT_SIZE)
                if out:
                    yield out
                if inflater.eof:
                    data, inflater = inflater.unused_data, None
                    continue
                data = inflater.unconsumed_tail
                if data:
                    continue
                if not final:
                    break
                out = inflater.flush()
                if out:
                    yield out
                if inflater.eof:
                    data, inflater = inflater.unused_data, None
                    continue
                raise BadObject(
                    "truncated gzip: the stream ends before its end marker", "CorruptGzip"
                )
            if final:
                return
    except zlib.error as exc:
        raise BadObject(f"corrupt gzip: {exc}", "CorruptGzip") from None


def _uncompressed_chunks(data: Any, limit: int | None = None,
                         hasher: Hasher | None = None) -> Iterator[bytes]:
    """The uncompressed document, in chunks, at most ``limit`` bytes (else BadObject
    UncompressedTooLarge; by default a source's default max_uncompressed_bytes); each chunk
    goes to ``hasher.update`` first, in order."""
    if limit is None:
        limit = _declared_limits().max_uncompressed_bytes
    total = 0
    for chunk in _inflated(data):
        total += len(chunk)
        if total > limit:  # the bytes up to the cap first: the records inside them are emitted
            head = chunk[: len(chunk) - (total - limit)]
            if head:
                if hasher is not None:
                    hasher.update(head)
                yield head
            raise _too_large("the object inflates to more than", limit, "max_uncompressed_bytes",
                             "UncompressedTooLarge")
        if hasher is not None:
            hasher.update(chunk)
        yield chunk


def _inflated(data: Any) -> Iterator[bytes]:
    """The uncompressed document, in chunks; gzip is detected by its magic bytes."""
    if _is_buffer(data):
        if bytes(data[:2]) != GZIP_MAGIC:
            if len(data):
                yield data if isinstance(data, bytes) else bytes(data)
            return
        view = memoryview(data).cast("B")
        yield from _gunzip(view[i : i + READ_SIZE] for i in range(0, len(view), READ_SIZE))
        return
    read = data.read
    head = b""
    while len(head) < 2:
        chunk = read(READ_SIZE)
        if not chunk:
            break
        head += chunk
    if not head.startswith(GZIP_MAGIC):
        if head:
            yield head
        yield from _read_chunks(read, OUT_SIZE)
        return
    yield from _gunzip(chain((head,), _read_chunks(read, READ_SIZE)))


def decompress(data: bytes) -> bytes:
    """Gunzip ``data`` if it is gzip (by magic bytes, not by name); return it as-is otherwise."""
    if _is_buffer(data) and bytes(data[:2]) != GZIP_MAGIC:
        return data
    return b"".join(_uncompressed_chunks(data))


def uncompressed_sha256(data: Any) -> str:
    """Hex SHA-256 of the uncompressed content (what a CloudTrail digest records per log file)."""
    digest = hashlib.sha256()
    for _ in _uncompressed_chunks(data, hasher=digest):
        pass
    return digest.hexdigest()


# --------------------------------------------------------------------------- parsing


def _kind(byte: int) -> str:
    return {
        ord("{"): "an object",
        ord("["): "a list",
        ord('"'): "a string",
        ord("t"): "a boolean",
        ord("f"): "a boolean",
        ord("n"): "null",
    }.get(byte, "a number")


class _Document:
    """A growing window on the uncompressed text, plus the tokenizer over it."""

    __slots__ = ("buf", "base", "eof", "_chunks", "empty", "max_value", "max_records")

    def __init__(self, chunks: Iterator[bytes], limits: ParseLimits):
        self._chunks = chunks
        self.buf = b""
        self.base = 0  # offset of buf[0] in the uncompressed document
        self.eof = False
        self.empty = 0  # empty records ({}) seen: counted, not yielded
        self.max_value = limits.max_record_bytes
        self.max_records = limits.max_records_per_object

    # -- window management -------------------------------------------------------

    def more(self, keep: int, want: int = 0) -> bool:
        """Drop ``buf[:keep]`` (callers shift their positions by ``keep``) and append the
        next chunk, or as many as make ``want`` bytes (so a value spanning the window makes
        it double: linear, not quadratic, copying).  Return False when the document has no
        more bytes."""
        if keep:
            self.buf = self.buf[keep:]
            self.base += keep
        if self.eof:
            return False
        parts = [self.buf]
        got = 0
        for chunk in self._chunks:
            if chunk:
                parts.append(chunk)
                got += len(chunk)
                if got >= want:
                    break
        else:
            self.eof = True
        if not got:
            return False
        self.buf = b"".join(parts) if self.buf else (parts[1] if len(parts) == 2 else b"".join(parts))
        return True

    def grow(self, start: int) -> bool:
        """``more`` for a value that begins at ``start`` and does not end in the window: at
        least doubles what the window holds of it, unless it is already over the cap."""
        size = len(self.buf) - start
        if size > self.max_value:
            raise self.too_large(start)
        return self.more(start, size)

    def too_large(self, start: int) -> BadObject:
        return BadObject(f"the record or value starting {self.at(start)} is over the source's "
                         f"max_record_bytes of {self.max_value} bytes", "RecordTooLarge")

    def too_many(self) -> BadObject:
        return BadObject(f"the object holds more than the source's max_records_per_object of "
                         f"{self.max_records} records", "TooManyRecords")

    def at(self, pos: int) -> str:
        return f"at byte {self.base + pos} of the uncompressed document"

    def not_json(self, what: str, pos: int) -> BadObject:
        return BadObject(f"not valid JSON: {what} {self.at(pos)}", "NotJson")

    def skip_ws(self, pos: int) -> int:
        """Position of the next non-whitespace byte (``len(buf)`` at the end of the document).
        Everything before ``pos`` may be dropped from the window."""
        while True:
            found = _WS.match(self.buf, pos)
            assert found is not None  # ``*+`` matches the empty string too
            pos = found.end()
            if pos < len(self.buf):
                return pos
            if not self.more(pos):
                return len(self.buf)
            pos = 0

    def next_token(self, pos: int, context: str) -> int:
        pos = self.skip_ws(pos)
        if pos >= len(self.buf):
            raise BadObject(
                f"not valid JSON: the document ends {context} (truncated file?)", "NotJson"
            )
        return pos

    # -- values ------------------------------------------------------------------

    def value_end(self, start: int) -> tuple[int, int]:
        """Locate the JSON value beginning at ``buf[start]`` (not whitespace).  Returns
        ``(start, end)`` in the current window (the window may have moved)."""
        first = self.buf[start]
        if first in _OPEN:
            scan, depth = start, 0
            while True:
                buf = self.buf
                match = _BRACKET.match
                found = match(buf, scan)
                while found is not None:
                    scan = found.end()
                    if buf[scan - 1] in _OPEN:
                        depth += 1
                    else:
                        depth -= 1
                        if depth == 0:
                            if scan - start > self.max_value:
                                raise self.too_large(start)
                            return start, scan
                    found = match(buf, scan)
                offset = scan - start
                if not self.grow(start):  # (the value now starts at 0 in the window)
                    raise self.not_json("unterminated object or list starting", 0)
                start, scan = 0, offset
        is_string = first == 34
        pattern = _STRING if is_string else _SCALAR
        while True:
            found = pattern.match(self.buf, start)
            if found is not None and (is_string or found.end() < len(self.buf) or self.eof):
                if found.end() - start > self.max_value:
                    raise self.too_large(start)
                return start, found.end()
            if found is None and not is_string:
                raise self.not_json(f"unexpected character {chr(first)!r}", start)
            if self.eof:
                raise self.not_json("unterminated string starting", start)
            self.grow(start)
            start = 0

    def load(self, raw: bytes, what: str, start: int) -> Any:
        try:
            return _loads(raw)
        except _JSONDecodeError as exc:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as uexc:
                raise BadObject(
                    f"{what} is not valid UTF-8 {self.at(start + uexc.start)}", "NotUtf8"
                ) from None
            pos = getattr(exc, "pos", 0) or 0
            msg = getattr(exc, "msg", None) or str(exc)
            raise BadObject(f"{what} is not valid JSON: {msg} {self.at(start + pos)}", "NotJson") from None

    # -- the document ------------------------------------------------------------

    def records(self) -> Iterator[tuple[bytes, dict]]:
        pos = self.skip_ws(0)
        if pos >= len(self.buf):
            raise BadObject("not valid JSON: the document is empty", "NotJson")
        first = self.buf[pos]
        if first == ord("["):
            raise BadObject(
                'not a CloudTrail file: the document is a list, not an object with a "Records" list',
                "NoRecords",
            )
        if first != ord("{"):
            start, end = self.value_end(pos)
            self.load(self.buf[start:end], "the document", start)
            raise BadObject(
                f'not a CloudTrail file: the document is {_kind(first)}, not an object with a "Records" list',
                "NoRecords",
            )
        pos += 1
        seen_records = False
        members = 0
        while True:
            pos = self.next_token(pos, "inside the top-level object")
            byte = self.buf[pos]
            if byte == ord("}") and members == 0:
                pos += 1
                break
            if byte != ord('"'):
                raise self.not_json("expected a key in the top-level object", pos)
            start, end = self.value_end(pos)
            key = self.load(self.buf[start:end], "a top-level key", start)
            pos = self.next_token(end, "after a top-level key")
            if self.buf[pos] != ord(":"):
                raise self.not_json(f"expected ':' after the key {key!r}", pos)
            pos = self.next_token(pos + 1, f"after the key {key!r}")
            if key == "Records":
                if seen_records:
                    raise self.not_json('the key "Records" appears twice', pos)
                seen_records = True
                if self.buf[pos] != ord("["):
                    raise BadObject(
                        f'not a CloudTrail file: "Records" is {_kind(self.buf[pos])}, not a list',
                        "NoRecords",
                    )
                # The records, inline (one generator frame less per record).
                pos = self.next_token(pos + 1, 'inside the "Records" list')
                if self.buf[pos] == ord("]"):
                    pos += 1
                else:
                    index = 0
                    signature = b""  # how records begin ('{' + whitespace + first key); b"": unknown
                    guessing = True  # False once the guess failed MAX_FAST_MISSES times in a row
                    misses = 0
                    loads = _loads
                    dumps = _dumps
                    max_value = self.max_value
                    max_records = self.max_records
                    while True:
                        # pos: first byte of record ``index`` (not whitespace)
                        if signature:
                            buf = self.buf
                            find = buf.find
                            short = False  # the window ends before the next record's start
                            while buf[pos] == 123:  # fast path, see the module docstring
                                nxt = find(signature, pos + 1)
                                if nxt < 0:
                                    short = True
                                    break
                                if buf[nxt - 1] == 44 and buf[nxt - 2] == 125:  # ...},{"eventVersion"
                                    end = nxt - 1
                                else:
                                    end = _gap_end(buf, pos, nxt)
                                    if end < 0:
                                        break
                                if end - pos > max_value:
                                    raise self.too_large(pos)
                                raw = buf[pos:end]
                                try:
                                    record = loads(raw)
                                except _JSONDecodeError:
                                    break
                                if record:
                                    if b" " in raw or b"\n" in raw or b"\r" in raw or b"\t" in raw:
                                        raw = dumps(record)  # not certainly compact: see _is_compact
                                    if index - self.empty >= max_records:
                                        raise self.too_many()
                                    yield raw, record
                                else:
                                    self.empty += 1
                                index += 1
                                pos = nxt
                                misses = 0
                            if short and not self.eof and len(buf) - pos < FAST_WINDOW:
                                self.more(pos)
                                pos = 0
                                continue
                            misses += 1
                            if misses >= MAX_FAST_MISSES:
                                signature, guessing = b"", False
                        # exact path: this record's extent by scanning it
                        start, end = self.value_end(pos)
                        raw = self.buf[start:end]
                        record = self.load(raw, f"record {index}", start)
                        if type(record) is not dict:
                            raise _bad_record(index, record, self.at(start))
                        if guessing:
                            found = _FIRST_KEY.match(raw)
                            if found is not None:
                                signature = raw[: found.end()]
                        if record:
                            if not _is_compact(raw):
                                raw = dumps(record)
                            if index - self.empty >= max_records:
                                raise self.too_many()
                            yield raw, record
                        else:
                            self.empty += 1
                        index += 1
                        pos = self.next_token(end, 'inside the "Records" list')
                        byte = self.buf[pos]
                        if byte == ord("]"):
                            pos += 1
                            break
                        if byte != ord(","):
                            raise self.not_json(f"expected ',' or ']' after record {index - 1}", pos)
                        pos = self.next_token(pos + 1, 'inside the "Records" list')
                        if self.buf[pos] == ord("]"):
                            raise self.not_json(f"trailing ',' after record {index - 1}", pos)
            else:
                start, end = self.value_end(pos)
                self.load(self.buf[start:end], f"the value of the top-level key {key!r}", start)
                pos = end
            members += 1
            pos = self.next_token(pos, "inside the top-level object")
            byte = self.buf[pos]
            if byte == ord(","):
                pos += 1
                continue
            if byte == ord("}"):
                pos += 1
                break
            raise self.not_json("expected ',' or '}' in the top-level object", pos)
        pos = self.skip_ws(pos)
        if pos < len(self.buf):
            raise self.not_json("unexpected data after the end of the document", pos)
        if not seen_records:
            raise BadObject('not a CloudTrail file: no top-level "Records" list', "NoRecords")


def _is_compact(raw: bytes) -> bool:
    """True when ``raw`` contains no whitespace byte at all, so it is certainly compact JSON
    and is passed on as is.  (An exact "no whitespace outside strings" test costs more than
    letting orjson re-serialize the record, which yields the same bytes for compact input
    in all but escape/number spelling details.)"""
    return not (b" " in raw or b"\n" in raw or b"\r" in raw or b"\t" in raw)


def _gap_end(buf: bytes, start: int, nxt: int) -> int:
    """End of the record before ``buf[nxt]`` when only whitespace, ',' and whitespace lie
    between them (the record then ends with '}'); -1 otherwise."""
    end = nxt - 1
    while buf[end] in _WS_BYTES:
        end -= 1
    if buf[end] != 44:
        return -1
    end -= 1
    while buf[end] in _WS_BYTES:
        end -= 1
    return end + 1 if buf[end] == 125 and end > start else -1


def _bad_record(index: int, value: Any, where: str) -> BadObject:
    kind = type(value).__name__
    names = {"list": "a list", "str": "a string", "int": "a number", "float": "a number",
             "bool": "a boolean", "NoneType": "null"}
    return BadObject(f"record {index} is {names.get(kind, kind)}, not a JSON object ({where})", "BadRecord")


class RecordReader:
    """The records of one object, and what was seen on the way: ``empty``, the number of
    empty records (``{}``) read so far, which are counted and never yielded."""

    def __init__(self, data: Any, limits: ParseLimits | None = None, hasher: Hasher | None = None):
        limits = limits or ParseLimits.default()
        self._document = _Document(_uncompressed_chunks(data, limits.max_uncompressed_bytes, hasher), limits)

    @property
    def empty(self) -> int:
        return self._document.empty

    def __iter__(self) -> Iterator[tuple[bytes, dict]]:
        return self._document.records()


def iter_records(data: Any, limits: ParseLimits | None = None,
                 hasher: Hasher | None = None) -> Iterator[tuple[bytes, dict]]:
    """Yield ``(raw_json, record)`` for each record of a CloudTrail file ``{"Records": [...]}``.

    ``data`` is ``bytes`` or a binary file-like object (``.read(n)``), gzip or plain JSON.
    ``raw_json`` is the record as compact JSON: the record's own bytes when they contain no
    whitespace at all, else ``orjson.dumps(record)``; ``orjson.loads(raw_json) == record``.
    Empty records are skipped (``RecordReader`` counts them). ``limits``: the caps (default
    ``ParseLimits.default()``). ``hasher``: any object with ``.update(bytes)`` (``hashlib.sha256()``)
    is given every uncompressed byte of the object, in order, as it is read; after the last
    record it has seen the whole document (not when a BadObject stopped it early).
    """
    return iter(RecordReader(data, limits, hasher))


# --------------------------------------------------------------------------- digests

DIGEST_FIELDS = (
    "awsAccountId",
    "digestStartTime",
    "digestEndTime",
    "digestS3Bucket",
    "digestS3Object",
    "digestPublicKeyFingerprint",
    "digestSignatureAlgorithm",
    "newestEventTime",
    "oldestEventTime",
    "previousDigestS3Bucket",
    "previousDigestS3Object",
    "previousDigestHashValue",
    "previousDigestHashAlgorithm",
    "previousDigestSignature",
)
LOG_FILE_FIELDS = ("s3Bucket", "s3Object", "hashValue", "hashAlgorithm", "newestEventTime", "oldestEventTime")


def parse_digest(data: Any) -> dict:
    """Parse a CloudTrail digest file (gzip or plain, bytes or file-like).

    Returns the digest's own fields (``DIGEST_FIELDS``, None when absent; the
    ``previousDigest*`` ones are null in the first digest of a chain), ``logFiles`` as a list
    of dicts with ``LOG_FILE_FIELDS``, and ``contentSha256``: the hex SHA-256 of the
    uncompressed digest, which the next digest's ``previousDigestHashValue`` must equal and
    which goes into the signing string checked against the object's ``x-amz-meta-signature``.
    Raises BadObject (CorruptGzip, NotUtf8, NotJson, or NotDigest when required fields are
    missing or mistyped).
    """
    text = b"".join(_uncompressed_chunks(data))
    try:
        doc = _loads(text)
    except _JSONDecodeError as exc:
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            raise BadObject("digest file is not valid UTF-8", "NotUtf8") from None
        raise BadObject(f"digest file is not valid JSON: {exc}", "NotJson") from None
    if not isinstance(doc, dict):
        raise BadObject("not a CloudTrail digest file: not a JSON object", "NotDigest")
    missing = [name for name in ("digestEndTime", "digestS3Bucket", "digestS3Object")
               if not isinstance(doc.get(name), str)]
    log_files = doc.get("logFiles")
    if missing or not isinstance(log_files, list):
        missing += [] if isinstance(log_files, list) else ["logFiles"]
        raise BadObject(f"not a CloudTrail digest file: missing or mistyped {', '.join(missing)}", "NotDigest")
    out: dict[str, Any] = {name: doc.get(name) for name in DIGEST_FIELDS}
    files = []
    for index, entry in enumerate(log_files):
        if not isinstance(entry, dict):
            raise BadObject(f"not a CloudTrail digest file: logFiles[{index}] is not an object", "NotDigest")
        files.append({name: entry.get(name) for name in LOG_FILE_FIELDS})
    out["logFiles"] = files
    out["contentSha256"] = hashlib.sha256(text).hexdigest()
    return out
