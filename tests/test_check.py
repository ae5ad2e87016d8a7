"""`trailpipe check` (pipeline.check) on moto: every step, and a failure with its class and hint."""
from __future__ import annotations

from conftest import shared_log_files, upload

from pipeline.check import check_source


def test_every_step_passes_and_the_newest_file_is_sampled(make_runtime, s3, bucket):
    files = shared_log_files()[:4]
    upload(s3, bucket, files)
    source = make_runtime(bucket).config.sources[0]
    result = check_source(source)
    assert result.ok, result.steps
    assert [step.name for step in result.steps] == [
        "config valid", "credentials resolved", "ListObjectsV2 on 'AWSLogs/'", "newest matching log file",
        "GetObject", "parse", "sample event"]
    newest = max(key for key, _, _ in files)
    assert result.steps[3].detail == newest
    records = next(records for key, _, records in files if key == newest)
    assert result.steps[5].detail == f"parsed {len(records)} record(s)"
    assert result.sample["object"] == newest and result.sample["source"] == "test-src"


def test_a_wrong_bucket_fails_with_its_class_and_hint(make_runtime, bucket):
    source = make_runtime("no-such-bucket-here").config.sources[0]
    result = check_source(source)
    assert not result.ok
    failed = result.steps[-1]
    assert failed.name == "ListObjectsV2 on 'AWSLogs/'" and failed.error_class == "NoSuchBucket"
    assert "bucket" in failed.hint


def test_no_matching_log_file_is_a_failure(make_runtime, s3, bucket):
    s3.put_object(Bucket=bucket, Key="AWSLogs/readme.txt", Body=b"not a log")
    result = check_source(make_runtime(bucket).config.sources[0])
    assert not result.ok and result.steps[-1].error_class == "NoLogFiles"
    assert "file_pattern" in result.steps[-1].hint


def _log_file(s3, bucket, records) -> str:
    import gzip
    from datetime import UTC, datetime

    import orjson

    now = datetime.now(UTC)
    key = (f"AWSLogs/111122223333/CloudTrail/us-east-1/{now:%Y/%m/%d}/"
           f"111122223333_CloudTrail_us-east-1_{now:%Y%m%dT%H%M}Z_abcdefghijklmnop.json.gz")
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(orjson.dumps({"Records": records})))
    return key


RECORDS = [{"eventVersion": "1.09", "eventID": f"e-{i}", "eventName": name, "eventTime": "2026-11-01T08:00:00Z",
            "awsRegion": "us-east-1", "recipientAccountId": "111122223333"}
           for i, name in enumerate(["DescribeInstances", "GetObject", "ConsoleLogin"])]


def test_the_sample_is_the_first_entry_ingest_would_emit(make_runtime, s3, bucket):
    """The entry comes from the emitter's batch_entries: exclude_event_names and stream_fields apply."""
    key = _log_file(s3, bucket, RECORDS)
    source = make_runtime(bucket, exclude_event_names="Describe.*",
                          stream_fields=["event", "event_name", "object"]).config.sources[0]
    result = check_source(source)
    assert result.ok, result.steps
    assert result.steps[5].detail == "parsed 3 record(s)"  # every record read; the excluded one not sampled
    assert result.sample is not None and set(result.sample) == {"event", "event_name", "object"}
    assert (result.sample["event_name"], result.sample["object"]) == ("GetObject", key)
    assert result.steps[6].detail == "GetObject"

    everything = make_runtime(bucket, exclude_event_names=".*").config.sources[0]
    result = check_source(everything)
    assert result.ok and result.sample is None
    assert result.steps[-1].name == "sample event" and "exclude_event_names" in result.steps[-1].detail


def test_the_file_is_read_under_the_sources_caps(make_runtime, s3, bucket):
    """The same reader and limits as ingest: a file ingest would dead-letter fails the parse step."""
    _log_file(s3, bucket, RECORDS)
    source = make_runtime(bucket, max_records_per_object=2).config.sources[0]
    result = check_source(source)
    assert not result.ok
    failed = result.steps[-1]
    assert (failed.name, failed.error_class) == ("parse", "TooManyRecords")
