"""Tests for pipeline.parser: the streaming CloudTrail parser and digest files (key kinds: test_layout)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from pipeline.errors import BadObject
from pipeline.parser import (
    decompress,
    iter_records,
    parse_digest,
    uncompressed_sha256,
)

REPO = Path(__file__).resolve().parents[1]
OPEN_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "open"
CTPL = OPEN_DATA / "aws-cloudtrail-processing-library"
STRATUS = OPEN_DATA / "stratus-red-team"

needs_open_data = pytest.mark.skipif(
    not OPEN_DATA.is_dir(), reason=f"open test data not found at {OPEN_DATA}"
)


class Trickle(io.RawIOBase):
    """A binary file whose read(n) returns at most a few bytes (random, seeded), like a
    slow network stream: puts chunk boundaries everywhere."""

    def __init__(self, data: bytes, seed: int = 0, most: int = 7):
        self._data = memoryview(data)
        self._pos = 0
        self._rng = random.Random(seed)
        self._most = most

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        size = min(n if n >= 0 else len(self._data), self._rng.randint(1, self._most))
        chunk = bytes(self._data[self._pos : self._pos + size])
        self._pos += len(chunk)
        return chunk


def records_of(data) -> list[dict]:
    return [record for _, record in iter_records(data)]


def check_against_orjson(doc: bytes, *, trickle_seed: int | None = None) -> list[tuple[bytes, dict]]:
    """Parse ``doc`` every way the parser accepts it and compare with orjson."""
    expected = orjson.loads(doc)["Records"]
    out = list(iter_records(doc))
    assert [record for _, record in out] == expected
    for raw, record in out:
        assert orjson.loads(raw) == record
        # compact: either orjson's own rendering, or original bytes without any whitespace
        assert raw == orjson.dumps(record) or not any(ws in raw for ws in (b" ", b"\n", b"\r", b"\t"))
        assert list(record) == list(orjson.loads(raw))  # key order preserved
    gz = gzip.compress(doc, 1)
    assert records_of(gz) == expected
    assert records_of(io.BytesIO(gz)) == expected
    if trickle_seed is not None:
        assert records_of(Trickle(doc, trickle_seed)) == expected
        assert records_of(Trickle(gz, trickle_seed)) == expected
    return out


def bad(data) -> BadObject:
    with pytest.raises(BadObject) as info:
        for _ in iter_records(data):
            pass
    return info.value


# --------------------------------------------------------------------------- open data


@needs_open_data
@pytest.mark.parametrize(
    "path", sorted(CTPL.glob("*.json*")) if CTPL.is_dir() else [], ids=lambda p: p.name
)
def test_processing_library_files(path: Path):
    data = path.read_bytes()
    if path.name == "SerializerTestFileBadJsonFormat.json":
        error = bad(data)
        assert error.error_class == "NotJson"
        assert "not valid JSON" in error.reason and "byte" in error.reason
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(data)
        return
    expected = orjson.loads(gzip.decompress(data) if path.suffix == ".gz" else data)["Records"]
    assert records_of(data) == expected
    assert records_of(io.BytesIO(data)) == expected
    assert records_of(Trickle(data, seed=len(data))) == expected
    assert len(expected) > 0


@needs_open_data
def test_processing_library_gzip_file_has_six_records():
    data = (CTPL / "SerializerTestFileCompact.json.gz").read_bytes()
    out = list(iter_records(data))
    assert len(out) == 6
    # the uncompressed file is compact: raws are its own bytes where they hold no whitespace
    text = gzip.decompress(data)
    for raw, _ in out:
        if b" " not in raw:
            assert raw in text


@needs_open_data
@pytest.mark.parametrize(
    "path", sorted(STRATUS.glob("*.json")) if STRATUS.is_dir() else [], ids=lambda p: p.name
)
def test_stratus_detonation_logs(path: Path):
    records = orjson.loads(path.read_bytes())
    assert isinstance(records, list)
    # as CloudTrail writes them (compact) and pretty-printed like the source file
    check_against_orjson(orjson.dumps({"Records": records}))
    out = check_against_orjson(
        b'{\n  "Records": ' + path.read_bytes() + b"\n}", trickle_seed=len(records)
    )
    assert len(out) == len(records)


# --------------------------------------------------------------------------- generated files

_TRICKY = [
    "",
    'quote " inside',
    "back\\slash",
    "ends with backslash \\",
    "\\\\\\\"",
    "{ brace } [ bracket ] , : ",
    '},{"eventVersion":"1.08"',
    '{"eventVersion":',
    "\u00e9t\u00e9 \u4e2d\u6587 \U0001f600",
    "control \n\t\r\b\f \u0001 \u001f",
    "\u2028\u2029 / </script>",
    "null true false 1e5",
]


def _string(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return rng.choice(_TRICKY)
    return "".join(rng.choice("abcXYZ019 _-/:.{}[]\"\\\u00e9\u4e2d") for _ in range(rng.randint(0, 24)))


def _value(rng: random.Random, depth: int):
    kind = rng.random()
    if depth > 5 or kind < 0.35:
        return _string(rng)
    if kind < 0.45:
        return rng.choice([0, -1, 7, 2**40, -(2**62), 3.5, -0.25, 1e-7, 6.02e23, 1e300])
    if kind < 0.55:
        return rng.choice([True, False, None])
    if kind < 0.75:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    obj = {}
    for _ in range(rng.randint(0, 5)):
        key = rng.choice(["eventVersion", "a", "Records", _string(rng), "x y", "\u00fc"])
        obj[key] = _value(rng, depth + 1)
    return obj


def _record(rng: random.Random, index: int) -> dict:
    record = {
        "eventVersion": rng.choice(["1.0", "1.05", "1.08", "1.11"]),
        "eventID": f"id-{index}",
        "eventName": rng.choice(["GetObject", "ConsoleLogin", "AssumeRole"]),
    }
    if rng.random() < 0.3:  # nested objects that begin exactly like a record
        record["requestParameters"] = {"items": [{"eventVersion": "1.08", "n": 1}, {"eventVersion": "1.08"}]}
    for _ in range(rng.randint(0, 8)):
        record[_string(rng) or "k"] = _value(rng, 1)
    if rng.random() < 0.15:  # a record whose first key differs
        record = {"awsRegion": "eu-west-1", **record}
    return record


def _document(rng: random.Random, records: list[dict]) -> bytes:
    top: dict = {}
    if rng.random() < 0.5:
        top["before"] = _value(rng, 0)
    top["Records"] = records
    if rng.random() < 0.5:
        top["after"] = _value(rng, 0)
    style = rng.randint(0, 4)
    if style == 0:
        return orjson.dumps(top)
    if style == 1:
        return orjson.dumps(top, option=orjson.OPT_INDENT_2)
    if style == 2:  # \\uXXXX escapes for every non-ASCII character, ", " and ": " separators
        return json.dumps(top, ensure_ascii=True).encode()
    if style == 3:
        return json.dumps(top, ensure_ascii=False, indent="\t").encode()
    # random whitespace between all tokens
    tokens = json.dumps(top, ensure_ascii=False, separators=(",", ":"))
    out, in_string, escaped = [], False, False
    for ch in tokens:
        out.append(ch)
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        if not in_string and ch in ",:[]{}" and rng.random() < 0.5:
            out.append(rng.choice([" ", "\n", "\r\n", "\t", "   "]))
    return ("\n " + "".join(out) + " \n").encode()


def test_generated_files_match_orjson():
    rng = random.Random(20240601)
    for n in range(120):
        records = [_record(rng, i) for i in range(rng.randint(0, 12))]
        doc = _document(rng, records)
        check_against_orjson(doc, trickle_seed=n if n % 4 == 0 else None)


def test_concatenated_gzip_members_and_trailing_garbage():
    rng = random.Random(7)
    records = [_record(rng, i) for i in range(50)]
    doc = orjson.dumps({"Records": records})
    cuts = sorted(rng.sample(range(1, len(doc)), 5))
    pieces = [doc[a:b] for a, b in zip([0, *cuts], [*cuts, len(doc)])]
    multi = b"".join(gzip.compress(p) for p in pieces)
    assert records_of(multi) == records
    assert records_of(Trickle(multi, 3)) == records
    assert decompress(multi) == doc
    assert records_of(multi + b"\x00\x00garbage") == records


def test_raw_is_the_original_bytes_of_compact_records():
    # \u-escapes and number spellings orjson would write differently are kept as they are
    doc = (
        b'{"Records":[{"eventVersion":"1.08","n":"caf\\u00e9","f":1E2,"x":"\\/"},'
        b'{"eventVersion":"1.08","y":[1,2,{"z":null}]}]}'
    )
    out = list(iter_records(doc))
    assert out[0][0] == b'{"eventVersion":"1.08","n":"caf\\u00e9","f":1E2,"x":"\\/"}'
    assert out[0][1] == {"eventVersion": "1.08", "n": "caf\u00e9", "f": 100.0, "x": "/"}
    assert out[1][0] == b'{"eventVersion":"1.08","y":[1,2,{"z":null}]}'


def test_raw_is_compact_for_pretty_printed_records():
    records = [{"eventVersion": "1.08", "userAgent": "aws-cli/2 Python/3", "ü": ["a b", {"c": 1}]}] * 3
    doc = json.dumps({"Records": records}, indent=4, ensure_ascii=False).encode()
    for raw, record in iter_records(doc):
        assert raw == orjson.dumps(record)
        assert b"\n" not in raw
        assert "ü".encode() in raw  # non-ASCII kept as UTF-8


def test_records_larger_than_256_kib():
    big = {"eventVersion": "1.08", "blob": "x" * 300_000, "nested": {"list": [{"k": "}" * 1000}] * 300}}
    small = {"eventVersion": "1.08", "n": 1}
    for records in ([big, small, big], [small, big, small, big, small]):
        doc = orjson.dumps({"Records": records})
        assert len(doc) > 600_000
        check_against_orjson(doc)
        assert records_of(Trickle(gzip.compress(doc, 1), 1, most=5000)) == records


def test_records_that_all_begin_differently():
    # every record has its own first key: the start-of-record guess never works
    records = [{f"k{i}": i, "eventVersion": "1.08", "nested": [{f"k{i + 1}": {}}]} for i in range(300)]
    check_against_orjson(orjson.dumps({"Records": records}), trickle_seed=11)


def test_records_whose_nested_objects_look_like_records():
    inner = [{"eventVersion": "1.08", "eventName": "x"}, {"eventVersion": "1.08"}]
    records = [{"eventVersion": "1.08", "serviceEventDetails": {"records": inner}, "i": i} for i in range(200)]
    for style in (None, orjson.OPT_INDENT_2):
        check_against_orjson(orjson.dumps({"Records": records}, option=style))


def test_many_records_keep_file_order():
    records = [{"eventVersion": "1.08", "eventID": str(i), "userAgent": "a b"} for i in range(5000)]
    doc = orjson.dumps({"Records": records})
    assert [r["eventID"] for r in records_of(gzip.compress(doc))] == [str(i) for i in range(5000)]


def test_empty_records_list_and_records_key_anywhere():
    assert records_of(b'{"Records":[]}') == []
    assert records_of(b' { "a" : {"Records": [1]} , "Records" : [ ] , "b": [{}] } ') == []
    doc = b'{"x":[{"Records":[{"no":1}]}],"y":"Records","Records":[{"ok":true}],"z":null}'
    assert records_of(doc) == [{"ok": True}]


# --------------------------------------------------------------------------- errors

MALFORMED = [
    b'{"Records":[{"a":1}{"b":2}]}',  # missing comma between records
    b'{"Records":[{"a":1},]}',  # trailing comma
    b'{"Records":[{"a":1},{"b":"unterminated}]}',
    b'{"Records":[{"a":1}]',  # document never closed
    b'{"Records":[{"a":1}]}}',  # extra brace
    b'{"Records":[{"a":1}]} garbage',
    b'{"Records":[{"a":tru}]}',
    b"{'Records':[]}",
    b'{"Records":[{"a":1}],}',
    b'{"Records" [{"a":1}]}',
    b'{"x":[1,2,}],"Records":[]}',
    b'{"Records":[{"a":1,"b":{"c":[1,2}]}]}',
    b"",
    b"   \n ",
    b"\xef\xbb\xbf{}",  # a UTF-8 BOM: orjson rejects it too
]


@pytest.mark.parametrize("doc", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_json_is_not_json(doc: bytes):
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(doc)
    for data in (doc, gzip.compress(doc), io.BytesIO(doc)):
        error = bad(data)
        assert error.error_class == "NotJson", error.reason
        assert error.reason


def test_invalid_utf8_is_not_utf8():
    for doc in (
        b'{"Records":[{"a":"caf\xe9"}]}',
        b'{"Records":[{"eventVersion":"1"},{"eventVersion":"\xff"}]}',
        b'{"k\xff":1,"Records":[]}',
        b'{"x":"\xc3","Records":[]}',
    ):
        error = bad(doc)
        assert error.error_class == "NotUtf8", (doc, error.reason)
        assert "UTF-8" in error.reason


@pytest.mark.parametrize(
    "doc",
    [b"{}", b'{"foo":1}', b'{"Records":{}}', b'{"Records":null}', b'{"Records":"x"}', b"[1,2]", b'"x"', b"5"],
)
def test_no_records(doc: bytes):
    error = bad(doc)
    assert error.error_class == "NoRecords"
    assert "Records" in error.reason


def test_bad_record_after_good_ones():
    out = []
    with pytest.raises(BadObject) as info:
        for item in iter_records(b'{"Records":[{"eventVersion":"1"},{"eventVersion":"2"},5,{"c":3}]}'):
            out.append(item)
    assert info.value.error_class == "BadRecord"
    assert "record 2" in info.value.reason
    assert [r for _, r in out] == [{"eventVersion": "1"}, {"eventVersion": "2"}]
    assert bad(b'{"Records":[[1]]}').error_class == "BadRecord"
    assert bad(b'{"Records":[null]}').error_class == "BadRecord"


def test_truncated_gzip_yields_a_prefix_then_fails():
    records = [{"eventVersion": "1.08", "eventID": str(i), "pad": "p" * 200} for i in range(2000)]
    gz = gzip.compress(orjson.dumps({"Records": records}))
    for cut in (len(gz) - 4, len(gz) // 2, 10, 2):
        out = []
        with pytest.raises(BadObject) as info:
            for _, record in iter_records(gz[:cut]):
                out.append(record)
        assert info.value.error_class == "CorruptGzip"
        assert out == records[: len(out)]  # always a prefix, in order


def test_corrupt_gzip():
    gz = bytearray(gzip.compress(orjson.dumps({"Records": [{"a": i} for i in range(3000)]})))
    for offset in (len(gz) // 3, len(gz) // 2, len(gz) - 6):  # deflate data and the CRC
        broken = bytearray(gz)
        broken[offset] ^= 0x55
        error = bad(bytes(broken))
        assert error.error_class == "CorruptGzip", error.reason
    assert bad(b"\x1f\x8b\x08\x00garbage-not-deflate").error_class == "CorruptGzip"
    assert bad(b"\x1f\x8b").error_class == "CorruptGzip"


def test_only_bad_object_escapes():
    rng = random.Random(99)
    base = gzip.compress(orjson.dumps({"Records": [_record(rng, i) for i in range(30)]}))
    plain = orjson.dumps({"Records": [_record(rng, i) for i in range(30)]})
    for n in range(300):
        data = bytearray(base if n % 2 else plain)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            for raw, record in iter_records(bytes(data)):
                assert orjson.loads(raw) == record
        except BadObject as error:
            assert error.error_class in {"CorruptGzip", "NotJson", "NotUtf8", "NoRecords", "BadRecord"}


# --------------------------------------------------------------------------- helpers


def test_decompress_and_sha256():
    doc = b'{"Records":[]}'
    assert decompress(doc) is doc
    assert decompress(gzip.compress(doc)) == doc
    assert uncompressed_sha256(gzip.compress(doc)) == hashlib.sha256(doc).hexdigest()
    assert uncompressed_sha256(io.BytesIO(doc)) == hashlib.sha256(doc).hexdigest()
    with pytest.raises(BadObject):
        decompress(gzip.compress(doc)[:-3])


def _digest(previous: bool = True) -> dict:
    return {
        "awsAccountId": "111122223333",
        "digestStartTime": "2024-01-02T10:00:00Z",
        "digestEndTime": "2024-01-02T11:00:00Z",
        "digestS3Bucket": "trail-bucket",
        "digestS3Object": "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/01/02/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20240102T110000Z.json.gz",
        "digestPublicKeyFingerprint": "0123456789abcdef0123456789abcdef",
        "digestSignatureAlgorithm": "SHA256withRSA",
        "newestEventTime": "2024-01-02T10:59:00Z",
        "oldestEventTime": "2024-01-02T10:01:00Z",
        "previousDigestS3Bucket": "trail-bucket" if previous else None,
        "previousDigestS3Object": "AWSLogs/.../previous.json.gz" if previous else None,
        "previousDigestHashValue": "ab" * 32 if previous else None,
        "previousDigestHashAlgorithm": "SHA-256" if previous else None,
        "previousDigestSignature": "cd" * 256 if previous else None,
        "logFiles": [
            {
                "s3Bucket": "trail-bucket",
                "s3Object": "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/02/a.json.gz",
                "hashValue": "ef" * 32,
                "hashAlgorithm": "SHA-256",
                "newestEventTime": "2024-01-02T10:59:00Z",
                "oldestEventTime": "2024-01-02T10:01:00Z",
            }
        ],
    }


def test_parse_digest():
    text = orjson.dumps(_digest())
    parsed = parse_digest(gzip.compress(text))
    assert parsed["digestEndTime"] == "2024-01-02T11:00:00Z"
    assert parsed["previousDigestSignature"] == "cd" * 256
    assert parsed["digestPublicKeyFingerprint"] == "0123456789abcdef0123456789abcdef"
    assert parsed["logFiles"] == _digest()["logFiles"]
    assert parsed["contentSha256"] == hashlib.sha256(text).hexdigest()
    first = parse_digest(io.BytesIO(orjson.dumps({**_digest(False), "logFiles": []})))
    assert first["previousDigestSignature"] is None and first["logFiles"] == []


def test_parse_digest_errors():
    assert pytest.raises(BadObject, parse_digest, b"{nope").value.error_class == "NotJson"
    assert pytest.raises(BadObject, parse_digest, b"\x1f\x8bxx").value.error_class == "CorruptGzip"
    assert pytest.raises(BadObject, parse_digest, b'{"Records":[]}').value.error_class == "NotDigest"
    no_files = {k: v for k, v in _digest().items() if k != "logFiles"}
    assert pytest.raises(BadObject, parse_digest, orjson.dumps(no_files)).value.error_class == "NotDigest"


# --------------------------------------------------------------------------- memory

_CHILD = r"""
import resource, sys
from pipeline.parser import iter_records
count = 0
size = 0
with open(sys.argv[1], "rb") as handle:
    for raw, record in iter_records(handle):
        count += 1
        size += len(raw)
# VmHWM: this process's peak RSS.  (ru_maxrss would also count the parent's RSS at fork
# time: Linux carries it across execve.)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1])
except OSError:
    pass
print(count, size, peak)
"""


def _write_big_gzip(path: Path, target: int) -> tuple[int, int]:
    """Stream a CloudTrail file of ``target`` uncompressed bytes to ``path``."""
    rng = random.Random(5)
    template = orjson.dumps(
        {
            "eventVersion": "1.08",
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/r/s"},
            "eventTime": "2024-01-02T03:04:05Z",
            "eventSource": "s3.amazonaws.com",
            "eventName": "GetObject",
            "userAgent": "aws-sdk-java/1.12 Linux/5.10",
            "requestParameters": {"bucketName": "b", "key": "K" * 900},
            "eventID": "ID",
        }
    )
    written = count = 0
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b'{"Records":[')
        written += 12
        batch = []
        while written < target:
            record = template.replace(b'"ID"', b'"%d-%d"' % (count, rng.randrange(10**9)))
            if count:
                record = b"," + record
            batch.append(record)
            written += len(record)
            count += 1
            if len(batch) == 2000:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch) + b"]}")
        written += 2
    return count, written


def test_streaming_memory_stays_bounded(tmp_path: Path):
    path = tmp_path / "big.json.gz"
    count, size = _write_big_gzip(path, 200 * 1024 * 1024)
    assert size >= 200 * 1024 * 1024
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    got, raw_bytes, peak_kib = map(int, result.stdout.split())
    assert got == count
    assert raw_bytes == size - 14 - (count - 1)  # everything but '{"Records":[', commas, ']}'
    peak_mib = peak_kib / 1024
    print(f"peak RSS while streaming {size / 2**20:.0f} MiB: {peak_mib:.1f} MiB")
    assert peak_mib < 150, f"peak RSS {peak_mib:.1f} MiB"


def test_hasher_covers_every_gzip_member():
    doc = orjson.dumps({"Records": [{"eventVersion": "1", "n": n, "pad": "x" * 5000} for n in range(400)]})
    for data in (gzip.compress(doc) + gzip.compress(b" "), io.BytesIO(gzip.compress(doc)), doc):
        hasher = hashlib.sha256()
        assert sum(1 for _ in iter_records(data, hasher=hasher)) == 400
        expected = doc + b" " if isinstance(data, bytes) and data[:2] == b"\x1f\x8b" else doc
        assert hasher.hexdigest() == hashlib.sha256(expected).hexdigest()


# --------------------------------------------------------------------------- hostile input

from pipeline.parser import ParseLimits, RecordReader  # noqa: E402


def _bomb(record_bytes: int, before: int = 3) -> bytes:
    """A gzip of a few small records, then one record of ``record_bytes`` (compresses ~1000:1)."""
    small = b",".join(orjson.dumps({"eventVersion": "1.08", "eventID": str(i)}) for i in range(before))
    huge = b'{"eventVersion":"1.08","eventID":"big","pad":"' + b"A" * record_bytes + b'"}'
    return gzip.compress(b'{"Records":[' + small + (b"," if before else b"") + huge + b"]}", 6)


def test_a_record_over_max_record_bytes_is_its_own_error_after_the_records_before_it():
    data = _bomb(64 << 20)
    assert len(data) < 100 * 1024  # the 64 KiB gzip holding one 64 MiB record
    out = []
    with pytest.raises(BadObject) as info:
        for raw, record in iter_records(data):
            out.append(record["eventID"])
    assert info.value.error_class == "RecordTooLarge"
    assert "max_record_bytes of 4194304 bytes" in info.value.reason
    assert out == ["0", "1", "2"]
    with pytest.raises(BadObject, match="max_record_bytes of 1000 bytes"):
        list(iter_records(b'{"Records":[{"a":"' + b"x" * 2000 + b'"}]}', ParseLimits.default(max_record_bytes=1000)))
    # Any value counts, not only records: a huge string beside "Records".
    with pytest.raises(BadObject) as info:
        list(iter_records(b'{"x":"' + b"y" * 5000 + b'","Records":[]}', ParseLimits.default(max_record_bytes=1000)))
    assert info.value.error_class == "RecordTooLarge"


def test_a_value_spanning_many_chunks_grows_the_window_linearly(monkeypatch):
    """The window at least doubles while a value spans it: O(log n) refills (and copies of the
    window) for an n-chunk value, not n of them (which made a 64 MiB record cost 16 s)."""
    from pipeline import parser

    calls = []
    real = parser._Document.more
    monkeypatch.setattr(parser._Document, "more", lambda self, keep, want=0: calls.append(want) or real(self, keep, want))
    data = _bomb(64 << 20, before=0)
    records = list(iter_records(data, ParseLimits.default(max_record_bytes=128 << 20)))
    assert len(records) == 1 and len(records[0][1]["pad"]) == 64 << 20
    assert len(calls) <= 16, len(calls)  # 64 one-MiB chunks: 6 doublings plus the fast path's few


def test_max_uncompressed_bytes():
    records = [{"eventVersion": "1.08", "eventID": str(i), "pad": "p" * 100} for i in range(20000)]
    data = gzip.compress(orjson.dumps({"Records": records}))
    out = []
    with pytest.raises(BadObject) as info:
        for _, record in iter_records(data, ParseLimits.default(max_uncompressed_bytes=1 << 20)):
            out.append(record)
    assert info.value.error_class == "UncompressedTooLarge"
    assert "max_uncompressed_bytes of 1048576 bytes" in info.value.reason
    assert 0 < len(out) < len(records) and out == records[: len(out)]  # a prefix, once
    assert len(list(iter_records(data, ParseLimits.default(max_uncompressed_bytes=len(orjson.dumps({"Records": records})))))) == 20000
    with pytest.raises(BadObject, match="max_uncompressed_bytes"):  # plain JSON too
        list(iter_records(orjson.dumps({"Records": records}), ParseLimits.default(max_uncompressed_bytes=1000)))


def test_empty_records_are_counted_not_yielded():
    doc = b'{"Records":[' + b",".join([b"{}"] * 300_000) + b"]}"
    data = gzip.compress(doc)
    assert len(data) < 4096  # tiny
    reader = RecordReader(data)
    assert list(reader) == [] and reader.empty == 300_000
    mixed = orjson.dumps({"Records": [{}, {"eventVersion": "1", "n": 1}, {}, {"eventVersion": "1", "n": 2}, {}]})
    for text in (mixed, mixed.replace(b"{}", b"{ }"), mixed.replace(b",", b" ,\n ")):
        reader = RecordReader(text)
        assert [r["n"] for _, r in reader] == [1, 2] and reader.empty == 3


def test_max_records_per_object():
    doc = orjson.dumps({"Records": [{"eventVersion": "1", "n": i} for i in range(50)] + [{}] * 10})
    out = []
    with pytest.raises(BadObject) as info:
        for _, record in iter_records(doc, ParseLimits.default(max_records_per_object=20)):
            out.append(record["n"])
    assert info.value.error_class == "TooManyRecords" and "max_records_per_object of 20" in info.value.reason
    assert out == list(range(20))
    # Empty records do not count against it (they are counted apart); exactly the cap passes.
    assert len(list(iter_records(doc, ParseLimits.default(max_records_per_object=50)))) == 50


def test_hasher_sees_every_uncompressed_byte_in_order():
    doc = orjson.dumps({"Records": [{"eventVersion": "1", "n": i, "pad": "q" * 300} for i in range(5000)]})
    two_members = gzip.compress(doc[:70000]) + gzip.compress(doc[70000:]) + b"trailing garbage"
    for data in (doc, gzip.compress(doc), two_members, io.BytesIO(gzip.compress(doc)), Trickle(doc, 5, 5000),
                 Trickle(two_members, 6, 5000)):
        digest = hashlib.sha256()
        assert len(list(iter_records(data, hasher=digest))) == 5000
        assert digest.hexdigest() == hashlib.sha256(doc).hexdigest()
