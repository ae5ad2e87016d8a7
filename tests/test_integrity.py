"""Digests followed by discovery and reconciled with object state (real moto S3, real Redis):
each kind of tampering is named; a file behind the listing window is found through its digest."""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from conftest import stream_events
from support.cloudtrail_digests import Trail, write_public_keys

from pipeline import digests as dg
from pipeline import integrity
from pipeline.discovery import discover
from pipeline.ingest import ingest_object

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
SRC = "test-src"


class Recorder(list):
    def __call__(self, source_id: str, key: str) -> None:
        self.append(key)


@pytest.fixture
def keys_dir(tmp_path):
    directory = tmp_path / "public-keys"
    directory.mkdir()
    write_public_keys(directory, 0)  # CloudTrail's key; key pair 1 is a forger's
    return directory


@pytest.fixture
def runtime(make_runtime, bucket, keys_dir):
    return make_runtime(bucket, integrity={"enabled": True, "public_keys_dir": str(keys_dir)})


def run_discovery(runtime, now: datetime):
    source = runtime.config.sources[0]
    enqueued = Recorder()
    result = discover(source, runtime.state, runtime.s3(source), enqueued, now=now)
    return result, enqueued


def ingest_all(runtime, keys) -> None:
    source = runtime.config.sources[0]
    for key in keys:
        assert ingest_object(source, key, runtime.state, runtime.s3(source), runtime.limits).outcome == "done"


def deliver_hours(trail: Trail, hours: int, start: int = 0) -> tuple[list[str], list[str]]:
    """Two log files per hour and the hour's digest listing them: (log keys, digest keys)."""
    logs, digests = [], []
    for hour in range(start, start + hours):
        files = [trail.put_log(T0 + timedelta(hours=hour, minutes=m), f"h{hour:02d}m{m:02d}aaaaaaaaaa")
                 for m in (10, 40)]
        logs += [key for key, _ in files]
        digests.append(trail.deliver_digest(T0 + timedelta(hours=hour + 1), files))
    return logs, digests


def violations(runtime) -> list[tuple[str, str]]:
    return sorted((v["kind"], v["key"]) for v in runtime.state.violations(SRC))


def cycle(runtime, now: datetime):
    """One discovery, its enqueued objects ingested, and the next discovery (which settles)."""
    first, enqueued = run_discovery(runtime, now)
    ingest_all(runtime, enqueued)
    second, again = run_discovery(runtime, now + timedelta(minutes=15))
    return first, enqueued, second, again


def test_intact_chain_verifies_and_reconciles(runtime, s3, bucket):
    trail = Trail(s3, bucket)
    logs, digest_keys = deliver_hours(trail, 3)
    first, enqueued, second, again = cycle(runtime, T0 + timedelta(hours=3, minutes=10))
    assert sorted(enqueued) == sorted(logs) and again == []  # the listing found them; nothing twice
    assert first.digests["digests_valid"] == 3 and first.digests.get("digests_invalid", 0) == 0
    assert first.digests["log_files_pending"] == 6  # claimed by the listing, not ingested yet
    assert second.digests["settled"] == 6 and second.digests["mismatches"] == 0
    assert violations(runtime) == []
    stats = runtime.state.stats(SRC)
    assert stats["digests_verified"] == 3 and not any(k.startswith("integrity_violations.") for k in stats)
    for key in logs:  # each object keeps its hash beside the digest's
        state = runtime.state.object_state(SRC, key)
        assert state["sha256"] == state["expected_sha256"]
    # Digests are never emitted as events: only the log files' 6 x 3 records are in the stream.
    assert len(stream_events(runtime.redis)) == 18
    # A new hour: only the new digest is handled.
    new_logs, _ = deliver_hours(trail, 1, start=3)
    third, enqueued = run_discovery(runtime, T0 + timedelta(hours=4, minutes=10))
    assert third.digests["digests_valid"] == 1 and sorted(enqueued) == sorted(new_logs)


def test_log_file_altered_before_ingestion_is_named(runtime, s3, bucket):
    trail = Trail(s3, bucket)
    logs, _ = deliver_hours(trail, 2)
    altered = logs[1]
    s3.put_object(Bucket=bucket, Key=altered, Body=b'{"Records":[{"eventVersion":"1.08","eventName":"Forged"}]}')
    # Altered after one hour was ingested: hashes compared at once when the digest comes later.
    ingest_all(runtime, [logs[0]])
    cycle(runtime, T0 + timedelta(hours=2, minutes=10))
    assert violations(runtime) == [(integrity.LOG_MISMATCH, altered)]
    assert runtime.state.stats(SRC)[f"integrity_violations.{integrity.LOG_MISMATCH}"] == 1


def test_deleted_digest_is_named(runtime, s3, bucket):
    trail = Trail(s3, bucket)
    _, digest_keys = deliver_hours(trail, 3)
    s3.delete_object(Bucket=bucket, Key=digest_keys[1])
    cycle(runtime, T0 + timedelta(hours=3, minutes=10))
    assert violations(runtime) == [(dg.MISSING, digest_keys[1])]


def test_forged_signature_is_named_and_its_listing_ignored(runtime, s3, bucket):
    trail = Trail(s3, bucket)
    deliver_hours(trail, 1)
    cycle(runtime, T0 + timedelta(hours=1, minutes=10))
    planted = trail.put_log(T0 - timedelta(hours=20), "plantedplantedpl")  # far outside the window
    forged = trail.deliver_digest(T0 + timedelta(hours=2), [planted], sign_with=1)
    first, enqueued, _, _ = cycle(runtime, T0 + timedelta(hours=2, minutes=10))
    assert (dg.SIGNATURE, forged) in violations(runtime)
    assert planted[0] not in enqueued  # a listing CloudTrail did not sign is not acted on
    assert first.digests["digests_invalid"] == 1


def test_digest_moved_to_another_key_is_named(runtime, s3, bucket):
    trail = Trail(s3, bucket)
    _, digest_keys = deliver_hours(trail, 3)
    moved = trail.digest_key(T0 + timedelta(hours=2, minutes=30))
    s3.copy_object(Bucket=bucket, Key=moved, CopySource={"Bucket": bucket, "Key": digest_keys[1]},
                   MetadataDirective="COPY")
    s3.delete_object(Bucket=bucket, Key=digest_keys[1])
    cycle(runtime, T0 + timedelta(hours=3, minutes=10))
    named = violations(runtime)
    assert (dg.MOVED, moved) in named
    assert (dg.MISSING, digest_keys[1]) in named  # the next digest still names it where it was


def test_broken_previous_hash_link_is_named(runtime, s3, bucket):
    trail = Trail(s3, bucket)
    deliver_hours(trail, 2)
    logs = [trail.put_log(T0 + timedelta(hours=2, minutes=20), "hour2aaaaaaaaaaa")]
    # Validly signed, but the hash it records for the previous digest is not that digest's.
    broken = trail.deliver_digest(T0 + timedelta(hours=3), logs, override={"previousDigestHashValue": "0" * 64})
    cycle(runtime, T0 + timedelta(hours=3, minutes=10))
    assert violations(runtime) == [(dg.CHAIN, broken)]


def test_unknown_public_key_and_gap(runtime, s3, bucket, keys_dir):
    trail = Trail(s3, bucket)
    deliver_hours(trail, 1)
    gap = trail.deliver_digest(T0 + timedelta(hours=3), [], link=False)  # logging was off: not a problem
    other = Trail(s3, bucket, name="second-trail", key=2)  # signed by a key we do not have
    unknown = other.deliver_digest(T0 + timedelta(hours=3), [])
    run_discovery(runtime, T0 + timedelta(hours=3, minutes=10))
    assert violations(runtime) == [(dg.INVALID, unknown)]
    assert gap not in {key for _, key in violations(runtime)}


def test_file_landing_five_hours_behind_is_found_through_the_next_digest(runtime, s3, bucket, redis_client):
    trail = Trail(s3, bucket)
    logs, _ = deliver_hours(trail, 7)
    now = T0 + timedelta(hours=7, minutes=10)
    _, enqueued, _, _ = cycle(runtime, now)
    assert sorted(enqueued) == sorted(logs)
    newest = max(logs)
    # A file lands late: named 5 hours behind the newest delivery, outside the 2 h listing window.
    late_key, late_raw = trail.put_log(T0 + timedelta(hours=1, minutes=50), "late0000late0000")
    assert late_key < newest
    more = [trail.put_log(T0 + timedelta(hours=7, minutes=20), "h07m20bbbbbbbbbb")]
    trail.deliver_digest(T0 + timedelta(hours=8), more + [(late_key, late_raw)])
    result, enqueued = run_discovery(runtime, T0 + timedelta(hours=8, minutes=10))
    assert Counter(enqueued) == Counter([more[0][0], late_key])  # the listing found only the new one
    assert result.digests["log_files_claimed"] == 1
    ingest_all(runtime, enqueued)
    again, enqueued = run_discovery(runtime, T0 + timedelta(hours=8, minutes=25))
    assert enqueued == []
    events = [e for e in stream_events(redis_client) if e["object"] == late_key.encode()]
    assert len(events) == 3  # ingested once
    assert violations(runtime) == []
    assert runtime.state.stats(SRC)["log_files_found_by_digest"] == 1


def test_digests_older_than_the_kept_state_are_not_reconciled(runtime, s3, bucket):
    trail = Trail(s3, bucket)
    logs, _ = deliver_hours(trail, 1)
    # Two days on (state_retention 1D): the listing no longer reaches them and neither does the digest.
    result, _ = run_discovery(runtime, T0 + timedelta(days=2))
    assert result.digests.get("digests_valid", 0) == 0 and result.digests.get("log_files_pending", 0) == 0
    control, _ = run_discovery(runtime, T0 + timedelta(hours=2))
    assert control.digests["digests_valid"] == 1  # inside the kept state it is


def test_organization_trail_regions_accounts_and_backfill(runtime, s3, bucket):
    base = "AWSLogs/o-abcdefghij/"
    trails = [Trail(s3, bucket, account=account, region=region, base=base)
              for account in ("111111111111", "222222222222") for region in ("us-east-1", "eu-west-1")]
    expected = []
    for trail in trails:
        logs, _ = deliver_hours(trail, 2)
        expected += logs
    backfill = trails[0]
    late = backfill.put_log(T0 + timedelta(minutes=30), "backfillbackfill")
    backfill.previous = None
    backfill_key = backfill.deliver_digest(T0 + timedelta(hours=2, minutes=1), [late], backfill=True)
    assert backfill_key.endswith("_backfill.json.gz")
    first, enqueued, second, again = cycle(runtime, T0 + timedelta(hours=2, minutes=30))
    assert Counter(enqueued) == Counter(expected + [late[0]])
    assert first.digests["digests_valid"] == 9 and violations(runtime) == []
    chains = runtime.state.chains(SRC)
    assert len(chains) == 5 and sum(c.endswith("|backfill") for c in chains) == 1


# ------------------------------------------------------------------------------- verify


def verify(runtime, keys_dir, since, until, now=None):
    source = runtime.config.sources[0]
    return integrity.verify_range(source, runtime.state, runtime.s3(source), dg.DirPublicKeys(str(keys_dir)),
                                  since, until, now=now).as_dict()


def test_verify_intact_range_then_each_problem(runtime, s3, bucket, keys_dir, redis_client):
    trail = Trail(s3, bucket)
    logs, digest_keys = deliver_hours(trail, 3)
    cycle(runtime, T0 + timedelta(hours=3, minutes=10))
    report = verify(runtime, keys_dir, T0, T0 + timedelta(hours=3), now=T0 + timedelta(hours=3, minutes=30))
    assert report["digests"] == {"valid": 3, "invalid": 0, "missing": 0}
    assert report["log_files"]["listed"] == 6 and report["log_files"]["ingested_intact"] == 6
    assert report["problems"] == [] and report["notes"] == []

    # An hour where: a listed file was never ingested, a listed one was dead-lettered, an ingested
    # one is listed by no digest; and an earlier digest is deleted.
    never, _ = trail.put_log(T0 + timedelta(hours=3, minutes=5), "neverneverneverx"), None
    bad_key = trail.log_key(T0 + timedelta(hours=3, minutes=6), "corruptcorruptco")
    s3.put_object(Bucket=bucket, Key=bad_key, Body=b"\x1f\x8bnot gzip")
    unlisted, _ = trail.put_log(T0 + timedelta(hours=3, minutes=7), "unlistedunlisted")
    trail.deliver_digest(T0 + timedelta(hours=4), [never, (bad_key, b"\x1f\x8bnot gzip")])
    source = runtime.config.sources[0]
    for key in (bad_key, unlisted):
        ingest_object(source, key, runtime.state, runtime.s3(source), runtime.limits)
    s3.delete_object(Bucket=bucket, Key=digest_keys[1])
    report = verify(runtime, keys_dir, T0, T0 + timedelta(hours=4), now=T0 + timedelta(hours=4, minutes=10))
    assert report["digests"] == {"valid": 3, "invalid": 0, "missing": 1}
    files = report["log_files"]
    # The deleted digest's two files are ingested but no longer listed: unlisted, like the third.
    assert (files["listed"], files["ingested_intact"], files["not_ingested"], files["dead_lettered"],
            files["unlisted"]) == (6, 4, 1, 1, 3)
    assert sorted((p["kind"], p["key"]) for p in report["problems"]) == sorted([
        (dg.MISSING, digest_keys[1]), (integrity.LOG_NOT_INGESTED, never[0]),
        (integrity.LOG_DEAD_LETTERED, bad_key), (integrity.LOG_UNLISTED, unlisted),
        (integrity.LOG_UNLISTED, logs[2]), (integrity.LOG_UNLISTED, logs[3])])


def test_verify_without_digests_proves_nothing(runtime, s3, bucket, keys_dir):
    trail = Trail(s3, bucket)
    trail.put_log(T0 + timedelta(minutes=5), "nodigestnodigest")  # a trail without validation
    run_discovery(runtime, T0 + timedelta(hours=1))
    report = verify(runtime, keys_dir, T0, T0 + timedelta(hours=1), now=T0 + timedelta(hours=1))
    assert [p["kind"] for p in report["problems"]] == [integrity.NO_DIGESTS]


def test_verify_names_a_mismatch_without_downloading_and_hashes_old_files(runtime, s3, bucket, keys_dir,
                                                                          redis_client, keys):
    trail = Trail(s3, bucket)
    logs, _ = deliver_hours(trail, 2)
    cycle(runtime, T0 + timedelta(hours=2, minutes=10))
    redis_client.hset(keys.object(SRC, logs[0]), "sha256", "f" * 64)  # as if ingested altered
    gets = []
    s3.meta.events.register("before-call.s3.GetObject", lambda params, **_: gets.append(params["Key"]))
    report = verify(runtime, keys_dir, T0, T0 + timedelta(hours=2), now=T0 + timedelta(hours=2, minutes=30))
    assert [(p["kind"], p["key"]) for p in report["problems"]] == [(integrity.LOG_MISMATCH, logs[0])]
    assert not set(gets) & set(logs)  # judged from the kept hashes: no log file downloaded
    # Beyond the kept state: downloaded and hashed, and the report says so.
    for key in logs:
        redis_client.delete(keys.object(SRC, key))
    s3.put_object(Bucket=bucket, Key=logs[3], Body=b'{"Records":[]}')  # altered in S3
    report = verify(runtime, keys_dir, T0, T0 + timedelta(hours=2), now=T0 + timedelta(days=3))
    assert report["log_files"]["hashed_from_s3"] == 4 and "downloaded" in report["notes"][0]
    assert [(p["kind"], p["key"]) for p in report["problems"]] == [(integrity.LOG_ALTERED_IN_S3, logs[3])]


# ------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_late_file_found_through_its_digest_by_worker_and_beat_alone(tmp_path, keys_dir, redis_server,
                                                                     redis_client, moto_endpoint, s3, bucket):
    """No command run: `celery beat` schedules discoveries, `celery worker` runs them and ingests."""
    from conftest import config_dict, source_dict, start_celery, stop_process, wait_for, write_config

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=8)
    trail = Trail(s3, bucket)
    logs = []
    for hour in range(7):
        files = [trail.put_log(start + timedelta(hours=hour, minutes=m), f"h{hour}m{m:02d}aaaaaaaaaaa")
                 for m in (20, 40)]
        logs += [key for key, _ in files]
        trail.deliver_digest(start + timedelta(hours=hour + 1), files)
    config_path = write_config(tmp_path / "trailpipe.yaml", config_dict(redis_server.url, [source_dict(
        bucket, moto_endpoint, identifier="e2e", recurrence="1M",
        integrity={"enabled": True, "public_keys_dir": str(keys_dir)})]))
    worker = start_celery(["worker", "--concurrency", "2", "--loglevel", "info", "--hostname", "wi@%h"],
                          config_path, tmp_path / "worker.log")
    beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "beat-schedule")],
                        config_path, tmp_path / "beat.log")
    stats_key = "trailpipe:src:e2e:stats"

    def stat(name):
        return int(redis_client.hget(stats_key, name) or 0)

    try:
        wait_for(lambda: stat("objects_done") == len(logs) and stat("digests_verified") == 7, timeout=120,
                 what="the first discovery's files and digests")
        # Lands 5 h 10 min behind the newest delivery (lookback 2 h): only its digest tells.
        late_key, late_raw = trail.put_log(start + timedelta(hours=1, minutes=30), "late0000late0000")
        assert late_key < max(logs)
        trail.deliver_digest(start + timedelta(hours=7, minutes=30), [(late_key, late_raw)])
        wait_for(lambda: stat("objects_done") == len(logs) + 1, timeout=150, what="the late file ingested")
        assert stat("log_files_found_by_digest") == 1
        discoveries = stat("discoveries")
        wait_for(lambda: stat("discoveries") > discoveries, timeout=90, what="one more discovery")
        assert stat("objects_enqueued") == len(logs) + 1  # found once, never again
        events = [e for e in stream_events(redis_client) if e["object"] == late_key.encode()]
        assert len(events) == 3  # its three records, once
        assert redis_client.xlen("trailpipe:src:e2e:violations") == 0
    finally:
        stop_process(beat)
        stop_process(worker)
    assert "Traceback" not in (tmp_path / "worker.log").read_text(errors="replace")


def test_digest_dated_in_the_future_cannot_hide_the_genuine_ones(runtime, s3, bucket):
    trail = Trail(s3, bucket)
    deliver_hours(trail, 1)
    run_discovery(runtime, T0 + timedelta(hours=1, minutes=10))
    planted = Trail(s3, bucket)  # same trail name and key folder, named 2099 and validly shaped
    planted.deliver_digest(datetime(2099, 1, 1, tzinfo=UTC), [], sign_with=1)
    result, _ = run_discovery(runtime, T0 + timedelta(hours=1, minutes=20))
    assert result.digests["digests_future"] == 1
    logs, digest_keys = deliver_hours(trail, 1, start=1)
    result, enqueued = run_discovery(runtime, T0 + timedelta(hours=2, minutes=10))
    assert result.digests["digests_valid"] == 1 and sorted(enqueued) == sorted(logs)
    assert violations(runtime) == []
