"""The object processor against a real S3 API and Redis: records in, stream entries out."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
from datetime import timedelta

import orjson
import pytest
from conftest import dead_process, shared_log_files, stream_events, upload

from pipeline.ingest import ingest_object
from pipeline.normalize import restore_carried

KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/111122223333_CloudTrail_us-east-1_20261101T0800Z_abcdefghijklmnop.json.gz"


def record(n: int, **extra) -> dict:
    return {"eventVersion": "1.08", "eventID": f"id-{n}", "eventName": "DescribeInstances",
            "eventTime": "2026-11-01T08:00:00Z", "awsRegion": "us-east-1",
            "recipientAccountId": "111122223333", "userIdentity": {"type": "IAMUser", "accountId": "999"},
            "note": "zoë ✓", **extra}


def body(records, compress=True) -> bytes:
    raw = orjson.dumps({"Records": records})
    return gzip.compress(raw) if compress else raw


def ingest(runtime, key=KEY):
    source = runtime.config.sources[0]
    return ingest_object(source, key, runtime.state, runtime.s3(source), runtime.limits)


def test_every_record_becomes_one_entry(make_runtime, s3, bucket, redis_client):
    records = [record(n) for n in range(7)]
    s3.put_object(Bucket=bucket, Key=KEY, Body=body(records))
    runtime = make_runtime(bucket, settings={"batch_size": 3})
    result = ingest(runtime)
    assert (result.outcome, result.records, result.events) == ("done", 7, 7)
    events = stream_events(redis_client)
    assert [orjson.loads(e["event"]) for e in events] == records
    first = events[0]
    assert first["event_id"] == b"id-0" and first["event_name"] == b"DescribeInstances"
    assert first["event_time"] == b"2026-11-01T08:00:00Z" and first["source"] == b"test-src"
    assert first["object"] == KEY.encode() and first["account"] == b"111122223333"
    assert first["region"] == b"us-east-1"
    assert runtime.state.object_state("test-src", KEY)["state"] == "done"
    assert runtime.state.stats("test-src")["events_emitted"] == 7


def test_second_ingest_of_a_done_object_emits_nothing(make_runtime, s3, bucket, redis_client):
    s3.put_object(Bucket=bucket, Key=KEY, Body=body([record(1)]))
    runtime = make_runtime(bucket)
    assert ingest(runtime).outcome == "done"
    assert ingest(runtime).outcome == "skipped"
    assert redis_client.xlen("trailpipe:events") == 1


def test_redelivered_task_resumes_from_checkpoint(make_runtime, s3, bucket, redis_client):
    records = [record(n) for n in range(10)]
    s3.put_object(Bucket=bucket, Key=KEY, Body=body(records))
    runtime = make_runtime(bucket, settings={"batch_size": 4})
    # A first worker committed one batch of 4, then died (its process is gone).
    runtime.state.begin("test-src", KEY, "first", process=dead_process())
    first_batch = [{"event": orjson.dumps(r), "event_id": r["eventID"]} for r in records[:4]]
    assert runtime.state.commit_batch("test-src", KEY, 0, 4, first_batch, last=False, runner="first") == (True, 4)
    result = ingest(runtime)  # the redelivered task finds its process gone: takes over at once
    assert (result.outcome, result.records) == ("done", 6)
    assert runtime.state.object_state("test-src", KEY)["lost"] == "1"
    ids = [e["event_id"] for e in stream_events(redis_client)]
    assert ids == [f"id-{n}".encode() for n in range(10)]  # each exactly once, in order
    assert "sha256" not in runtime.state.object_state("test-src", KEY)  # integrity off: not hashed


def test_integrity_source_keeps_the_sha256_even_on_a_resumed_delivery(make_runtime, s3, bucket, redis_client):
    records = [record(n) for n in range(10)]
    s3.put_object(Bucket=bucket, Key=KEY, Body=body(records))
    runtime = make_runtime(bucket, settings={"batch_size": 4}, integrity={"enabled": True})
    runtime.state.begin("test-src", KEY, "first", process=dead_process())
    first_batch = [{"event": orjson.dumps(r), "event_id": r["eventID"]} for r in records[:4]]
    runtime.state.commit_batch("test-src", KEY, 0, 4, first_batch, last=False, runner="first")
    assert ingest(runtime).records == 6
    raw = orjson.dumps({"Records": records})  # what a CloudTrail digest records: uncompressed bytes
    assert runtime.state.object_state("test-src", KEY)["sha256"] == hashlib.sha256(raw).hexdigest()


def test_plain_json_and_missing_fields(make_runtime, s3, bucket, redis_client):
    s3.put_object(Bucket=bucket, Key=KEY, Body=body([{"eventName": "ConsoleLogin", "userIdentity": {"accountId": "222"}}, {}], compress=False))
    runtime = make_runtime(bucket)
    assert ingest(runtime).outcome == "done"
    (first,) = stream_events(redis_client)  # the empty record is counted, not emitted
    assert first["account"] == b"222" and first["event_id"] == b"" and first["region"] == b""
    assert runtime.state.stats("test-src")["records_empty"] == 1


def test_empty_records_list_is_done_with_no_events(make_runtime, s3, bucket, redis_client):
    s3.put_object(Bucket=bucket, Key=KEY, Body=body([]))
    runtime = make_runtime(bucket)
    assert ingest(runtime).outcome == "done"
    assert redis_client.xlen("trailpipe:events") == 0


@pytest.mark.parametrize("payload,error_class", [
    (b"\x1f\x8b\x08\x00garbage-not-deflate", "CorruptGzip"),
    (gzip.compress(b'{"Records": [1, 2', mtime=0)[:-12], "CorruptGzip"),
    (gzip.compress(b"this is not json", mtime=0), "NotJson"),
    (gzip.compress(b'{"records": []}', mtime=0), "NoRecords"),
    (gzip.compress(b'[{"eventID": "x"}]', mtime=0), "NoRecords"),
    (gzip.compress(b'{"Records": ["a string"]}', mtime=0), "BadRecord"),
])
def test_corrupt_object_is_dead_lettered(make_runtime, s3, bucket, redis_client, payload, error_class):
    s3.put_object(Bucket=bucket, Key=KEY, Body=payload)
    runtime = make_runtime(bucket)
    result = ingest(runtime)
    assert result.outcome == "failed" and result.reason.startswith(error_class)
    (entry,) = stream_events(redis_client, "trailpipe:deadletter")
    assert entry["error_class"] == error_class.encode() and entry["object"] == KEY.encode()
    assert entry["source"] == b"test-src" and entry["message"]
    assert runtime.state.object_state("test-src", KEY)["state"] == "failed"
    assert redis_client.xlen("trailpipe:events") == 0


def test_missing_object_is_dead_lettered(make_runtime, bucket, redis_client):
    runtime = make_runtime(bucket)
    result = ingest(runtime, "AWSLogs/gone.json.gz")
    assert result.outcome == "failed" and "NoSuchKey" in result.reason


def test_exclude_event_names(make_runtime, s3, bucket, redis_client):
    records = [record(1), record(2, eventName="ConsoleLogin"), record(3, eventName="ListBuckets")]
    s3.put_object(Bucket=bucket, Key=KEY, Body=body(records))
    runtime = make_runtime(bucket, exclude_event_names=r"(Describe|List|Get).*")
    result = ingest(runtime)
    assert (result.records, result.events) == (3, 1)
    assert [e["event_name"] for e in stream_events(redis_client)] == [b"ConsoleLogin"]


def test_shared_open_data_round_trips(make_runtime, s3, bucket, redis_client):
    files = shared_log_files()
    upload(s3, bucket, files)
    runtime = make_runtime(bucket)
    for key, _, _ in files:
        assert ingest(runtime, key).outcome == "done"
    expected = sorted(orjson.dumps(r) for _, _, records in files for r in records)
    assert sorted(e["event"] for e in stream_events(redis_client)) == expected


def test_normalized_fields_and_output_formats(make_runtime, s3, bucket, redis_client):
    login = record(1, eventName="ConsoleLogin", eventSource="signin.amazonaws.com",
                   responseElements={"ConsoleLogin": "Failure"}, errorMessage="Failed authentication",
                   sourceIPAddress="203.0.113.7")
    s3.put_object(Bucket=bucket, Key=KEY, Body=body([login]))
    runtime = make_runtime(bucket, output_formats=["ecs", "ocsf"])
    assert ingest(runtime).outcome == "done"
    (entry,) = stream_events(redis_client)
    assert orjson.loads(entry["event"]) == login  # the raw record travels unchanged
    assert entry["display_name"] == b"Console Login"
    assert entry["category"] == b"User Login Failure"
    # the documents leave out what the entry's own fields carry (event.id, event.action...)
    ecs = restore_carried("ecs", orjson.loads(entry["ecs"]), entry)
    assert ecs["event"]["action"] == "ConsoleLogin" and ecs["event"]["outcome"] == "failure"
    assert ecs["source"]["ip"] == "203.0.113.7" and b"ConsoleLogin" not in entry["ecs"]
    ocsf = restore_carried("ocsf", orjson.loads(entry["ocsf"]), entry)
    assert ocsf["class_uid"] == 3002 and ocsf["metadata"]["uid"] == "id-1"


def test_no_output_formats_by_default(make_runtime, s3, bucket, redis_client):
    s3.put_object(Bucket=bucket, Key=KEY, Body=body([record(1)]))
    runtime = make_runtime(bucket)
    ingest(runtime)
    (entry,) = stream_events(redis_client)
    assert "ecs" not in entry and "ocsf" not in entry
    assert entry["display_name"] == b"Describe Instances" and entry["category"] == b"Read Activity"


def test_failure_mid_file_keeps_what_was_emitted_and_retry_resumes(make_runtime, s3, bucket, redis_client):
    # The parser streams: a broken record in the middle is found after earlier batches were
    # committed. Those stay (exactly once); after the file is fixed, a retry resumes after them.
    good = [record(n) for n in range(6)]
    broken = gzip.compress(orjson.dumps({"Records": good[:4]})[:-2] + b',"not an object",' +
                           orjson.dumps(good[4]) + b"]}")
    s3.put_object(Bucket=bucket, Key=KEY, Body=broken)
    runtime = make_runtime(bucket, settings={"batch_size": 2})
    result = ingest(runtime)
    assert result.outcome == "failed" and result.reason.startswith("BadRecord")
    assert [e["event_id"] for e in stream_events(redis_client)] == [b"id-0", b"id-1", b"id-2", b"id-3"]
    s3.put_object(Bucket=bucket, Key=KEY, Body=body(good))
    assert runtime.state.retry_failed("test-src", KEY)
    assert ingest(runtime).outcome == "done"
    assert [e["event_id"] for e in stream_events(redis_client)] == [f"id-{n}".encode() for n in range(6)]


def test_poison_object_is_dead_lettered_after_max_attempts(make_runtime, s3, bucket, redis_client):
    s3.put_object(Bucket=bucket, Key=KEY, Body=body([record(1)]))
    runtime = make_runtime(bucket, settings={"max_attempts": 3})
    runtime.state.begin("test-src", KEY, "r0", process=dead_process())  # its worker process died
    for n in (1, 2):  # two more deliveries whose worker process died mid-way
        assert runtime.state.begin("test-src", KEY, f"r{n}", process=dead_process()).lost == n
    result = ingest(runtime)  # the fourth delivery: three vanished before it
    assert result.outcome == "failed" and result.reason.startswith("TooManyAttempts")
    (entry,) = stream_events(redis_client, "trailpipe:deadletter")
    assert entry["attempts"] == b"4"
    assert b"3 deliveries whose runner vanished without finishing (3 whose worker process was gone)" in entry["message"]
    assert b"poison" in entry["message"] and b"died each time" not in entry["message"]
    assert redis_client.xlen("trailpipe:events") == 0


def test_refused_duplicates_and_releases_never_make_a_poison_object(make_runtime, s3, bucket, redis_client):
    """Only runners that vanished count: a duplicate delivery refused while the runner beats, or
    a runner that released the object (a transient error), is no crash."""
    s3.put_object(Bucket=bucket, Key=KEY, Body=body([record(1)]))
    runtime = make_runtime(bucket, settings={"max_attempts": 1})
    assert runtime.state.begin("test-src", KEY, "live").taken  # this process: alive, beating
    for _ in range(5):
        assert ingest(runtime).outcome == "skipped"  # duplicates (a sweep, a redelivery): refused
    assert runtime.state.release("test-src", KEY, runner="live")
    for n in range(3):
        assert runtime.state.begin("test-src", KEY, f"t{n}").taken
        assert runtime.state.release("test-src", KEY, runner=f"t{n}")
    result = ingest(runtime)
    assert result.outcome == "done", result.reason
    assert runtime.state.object_state("test-src", KEY)["attempts"] == "1"


def test_transient_release_does_not_count_as_a_crash(make_runtime, s3, bucket):
    s3.put_object(Bucket=bucket, Key=KEY, Body=body([record(1)]))
    runtime = make_runtime(bucket, settings={"max_attempts": 2})
    for _ in range(5):  # five throttled tries, each released
        runtime.state.begin("test-src", KEY)
        assert runtime.state.release("test-src", KEY)
    assert ingest(runtime).outcome == "done"


def test_backpressure_waits_and_never_trims(make_runtime, s3, bucket, redis_client):
    import threading
    import time

    records = [record(n) for n in range(30)]
    s3.put_object(Bucket=bucket, Key=KEY, Body=body(records))
    runtime = make_runtime(bucket, settings={"batch_size": 10, "stream_high_watermark": 15})
    for n in range(20):  # unconsumed entries already over the high watermark
        redis_client.xadd("trailpipe:events", {"event": "{}", "event_id": f"old-{n}"})
    done = threading.Event()
    outcome = {}
    thread = threading.Thread(target=lambda: (outcome.update(r=ingest(runtime)), done.set()))
    thread.start()
    time.sleep(1.5)
    assert not done.is_set()  # waiting: nothing emitted, nothing dropped
    assert redis_client.xlen("trailpipe:events") == 20
    first_old = redis_client.xrange("trailpipe:events", count=1)[0][1][b"event_id"]
    assert first_old == b"old-0"  # not trimmed
    consumed, last_id = [], "0-0"
    while not done.is_set() or redis_client.xlen("trailpipe:events"):  # a consumer catches up
        for _, entries in redis_client.xread({"trailpipe:events": last_id}, count=5, block=200):
            for entry_id, fields in entries:
                consumed.append(fields[b"event_id"])
                redis_client.xdel("trailpipe:events", entry_id)
                last_id = entry_id
    thread.join(timeout=30)
    assert outcome["r"].outcome == "done"
    assert consumed == [f"old-{n}".encode() for n in range(20)] + [f"id-{n}".encode() for n in range(30)]


def test_backpressure_gives_up_for_a_later_retry(make_runtime, s3, bucket, redis_client):
    from pipeline.ingest import Backpressure, IngestLimits

    s3.put_object(Bucket=bucket, Key=KEY, Body=body([record(1)]))
    runtime = make_runtime(bucket)
    redis_client.xadd("trailpipe:events", {"event": "{}"})
    redis_client.xadd("trailpipe:events", {"event": "{}"})
    source = runtime.config.sources[0]
    limits = dataclasses.replace(IngestLimits.default(), stream_high_watermark=1,
                                 backpressure_max_wait=timedelta(seconds=0.6))
    with pytest.raises(Backpressure):
        ingest_object(source, KEY, runtime.state, runtime.s3(source), limits)
    assert runtime.state.release("test-src", KEY)  # what the task does before retrying


def test_opt_in_trimming(make_runtime, s3, bucket, redis_client):
    s3.put_object(Bucket=bucket, Key=KEY, Body=body([record(n) for n in range(300)]))
    runtime = make_runtime(bucket, settings={"stream_maxlen": 100, "batch_size": 300})
    ingest(runtime)
    assert redis_client.xlen("trailpipe:events") < 300  # MAXLEN ~ trims approximately


@pytest.mark.parametrize("cap,error_class", [
    ({"max_record_bytes": 2000}, "RecordTooLarge"),
    ({"max_uncompressed_bytes": 3000}, "UncompressedTooLarge"),
    ({"max_records_per_object": 5}, "TooManyRecords"),
])
def test_over_a_cap_is_dead_lettered_after_the_records_before_it(make_runtime, s3, bucket, redis_client,
                                                                  cap, error_class):
    records = [record(n) for n in range(8)] + [record(99, pad="x" * 3000)] + [record(n) for n in range(9, 12)]
    s3.put_object(Bucket=bucket, Key=KEY, Body=body(records))
    runtime = make_runtime(bucket, settings={"batch_size": 2}, **cap)
    result = ingest(runtime)
    assert result.outcome == "failed" and result.reason.startswith(error_class), result.reason
    emitted = [e["event_id"] for e in stream_events(redis_client)]
    assert emitted and emitted == [f"id-{n}".encode() for n in range(len(emitted))]  # a prefix, once
    (entry,) = stream_events(redis_client, "trailpipe:deadletter")
    assert entry["error_class"] == error_class.encode()
    assert f"the {len(emitted)} records before it were emitted".encode() in entry["message"]
    # A retry with the cap lifted resumes after them: nothing doubled.
    assert runtime.state.retry_failed("test-src", KEY)
    relaxed = make_runtime(bucket, settings={"batch_size": 2})
    assert ingest(relaxed).outcome == "done"
    assert [e["event_id"] for e in stream_events(redis_client)] == [r["eventID"].encode() for r in records]


def test_empty_records_are_counted_not_emitted(make_runtime, s3, bucket, redis_client):
    from workers.cli import status_rows

    s3.put_object(Bucket=bucket, Key=KEY, Body=gzip.compress(b'{"Records":[' + b",".join([b"{}"] * 300_000) + b"]}"))
    other = KEY.replace("abcdefghijklmnop", "qrstuvwxyzabcdef")
    s3.put_object(Bucket=bucket, Key=other, Body=body([{}, record(1), {}, record(2)]))
    runtime = make_runtime(bucket)
    assert (ingest(runtime).outcome, ingest(runtime, other).events) == ("done", 2)
    assert [e["event_id"] for e in stream_events(redis_client)] == [b"id-1", b"id-2"]
    assert runtime.state.stats("test-src")["records_empty"] == 300_002
    assert status_rows(runtime)[0]["records_empty"] == 300_002


def test_process_object_turns_backpressure_into_a_released_retry(make_runtime, s3, bucket, redis_client):
    """The Celery task's body (pipeline.ingest.process_object): the policy's action applied, the
    object released for the countdown the task retries after; the error counted by class."""
    from pipeline.ingest import IngestLimits, process_object

    s3.put_object(Bucket=bucket, Key=KEY, Body=body([record(1)]))
    runtime = make_runtime(bucket)
    redis_client.xadd("trailpipe:events", {"event": "{}"})
    redis_client.xadd("trailpipe:events", {"event": "{}"})
    source = runtime.config.sources[0]
    runtime.state.claim("test-src", KEY, token=1)
    limits = dataclasses.replace(IngestLimits.default(), stream_high_watermark=1,
                                 backpressure_max_wait=timedelta(seconds=0.3))
    result = process_object(source, KEY, runtime.state, lambda: runtime.s3(source), limits, attempt=0)
    assert result.outcome == "retry" and 0 <= result.retry_in <= 1.0 and "Backpressure" in result.reason
    record_ = runtime.state.object_state("test-src", KEY)
    assert record_["state"] == "claimed" and record_["attempts"] == "0"  # released, not a crash
    assert runtime.state.stats("test-src")["errors.Backpressure"] == 1
    assert redis_client.xlen("trailpipe:deadletter") == 0
    redis_client.delete("trailpipe:events")
    done = process_object(source, KEY, runtime.state, lambda: runtime.s3(source), limits, attempt=1)
    assert done.outcome == "done" and done.retry_in is None and done.events == 1


def test_process_object_defers_on_a_client_that_cannot_be_built(make_runtime, s3, bucket, redis_client, tmp_path):
    """Building the client is inside the policy too: credentials that cannot be resolved mark the
    source failing (with the hint), the object waits without a retry burnt, the client is dropped."""
    from pipeline.ingest import process_object

    s3.put_object(Bucket=bucket, Key=KEY, Body=body([record(1)]))
    secret_file = tmp_path / "secret"
    secret_file.write_text("\n")  # emptied: no client at all
    runtime = make_runtime(bucket, auth={"method": "access_key", "access_key_id": "AKIAEXAMPLE0000000",
                                         "secret_access_key_file": str(secret_file)})
    source = runtime.config.sources[0]
    runtime.state.claim("test-src", KEY, token=1)
    forgotten = []
    result = process_object(source, KEY, runtime.state, lambda: runtime.s3(source), runtime.limits, attempt=5,
                            forget_client=lambda: forgotten.append(True))
    assert result.outcome == "deferred" and result.retry_in is None and "CredentialsUnavailable" in result.reason
    assert forgotten == [True]
    health = runtime.state.health("test-src")
    assert health["state"] == "failing" and "check the source's auth" in health["message"]
    record_ = runtime.state.object_state("test-src", KEY)
    assert record_["state"] == "claimed" and record_["attempts"] == "0"
    assert runtime.state.sweep_pending("test-src") == []  # it waits for the next recurrence
    assert redis_client.xlen("trailpipe:deadletter") == 0


def test_a_batch_of_large_records_is_cut_by_bytes_before_redis_refuses_it(make_runtime, s3, bucket, redis_client,
                                                                            monkeypatch):
    """A batch ends once its raw bytes reach BATCH_MAX_BYTES: a batch_size of large records (a
    hostile object may hold 4 MiB ones) would otherwise be one command over Redis's
    client-query-buffer-limit, which closes the connection, and the object would be retried as a
    lost connection without end. Here the server's limit is lowered to its minimum (1 MB) and the
    budget with it: 12 records of ~200 kB go in several commits, every one once."""
    from pipeline import defaults
    from pipeline.ingest import process_object

    records = [record(n, payload="p" * 200_000) for n in range(12)]
    s3.put_object(Bucket=bucket, Key=KEY, Body=body(records))
    runtime = make_runtime(bucket)  # batch_size 500: all 12 in one batch without the budget
    source = runtime.config.sources[0]
    runtime.state.claim("test-src", KEY, token=1)
    commits: list[int] = []
    real_commit = runtime.state.commit_batch
    monkeypatch.setattr(runtime.state, "commit_batch",
                        lambda *args, **kwargs: commits.append(len(args[4])) or real_commit(*args, **kwargs))
    limit = redis_client.config_get("client-query-buffer-limit")["client-query-buffer-limit"]
    redis_client.config_set("client-query-buffer-limit", "1mb")
    try:
        monkeypatch.setattr(defaults, "BATCH_MAX_BYTES", 4 << 20)  # a budget above the server's limit
        refused = process_object(source, KEY, runtime.state, lambda: runtime.s3(source), runtime.limits, attempt=0)
        monkeypatch.setattr(defaults, "BATCH_MAX_BYTES", 500_000)
        done = process_object(source, KEY, runtime.state, lambda: runtime.s3(source), runtime.limits, attempt=1)
    finally:
        redis_client.config_set("client-query-buffer-limit", limit)
    assert refused.outcome == "retry" and "Connection" in refused.reason, refused  # what it was before
    assert (done.outcome, done.records, done.events) == ("done", 12, 12), done
    assert commits == [12, 3, 3, 3, 3]  # ~600 kB each, under the server's 1 MB
    assert [orjson.loads(e["event"]) for e in stream_events(redis_client)] == records
