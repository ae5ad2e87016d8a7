"""Discovery against a real S3 API (moto server) and a real Redis."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

from pipeline.discovery import discover

ACCOUNT = "111122223333"
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def put(s3, bucket, key, body=b"{}"):
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def log_key(minute: int, region: str = "us-east-1", account: str = ACCOUNT, suffix: str = "abcdefghijklmnop",
            base: str = "AWSLogs/") -> str:
    when = T0 + timedelta(minutes=minute)
    return (f"{base}{account}/CloudTrail/{region}/{when:%Y/%m/%d}/"
            f"{account}_CloudTrail_{region}_{when:%Y%m%dT%H%M}Z_{suffix}.json.gz")


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, source_id: str, key: str) -> None:
        with self.lock:
            self.calls.append((source_id, key))

    @property
    def keys(self):
        return [key for _, key in self.calls]


def run(runtime, enqueue=None, now=None):
    source = runtime.config.sources[0]
    enqueue = enqueue or Recorder()
    return discover(source, runtime.state, runtime.s3(source), enqueue, now=now or T0 + timedelta(hours=1)), enqueue


def test_enqueues_each_log_once_and_advances_marker(make_runtime, s3, bucket):
    for n in range(5):
        put(s3, bucket, log_key(n))
    runtime = make_runtime(bucket)
    result, calls = run(runtime)
    assert calls.keys == [log_key(n) for n in range(5)]
    assert {sid for sid, _ in calls.calls} == {"test-src"}
    assert result.enqueued == 5 and result.partitions == 1
    partition = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/"
    assert runtime.state.markers("test-src") == {partition: log_key(4)}

    again, calls = run(runtime)  # nothing new: nothing enqueued, one LIST for the one partition
    assert again.enqueued == 0 and calls.calls == [] and again.list_requests == 1

    put(s3, bucket, log_key(7))
    newer, calls = run(runtime)
    assert calls.keys == [log_key(7)]


def test_skips_digest_zero_byte_and_non_matching(make_runtime, s3, bucket):
    put(s3, bucket, log_key(1))
    put(s3, bucket, f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/01/{ACCOUNT}_CloudTrail-Digest_us-east-1_t_us-east-1_20261101T090000Z.json.gz")
    put(s3, bucket, log_key(2), body=b"")
    put(s3, bucket, f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/01/notes.txt")
    runtime = make_runtime(bucket)
    result, calls = run(runtime)
    assert calls.keys == [log_key(1)]
    assert result.listed == 3 and result.skipped == 2  # the digest folder is not even listed


def test_late_files_behind_the_marker_within_lookback_are_ingested(make_runtime, s3, bucket):
    put(s3, bucket, log_key(0, suffix="aaaaaaaaaaaaaaaa"))
    put(s3, bucket, log_key(60, suffix="aaaaaaaaaaaaaaaa"))
    runtime = make_runtime(bucket)  # lookback 2H
    run(runtime)
    # Files land late: the same minute as the marker with a smaller random part, and 50 minutes
    # earlier. A "last key" marker would never list either.
    late_same_minute = log_key(60, suffix="0000000000000000")
    late_earlier = log_key(10, suffix="zzzzzzzzzzzzzzzz")
    put(s3, bucket, late_same_minute)
    put(s3, bucket, late_earlier)
    result, calls = run(runtime)
    assert sorted(calls.keys) == sorted([late_same_minute, late_earlier])
    assert result.listed == 4  # the window is listed again; known keys are skipped
    again, calls = run(runtime)
    assert calls.calls == []


def test_late_files_outside_the_window_are_not_listed_again(make_runtime, s3, bucket):
    put(s3, bucket, log_key(0))
    put(s3, bucket, log_key(200))
    runtime = make_runtime(bucket, lookback="1H")
    run(runtime, now=T0 + timedelta(hours=4))
    put(s3, bucket, log_key(100, suffix="late-outside-win"))  # 100 min behind the newest, lookback 60
    put(s3, bucket, log_key(150, suffix="late-inside-wind"))  # 50 min behind: inside
    result, calls = run(runtime, now=T0 + timedelta(hours=4))
    assert calls.keys == [log_key(150, suffix="late-inside-wind")]
    assert result.listed == 2  # listing started at the window: older keys are not even listed


def test_listing_never_reaches_back_to_forgotten_keys(make_runtime, s3, bucket, redis_client, keys):
    put(s3, bucket, log_key(0))
    put(s3, bucket, log_key(30))
    runtime = make_runtime(bucket, settings={"state_retention": "3H"})
    run(runtime, now=T0 + timedelta(minutes=40))
    redis_client.delete(keys.object("test-src", log_key(0)))  # its record expired: forgotten
    # Three hours on, with no newer file, the lookback alone would list minute 0 again (it is
    # within 2h of minute 30) and ingest it twice; keys older than retention - margin are not listed.
    result, calls = run(runtime, now=T0 + timedelta(hours=3, minutes=5))
    assert calls.calls == [] and result.listed == 0
    # Control: earlier, inside the retention, the same lookback does list it (and re-claims it).
    result, calls = run(runtime, now=T0 + timedelta(minutes=50))
    assert result.listed == 2 and calls.keys == [log_key(0)]


def test_organization_trail_partitions_each_file_once(make_runtime, s3, bucket):
    org = "AWSLogs/o-exampleorg1/"
    accounts = ("111111111111", "222222222222", "333333333333")
    regions = ("us-east-1", "eu-west-1", "ap-southeast-2")
    keys = [log_key(m, region, account, suffix=f"{i:016d}", base=org)
            for account in accounts for region in regions for i, m in enumerate((0, 5, 10))]
    for key in keys:
        put(s3, bucket, key)
    runtime = make_runtime(bucket, directory_prefix="/")
    result, calls = run(runtime)
    assert result.partitions == 9
    assert Counter(calls.keys) == Counter(keys)  # every file, once
    assert len(runtime.state.markers("test-src")) == 9
    new_key = log_key(20, "eu-west-1", "222222222222", base=org)
    put(s3, bucket, new_key)
    again, calls = run(runtime)
    assert calls.keys == [new_key]
    assert again.list_requests == 9  # one LIST per partition (partitions cached)


def test_prefix_change_clears_marker(make_runtime, s3, bucket):
    put(s3, bucket, log_key(1, "us-east-1"))
    put(s3, bucket, log_key(2, "eu-west-1"))
    east = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/"
    runtime = make_runtime(bucket, directory_prefix=east)
    _, calls = run(runtime)
    assert calls.keys == [log_key(1, "us-east-1")]
    assert runtime.state.markers("test-src") == {east: log_key(1, "us-east-1")}

    moved = make_runtime(bucket, directory_prefix="AWSLogs/")  # same source, new prefix
    result, calls = run(moved)
    assert result.markers_cleared
    assert calls.keys == [log_key(2, "eu-west-1")]  # us-east-1's file was claimed already: not twice
    assert moved.state.marker_prefix("test-src") == "AWSLogs/"
    assert set(moved.state.markers("test-src")) == {east, f"AWSLogs/{ACCOUNT}/CloudTrail/eu-west-1/"}


def test_plain_prefix_without_cloudtrail_layout(make_runtime, s3, bucket):
    keys = [f"exports/{n:05d}.json.gz" for n in range(1005)]  # more than one 1000-key page
    for key in keys:
        put(s3, bucket, key)
    runtime = make_runtime(bucket, directory_prefix="exports/")
    result, calls = run(runtime)
    assert calls.keys == keys and result.listed == 1005
    assert runtime.state.markers("test-src") == {"exports/": keys[-1]}
    put(s3, bucket, "exports/00000-late.json.gz")  # no delivery time in the name: last-key rule
    again, calls = run(runtime)
    assert calls.calls == [] and again.listed == 0


def test_second_discovery_skips_while_lease_held(make_runtime, s3, bucket):
    put(s3, bucket, log_key(1))
    runtime = make_runtime(bucket)
    token = runtime.state.acquire_lease("test-src", 60_000)
    result, calls = run(runtime)
    assert not result.ran and calls.calls == []
    runtime.state.release_lease("test-src", token)
    result, calls = run(runtime)
    assert result.ran and calls.keys == [log_key(1)]


def test_concurrent_discoveries_enqueue_each_file_once(make_runtime, s3, bucket):
    keys = [log_key(m, suffix=f"{m:016d}") for m in range(60)]
    recorder = Recorder()
    runtimes = [make_runtime(bucket) for _ in range(3)]
    errors = []

    def loop(runtime):
        try:
            for _ in range(15):
                run(runtime, recorder)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(rt,)) for rt in runtimes]
    for thread in threads:
        thread.start()
    for key in keys:  # files keep landing while three discoverers race
        put(s3, bucket, key)
    for thread in threads:
        thread.join()
    run(runtimes[0], recorder)
    assert not errors
    assert Counter(recorder.keys) == Counter(keys)


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
    assert runtime.state.markers("test-src") == {}  # the marker did not move past the claims
    _, calls = run(runtime)
    assert calls.calls == []  # both are claimed, recently: not yet re-enqueued
    redis_client.zadd(keys.pending("test-src"), {log_key(1): 0, log_key(2): 0})  # ...as if later
    result, calls = run(runtime)
    assert sorted(calls.keys) == [log_key(1), log_key(2)] and result.requeued == 2
