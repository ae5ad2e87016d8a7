"""Discovery against a real S3 API (moto server) and a real Redis."""
from __future__ import annotations

from pipeline.discovery import discover


def put(s3, bucket, key, body=b"{}"):
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def log_key(n: int, region: str = "us-east-1") -> str:
    return (f"AWSLogs/111122223333/CloudTrail/{region}/2026/11/01/"
            f"111122223333_CloudTrail_{region}_20261101T08{n:02d}Z_abcdefghijklmn{n:02d}.json.gz")


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def __call__(self, source_id: str, key: str) -> None:
        self.calls.append((source_id, key))

    @property
    def keys(self):
        return [key for _, key in self.calls]


def run(runtime, enqueue=None):
    source = runtime.config.sources[0]
    enqueue = enqueue or Recorder()
    return discover(source, runtime.state, runtime.s3(source), enqueue), enqueue


def test_enqueues_each_log_once_and_advances_marker(make_runtime, s3, bucket):
    for n in range(5):
        put(s3, bucket, log_key(n))
    runtime = make_runtime(bucket)
    result, calls = run(runtime)
    assert calls.keys == [log_key(n) for n in range(5)]
    assert {sid for sid, _ in calls.calls} == {"test-src"}
    assert result.enqueued == 5 and result.marker == log_key(4)
    assert runtime.state.get_marker("test-src").start_after("AWSLogs/") == log_key(4)

    again, calls = run(runtime)  # nothing new: nothing enqueued
    assert again.enqueued == 0 and calls.calls == [] and again.listed == 0

    put(s3, bucket, log_key(7))
    newer, calls = run(runtime)
    assert calls.keys == [log_key(7)] and newer.listed == 1


def test_skips_digest_zero_byte_and_non_matching(make_runtime, s3, bucket):
    put(s3, bucket, log_key(1))
    put(s3, bucket, "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/01/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20261101T090000Z.json.gz")
    put(s3, bucket, log_key(2), body=b"")
    put(s3, bucket, "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/notes.txt")
    runtime = make_runtime(bucket)
    result, calls = run(runtime)
    assert calls.keys == [log_key(1)]
    assert result.listed == 4 and result.skipped == 3


def test_start_after_marker_lists_only_later_keys(make_runtime, s3, bucket):
    put(s3, bucket, log_key(1))
    put(s3, bucket, log_key(3))
    runtime = make_runtime(bucket)
    run(runtime)
    put(s3, bucket, log_key(2))  # lands behind the marker: a "last key" marker does not see it
    put(s3, bucket, log_key(4))
    _, calls = run(runtime)
    assert calls.keys == [log_key(4)]


def test_prefix_change_clears_marker(make_runtime, s3, bucket):
    put(s3, bucket, log_key(1, "us-east-1"))
    put(s3, bucket, log_key(2, "eu-west-1"))
    east = "AWSLogs/111122223333/CloudTrail/us-east-1/"
    runtime = make_runtime(bucket, directory_prefix=east)
    _, calls = run(runtime)
    assert calls.keys == [log_key(1, "us-east-1")]

    # Same source, new prefix: the old marker does not apply; the new prefix is listed from its start.
    moved = make_runtime(bucket, directory_prefix="AWSLogs/")
    result, calls = run(moved)
    assert result.prefix_changed
    assert calls.keys == [log_key(2, "eu-west-1")]  # us-east-1 was claimed already: not enqueued twice
    assert moved.state.get_marker("test-src").prefix == "AWSLogs/"


def test_root_prefix_lists_whole_bucket(make_runtime, s3, bucket):
    put(s3, bucket, log_key(1))
    put(s3, bucket, "elsewhere/111122223333_CloudTrail_us-east-1_20261101T0800Z_zzzzzzzzzzzzzzzz.json.gz")
    runtime = make_runtime(bucket, directory_prefix="/")
    _, calls = run(runtime)
    assert len(calls.keys) == 2
    assert runtime.state.get_marker("test-src").prefix == ""


def test_paginates_and_advances_per_page(make_runtime, s3, bucket):
    keys = [f"AWSLogs/p/{n:05d}.json.gz" for n in range(1005)]  # more than one 1000-key page
    for key in keys:
        put(s3, bucket, key)
    runtime = make_runtime(bucket)
    result, calls = run(runtime)
    assert calls.keys == keys and result.listed == 1005
    assert runtime.state.get_marker("test-src").key == keys[-1]


def test_second_discovery_skips_while_lease_held(make_runtime, s3, bucket):
    put(s3, bucket, log_key(1))
    runtime = make_runtime(bucket)
    token = runtime.state.acquire_lease("test-src", 60_000)
    result, calls = run(runtime)
    assert not result.ran and calls.calls == []
    runtime.state.release_lease("test-src", token)
    result, calls = run(runtime)
    assert result.ran and calls.keys == [log_key(1)]


def test_crash_between_claim_and_enqueue_is_recovered(make_runtime, s3, bucket, redis_client, keys):
    put(s3, bucket, log_key(1))
    put(s3, bucket, log_key(2))
    runtime = make_runtime(bucket)

    def crash(_sid, key):
        raise RuntimeError("worker died after claiming")

    try:
        run(runtime, crash)
    except RuntimeError:
        pass
    assert runtime.state.get_marker("test-src").key == ""  # marker did not move past the claim
    _, calls = run(runtime)
    assert calls.keys == [log_key(2)]  # key 1 is claimed, recently: not yet re-enqueued
    assert runtime.state.get_marker("test-src").key == log_key(2)  # the marker is past key 1 now
    redis_client.zadd(keys.pending("test-src"), {log_key(1): 0})  # ...as if an hour later
    result, calls = run(runtime)
    assert calls.keys == [log_key(1)] and result.requeued == 1  # the sweeper enqueues it again
