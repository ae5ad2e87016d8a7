"""RabbitMQ as the broker (``broker_url: amqp://…``): quorum queues, countdown retries through
kombu's native delayed delivery, the chaos test's worker kills, and an object that takes longer
than RabbitMQ's ``consumer_timeout``.

The scenario tests run against the machine's RabbitMQ (127.0.0.1:5672) in a vhost of their own,
or a private node where a node-wide setting is needed (tests/support/rabbitmq.py); they skip,
with the reason, where there is none.
"""
from __future__ import annotations

import gzip
import json
import ssl
import subprocess
import sys
import time

import pytest
import redis
from conftest import REPO, celery_env, config_dict, source_dict, start_celery, stop_process, wait_for, write_config
from support.fault_proxy import FaultProxy
from support.rabbitmq import PrivateRabbitMQ, list_queues, machine_vhost
from test_chaos import run_chaos

from pipeline.config import parse_config
from pipeline.settings import Settings
from workers.app import INGEST_TASK, TrailpipeCelery, amqp_broker_settings, app, configure

QUEUE = "trailpipe.us-east-1"


@pytest.fixture(scope="module")
def vhost_url():
    with machine_vhost() as url:
        yield url


def amqp_config(redis_url: str = "redis://127.0.0.1:1/0", **settings):
    source = {"identifier": "rmq", "bucket": "trail-bucket", "region": "us-east-1",
              "auth": {"method": "instance_role"}}
    return parse_config({"redis_url": redis_url, "broker_url": "amqp://guest:guest@127.0.0.1:5672/tp",
                         "sources": [source], **settings})


def test_amqp_broker_settings_quorum_topic_and_early_ingest_ack(monkeypatch):
    before = getattr(app, "trailpipe_config", None)
    try:
        configure(amqp_config())
        (queue,) = app.conf.task_queues
        assert queue.name == QUEUE and queue.queue_arguments == {"x-queue-type": "quorum"}
        assert queue.exchange.type == "topic"  # native delayed delivery skips direct exchanges
        assert app.conf.task_annotations == {INGEST_TASK: {"acks_late": False}}
        assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost  # the other tasks
        assert app.conf.worker_prefetch_multiplier == 1
        assert app.conf.broker_channel_error_retry
        assert app.conf.broker_transport_options == {"confirm_publish": True}

        assert app.conf.broker_use_ssl is None
        configure(amqp_config(broker_url="amqps://guest:guest@rabbit.example:5671/tp"))
        assert app.conf.broker_use_ssl == {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None}

        configure(amqp_config(quorum_queues=False))
        assert app.conf.task_queues[0].queue_arguments is None  # classic queues

        # TRAILPIPE_REDIS_URL moves the state (and a Redis broker), not a RabbitMQ broker.
        monkeypatch.setenv("TRAILPIPE_REDIS_URL", "redis://127.0.0.1:2/0")
        assert amqp_config().broker_url_value().startswith("amqp://")
    finally:
        monkeypatch.delenv("TRAILPIPE_REDIS_URL", raising=False)
        redis_only = parse_config({"redis_url": "redis://127.0.0.1:1/0", "sources": [
            {"identifier": "r", "bucket": "trail-bucket", "region": "us-east-1", "auth": {"method": "instance_role"}}]})
        configure(redis_only)
        assert app.conf.task_annotations is None and app.conf.broker_channel_error_retry  # READONLY (scale)
        if before is not None:
            configure(before)  # as the earlier tests left it


def test_bad_amqp_url_names_the_field_not_the_value():
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        amqp_config(broker_url="amqp://guest:s3cret-pw@rabbit:notaport/tp")
    assert any("broker_url" in problem and "port" in problem for problem in raised.value.problems)
    assert "s3cret-pw" not in " ".join(raised.value.problems)


# -- scenarios -------------------------------------------------------------------------------


def log_body(records: int, start: int = 0) -> tuple[bytes, list[str]]:
    ids = [f"evt-{start + n:06d}" for n in range(records)]
    body = {"Records": [{"eventID": i, "eventName": "GetObject", "eventTime": "2026-11-02T00:00:00Z",
                         "eventSource": "s3.amazonaws.com", "awsRegion": "us-east-1",
                         "recipientAccountId": "123456789012"} for i in ids]}
    return gzip.compress(json.dumps(body).encode()), ids


def object_key(n: int) -> str:
    return (f"AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/02/"
            f"123456789012_CloudTrail_us-east-1_20261102T00{n:02d}Z_rmq{n:04d}.json.gz")


def send_ingest(config_path, *keys: str) -> list[str]:
    """Enqueue ``trailpipe.ingest_object`` for keys of source ``rmq`` as the pipeline does, from a
    client app of its own (the shared app caches its first broker's connections and queues)."""
    from pipeline.config import load_config

    config = load_config(config_path)
    client = TrailpipeCelery("trailpipe-test-client", set_as_current=False)
    client.conf.update(broker_url=config.broker_url_value(), **amqp_broker_settings(config, [QUEUE]))
    client.trailpipe_config = config
    try:
        return [client.send_task(INGEST_TASK, args=("rmq", key), queue=QUEUE).id for key in keys]
    finally:
        client.close()


def stream_ids(client: redis.Redis) -> list[str]:
    return [fields[b"event_id"].decode() for _, fields in client.xrange("trailpipe:events")]


class FailFirst(FaultProxy):
    """Answers 500 InternalError to its first ``failures`` requests, then forwards them all."""

    def __init__(self, upstream: str, failures: int):
        super().__init__(upstream, fault_rate=0.0)
        self.failures = failures

    def _pick(self) -> str | None:
        with self.lock:
            self.counts["requests"] += 1
            if self.failures > 0:
                self.failures -= 1
                self.counts["error500"] += 1
                return "error500"
        return None


@pytest.mark.slow
def test_countdown_retry_on_quorum_queues(tmp_path, vhost_url, redis_server, redis_client, moto_endpoint, s3, bucket):
    """An object whose GetObject fails for two task runs (botocore's six attempts each) is retried by
    its task twice with a countdown (under a second for the first: full-jitter backoff), through
    the native delayed delivery of quorum queues, and is done once."""
    body, ids = log_body(50)
    s3.put_object(Bucket=bucket, Key=object_key(1), Body=body)
    proxy = FailFirst(moto_endpoint, failures=12).start()
    source = source_dict(bucket, proxy.url, identifier="rmq", recurrence="1D")
    config_path = write_config(tmp_path / "rmq.yaml", config_dict(redis_server.url, [source], broker_url=vhost_url))
    worker = start_celery(["worker", "--concurrency", "1", "--loglevel", "info", "--hostname", "rmq@%h"],
                          config_path, tmp_path / "worker.log")
    log = tmp_path / "worker.log"
    try:
        wait_for(lambda: "ready." in log.read_text(errors="replace"), timeout=60, what="worker ready")
        send_ingest(config_path, object_key(1))
        state_key = Settings.default().keys.object("rmq", object_key(1))
        wait_for(lambda: redis_client.hget(state_key, "state") == b"done", timeout=120,
                 what=f"the object done (worker log: {log})")
        text = log.read_text(errors="replace")
        assert text.count("retry: Retry in") == 2, text[-3000:]
        assert "retry: Retry in 0." in text  # the first countdown is under a second
        assert "Traceback" not in text and "ValueError" not in text, text[-3000:]
        assert sorted(stream_ids(redis_client)) == ids  # every event once
        assert redis_client.hget(state_key, "attempts") == b"1"  # released before each retry
        queues = list_queues(vhost_url.rsplit("/", 1)[1])
        assert queues[QUEUE] == "quorum"
        assert "celery_delayed_0" in queues  # the delayed-delivery topology the retries went through
        assert proxy.counts["error500"] == 12
    finally:
        stop_process(worker, timeout=40)
        proxy.stop()


@pytest.mark.slow
def test_chaos_on_quorum_queues(tmp_path, vhost_url, moto_endpoint, s3, bucket):
    """The chaos test (worker children SIGKILLed, a Redis restart, 10% S3 faults) with RabbitMQ
    quorum queues as the broker: every event in the stream exactly once."""
    run_chaos(tmp_path, moto_endpoint, s3, bucket, broker_url=vhost_url)
    queues = list_queues(vhost_url.rsplit("/", 1)[1])
    assert queues[QUEUE] == "quorum"


ENQUEUE_PROBE = """
import json, sys
from workers.app import app
from workers.tasks import batched_enqueues
with batched_enqueues() as enqueue:
    for n in range(int(sys.argv[1])):
        enqueue("rmq", f"AWSLogs/1/CloudTrail/us-east-1/2024/01/01/k{n}.json.gz")
    buffering = enqueue.buffering
with app.connection_for_write() as connection:
    channel = connection.default_channel
    queued = channel.queue_declare(queue=sys.argv[2], passive=True).message_count
    channel.queue_purge(sys.argv[2])  # (the module's other tests share the vhost and queue)
print(json.dumps({"buffering": buffering, "queued": queued}))
"""


def test_a_discovery_publishes_each_ingest_task_at_once_on_rabbitmq(tmp_path, vhost_url, redis_server, bucket):
    """kombu batches publishes only on Redis: on RabbitMQ each goes out at once, so each keeps
    kombu's retry (workers.tasks.BatchedEnqueue.buffering is False), and every one arrives."""
    source = source_dict(bucket, "http://127.0.0.1:1", identifier="rmq", recurrence="1D")
    config_path = write_config(tmp_path / "rmq.yaml", config_dict(redis_server.url, [source], broker_url=vhost_url))
    result = subprocess.run([sys.executable, "-c", ENQUEUE_PROBE, "30", QUEUE], env=celery_env(config_path),
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"buffering": False, "queued": 30}


def held_past_timeout(url: str, seconds: float) -> str:
    """Consume one message and hold it unacknowledged: what the broker says (its channel close)."""
    import amqp

    parts = url.removeprefix("amqp://guest:guest@").split("/")[0]
    connection = amqp.Connection(parts, userid="guest", password="guest")
    connection.connect()
    try:
        channel = connection.channel()
        channel.queue_declare("probe", durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
        channel.basic_publish(amqp.Message("held"), routing_key="probe")
        channel.basic_consume("probe", callback=lambda message: None)  # never acknowledged
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                connection.drain_events(timeout=0.5)
            except TimeoutError:
                pass
            except amqp.exceptions.PreconditionFailed as exc:
                return str(exc)
        return ""
    finally:
        connection.collect()


@pytest.mark.slow
def test_object_longer_than_consumer_timeout_is_done_once(tmp_path, redis_server, redis_client, moto_endpoint, s3,
                                                          bucket):
    """RabbitMQ (consumer_timeout 3 s on this node; 30 min by default) closes a channel that holds
    an unacknowledged delivery longer. An object that takes four times that long is delivered
    once and done by its one runner (attempts 1: never handed to the worker's other process),
    the other objects are done too, every event once, and the worker never exits."""
    rabbit = PrivateRabbitMQ(tmp_path / "rabbitmq", consumer_timeout_ms=3000).start()
    try:
        closed = held_past_timeout(rabbit.url, seconds=10)
        assert "PRECONDITION_FAILED" in closed, "this node does not time deliveries out: the test would prove nothing"
        run_slow_object(tmp_path, rabbit.url, redis_server, redis_client, moto_endpoint, s3, bucket)
    finally:
        rabbit.stop()


def run_slow_object(tmp_path, broker_url, redis_server, redis_client, moto_endpoint, s3, bucket):
    slow_body, slow_ids = log_body(240)
    s3.put_object(Bucket=bucket, Key=object_key(1), Body=slow_body)
    expected = list(slow_ids)
    for n in (2, 3, 4):
        body, ids = log_body(20, start=n * 1000)
        s3.put_object(Bucket=bucket, Key=object_key(n), Body=body)
        expected += ids
    # 240 events at 20/s: the slow object takes about 12 s, in batches of 20 (its heartbeat goes
    # on in between); the throttle is per source, so the small objects share it.
    source = source_dict(bucket, moto_endpoint, identifier="rmq", recurrence="1D", eps_throttle=20)
    settings = {"broker_url": broker_url, "batch_size": 20}
    config_path = write_config(tmp_path / "rmq.yaml", config_dict(redis_server.url, [source], **settings))
    log = tmp_path / "worker.log"
    worker = start_celery(["worker", "--concurrency", "2", "--loglevel", "info", "--hostname", "slow@%h"],
                          config_path, log)
    keys = Settings.default().keys
    try:
        wait_for(lambda: "ready." in log.read_text(errors="replace"), timeout=60, what="worker ready")
        (slow_task,) = send_ingest(config_path, object_key(1))
        wait_for(lambda: redis_client.hget(keys.object("rmq", object_key(1)), "state") == b"processing",
                 timeout=30, what="the slow object started")
        send_ingest(config_path, *(object_key(n) for n in (2, 3, 4)))
        started = time.monotonic()
        wait_for(lambda: all(redis_client.hget(keys.object("rmq", object_key(n)), "state") == b"done"
                             for n in (1, 2, 3, 4)) or worker.poll() is not None,
                 timeout=120, what=f"every object done (worker log: {log})")
        elapsed = time.monotonic() - started
        time.sleep(5)  # a second delivery of the slow object, if one came, would be received by now
        text = log.read_text(errors="replace")
        assert worker.poll() is None, f"the worker exited: {text[-3000:]}"
        assert text.count(f"[{slow_task}] received") == 1, text[-3000:]  # delivered once, never again
        ids = stream_ids(redis_client)
        assert len(ids) == len(set(ids)) and sorted(ids) == sorted(expected)  # every event once
        slow = redis_client.hgetall(keys.object("rmq", object_key(1)))
        assert slow[b"attempts"] == b"1", slow  # one runner, never superseded
        assert not redis_client.xrange("trailpipe:deadletter")
        print(f"\nconsumer_timeout=3s: an object of 240 events at 20/s + 3 of 20 done in {elapsed:.1f}s; "
              f"channels closed by the broker: {text.count('PRECONDITION_FAILED')}")
    finally:
        stop_process(worker, timeout=40)
