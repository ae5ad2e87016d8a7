"""The Lua scripts of pipeline.store against a real redis-server."""
from __future__ import annotations

from datetime import timedelta

import pytest
from support.stores import state_store

from pipeline.settings import Settings
from pipeline.store import now_ms
from pipeline.store.schema import Status

SRC = "s1"


@pytest.fixture
def state(redis_client):
    return state_store(redis_client, retention=timedelta(seconds=3600), requeue_after=timedelta(seconds=60))


def silence(redis_client, keys, key: str, ms: int) -> None:
    """``ms`` pass for ``key`` without a heartbeat of its runner (its last beat and its pending
    deadline move back by as much, as Redis's clock moving on would make them)."""
    redis_client.hincrby(keys.object(SRC, key), "heartbeat_at", -ms)
    redis_client.zincrby(keys.pending(SRC), -ms, key)


def entry(n: int) -> dict:
    return {"event": f'{{"n":{n}}}', "event_id": f"id-{n}", "source": SRC}


def test_lease_is_exclusive_and_tokens_grow(state):
    first = state.acquire_lease(SRC, 10_000)
    assert first > 0
    assert state.acquire_lease(SRC, 10_000) == 0
    assert not state.release_lease(SRC, first + 1)  # not ours: stays
    assert state.acquire_lease(SRC, 10_000) == 0
    assert state.release_lease(SRC, first)
    second = state.acquire_lease(SRC, 10_000)
    assert second > first


def test_marker_compare_and_set(state):
    token = state.acquire_lease(SRC, 10_000)
    assert state.markers(SRC) == {}
    assert state.advance_marker(SRC, token, "p/", "", "p/a")
    assert not state.advance_marker(SRC, token, "p/", "", "p/b")  # expected marker is stale
    assert state.advance_marker(SRC, token, "p/", "p/a", "p/b")
    assert state.advance_marker(SRC, token, "q/", "", "q/a")  # partitions are independent
    assert state.markers(SRC) == {"p/": "p/b", "q/": "q/a"}
    assert not state.advance_marker(SRC, token + 1, "p/", "p/b", "p/c")  # wrong fencing token
    state.release_lease(SRC, token)
    assert not state.advance_marker(SRC, token, "p/", "p/b", "p/c")  # lease gone


def test_prefix_change_clears_markers(state):
    token = state.acquire_lease(SRC, 10_000)
    assert not state.reset_markers(SRC, token, "old/")  # first prefix: nothing to clear
    assert state.advance_marker(SRC, token, "old/", "", "old/z")
    assert not state.reset_markers(SRC, token, "old/")
    assert state.markers(SRC) == {"old/": "old/z"}
    assert state.reset_markers(SRC, token, "new/")
    assert state.markers(SRC) == {} and state.marker_prefix(SRC) == "new/"
    assert state.reset_markers(SRC, token + 1, "x/") is False  # not the lease holder
    assert state.marker_prefix(SRC) == "new/"


def test_claim_once_and_sweep_stale_claims(state, redis_client, keys):
    assert state.claim(SRC, "k1", 1)
    assert not state.claim(SRC, "k1", 2)
    assert state.claim(SRC, "k2", 2)
    assert state.sweep_pending(SRC) == []  # claimed just now: not due
    redis_client.zadd(keys.pending(SRC), {"k1": 0})  # claimed long ago, never done
    assert state.sweep_pending(SRC) == ["k1"]
    assert state.sweep_pending(SRC) == []  # re-armed: once per interval, not at every sweep
    assert state.stats(SRC)["objects_enqueued"] == 2
    state.begin(SRC, "k2")
    state.commit_batch(SRC, "k2", 0, 0, [], last=True)
    assert state.pending_count(SRC) == 1  # done objects leave the pending set


def test_commit_batches_then_done(state, redis_client):
    state.claim(SRC, "k", 1)
    start = state.begin(SRC, "k")
    assert (start.state, start.checkpoint, start.attempts) == ("processing", 0, 1)
    assert state.commit_batch(SRC, "k", 0, 2, [entry(0), entry(1)], last=False) == (True, 2)
    assert state.commit_batch(SRC, "k", 2, 1, [entry(2)], last=True, sha256="ab" * 32) == (True, 3)
    assert redis_client.xlen("trailpipe:events") == 3
    obj = state.object_state(SRC, "k")
    assert obj["state"] == "done" and obj["checkpoint"] == "3" and obj["emitted"] == "3"
    assert obj["sha256"] == "ab" * 32  # kept with the object as it becomes done
    assert 0 < redis_client.ttl(Settings.default().keys.object(SRC, "k")) <= 3600
    assert state.stats(SRC)["objects_done"] == 1 and state.stats(SRC)["events_emitted"] == 3
    assert state.begin(SRC, "k").finished


def test_stale_commit_writes_nothing(state, redis_client):
    state.begin(SRC, "k")
    assert state.commit_batch(SRC, "k", 0, 1, [entry(0)], last=False) == (True, 1)
    # A second worker with the same object, still at checkpoint 0, must not emit again.
    assert state.commit_batch(SRC, "k", 0, 1, [entry(0)], last=False) == (False, 1)
    assert redis_client.xlen("trailpipe:events") == 1
    assert state.commit_batch(SRC, "k", 1, 0, [], last=True) == (True, 1)
    assert state.commit_batch(SRC, "k", 1, 1, [entry(1)], last=True) == (False, 1)  # done
    assert redis_client.xlen("trailpipe:events") == 1


@pytest.mark.parametrize("same_fields", [True, False], ids=["same-fields", "mixed-fields"])
def test_commit_writes_every_entry_byte_for_byte(state, redis_client, same_fields):
    """The batch travels as MessagePack: every value arrives as sent, whatever its
    bytes (NUL, invalid UTF-8, MessagePack's own markers, empty, large), with its own fields and
    in order, whether the entries share their field names or not."""
    values = [b"", b"\x00", b"\xff\xfe not utf-8", bytes(range(256)), b"\x92\xc4\x01x" * 3, "évènement ✓",
              b"x" * 70_000, '{"n":1}']
    entries: list[dict] = []
    for n, value in enumerate(values):
        fields = {"event": value, "event_id": f"id-{n}", "source": SRC}
        if not same_fields and n % 2:
            fields = {"event": value, "extra": str(n)}  # other fields, other count
        entries.append(fields)
    state.begin(SRC, "k")
    assert state.commit_batch(SRC, "k", 0, len(entries), entries, last=True) == (True, len(entries))
    written = [fields for _, fields in redis_client.xrange("trailpipe:events")]

    def as_bytes(value):
        return value if isinstance(value, bytes) else value.encode()
    assert written == [{as_bytes(name): as_bytes(value) for name, value in fields.items()} for fields in entries]
    assert [list(fields) for fields in written] == [[name.encode() for name in fields] for fields in entries]


@pytest.mark.parametrize("same_fields", [True, False], ids=["same-fields", "mixed-fields"])
def test_a_batch_larger_than_a_chunk_arrives_whole_and_in_order(state, redis_client, monkeypatch, same_fields):
    """Above COMMIT_CHUNK_BYTES the batch goes as several MessagePack arguments (Redis refuses
    one over its proto-max-bulk-len): still one script, every entry once, in order."""
    from pipeline import defaults
    from pipeline.store.objects import packed_rows

    monkeypatch.setattr(defaults, "COMMIT_CHUNK_BYTES", 4000)
    entries = [{"event": f'{{"n":{n}}}' + "x" * (n * 37 % 900), "event_id": f"id-{n}"} for n in range(101)]
    if not same_fields:
        entries[7] = {"event": "odd one", "other": "7"}
    assert len(packed_rows([tuple(entry.values()) for entry in entries])) > 5  # it is split
    state.begin(SRC, "k")
    assert state.commit_batch(SRC, "k", 0, len(entries), entries, last=True) == (True, len(entries))
    written = [fields for _, fields in redis_client.xrange("trailpipe:events")]
    assert written == [{name.encode(): value.encode() for name, value in entry.items()} for entry in entries]
    assert state.object_state(SRC, "k")["emitted"] == str(len(entries))


@pytest.mark.parametrize("value", [None, 7, 1.5, True, {"a": "b"}])
def test_a_value_that_is_not_text_is_refused_before_anything_is_written(state, redis_client, value):
    state.begin(SRC, "k")
    entries = [entry(0), {**entry(1), "event_id": value}]
    with pytest.raises(TypeError, match="str or bytes"):
        state.commit_batch(SRC, "k", 0, 2, entries, last=False)
    assert redis_client.xlen("trailpipe:events") == 0
    assert state.object_state(SRC, "k")["checkpoint"] == "0"


def test_commit_needs_begin(state, redis_client):
    assert state.commit_batch(SRC, "never-begun", 0, 1, [entry(0)], last=True) == (False, -1)
    assert redis_client.xlen("trailpipe:events") == 0


def test_resume_from_checkpoint_after_crash(state):
    state.begin(SRC, "k")
    state.commit_batch(SRC, "k", 0, 5, [entry(i) for i in range(5)], last=False)
    again = state.begin(SRC, "k")  # the task is redelivered
    assert again.checkpoint == 5 and again.attempts == 2


def test_excluded_records_move_checkpoint_without_events(state, redis_client):
    state.begin(SRC, "k")
    assert state.commit_batch(SRC, "k", 0, 3, [entry(0)], last=True) == (True, 3)
    assert redis_client.xlen("trailpipe:events") == 1
    assert state.object_state(SRC, "k")["emitted"] == "1"


def test_fail_dead_letters_once(state, redis_client):
    state.claim(SRC, "bad", 1)
    state.begin(SRC, "bad")
    assert state.fail(SRC, "bad", "CorruptGzip", "corrupt gzip: invalid header")
    assert not state.fail(SRC, "bad", "CorruptGzip", "again")
    entries = redis_client.xrange("trailpipe:deadletter")
    assert len(entries) == 1
    fields = {k.decode(): v.decode() for k, v in entries[0][1].items()}
    assert fields["source"] == SRC and fields["object"] == "bad"
    assert fields["error_class"] == "CorruptGzip" and fields["message"] == "corrupt gzip: invalid header"
    assert fields["attempts"] == "1"
    assert state.object_state(SRC, "bad")["state"] == "failed"
    assert state.stats(SRC)["objects_failed"] == 1
    assert not state.claim(SRC, "bad", 2)  # failed objects are not claimed again
    assert state.pending_count(SRC) == 0
    assert state.begin(SRC, "bad").finished


def test_scripts_survive_script_flush(state, redis_client):
    redis_client.script_flush()  # e.g. after a Redis restart without the script cache
    assert state.acquire_lease(SRC, 1000) > 0


def test_throttle_reserves_batches_in_a_queue(state):
    assert state.reserve_events(SRC, 100, 1000) == 0.0  # the first batch goes at once
    second = state.reserve_events(SRC, 100, 1000)  # ...and books the next 100 ms
    assert 0.08 <= second <= 0.1
    third = state.reserve_events(SRC, 100, 1000)
    assert 0.18 <= third <= 0.2  # queued behind the second, not racing it
    assert state.stats(SRC)["throttle_wait_ms"] >= 260
    assert state.reserve_events(SRC, 0, 1000) == 0.0


def test_redelivered_discovery_takes_over_its_own_lease(state):
    first = state.acquire_lease(SRC, 60_000, owner="task-1")
    assert state.acquire_lease(SRC, 60_000, owner="task-2") == 0  # another discovery: wait
    assert state.acquire_lease(SRC, 60_000) == 0
    again = state.acquire_lease(SRC, 60_000, owner="task-1")  # task-1 redelivered: its worker died
    assert again > first
    assert not state.advance_marker(SRC, first, "p/", "", "p/a")  # the dead execution is fenced off
    assert not state.renew_lease(SRC, first, 60_000)
    assert state.renew_lease(SRC, again, 60_000)
    assert state.advance_marker(SRC, again, "p/", "", "p/a")


def test_heartbeat_keeps_a_slow_object_from_the_sweep(redis_client, keys):
    state = state_store(redis_client, keys, requeue_after=timedelta(seconds=60), heartbeat_timeout=timedelta(seconds=10))
    state.claim(SRC, "slow", 1)
    state.claim(SRC, "dead", 1)
    state.begin(SRC, "slow", runner="r-slow")
    state.begin(SRC, "dead", runner="r-dead")
    # 11 s pass: the slow runner beats, the dead one does not.
    for key in ("slow", "dead"):
        silence(redis_client, keys, key, 11_000)
    assert state.heartbeat(SRC, "slow", "r-slow")
    assert state.sweep_pending(SRC) == ["dead"]  # only the silent runner's object
    assert state.object_state(SRC, "slow")["runner"] == "r-slow"
    # The redelivered task takes over; the dead runner's late beat is refused.
    taken = state.begin(SRC, "dead", runner="r-new")
    assert (taken.taken, taken.attempts, taken.silent, taken.lost) == (True, 2, 1, 0)
    assert not state.heartbeat(SRC, "dead", "r-dead")
    assert state.heartbeat(SRC, "dead", "r-new")


def test_one_heartbeat_round_beats_for_every_object_in_flight(redis_client, keys):
    """The process's heartbeat thread: one pipelined round for all its objects, the deferred
    counters with it; an object taken over by another runner is marked lost and left out."""
    state = state_store(redis_client, keys, requeue_after=timedelta(seconds=60), heartbeat_timeout=timedelta(seconds=10))
    for key in ("a", "b"):
        state.claim(SRC, key, 1)
        state.begin(SRC, key, runner=f"r-{key}")
        silence(redis_client, keys, key, 11_000)  # 11 s pass
    assert state.begin(SRC, "b", runner="r-other").taken  # b was presumed dead and taken over
    state.defer_count(SRC, "s3_requests.GetObject", 2)
    with state.heartbeats.watch((SRC, "a", "r-a")) as a, state.heartbeats.watch((SRC, "b", "r-b")) as b:
        assert state.heartbeats.in_flight == 2
        state.heartbeats.beat_now()
        assert not a.lost and b.lost and state.heartbeats.in_flight == 1
    assert state.heartbeats.in_flight == 0
    assert state.sweep_pending(SRC) == []  # a's deadline moved on; b's is its new runner's
    assert state.stats(SRC)["s3_requests.GetObject"] == 2  # written with the round


def test_release_sets_the_deadline_of_its_retry_and_terminal_objects_leave_pending(redis_client, keys):
    state = state_store(redis_client, keys, requeue_after=timedelta(seconds=60), heartbeat_timeout=timedelta(seconds=10))
    state.claim(SRC, "k", 1)
    state.begin(SRC, "k", runner="r")
    before = now_ms()
    assert state.release(SRC, "k", retry_in_seconds=300)
    deadline = redis_client.zscore(keys.pending(SRC), "k")
    assert before + 310_000 <= deadline <= now_ms() + 310_000  # the retry's time + the heartbeat timeout
    assert state.object_state(SRC, "k")["state"] == Status.CLAIMED
    redis_client.zadd(keys.pending(SRC), {"k": 0, "gone": 0})
    redis_client.hset(keys.object(SRC, "gone"), "state", Status.DONE.value)
    assert state.sweep_pending(SRC) == ["k"]
    assert redis_client.zscore(keys.pending(SRC), "gone") is None


def test_health_since_moves_only_when_the_state_changes(state):
    assert state.set_health(SRC, False, "SignatureDoesNotMatch", "SignatureDoesNotMatch: x; check the secret")
    first = state.health(SRC)
    assert first["state"] == "failing" and first["error_class"] == "SignatureDoesNotMatch"
    assert not state.set_health(SRC, False, "SignatureDoesNotMatch", "again")
    assert state.health(SRC)["since"] == first["since"]
    assert state.stats(SRC)["errors.SignatureDoesNotMatch"] == 2
    assert state.set_health(SRC, True)
    healthy = state.health(SRC)
    assert healthy["state"] == "ok" and "error_class" not in healthy and healthy["last_success"]


def test_denied_reads_make_the_source_failing_then_degraded_then_ok(state, redis_client, keys):
    day = timedelta(days=1)
    assert not state.note_read(SRC, "a")  # nothing denied: no write at all
    assert not redis_client.exists(keys.health(SRC))
    state.set_health(SRC, True)
    first = state.note_denied(SRC, "b", "AccessDenied", "AccessDenied: no; grant s3:GetObject", day)
    assert first.state == "failing" and not first.expired  # no read has worked since
    health = state.health(SRC)
    assert health["scope"] == "read" and health["error_class"] == "AccessDenied"
    assert state.set_health(SRC, True) is False  # a listing that works does not hide denied reads
    assert state.health(SRC)["state"] == "failing"
    assert state.note_read(SRC, "a")  # another object is read: degraded, with the count
    assert state.health(SRC)["state"] == "degraded" and state.denied_count(SRC) == 1
    since = state.health(SRC)["since"]
    again = state.note_denied(SRC, "c", "KMS.DisabledException", "KMS.DisabledException: x", day)
    assert again.state == "degraded" and state.denied_count(SRC) == 2 and state.health(SRC)["since"] == since
    redis_client.zadd(keys.denied(SRC), {"b": 1})  # first denied long ago (Redis's clock)
    assert state.note_denied(SRC, "b", "AccessDenied", "AccessDenied: no", day).expired
    state.forget_denied(SRC, "b")  # dead-lettered: left
    assert state.denied_count(SRC) == 1 and state.health(SRC)["state"] == "degraded"  # reads still work
    assert state.note_read(SRC, "c")  # the last denied object reads again: ok
    health = state.health(SRC)
    assert health["state"] == "ok" and "error_class" not in health and "scope" not in health
    stats = state.stats(SRC)
    assert stats["errors.AccessDenied"] == 2 and stats["errors.KMS.DisabledException"] == 1


def test_a_configuration_error_outranks_denied_reads(state):
    state.note_denied(SRC, "b", "AccessDenied", "AccessDenied: no", timedelta(days=1))
    state.set_health(SRC, False, "SignatureDoesNotMatch", "SignatureDoesNotMatch: x")
    state.note_denied(SRC, "c", "AccessDenied", "AccessDenied: no", timedelta(days=1))
    assert state.health(SRC)["error_class"] == "SignatureDoesNotMatch"  # still the source's error
    state.set_health(SRC, True)  # fixed: the denied reads are what is left
    health = state.health(SRC)
    assert health["state"] == "failing" and health["error_class"] == "AccessDenied" and health["scope"] == "read"


def test_lua_scripts_spell_states_only_through_the_status_enum():
    from importlib import resources

    for script in resources.files("pipeline.store").joinpath("lua").iterdir():
        text = "\n".join(line.split("--", 1)[0] for line in script.read_text().splitlines())  # code only
        for status in Status:
            assert f"'{status.value}'" not in text, f"{script.name} spells {status.value!r}; use STATUS_{status.name}"


def test_throttle_uses_redis_time_not_the_worker_clock(state, monkeypatch):
    """A worker whose clock is 10 minutes ahead must not stall the others for 10 minutes."""
    import pipeline.store.base

    real = pipeline.store.base.now_ms
    monkeypatch.setattr(pipeline.store.base, "now_ms", lambda: real() + 600_000)  # the skewed worker
    assert state.reserve_events(SRC, 100, 1000) == 0.0
    monkeypatch.setattr(pipeline.store.base, "now_ms", lambda: real() - 600_000)  # one 10 minutes behind
    assert 0.05 <= state.reserve_events(SRC, 100, 1000) <= 0.1
    monkeypatch.setattr(pipeline.store.base, "now_ms", real)
    assert 0.15 <= state.reserve_events(SRC, 100, 1000) <= 0.2  # queued behind both, as with one clock


def test_failed_object_lives_as_long_as_its_dead_letter(redis_client):
    state = state_store(redis_client, retention=timedelta(seconds=1), deadletter_maxlen=2)
    for key in ("a", "b"):
        state.claim(SRC, key, 1)
        state.begin(SRC, key)
        assert state.fail(SRC, key, "NotJson", "not json")
    import time

    time.sleep(2.2)  # twice the retention: a done object would be forgotten by now
    assert {state.object_state(SRC, k)["state"] for k in ("a", "b")} == {"failed"}
    assert redis_client.ttl(Settings.default().keys.object(SRC, "a")) == -1

    # The stream is full (maxlen 2): the oldest letter goes, and its object is forgotten later.
    state.claim(SRC, "c", 1)
    state.begin(SRC, "c")
    assert state.fail(SRC, "c", "NotJson", "not json")
    letters = [fields[b"object"] for _, fields in redis_client.xrange("trailpipe:deadletter")]
    assert letters == [b"b", b"c"]
    assert 0 < redis_client.ttl(Settings.default().keys.object(SRC, "a")) <= 1
    assert redis_client.ttl(Settings.default().keys.object(SRC, "b")) == -1 and redis_client.ttl(Settings.default().keys.object(SRC, "c")) == -1


def test_a_runner_presumed_dead_cannot_release_its_successor_s_object(redis_client, keys):
    state = state_store(redis_client, keys, requeue_after=timedelta(seconds=60), heartbeat_timeout=timedelta(seconds=10))
    state.claim(SRC, "k", 1)
    state.begin(SRC, "k", runner="old")
    assert not state.begin(SRC, "k", runner="new").taken  # old beats: a duplicate is refused
    silence(redis_client, keys, "k", 11_000)
    assert state.begin(SRC, "k", runner="new").taken  # old went silent: the sweep's re-enqueue took over
    assert not state.release(SRC, "k", retry_in_seconds=5, runner="old")
    assert state.object_state(SRC, "k")["state"] == Status.PROCESSING
    assert state.release(SRC, "k", retry_in_seconds=5, runner="new")
    assert state.object_state(SRC, "k")["state"] == Status.CLAIMED


def test_a_stale_runner_s_commit_is_refused_while_the_live_runner_s_lands(redis_client, keys):
    """A runner presumed dead (frozen past the heartbeat timeout) wakes up after the takeover: its
    commit, heartbeat, release and fail are refused and write nothing; the live runner is never
    refused because of it."""
    state = state_store(redis_client, keys, requeue_after=timedelta(seconds=60), heartbeat_timeout=timedelta(seconds=10))
    state.claim(SRC, "k", 1)
    assert state.begin(SRC, "k", runner="stale").taken
    assert state.commit_batch(SRC, "k", 0, 2, [entry(0), entry(1)], last=False, runner="stale") == (True, 2)
    silence(redis_client, keys, "k", 10_001)  # frozen for the heartbeat timeout
    live = state.begin(SRC, "k", runner="live")
    assert (live.taken, live.checkpoint, live.silent) == (True, 2, 1)
    # The stale runner resumes within milliseconds of the takeover, with the checkpoint it knew.
    assert state.commit_batch(SRC, "k", 2, 2, [entry(2), entry(3)], last=False, runner="stale") == (False, 2)
    assert not state.heartbeat(SRC, "k", "stale")
    assert not state.release(SRC, "k", retry_in_seconds=5, runner="stale")
    assert not state.fail(SRC, "k", "NotJson", "stale", runner="stale")
    assert redis_client.xlen("trailpipe:events") == 2 and redis_client.xlen("trailpipe:deadletter") == 0
    # The live runner's commits land, from the checkpoint it was given.
    assert state.commit_batch(SRC, "k", 2, 2, [entry(2), entry(3)], last=False, runner="live") == (True, 4)
    assert state.heartbeat(SRC, "k", "live")
    assert state.commit_batch(SRC, "k", 4, 1, [entry(4)], last=True, runner="live") == (True, 5)
    ids = [fields[b"event_id"] for _, fields in redis_client.xrange("trailpipe:events")]
    assert ids == [f"id-{n}".encode() for n in range(5)]
    assert state.object_state(SRC, "k")["state"] == "done" and state.pending_count(SRC) == 0


def test_a_live_runner_is_never_taken_over(redis_client, keys):
    """A duplicate delivery (a sweep by a process whose clock is ahead, a broker redelivery) while
    the runner beats is refused: nothing written, not counted."""
    state = state_store(redis_client, keys, requeue_after=timedelta(seconds=60), heartbeat_timeout=timedelta(seconds=10))
    state.claim(SRC, "k", 1)
    assert state.begin(SRC, "k", runner="live").taken
    silence(redis_client, keys, "k", 9_000)  # 9 s since its last beat: within the timeout
    before = state.object_state(SRC, "k")
    refused = state.begin(SRC, "k", runner="dup")
    assert (refused.taken, refused.holder, refused.attempts, refused.vanished) == (False, "live", 1, 0)
    assert state.object_state(SRC, "k") == before  # nothing written
    assert state.heartbeat(SRC, "k", "live")


def test_deadlines_are_on_redis_s_clock_whatever_the_worker_s(redis_client, keys, monkeypatch):
    """A process whose clock is 10 minutes ahead (or behind) claims, begins, beats and sweeps:
    every deadline is Redis's TIME + the timeout, and nothing live is overdue."""
    import time

    state = state_store(redis_client, keys, requeue_after=timedelta(seconds=60), heartbeat_timeout=timedelta(seconds=10))

    def redis_ms() -> int:
        seconds, micros = redis_client.time()
        return seconds * 1000 + micros // 1000

    real = time.time
    for skew in (600.0, -600.0):
        monkeypatch.setattr(time, "time", lambda skew=skew: real() + skew)
        monkeypatch.setattr(time, "time_ns", lambda skew=skew: int((real() + skew) * 1e9))
        key = f"k{skew}"
        before = redis_ms()
        assert state.claim(SRC, key, 1)
        assert before + 60_000 <= redis_client.zscore(keys.pending(SRC), key) <= redis_ms() + 60_000
        assert state.begin(SRC, key, runner="r").taken
        assert state.heartbeat(SRC, key, "r")
        beat = int(state.object_state(SRC, key)["heartbeat_at"])
        assert before <= beat <= redis_ms()
        assert before + 10_000 <= redis_client.zscore(keys.pending(SRC), key) <= redis_ms() + 10_000
        assert state.sweep_pending(SRC) == []  # nothing live is overdue
        assert not state.begin(SRC, key, runner="other").taken
        assert state.fail(SRC, key, "NotJson", "x", runner="r")
        failed_at = int(state.object_state(SRC, key)["failed_at"])
        assert before <= failed_at <= redis_ms()
