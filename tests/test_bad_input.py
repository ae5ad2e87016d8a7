"""Bad input never blocks: a corpus of bad objects, each dead-lettered with the right reason,
while the good objects of the same run are all ingested by real worker processes."""
from __future__ import annotations

import bz2
import gzip
import json
import os
import subprocess
import sys
import zlib
from collections import Counter

import orjson
import pytest
from conftest import (
    REPO,
    celery_env,
    config_dict,
    shared_log_files,
    source_dict,
    start_celery,
    stop_process,
    stream_events,
    upload,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

GOOD = {"Records": [{"eventID": "good-1", "eventName": "ListBuckets", "eventTime": "2026-11-01T08:00:00Z"}]}


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def bad_crc() -> bytes:
    data = bytearray(gz(orjson.dumps(GOOD)))
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    return bytes(data)


def second_member_corrupt() -> bytes:
    return gz(orjson.dumps(GOOD)) + b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage!"


# name -> (object body, expected error class)
BAD_OBJECTS = {
    "random-bytes": (bytes(range(256)) * 4, "NotJson"),
    "gzip-header-then-garbage": (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 64, "CorruptGzip"),
    "gzip-truncated": (gz(orjson.dumps(GOOD))[:-20], "CorruptGzip"),
    "gzip-bad-crc": (bad_crc(), "CorruptGzip"),
    "gzip-second-member-corrupt": (second_member_corrupt(), "CorruptGzip"),
    "gzip-of-nothing": (gz(b""), "NotJson"),
    "plain-empty-object": (b"{}", "NoRecords"),
    "top-level-array": (gz(b'[{"eventID": "x"}]'), "NoRecords"),
    "records-null": (gz(b'{"Records": null}'), "NoRecords"),
    "records-object": (gz(b'{"Records": {"eventID": "x"}}'), "NoRecords"),
    "records-string": (gz(b'{"Records": "x"}'), "NoRecords"),
    "records-lowercase-key": (gz(b'{"records": []}'), "NoRecords"),
    "record-is-number": (gz(b'{"Records": [1]}'), "BadRecord"),
    "record-is-null": (gz(b'{"Records": [null]}'), "BadRecord"),
    "record-is-array": (gz(b'{"Records": [[{"eventID": "x"}]]}'), "BadRecord"),
    "record-is-string": (gz(b'{"Records": ["x"]}'), "BadRecord"),
    "invalid-utf8-in-string": (gz(b'{"Records": [{"eventName": "\xff\xfe"}]}'), "NotUtf8"),
    "latin1-text": (gz('{"Records": [{"userName": "zo\u00eb"}]}'.encode("latin-1")), "NotUtf8"),
    "utf16-json": (gz(json.dumps(GOOD).encode("utf-16")), "NotUtf8"),
    "json-truncated": (gz(orjson.dumps(GOOD)[:-5]), "NotJson"),
    "json-trailing-garbage": (gz(orjson.dumps(GOOD) + b" }{"), "NotJson"),
    "json-nan": (gz(b'{"Records": [{"x": NaN}]}'), "NotJson"),
    "json-single-quotes": (gz(b"{'Records': []}"), "NotJson"),
    "html-error-page": (gz(b"<html><body>503 Service Unavailable</body></html>"), "NotJson"),
    "bzip2-compressed": (bz2.compress(orjson.dumps(GOOD)), "NotUtf8"),
    "zlib-not-gzip": (zlib.compress(orjson.dumps(GOOD)), "NotUtf8"),
    "double-gzip": (gz(gz(orjson.dumps(GOOD))), "NotUtf8"),
    "too-large": (gz(orjson.dumps(GOOD)) + b"\0" * 0, "TooLarge"),
}


def key_of(index: int, name: str) -> str:
    return (f"AWSLogs/123456789012/CloudTrail/eu-west-1/2024/08/01/"
            f"123456789012_CloudTrail_eu-west-1_20240801T{index // 60:02d}{index % 60:02d}Z_{name[:16]:_<16}.json.gz")


def test_bad_objects_are_dead_lettered_and_good_ones_ingested(tmp_path, redis_server, redis_client,
                                                              moto_endpoint, s3, bucket):
    assert len(BAD_OBJECTS) >= 25
    good_files = shared_log_files(region="eu-west-1")
    upload(s3, bucket, good_files)
    cap = max(len(data) for _, data, _ in good_files) + 1
    bad_keys = {}
    for index, (name, (body, _)) in enumerate(BAD_OBJECTS.items()):
        key = key_of(index + 100, name)
        bad_keys[key] = name
        if name == "too-large":  # incompressible, over the cap set below
            body = gz(orjson.dumps({"Records": [{"pad": os.urandom(cap).hex()}]}))
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(Bucket=bucket, Key=key_of(999, "deleted-after-listing"), Body=gz(orjson.dumps(GOOD)))
    expected = Counter(orjson.dumps(r) for _, _, records in good_files for r in records)

    source = source_dict(bucket, moto_endpoint, identifier="bad", region="eu-west-1")
    source["max_object_bytes"] = cap
    config_path = write_config(tmp_path / "c.yaml", config_dict(redis_server.url, [source], batch_size=25))
    # Discover first (no worker yet), then delete one listed object: GetObject gets NoSuchKey.
    run = lambda *args: subprocess.run([sys.executable, "-m", "workers.cli", *args, "-c", str(config_path)],  # noqa: E731
                                       env=celery_env(config_path), capture_output=True, text=True,
                                       timeout=60, cwd=REPO)
    worker = start_celery(["worker", "--concurrency", "2", "--loglevel", "info", "-Q", "trailpipe.eu-west-1",
                           "--hostname", "bad@%h"], config_path, tmp_path / "worker.log")
    try:
        total = len(good_files) + len(bad_keys) + 1
        deleted = key_of(999, "deleted-after-listing")
        # Enqueue the discovery with the worker's pool busy-free but the object gone by ingest time.
        from pipeline.config import load_config
        from pipeline.discovery import discover
        from pipeline.runtime import Runtime
        from workers.app import app, configure

        config = load_config(config_path)
        configure(config)
        runtime = Runtime(config)
        src = config.sources[0]
        queued = []
        discover(src, runtime.state, runtime.s3(src), lambda sid, key: queued.append((sid, key)))
        s3.delete_object(Bucket=bucket, Key=deleted)
        for sid, key in queued:
            app.send_task("trailpipe.ingest_object", args=(sid, key), queue=src.queue_name)
        assert len(queued) == total

        def finished():
            stats = runtime.state.stats("bad")
            return stats.get("objects_done", 0) + stats.get("objects_failed", 0) == total and stats

        stats = wait_for(finished, timeout=120, what="every object done or dead-lettered")
        assert stats["objects_done"] == len(good_files)
        events = stream_events(redis_client)
        good_keys = {key.encode() for key, _, _ in good_files}
        assert Counter(e["event"] for e in events if e["object"] in good_keys) == expected
        # A file that breaks part-way keeps the records before the break (streamed, each once).
        partial = Counter(e["object"].decode() for e in events if e["object"] not in good_keys)
        assert set(partial) <= set(bad_keys) and all(n == 1 for n in partial.values()), partial

        letters = {e["object"].decode(): e for e in stream_events(redis_client, "trailpipe:deadletter")}
        assert letters[deleted]["error_class"] == b"NoSuchKey"
        wrong = {}
        for key, name in bad_keys.items():
            got = letters[key]["error_class"].decode()
            if got != BAD_OBJECTS[name][1]:
                wrong[name] = (got, letters[key]["message"].decode())
            assert letters[key]["message"] and letters[key]["source"] == b"bad"
        assert not wrong, wrong

        listed = run("deadletter", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert len(listed.stdout.splitlines()) == len(bad_keys) + 1

        # The user fixes one object and retries it: it is ingested, its entry leaves the list.
        fixed = next(k for k, n in bad_keys.items() if n == "json-truncated")
        s3.put_object(Bucket=bucket, Key=fixed, Body=gz(orjson.dumps({"Records": [{"eventID": "fixed-1"}]})))
        retried = run("deadletter", "retry", fixed)
        assert retried.returncode == 0 and "1 object(s) enqueued again" in retried.stdout, retried.stderr
        wait_for(lambda: runtime.state.object_state("bad", fixed).get("state") == "done", timeout=60,
                 what="the retried object")
        assert b'"fixed-1"' in stream_events(redis_client)[-1]["event"]
        assert len(run("deadletter", "list", "--json").stdout.splitlines()) == len(bad_keys)
        assert worker.poll() is None  # the worker is still up
    finally:
        stop_process(worker)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "WorkerLostError" not in log and "Traceback" not in log
