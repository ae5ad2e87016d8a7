"""pipeline.deadletter: a listed dead letter can always be retried; the stream is capped."""
from __future__ import annotations

import time
from datetime import timedelta

from support.stores import state_store

from pipeline import deadletter
from pipeline.settings import Settings
from pipeline.store import StateStore

SRC = "s1"


def failed_objects(state: StateStore, *names: str) -> None:
    for name in names:
        state.claim(SRC, name, 1)
        state.begin(SRC, name)
        assert state.fail(SRC, name, "NotJson", f"{name} is not json")


def test_a_letter_older_than_the_retention_is_still_retried(redis_client):
    state = state_store(redis_client, retention=timedelta(seconds=1))
    failed_objects(state, "old")
    time.sleep(2.2)  # older than state_retention: its object record used to expire here
    letters = deadletter.list_entries(state)
    assert [letter.key for letter in letters] == ["old"]
    assert set(letters[0].as_dict()) == {"id", "source", "object", "error_class", "message", "attempts",
                                         "failed_at"}
    enqueued = []
    retried = deadletter.retry(state, letters, lambda sid, key: enqueued.append((sid, key)), {SRC})
    assert [letter.key for letter in retried] == ["old"] and enqueued == [(SRC, "old")]
    assert state.object_state(SRC, "old")["state"] == "claimed" and state.pending_count(SRC) == 1
    assert deadletter.list_entries(state) == []


def test_the_stream_keeps_deadletter_maxlen_letters(redis_client):
    state = state_store(redis_client, retention=timedelta(seconds=60), deadletter_maxlen=3)
    failed_objects(state, *(f"k{n}" for n in range(10)))
    assert [letter.key for letter in deadletter.list_entries(state)] == ["k7", "k8", "k9"]
    assert state.stats(SRC)["objects_dead_lettered"] == 10
    assert state.stats(SRC)["objects_failed"] == 3  # the gauge: letters listed now
    # Every listed letter is retryable; the dropped ones' records are forgotten after the retention.
    assert all(redis_client.ttl(Settings.default().keys.object(SRC, f"k{n}")) == -1 for n in (7, 8, 9))
    assert all(0 < redis_client.ttl(Settings.default().keys.object(SRC, f"k{n}")) <= 60 for n in range(7))
