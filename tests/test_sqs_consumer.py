"""The notification consumer against moto's server (S3 -> SQS, SNS, EventBridge as it sends
them), a real redis-server, and, end to end, real Celery worker and beat processes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import boto3
import orjson
import psutil
import pytest
from conftest import (
    REPO,
    TEST_KEY_ID,
    TEST_SECRET,
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
from test_discovery import Recorder, log_key

from pipeline.discovery import sweep
from pipeline.redis_server import RedisServer
from pipeline.sqs_consumer import VisibilityKeeper, consume, queue_owners, queue_sources

_queue_counter = iter(range(1, 1_000_000))


@pytest.fixture
def aws(moto_endpoint):
    def client(service):
        return boto3.client(service, endpoint_url=moto_endpoint, region_name="us-east-1",
                            aws_access_key_id=TEST_KEY_ID, aws_secret_access_key=TEST_SECRET)
    return client


@pytest.fixture
def sqs(aws):
    return aws("sqs")


@pytest.fixture
def make_queue(sqs):
    def make(visibility: int = 30, **attributes) -> tuple[str, str]:
        name = f"notes-{os.getpid()}-{next(_queue_counter)}"
        url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility),
                                                           **attributes})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn
    return make


def notify_queue(s3, bucket: str, arn: str) -> None:
    """S3 -> SQS for every created object (moto, like S3, also sends an s3:TestEvent now)."""
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})


def queue_depth(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def sqs_settings(url: str, endpoint: str) -> dict:
    return {"queue_url": url, "endpoint_url": endpoint}


def run(runtime, enqueue, seconds: float = 2.0):
    source = runtime.config.sources[0]
    return consume(source, queue_sources(runtime.config, source), runtime.state, runtime.sqs(source), enqueue,
                   run_seconds=seconds, wait_seconds=1)


def notification_stats(runtime) -> dict[str, int]:
    return {k: v for k, v in runtime.state.stats("test-src").items() if k.startswith("notifications.")}


def test_s3_notifications_are_claimed_enqueued_then_deleted(make_runtime, s3, sqs, bucket, make_queue,
                                                            moto_endpoint):
    url, arn = make_queue()
    notify_queue(s3, bucket, arn)
    prefix = "team a+b/AWSLogs/"  # moto URL-encodes keys as S3 does: "+" arrives as %2B, " " as "+"
    logs = [log_key(n, base=prefix) for n in range(3)]
    for key in logs:
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    s3.put_object(Bucket=bucket, Key=f"{prefix}111122223333/CloudTrail-Digest/us-east-1/d.json.gz", Body=b"{}")
    s3.put_object(Bucket=bucket, Key=f"{prefix}111122223333/CloudTrail/us-east-1/notes.txt", Body=b"x")
    s3.put_object(Bucket=bucket, Key="elsewhere/x.json.gz", Body=b"{}")  # outside the prefix
    runtime = make_runtime(bucket, directory_prefix=prefix, sqs=sqs_settings(url, moto_endpoint))
    recorder = Recorder()
    result = run(runtime, recorder)
    assert recorder.keys == logs and {sid for sid, _ in recorder.calls} == {"test-src"}
    assert result.received == 7 and result.deleted == 7 and result.errors == 0
    assert queue_depth(sqs, url) == 0
    stats = notification_stats(runtime)
    assert stats == {"notifications.received.test": 1, "notifications.received.s3": 6,
                     "notifications.ignored.test": 1, "notifications.ignored.filtered": 3,
                     "notifications.enqueued": 3, "notifications.deleted": 7}
    for key in logs:  # claimed as discovery claims, with the notification's send time
        state = runtime.state.object_state("test-src", key)
        assert state["state"] == "claimed" and int(state["notified_at"]) > 0
    # The reconciliation listing finds them claimed: nothing enqueued twice.
    from pipeline.discovery import discover
    listed = Recorder()
    discovery = discover(runtime.config.sources[0], runtime.state, runtime.s3(runtime.config.sources[0]), listed)
    assert discovery.listed == 4 and discovery.skipped == 1 and listed.calls == []


def test_duplicate_notification_and_listed_file_are_harmless(make_runtime, s3, sqs, bucket, make_queue,
                                                             moto_endpoint):
    url, arn = make_queue()
    runtime = make_runtime(bucket, sqs=sqs_settings(url, moto_endpoint))
    listed_first = log_key(1)
    s3.put_object(Bucket=bucket, Key=listed_first, Body=b"{}")  # before notifications: no message
    from pipeline.discovery import discover
    source = runtime.config.sources[0]
    discover(source, runtime.state, runtime.s3(source), Recorder())
    notify_queue(s3, bucket, arn)
    key = log_key(2)
    s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    body = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    for message in body["Messages"]:  # every message comes back now, plus a copy of each
        sqs.send_message(QueueUrl=url, MessageBody=message["Body"])
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    late = {"Records": [{"eventName": "ObjectCreated:Put",  # a notification of the listed file
                         "s3": {"bucket": {"name": bucket}, "object": {"key": listed_first, "size": 2}}}]}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(late))
    recorder = Recorder()
    result = run(runtime, recorder)
    assert recorder.keys == [key]
    assert result.ignored == {"test": 2, "duplicate": 2} and result.deleted == 5
    assert queue_depth(sqs, url) == 0


def test_garbage_test_events_and_removals_are_deleted_and_counted(make_runtime, s3, sqs, bucket, make_queue,
                                                                  moto_endpoint, redis_client):
    url, _ = make_queue()
    bodies = ["", "garbage", "{}", "[1]", '{"Records": "nope"}',
              json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket}),
              json.dumps({"Records": [{"eventName": "ObjectRemoved:Delete",
                                       "s3": {"bucket": {"name": bucket}, "object": {"key": log_key(3)}}}]})]
    for body in bodies:
        if body:
            sqs.send_message(QueueUrl=url, MessageBody=body)
    runtime = make_runtime(bucket, sqs=sqs_settings(url, moto_endpoint))
    recorder = Recorder()
    result = run(runtime, recorder)
    assert recorder.calls == [] and result.errors == 0
    assert result.kinds == {"unparseable": 4, "test": 1, "other": 1}
    assert result.ignored == {"unparseable": 4, "test": 1, "other": 1} and result.deleted == 6
    assert queue_depth(sqs, url) == 0
    assert redis_client.xlen("trailpipe:deadletter") == 0  # no object is dead-lettered for them
    assert runtime.state.stats("test-src").get("objects_failed", 0) == 0
    assert redis_client.get(runtime.keys.notify_error("test-src")) is None


def test_sns_wrapped_events_and_cloudtrail_notices(make_runtime, s3, sqs, aws, bucket, make_queue, moto_endpoint):
    url, arn = make_queue()
    sns = aws("sns")
    topic = sns.create_topic(Name=f"topic-{os.getpid()}-{next(_queue_counter)}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]})
    via_s3 = log_key(4)
    s3.put_object(Bucket=bucket, Key=via_s3, Body=b"{}")
    by_cloudtrail = [log_key(5), log_key(6)]  # CloudTrail's own notice: keys as a list, not encoded
    sns.publish(TopicArn=topic, Message=json.dumps({"s3Bucket": bucket, "s3ObjectKey": by_cloudtrail}))
    runtime = make_runtime(bucket, sqs=sqs_settings(url, moto_endpoint))
    recorder = Recorder()
    result = run(runtime, recorder)
    assert sorted(recorder.keys) == sorted([via_s3, *by_cloudtrail])
    assert result.kinds == {"test": 1, "sns": 1, "cloudtrail": 1} and result.deleted == 3
    assert queue_depth(sqs, url) == 0


def test_eventbridge_object_created(make_runtime, s3, sqs, aws, bucket, make_queue, moto_endpoint):
    url, arn = make_queue()
    events = aws("events")
    rule = f"s3-created-{os.getpid()}-{next(_queue_counter)}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"],
                                                        "detail": {"bucket": {"name": [bucket]}}}))
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    key = log_key(7)
    s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    runtime = make_runtime(bucket, sqs=sqs_settings(url, moto_endpoint))
    recorder = Recorder()
    result = run(runtime, recorder)
    events.remove_targets(Rule=rule, Ids=["queue"])
    events.delete_rule(Name=rule)
    assert recorder.keys == [key] and result.kinds == {"eventbridge": 1}
    assert queue_depth(sqs, url) == 0


def test_failed_enqueue_keeps_the_message_and_the_claim_is_swept(make_runtime, s3, sqs, bucket, make_queue,
                                                                 moto_endpoint, redis_client, keys):
    url, arn = make_queue(visibility=1)
    key = log_key(8)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [{
        "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 9}}}]}))
    runtime = make_runtime(bucket, sqs=sqs_settings(url, moto_endpoint))

    def broker_down(_sid, _key):
        raise ConnectionError("broker away")

    result = run(runtime, broker_down, seconds=1)
    assert result.deleted == 0 and result.errors == 1 and queue_depth(sqs, url) == 1  # kept
    error = redis_client.get(keys.notify_error("test-src")).decode()
    assert "claim/enqueue failed: ConnectionError: broker away" in error
    # The redelivered message finds the key claimed: deleted, not enqueued twice; the claim
    # itself (no task behind it) is enqueued again by the pending sweep once it is overdue.
    recorder = Recorder()
    time.sleep(1.2)
    result = run(runtime, recorder)
    assert recorder.calls == [] and result.ignored == {"duplicate": 1} and queue_depth(sqs, url) == 0
    redis_client.zadd(keys.pending("test-src"), {key: 0})  # as if requeue_after had passed
    assert sweep(runtime.config.sources[0], runtime.state, recorder) == 1  # the fleet's sweep task
    assert recorder.keys == [key]


def test_redrive_policy_decides_never_a_self_delete(make_runtime, sqs, bucket, make_queue, moto_endpoint):
    dead_url, dead_arn = make_queue()
    url, _ = make_queue(visibility=2, RedrivePolicy=json.dumps({"deadLetterTargetArn": dead_arn,
                                                                "maxReceiveCount": 2}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [{
        "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": log_key(9)}}}]}))
    runtime = make_runtime(bucket, sqs=sqs_settings(url, moto_endpoint))

    def always_fails(_sid, _key):
        raise ConnectionError("broker away")

    deleted = 0
    for _ in range(3):  # received twice (then moved by SQS), however often we poll
        result = run(runtime, always_fails, seconds=1)
        deleted += result.deleted
        # Forget the claim, so the next delivery fails the same way instead of finding it claimed.
        runtime.redis.delete(runtime.keys.object("test-src", log_key(9)))
        time.sleep(1.5)
    assert deleted == 0
    assert queue_depth(sqs, url) == 0
    moved = sqs.receive_message(QueueUrl=dead_url, WaitTimeSeconds=1)["Messages"]
    assert len(moved) == 1 and log_key(9) in moved[0]["Body"]


def test_visibility_is_extended_while_a_message_is_worked_on(make_runtime, sqs, bucket, make_queue, moto_endpoint):
    url, _ = make_queue(visibility=2)
    key = log_key(10)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [{
        "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]}))
    runtime = make_runtime(bucket, sqs=sqs_settings(url, moto_endpoint))
    slow = Recorder()
    working = threading.Event()

    def slow_enqueue(sid, k):  # a broker that takes 5 s (2.5 visibility timeouts) to accept
        working.set()
        time.sleep(5)
        slow(sid, k)

    thread_result = {}
    thread = threading.Thread(target=lambda: thread_result.update(r=run(runtime, slow_enqueue, seconds=1)))
    thread.start()
    assert working.wait(10)
    stolen = []
    while thread.is_alive():  # a second consumer must not get the message meanwhile
        stolen += sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
    thread.join()
    result = thread_result["r"]
    assert stolen == [] and slow.keys == [key]
    assert result.extended >= 2 and result.deleted == 1 and queue_depth(sqs, url) == 0
    assert notification_stats(runtime)["notifications.visibility_extended"] == result.extended


def test_visibility_keeper_stops_extending_dropped_messages(sqs, make_queue):
    url, _ = make_queue(visibility=2)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    extended = []
    with VisibilityKeeper(sqs, url, 2, extended.append) as keeper:
        keeper.hold([message["ReceiptHandle"]], time.monotonic())
        time.sleep(1.5)
        keeper.drop([message["ReceiptHandle"]])
        time.sleep(3)  # dropped: its visibility runs out and it is received again
        again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
    assert extended == [1] and len(again) == 1


def test_redis_away_receives_nothing_so_no_receive_count_is_spent(sqs, bucket, make_queue, moto_endpoint,
                                                                  closed_port):
    from pipeline.config import parse_config
    from pipeline.runtime import Runtime
    url, _ = make_queue()
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [{
        "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": log_key(14)}}}]}))
    nowhere = f"redis://127.0.0.1:{closed_port}/0"  # nothing listens there
    runtime = Runtime(parse_config(config_dict(nowhere, [source_dict(bucket, moto_endpoint,
                                                                     sqs=sqs_settings(url, moto_endpoint))])))
    recorder = Recorder()
    result = run(runtime, recorder)
    assert result.errors == 1 and result.received == 0 and recorder.calls == []
    (message,) = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # this receive is the first


def test_a_queue_that_does_not_exist_is_reported_with_a_hint(make_runtime, bucket, moto_endpoint, keys,
                                                             redis_client):
    runtime = make_runtime(bucket, sqs=sqs_settings(f"{moto_endpoint}/123456789012/no-such-queue", moto_endpoint))
    result = run(runtime, Recorder())  # returns: the next scheduled run is the retry
    assert result.errors == 1 and result.received == 0 and result.seconds < 2 and result.receive_failed
    error = redis_client.get(keys.notify_error("test-src")).decode()
    assert error.startswith("ReceiveMessage failed: ") and "check sqs.queue_url" in error
    assert TEST_SECRET not in error
    assert runtime.state.stats("test-src")["notifications.errors"] == 1


def test_notification_older_than_the_state_is_not_claimed_again(make_runtime, bucket, redis_client, keys):
    from pipeline.sqs_consumer import ConsumeResult, _Counts, handle_body
    runtime = make_runtime(bucket, settings={"state_retention": "3H"})
    source = runtime.config.sources[0]
    body = json.dumps({"Records": [{"eventName": "ObjectCreated:Put",
                                    "s3": {"bucket": {"name": bucket}, "object": {"key": log_key(13)}}}]})
    result = ConsumeResult("test-src")
    recorder = Recorder()
    now = int(time.time() * 1000)
    # Sent 2h30 ago with a retention of 3h: its object's record may be gone within the hour
    # (the listing's margin), so a claim now could ingest it a second time.
    handle_body(body, now - 9_000_000, [source], runtime.state, recorder, _Counts(runtime.state, "test-src", result))
    assert recorder.calls == [] and result.ignored == {"too_old": 1}
    assert redis_client.exists(keys.object("test-src", log_key(13))) == 0
    handle_body(body, now - 6_000_000, [source], runtime.state, recorder, _Counts(runtime.state, "test-src", result))
    assert recorder.keys == [log_key(13)]  # 1h40 ago: inside the window, claimed


def test_sources_sharing_a_queue_get_their_own_keys(make_runtime, redis_server, sqs, bucket, make_queue,
                                                    moto_endpoint):
    from pipeline.config import parse_config
    from pipeline.runtime import Runtime
    url, _ = make_queue()
    east, west = log_key(11, "us-east-1"), log_key(12, "eu-west-1")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": k}}}
        for k in (east, west)]}))
    sources = [source_dict(bucket, moto_endpoint, identifier=name, sqs=sqs_settings(url, moto_endpoint),
                           directory_prefix=f"AWSLogs/111122223333/CloudTrail/{region}/")
               for name, region in (("east", "us-east-1"), ("west", "eu-west-1"))]
    runtime = Runtime(parse_config(config_dict(redis_server.url, sources)))
    (owner,) = queue_owners(runtime.config)
    assert owner.identifier == "east" and [s.identifier for s in queue_sources(runtime.config, owner)] == ["east", "west"]
    recorder = Recorder()
    consume(owner, queue_sources(runtime.config, owner), runtime.state, runtime.sqs(owner), recorder,
            run_seconds=1.5, wait_seconds=1)
    assert sorted(recorder.calls) == [("east", east), ("west", west)]
    runtime.redis.close()


# -- end to end: real celery worker and beat ----------------------------------------------------

def e2e_config(tmp_path, redis_url: str, bucket: str, endpoint: str, url: str, **settings):
    return write_config(tmp_path / "trailpipe.yaml", config_dict(
        redis_url, [source_dict(bucket, endpoint, identifier="notified", recurrence="5M",
                                sqs=sqs_settings(url, endpoint))], batch_size=50, **settings))


def stats_of(client, source: str = "notified") -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(f"trailpipe:src:{source}:stats").items()}


@pytest.mark.slow
def test_notified_files_reach_the_stream_in_seconds_and_the_listing_reconciles(
        tmp_path, redis_server, redis_client, moto_endpoint, s3, sqs, bucket, make_queue):
    files = shared_log_files(account="444455556666")
    expected = Counter(orjson.dumps(r) for _, _, records in files for r in records)
    unnotified, late_unnotified, notified = files[:2], files[2:3], files[3:]
    upload(s3, bucket, unnotified)  # before notifications exist: only the listing can find these
    url, arn = make_queue(visibility=10)
    config_path = e2e_config(tmp_path, redis_server.url, bucket, moto_endpoint, url)
    worker = start_celery(["worker", "--concurrency", "2", "--loglevel", "info", "--hostname", "sqs1@%h"],
                          config_path, tmp_path / "worker.log")
    beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "beat-schedule")],
                        config_path, tmp_path / "beat.log")
    try:
        wait_for(lambda: stats_of(redis_client).get("objects_done", 0) == len(unnotified), timeout=90,
                 what="the first listing's files")
        notify_queue(s3, bucket, arn)
        wait_for(lambda: stats_of(redis_client).get("notifications.received.test", 0) == 1, timeout=60,
                 what="the consumer running")
        started = time.monotonic()
        upload(s3, bucket, notified)
        wait_for(lambda: stats_of(redis_client).get("objects_done", 0) == len(files) - 1, timeout=60,
                 what="every notified file done")
        seconds = time.monotonic() - started
        stats = stats_of(redis_client)
        assert stats["discoveries"] == 1  # the listing (every 5 minutes) did not find them
        assert stats["notifications.enqueued"] == len(notified) and seconds < 30
        print(f"\n{len(notified)} notified files in the stream {seconds:.1f}s after upload; latency "
              f"sum {stats['notification_latency.sum_ms']} ms over {stats['notification_latency.count']}")

        # A duplicate, garbage, and an SNS and an EventBridge envelope of files already done.
        key = notified[0][0]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [{
            "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]}))
        sqs.send_message(QueueUrl=url, MessageBody="}} not json")
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
            "Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": json.dumps({"s3Bucket": bucket, "s3ObjectKey": [notified[1][0]]})}))
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
            "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": bucket}, "object": {"key": notified[2][0], "size": 1}}}))
        wait_for(lambda: stats_of(redis_client).get("notifications.ignored.duplicate", 0) == 3
                 and stats_of(redis_client).get("notifications.ignored.unparseable", 0) == 1, timeout=60,
                 what="the duplicates and the garbage handled")

        # A file whose notification is lost: the reconciliation listing (run now, as the
        # schedule would in 5 minutes) finds it.
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        upload(s3, bucket, late_unnotified)
        notify_queue(s3, bucket, arn)
        subprocess.run([sys.executable, "-m", "workers.cli", "discover", "-c", str(config_path), "notified"],
                       env=celery_env(config_path), check=True, capture_output=True, timeout=60, cwd=REPO)
        wait_for(lambda: stats_of(redis_client).get("objects_done", 0) == len(files), timeout=90,
                 what="the unnotified file found by the listing")
        wait_for(lambda: queue_depth(sqs, url) == 0, timeout=60, what="the queue empty")
        stats = stats_of(redis_client)
        assert Counter(e["event"] for e in stream_events(redis_client)) == expected  # every event once
        assert redis_client.xlen("trailpipe:deadletter") == 0
        assert stats["objects_enqueued"] == len(files)
        assert stats["notifications.enqueued"] == len(notified)
        assert stats["notifications.deleted"] == sum(v for k, v in stats.items()
                                                      if k.startswith("notifications.received."))
        assert stats["notification_latency.count"] == len(notified)
        metrics = subprocess.run([sys.executable, "-m", "workers.cli", "status", "-c", str(config_path), "--json"],
                                 env=celery_env(config_path), capture_output=True, text=True, timeout=60, cwd=REPO)
        (row,) = json.loads(metrics.stdout)["sources"]
        assert row["notifications"]["latency_count"] == len(notified)
        assert row["notifications_last_error"] is None
        plain = subprocess.run([sys.executable, "-m", "workers.cli", "status", "-c", str(config_path)],
                               env=celery_env(config_path), capture_output=True, text=True, timeout=60, cwd=REPO)
        assert f"deleted={stats['notifications.deleted']} enqueued={len(notified)}" in plain.stdout
    finally:
        stop_process(beat)
        stop_process(worker)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "Task trailpipe.consume_notifications" in log and "Traceback" not in log


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a celery worker and its pool processes: nothing gets to clean up."""
    parent = psutil.Process(process.pid)
    for proc in [*parent.children(recursive=True), parent]:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.wait()


@pytest.mark.slow
def test_worker_killed_while_holding_messages_loses_nothing(tmp_path, moto_endpoint, s3, sqs, bucket, make_queue):
    files = shared_log_files(account="777788889999")[:12]
    expected = Counter(orjson.dumps(r) for _, _, records in files for r in records)
    url, arn = make_queue(visibility=5)
    notify_queue(s3, bucket, arn)
    server = RedisServer(tmp_path / "redis").start()  # our own: it is frozen below
    client = __import__("redis").Redis.from_url(server.url)
    config_path = e2e_config(tmp_path, server.url, bucket, moto_endpoint, url, requeue_after_seconds=60)
    worker = start_celery(["worker", "--concurrency", "2", "--loglevel", "info", "--hostname", "k1@%h"],
                          config_path, tmp_path / "worker1.log")
    beat = start_celery(["beat", "--loglevel", "info", "--schedule", str(tmp_path / "beat-schedule")],
                        config_path, tmp_path / "beat.log")
    second = None
    try:
        wait_for(lambda: stats_of(client).get("notifications.received.test", 0) == 1, timeout=90,
                 what="the consumer running")
        # Freeze Redis: the consumer receives the notifications and holds them, unable to claim.
        server.process.send_signal(signal.SIGSTOP)
        try:
            upload(s3, bucket, files)
            wait_for(lambda: int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessagesNotVisible"])["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) > 0,
                timeout=30, what="messages held by the consumer")
            kill_tree(worker)
        finally:
            server.process.send_signal(signal.SIGCONT)
        second = start_celery(["worker", "--concurrency", "2", "--loglevel", "info", "--hostname", "k2@%h"],
                              config_path, tmp_path / "worker2.log")
        wait_for(lambda: stats_of(client).get("objects_done", 0) == len(files), timeout=180,
                 what="every file done after the kill")
        wait_for(lambda: queue_depth(sqs, url) == 0, timeout=60, what="the queue empty")
        assert Counter(e["event"] for e in stream_events(client)) == expected  # nothing lost, nothing doubled
        assert client.xlen("trailpipe:deadletter") == 0
        stats = stats_of(client)
        # The held messages came back after their visibility timeout and were received again.
        assert stats["notifications.received.s3"] > len(files)
        print(f"\nreceived={stats['notifications.received.s3']} for {len(files)} files, "
              f"enqueued={stats['notifications.enqueued']}, objects_enqueued={stats['objects_enqueued']}")
    finally:
        stop_process(beat)
        stop_process(second)
        if worker.poll() is None:
            kill_tree(worker)
        client.close()
        server.stop()


def test_queue_url_names_the_endpoint_without_endpoint_url(make_runtime, s3, sqs, bucket, make_queue, moto_endpoint):
    """No sqs.endpoint_url: requests go to the queue URL's scheme and host (here moto's), not to
    AWS's regional endpoint; AWS's own URL forms keep their endpoint."""
    url, arn = make_queue()
    assert url.startswith(moto_endpoint)
    notify_queue(s3, bucket, arn)
    key = log_key(0)
    s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    runtime = make_runtime(bucket, sqs={"queue_url": url})
    source = runtime.config.sources[0]
    assert source.sqs.endpoint == moto_endpoint
    assert runtime.sqs(source).meta.endpoint_url == moto_endpoint
    recorder = Recorder()
    result = run(runtime, recorder)
    assert key in recorder.keys and result.errors == 0 and queue_depth(sqs, url) == 0

    from pipeline.config import SqsNotifications
    aws_form = SqsNotifications(queue_url="https://sqs.eu-west-1.amazonaws.com/111122223333/q")
    assert aws_form.endpoint == "https://sqs.eu-west-1.amazonaws.com"
    assert SqsNotifications(queue_url="https://vpce-1a2b.sqs.eu-west-1.vpce.amazonaws.com/111122223333/q"
                            ).endpoint == "https://vpce-1a2b.sqs.eu-west-1.vpce.amazonaws.com"
    for legacy in ("https://queue.amazonaws.com/111122223333/q", "https://eu-west-1.queue.amazonaws.com/1/q"):
        assert SqsNotifications(queue_url=legacy).endpoint is None  # botocore's endpoint of the region
    given = SqsNotifications(queue_url=url, endpoint_url="https://sqs-fips.us-east-1.amazonaws.com")
    assert given.endpoint == "https://sqs-fips.us-east-1.amazonaws.com"
