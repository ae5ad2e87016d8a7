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
