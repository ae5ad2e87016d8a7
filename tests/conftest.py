"""Real servers for the tests: a redis-server and a moto S3 server on free loopback ports,
started once per test session and stopped after. Nothing here touches a Redis that was
already running on this machine.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import redis
import yaml

from pipeline.config import parse_config
from pipeline.local_s3 import LocalS3
from pipeline.processes import stop_process  # noqa: F401  (tests import it from here)
from pipeline.redis_server import RedisServer
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from workers.launch import celery_command

REPO = Path(__file__).resolve().parents[1]
SHARED_OPEN = REPO.parent / "shared" / "data" / "open"
TEST_KEY_ID = "AKIATESTTRAILPIPE000"
TEST_SECRET = "test-secret-value-9f3b"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()  # our own throwaway server: every test starts empty
    yield client
    client.close()


@pytest.fixture(scope="session")
def moto_endpoint():
    with LocalS3() as server:
        yield server.url


@pytest.fixture
def s3(moto_endpoint):
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                        aws_access_key_id=TEST_KEY_ID, aws_secret_access_key=TEST_SECRET)


_bucket_counter = iter(range(1, 1_000_000))


@pytest.fixture
def bucket(s3):
    """A fresh, empty bucket per test."""
    name = f"trail-{os.getpid()}-{next(_bucket_counter)}"
    s3.create_bucket(Bucket=name)
    return name


def source_dict(bucket: str, endpoint: str, **overrides) -> dict:
    source = {
        "identifier": "test-src",
        "bucket": bucket,
        "region": "us-east-1",
        "endpoint_url": endpoint,
        "auth": {"method": "access_key", "access_key_id": TEST_KEY_ID, "secret_access_key": TEST_SECRET},
        "directory_prefix": "AWSLogs/",
        "recurrence": "1M",
    }
    source.update(overrides)
    return source


def config_dict(redis_url: str, sources: list[dict], **settings) -> dict:
    return {"redis_url": redis_url, "sources": sources, **settings}


@pytest.fixture
def make_runtime(redis_server, redis_client, moto_endpoint):
    """Build a Runtime for a bucket: make_runtime(bucket, **source_overrides)."""
    runtimes = []

    def build(bucket: str, settings: dict | None = None, **overrides) -> Runtime:
        config = parse_config(config_dict(redis_server.url, [source_dict(bucket, moto_endpoint, **overrides)],
                                          **(settings or {})))
        runtime = Runtime(config)
        runtimes.append(runtime)
        return runtime

    yield build
    for runtime in runtimes:
        runtime.redis.close()


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def celery_env(config_path: Path) -> dict[str, str]:
    env = dict(os.environ, TRAILPIPE_CONFIG=str(config_path), PYTHONUNBUFFERED="1")
    env.pop("TRAILPIPE_REDIS_URL", None)
    return env


def start_celery(args: list[str], config_path: Path, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen(celery_command(*args), env=celery_env(config_path), stdout=log, stderr=subprocess.STDOUT,
                            cwd=str(REPO))


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def keys():
    return Settings.default().keys


def dead_process() -> str:
    """The identity (pipeline.runner.process_identity) of a real process that has exited: what
    a runner's record names after its worker process was killed."""
    out = subprocess.run([sys.executable, "-c", "from pipeline.runner import process_identity as p; print(p())"],
                         capture_output=True, text=True, check=True, cwd=str(REPO))
    return out.stdout.strip()


def shared_log_files(account: str = "123456789012", region: str = "us-east-1") -> list[tuple[str, bytes, list[dict]]]:
    """Every well-formed file of ../shared/data/open/ as a CloudTrail object: (key, gzip body, records).

    Stratus Red Team files are bare arrays of records; they are wrapped as {"Records": [...]}.
    """
    import gzip
    import hashlib

    import orjson

    if not SHARED_OPEN.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_OPEN}")
    files = []
    for index, path in enumerate(sorted(SHARED_OPEN.glob("*/*.json"))):
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue  # the deliberately malformed one; the parser tests cover it
        records = doc["Records"] if isinstance(doc, dict) else doc
        digest = hashlib.sha1(path.name.encode()).hexdigest()[:16]
        key = (f"AWSLogs/{account}/CloudTrail/{region}/2024/07/31/"
               f"{account}_CloudTrail_{region}_20240731T{index // 60:02d}{index % 60:02d}Z_{digest}.json.gz")
        files.append((key, gzip.compress(orjson.dumps({"Records": records}), mtime=0), records))
    return files


def upload(s3, bucket: str, files) -> None:
    """Put (key, body, records) files, as shared_log_files returns them, into the bucket."""
    for key, data, _ in files:
        s3.put_object(Bucket=bucket, Key=key, Body=data)


def stream_events(client, stream: str = "trailpipe:events") -> list[dict]:
    return [{k.decode(): v for k, v in fields.items()} for _, fields in client.xrange(stream)]


@pytest.fixture
def closed_port():
    """A loopback port where a connection is refused for the whole test: bound, never listening,
    so no server of a test running beside it can take it (a port merely found free can be)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
