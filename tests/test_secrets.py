"""Secrets never leak: a full ingest by real `celery worker` and `celery beat` processes, with a
distinctive AWS secret key, proxy password and Redis password, then every place they could
surface is searched: the processes' logs (at DEBUG), every key in Redis (task messages, state,
the event and dead-letter streams), the CLI's output, and error texts."""
from __future__ import annotations

import base64
import gzip
import random
import subprocess
import traceback
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from botocore.httpsession import mask_proxy_url
from conftest import REPO, celery_env, config_dict, source_dict, start_celery, stop_process, wait_for, write_config
from support.proxy_server import PROXY_USER, start_or_skip
from support.redis_servers import with_password

from pipeline.config import load_config, parse_config
from pipeline.demo_data import make_log_file
from pipeline.errors import ConfigError
from pipeline.redis_server import RedisServer
from pipeline.s3 import proxy_url

pytestmark = pytest.mark.slow

AWS_KEY_ID = "AKIASECRETSTEST00001"
AWS_SECRET = "aws-S3cr3t-Qz9vW2xL7"
PROXY_PASSWORD = "proxy-S3cr3t-Jh4nT8"
REDIS_PASSWORD = "redis-S3cr3t-Mp3cR6"
SECRETS = {"AWS secret key": AWS_SECRET, "proxy password": PROXY_PASSWORD, "Redis password": REDIS_PASSWORD}
CORRUPT_KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/05/111122223333_CloudTrail_us-east-1_20240505T0000Z_corrupt0000000000.json.gz"


def forms(secret: str) -> set[str]:
    """The secret as it could appear: raw, URL-quoted, base64 (alone or as user:secret), repr'd."""
    return {secret, urllib.parse.quote(secret, safe=""), base64.b64encode(secret.encode()).decode(),
            base64.b64encode(f"{PROXY_USER}:{secret}".encode()).decode(), repr(secret)[1:-1]}


def leaks(text: str | bytes, where: str) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    return [f"{name} in {where}" for name, secret in SECRETS.items() for form in forms(secret) if form in text]


def dump_redis(client: redis.Redis) -> dict[str, bytes]:
    """Every key's full content, whatever its type."""
    contents = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            value = [client.get(key)]
        elif kind == "hash":
            value = [b"%s=%s" % item for item in client.hgetall(key).items()]
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = list(client.smembers(key))
        elif kind == "zset":
            value = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            value = [b"%s=%s" % item for _, fields in client.xrange(key) for item in fields.items()]
        else:
            value = [client.dump(key) or b""]
        contents[key.decode("latin-1")] = b"\n".join(value)
    return contents


def trailpipe(*args: str, config_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / ".venv" / "bin" / "trailpipe"), *args, "-c", str(config_path)],
                          env=celery_env(config_path), capture_output=True, text=True, timeout=60, cwd=REPO)


def test_no_secret_anywhere_after_a_full_ingest(tmp_path, s3, bucket, moto_endpoint):
    files = [make_log_file(random.Random(seed), "111122223333", "us-east-1",
                           datetime(2024, 5, 5, seed, tzinfo=UTC), 5) for seed in (1, 2, 3)]
    for log_file in files:
        s3.put_object(Bucket=bucket, Key=log_file.key, Body=log_file.body)
    s3.put_object(Bucket=bucket, Key=CORRUPT_KEY, Body=gzip.compress(b"this is not JSON"))  # dead-lettered

    proxy = start_or_skip(tmp_path / "proxy", password=PROXY_PASSWORD)
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    worker = beat = None
    try:
        with_password(server, REDIS_PASSWORD)
        redis_url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{server.port}/0"
        source = source_dict(bucket, moto_endpoint, identifier="secrets",
                             auth={"method": "access_key", "access_key_id": AWS_KEY_ID, "secret_access_key": AWS_SECRET},
                             proxy={"host": "127.0.0.1", "port": proxy.port, "username": PROXY_USER,
                                    "password": PROXY_PASSWORD})
        config_path = write_config(tmp_path / "trailpipe.yaml", config_dict(redis_url, [source], batch_size=2))
        assert len(leaks(config_path.read_text(), "the config file")) == 3  # the search does find them

        worker = start_celery(["worker", "--concurrency", "1", "--loglevel", "DEBUG", "--hostname", "secrets@%h"],
                              config_path, tmp_path / "worker.log")
        beat = start_celery(["beat", "--loglevel", "DEBUG", "--schedule", str(tmp_path / "beat-schedule")],
                            config_path, tmp_path / "beat.log")
        client = redis.Redis(port=server.port, password=REDIS_PASSWORD)

        def finished():
            stats = {k.decode(): int(v) for k, v in client.hgetall("trailpipe:src:secrets:stats").items()
                     if v.isdigit()}
            return stats.get("objects_done", 0) + stats.get("objects_failed", 0) == len(files) + 1 and stats

        stats = wait_for(finished, timeout=90, what="every object done or failed")
        assert stats["objects_done"] == len(files) and stats["objects_failed"] == 1
        assert client.xlen("trailpipe:events") == 15 and client.xlen("trailpipe:deadletter") == 1
        proxy.wait_for_log(f"/{bucket}/{files[0].key} - 200 OK")  # S3 went through the proxy

        status = trailpipe("status", config_path=config_path)
        status_json = trailpipe("status", "--json", config_path=config_path)
        validate = trailpipe("validate", config_path=config_path)
        assert status.returncode == 0, status.stderr
        assert "secrets" in status.stdout and validate.returncode == 0

        found = []
        stop_process(beat)
        stop_process(worker)
        for name in ("worker.log", "beat.log"):
            text = (tmp_path / name).read_bytes()
            assert len(text) > 1000, name
            found += leaks(text, name)
        assert b"Sending http request" in (tmp_path / "worker.log").read_bytes()  # botocore debug did log
        contents = dump_redis(client)
        assert any("deadletter" in key for key in contents) and any("events" in key for key in contents)
        for key, value in contents.items():
            found += leaks(key, "a Redis key name") + leaks(value, f"Redis key {key!r}")
        for path in tmp_path.glob("beat-schedule*"):
            found += leaks(path.read_bytes(), path.name)
        for label, result in (("status", status), ("status --json", status_json), ("validate", validate)):
            found += leaks(result.stdout + result.stderr, f"trailpipe {label}")
        client.close()
        assert found == []
    finally:
        for process in (beat, worker):
            if process is not None:
                stop_process(process)
        server.stop()
        proxy.stop()


def test_no_secret_in_errors_or_representations(tmp_path, monkeypatch):
    source = source_dict("trail-bucket", "http://127.0.0.1:9", identifier="secrets",
                         auth={"method": "access_key", "access_key_id": AWS_KEY_ID, "secret_access_key": AWS_SECRET},
                         proxy={"host": "proxy.corp", "port": 3128, "username": PROXY_USER, "password": PROXY_PASSWORD})
    redis_url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"
    texts = []

    config = parse_config(config_dict(redis_url, [source]))
    texts += [repr(config), str(config), config.model_dump_json(), repr(config.sources[0].proxy)]
    texts.append(mask_proxy_url(proxy_url(config.sources[0])))  # how botocore names the proxy in its errors

    # Bad fields beside the secrets: the problems name the fields, never the values next to them.
    bad = dict(source, bucket="Bad_Bucket", recurrence="0M", proxy={**source["proxy"], "port": 0},
               auth={**source["auth"], "secret_access_key": [AWS_SECRET]})
    for document in (config_dict(redis_url, [bad]), config_dict([REDIS_PASSWORD], [bad]),
                     {"redis_url": redis_url, "sources": [dict(source, unknown_field=PROXY_PASSWORD)]}):
        with pytest.raises(ConfigError) as info:
            parse_config(document)
        texts.append("\n".join(info.value.problems) + "".join(traceback.format_exception(info.value)))
    # A YAML error on the line of a secret.
    broken = tmp_path / "broken.yaml"
    broken.write_text(f"redis_url: {redis_url}\nsources:\n  - secret_access_key: \"{AWS_SECRET}\n    bucket: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(broken)
    texts.append(str(info.value))
    # The CLI on the same bad file, and `trailpipe validate` of a file with a bad field beside the secrets.
    bad_path = write_config(tmp_path / "bad.yaml", config_dict(redis_url, [bad]))
    for path in (broken, bad_path):
        result = trailpipe("validate", config_path=path)
        assert result.returncode == 2
        texts.append(result.stdout + result.stderr)
    # `trailpipe status` against a Redis that refuses the connection: the error names no password.
    good_path = write_config(tmp_path / "good.yaml", config_dict(redis_url, [source]))
    result = trailpipe("status", config_path=good_path)
    assert result.returncode != 0
    texts.append(result.stdout + result.stderr)

    found = [leak for index, text in enumerate(texts) for leak in leaks(text, f"text #{index}")]
    assert found == [], (found, texts)
