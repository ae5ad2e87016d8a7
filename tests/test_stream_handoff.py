"""The stream as a safe hand-off: consumer groups hold emission back (backpressure on what the
slowest group has not acknowledged) and trimming never drops an entry a group still needs.
Real redis-server, real moto S3, the ingest path as a worker runs it."""
from __future__ import annotations

import gzip
import json
import re
import threading
import time

import pytest
from conftest import REPO, wait_for

from pipeline.ingest import ingest_object

STREAM = "trailpipe:events"


def body(records: list[dict]) -> bytes:
    return gzip.compress(json.dumps({"Records": records}).encode())


def record(n: int, tag: str = "id") -> dict:
    return {"eventVersion": "1.08", "eventID": f"{tag}-{n}", "eventName": "GetObject",
            "eventTime": "2024-07-31T00:00:00Z", "awsRegion": "us-east-1", "recipientAccountId": "123456789012"}


def key(n: int) -> str:
    return f"AWSLogs/123456789012/CloudTrail/us-east-1/2024/07/31/123456789012_CloudTrail_us-east-1_20240731T00{n:02d}Z_x.json.gz"


def ingest_in_thread(runtime, object_key: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    source = runtime.config.sources[0]

    def run():
        outcome["result"] = ingest_object(source, object_key, runtime.state, runtime.s3(source), runtime.limits)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_group_that_falls_behind_holds_emission_back(make_runtime, s3, bucket, redis_client):
    s3.put_object(Bucket=bucket, Key=key(1), Body=body([record(n) for n in range(30)]))
    runtime = make_runtime(bucket, settings={"batch_size": 10, "stream_high_watermark": 15})
    for n in range(20):
        redis_client.xadd(STREAM, {"event_id": f"old-{n}"})
    redis_client.xgroup_create(STREAM, "fast", id="$")  # has seen everything so far
    redis_client.xgroup_create(STREAM, "slow", id="0")  # has 20 entries to go
    assert runtime.state.stream_backlog() == 20
    thread, outcome = ingest_in_thread(runtime, key(1))
    time.sleep(1.5)
    assert thread.is_alive() and redis_client.xlen(STREAM) == 20  # held back by "slow"
    # Read but not acknowledged is still not handed off: 10 pending + 10 undelivered.
    read = redis_client.xreadgroup("slow", "c1", {STREAM: ">"}, count=10)[0][1]
    assert runtime.state.stream_backlog() == 20
    time.sleep(1.0)
    assert redis_client.xlen(STREAM) == 20
    redis_client.xack(STREAM, "slow", *[entry_id for entry_id, _ in read])  # 10 left: under 15
    wait_for(lambda: redis_client.xlen(STREAM) >= 30, 10, what="a batch emitted once 'slow' caught up")
    assert thread.is_alive()  # 20 again: waits for "slow" again

    def drain(group: str) -> None:
        while reply := redis_client.xreadgroup(group, "c1", {STREAM: ">"}, count=100):
            redis_client.xack(STREAM, group, *[entry_id for entry_id, _ in reply[0][1]])

    while thread.is_alive():  # both groups keep up now ("fast" too: it is a group like any other)
        drain("slow"), drain("fast")
        time.sleep(0.1)
    assert outcome["result"].outcome == "done"
    # Fully acknowledged, the stream (50 entries, over 15) no longer holds emission back.
    drain("slow"), drain("fast")
    assert redis_client.xlen(STREAM) == 50 and runtime.state.stream_backlog() == 0
    s3.put_object(Bucket=bucket, Key=key(2), Body=body([record(n, "new") for n in range(5)]))
    started = time.monotonic()
    thread, outcome = ingest_in_thread(runtime, key(2))
    thread.join(timeout=10)
    assert outcome["result"].outcome == "done" and time.monotonic() - started < 5


def test_backlog_without_a_lag_is_counted_from_the_last_delivered_id(make_runtime, bucket, redis_client):
    runtime = make_runtime(bucket)
    ids = [redis_client.xadd(STREAM, {"n": n}) for n in range(50)]
    redis_client.xgroup_create(STREAM, "g", id=ids[19])  # an arbitrary position: the server may not know its lag
    redis_client.xdel(STREAM, ids[30])  # a deleted entry after it: the server cannot count the lag
    (group,) = redis_client.xinfo_groups(STREAM)
    assert group.get("lag") is None
    assert runtime.state.stream_backlog() == 29  # entries 20..49 but the deleted one
    assert runtime.state.stream_backlog(limit=10) == 11  # counted only far enough to tell


def test_trimming_never_drops_an_unacknowledged_entry(make_runtime, s3, bucket, redis_client):
    runtime = make_runtime(bucket, settings={"stream_maxlen": 100, "batch_size": 100})
    assert runtime.state.acked_trim() is False  # this server has no ACKED: the MINID bound is used
    redis_client.xgroup_create(STREAM, "siem", id="0", mkstream=True)
    source = runtime.config.sources[0]
    s3.put_object(Bucket=bucket, Key=key(1), Body=body([record(n) for n in range(1000)]))
    assert ingest_object(source, key(1), runtime.state, runtime.s3(source), runtime.limits).outcome == "done"
    assert redis_client.xlen(STREAM) == 1000  # nothing delivered yet: everything is still needed

    read = redis_client.xreadgroup("siem", "c1", {STREAM: ">"}, count=700)[0][1]
    redis_client.xack(STREAM, "siem", *[entry_id for entry_id, _ in read[:500]])  # 500..699 pending
    s3.put_object(Bucket=bucket, Key=key(2), Body=body([record(n, "b") for n in range(300)]))
    assert ingest_object(source, key(2), runtime.state, runtime.s3(source), runtime.limits).outcome == "done"
    kept = redis_client.xrange(STREAM)
    kept_ids = [fields[b"event_id"] for _, fields in kept]
    oldest_pending = read[500][0]
    assert kept[0][0] <= oldest_pending  # the oldest unacknowledged entry and all after it are there
    assert kept_ids[-800:] == [f"id-{n}".encode() for n in range(500, 1000)] + [f"b-{n}".encode() for n in range(300)]
    assert len(kept) < 1300  # and the acknowledged ones were trimmed (whole nodes: approximately)

    # A second group that has seen nothing pins everything from its position on.
    redis_client.xgroup_create(STREAM, "late", id="0")
    before = redis_client.xlen(STREAM)
    s3.put_object(Bucket=bucket, Key=key(3), Body=body([record(n, "c") for n in range(300)]))
    assert ingest_object(source, key(3), runtime.state, runtime.s3(source), runtime.limits).outcome == "done"
    assert redis_client.xlen(STREAM) == before + 300


def _readme_consumer():
    """The consumer shown in the README, exactly as written there."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    code = re.search(r"<!-- consumer -->\n```python\n(.*?)```", text, re.DOTALL)
    assert code, "the README's consumer block is missing"
    namespace: dict = {}
    exec(compile(code.group(1), "README.md consumer", "exec"), namespace)  # noqa: S102  (our own README)
    return namespace["consume"]


def test_readme_consumer_against_the_pipeline(make_runtime, s3, bucket, redis_client):
    consume = _readme_consumer()
    runtime = make_runtime(bucket, settings={"batch_size": 50, "stream_high_watermark": 120, "stream_maxlen": 100})
    source = runtime.config.sources[0]
    expected = set()
    for n in range(4):
        s3.put_object(Bucket=bucket, Key=key(n), Body=body([record(i, f"f{n}") for i in range(150)]))
        expected |= {f"f{n}-{i}".encode() for i in range(150)}
    # A consumer of the group reads 60 entries and dies without acknowledging them.
    redis_client.xgroup_create(STREAM, "siem", id="0", mkstream=True)
    s3.put_object(Bucket=bucket, Key=key(9), Body=body([record(i, "first") for i in range(60)]))
    assert ingest_object(source, key(9), runtime.state, runtime.s3(source), runtime.limits).outcome == "done"
    expected |= {f"first-{i}".encode() for i in range(60)}
    redis_client.xreadgroup("siem", "dead", {STREAM: ">"}, count=60)

    handled: list[bytes] = []
    stop = threading.Event()
    consumer = threading.Thread(target=consume, daemon=True, kwargs=dict(
        client=redis_client, handle=lambda fields: handled.append(fields[b"event_id"]), consumer="siem-1",
        claim_idle_ms=500, stop=stop.is_set))
    consumer.start()
    threads = [ingest_in_thread(runtime, key(n)) for n in range(4)]
    for thread, _ in threads:
        thread.join(timeout=60)
    assert all(outcome["result"].outcome == "done" for _, outcome in threads)
    wait_for(lambda: set(handled) == expected, 30, what="every event handled by the README's consumer")
    stop.set()
    consumer.join(timeout=10)
    assert sorted(handled) == sorted(expected)  # each once: the dead consumer's 60 taken over, none lost
    assert runtime.state.stream_backlog() == 0


@pytest.mark.parametrize("reply,found", [
    ({b"xtrim": {b"arguments": [{b"name": b"condition"}, {b"token": b"ACKED"}]}}, True),
    ({b"xtrim": {b"arguments": [{b"name": b"strategy", b"token": b"MINID"}]}}, False),
    (None, False),
])
def test_acked_support_is_read_from_the_command_docs(reply, found):
    from pipeline.store.base import _mentions

    assert _mentions(reply, b"acked") is found
