"""Connection options of a source against the moto S3 server: signature versions, endpoint
and addressing style, and a real forward proxy (proxy.py) that requires basic auth."""
from __future__ import annotations

import base64
import logging
import random
import socket
import traceback
import urllib.parse
from datetime import UTC, datetime

import pytest
from conftest import TEST_KEY_ID, config_dict, source_dict
from support.proxy_server import PROXY_PASSWORD, PROXY_USER, proxy_py_available, proxy_settings, start_or_skip

from pipeline.config import parse_config
from pipeline.demo_data import make_log_file
from pipeline.discovery import discover
from pipeline.errors import ConfigError
from pipeline.ingest import ingest_object
from pipeline.policy import classify
from pipeline.s3 import ProxyAuthenticationError, make_client


def record_requests(client) -> list:
    """Every request the client sends (after signing), as botocore's AWSPreparedRequest."""
    sent = []
    client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request))
    return sent


def put_log(s3, bucket, key="AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/01/a.json.gz", body=b"x" * 10):
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key


@pytest.mark.parametrize("version,region,expected", [
    ("v2", "us-east-1", f"AWS {TEST_KEY_ID}:"),
    ("v2", None, f"AWS {TEST_KEY_ID}:"),
    ("v4", "us-east-1", f"AWS4-HMAC-SHA256 Credential={TEST_KEY_ID}/"),
    ("v4", "eu-central-1", f"AWS4-HMAC-SHA256 Credential={TEST_KEY_ID}/"),
])
def test_signature_versions(make_runtime, s3, bucket, version, region, expected):
    key = put_log(s3, bucket)
    runtime = make_runtime(bucket, signature_version=version, region=region)
    client = runtime.s3(runtime.source("test-src"))
    sent = record_requests(client)
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x" * 10
    assert len(sent) == 2
    for request in sent:
        authorization = request.headers["Authorization"].decode() if isinstance(
            request.headers["Authorization"], bytes) else request.headers["Authorization"]
        assert authorization.startswith(expected), authorization
        if version == "v4":
            assert f"/{region}/s3/aws4_request" in authorization


def test_v2_in_a_sigv4_only_region_is_a_config_error(moto_endpoint):
    for region in ("eu-central-1", "ap-south-1", "us-east-2", "eu-north-1", "af-south-1", "ap-southeast-3"):
        with pytest.raises(ConfigError) as info:
            parse_config(config_dict("redis://127.0.0.1:1/0", [
                source_dict("trail-bucket", moto_endpoint, signature_version="v2", region=region)]))
        (problem,) = info.value.problems
        assert problem.startswith("source 'test-src' field 'region':")
        assert "field 'region': accepts only Signature Version 4: use signature_version v4" in problem
    # The regions launched before 2014 keep V2.
    parse_config(config_dict("redis://127.0.0.1:1/0", [
        source_dict("trail-bucket", moto_endpoint, signature_version="v2", region="sa-east-1")]))


def test_path_addressing(make_runtime, s3, bucket, moto_endpoint):
    key = put_log(s3, bucket)
    for style in ("auto", "path"):  # auto on an IP-address endpoint is path style too
        runtime = make_runtime(bucket, addressing_style=style)
        client = runtime.s3(runtime.source("test-src"))
        sent = record_requests(client)
        client.get_object(Bucket=bucket, Key=key)
        assert sent[0].url == f"{moto_endpoint}/{bucket}/{key}"


def test_virtual_host_addressing(make_runtime, s3, bucket, moto_endpoint, monkeypatch):
    """``<bucket>.localhost`` is resolved to loopback here (no DNS in the tests); moto takes the
    bucket from the Host header, as S3 does."""
    key = put_log(s3, bucket)
    real_getaddrinfo = socket.getaddrinfo

    def loopback_for_localhost(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_for_localhost)
    port = urllib.parse.urlsplit(moto_endpoint).port
    runtime = make_runtime(bucket, addressing_style="virtual", endpoint_url=f"http://localhost:{port}")
    client = runtime.s3(runtime.source("test-src"))
    sent = record_requests(client)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x" * 10
    assert sent[0].url == f"http://{bucket}.localhost:{port}/{key}"


# --- proxy ----------------------------------------------------------------------------------------

needs_proxy_py = pytest.mark.skipif(not proxy_py_available(),
                                    reason="the forward proxy of these tests is the PyPI package proxy.py "
                                           "(pip install proxy.py; it is in trailpipe's dev extra)")


@pytest.fixture(scope="module")
def forward_proxy(tmp_path_factory):
    proxy = start_or_skip(tmp_path_factory.mktemp("proxy"))
    yield proxy
    proxy.stop()


def secret_forms(secret: str) -> list[str]:
    return [secret, urllib.parse.quote(secret, safe=""), base64.b64encode(f"{PROXY_USER}:{secret}".encode()).decode()]


@needs_proxy_py
def test_requests_go_through_the_proxy(make_runtime, s3, bucket, moto_endpoint, forward_proxy, caplog):
    key = put_log(s3, bucket)
    runtime = make_runtime(bucket, proxy=proxy_settings(forward_proxy))
    with caplog.at_level(logging.DEBUG):  # botocore and urllib3 debug logging on
        client = runtime.s3(runtime.source("test-src"))
        client.list_objects_v2(Bucket=bucket)
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x" * 10
    moto = urllib.parse.urlsplit(moto_endpoint).netloc
    forward_proxy.wait_for_log(f"GET {moto}/{bucket}?list-type=2")  # the access log lags a little
    forward_proxy.wait_for_log(f"GET {moto}/{bucket}/{key} - 200 OK")
    assert "Sending http request" in caplog.text  # the debug logging did run
    for form in secret_forms(PROXY_PASSWORD):
        assert form not in caplog.text
        assert form not in repr(runtime.config)


@needs_proxy_py
def test_wrong_proxy_password_is_a_clear_error_without_the_password(make_runtime, s3, bucket, forward_proxy, caplog):
    wrong = "wr0ng-pr0xy-pa55word"
    runtime = make_runtime(bucket, proxy=proxy_settings(forward_proxy, password=wrong))
    client = make_client(runtime.source("test-src"))
    with caplog.at_level(logging.DEBUG), pytest.raises(ProxyAuthenticationError) as info:
        client.list_objects_v2(Bucket=bucket)
    message = str(info.value)
    assert message == (f"source 'test-src': ListObjectsV2 through proxy http://127.0.0.1:{forward_proxy.port} "
                       f"(user '{PROXY_USER}') failed: 407 Proxy Authentication Required")
    # The hint is the policy's, said once (status, logs): the fields to check.
    assert classify(info.value).description == (
        f"ProxyAuthenticationRequired: {message}; check proxy.username and proxy.password")
    forward_proxy.wait_for_log("ProxyAuthenticationFailed")
    text = "".join(traceback.format_exception(info.value)) + caplog.text
    for form in secret_forms(wrong) + secret_forms(PROXY_PASSWORD):
        assert form not in text


@needs_proxy_py
def test_ingest_through_the_proxy(make_runtime, s3, bucket, forward_proxy, redis_client):
    log_file = make_log_file(random.Random(7), "111122223333", "us-east-1",
                             datetime(2024, 5, 1, tzinfo=UTC), 5)
    s3.put_object(Bucket=bucket, Key=log_file.key, Body=log_file.body)
    runtime = make_runtime(bucket, proxy=proxy_settings(forward_proxy))
    source = runtime.source("test-src")
    queued = []
    discover(source, runtime.state, runtime.s3(source), lambda sid, key: queued.append(key))
    assert queued == [log_file.key]
    result = ingest_object(source, log_file.key, runtime.state, runtime.s3(source))
    assert (result.outcome, result.events) == ("done", 5)
    forward_proxy.wait_for_log(f"/{bucket}/{log_file.key} - 200 OK")


def test_sqs_client_verifies_with_a_ca_setting_not_a_pair():
    """``verify_setting`` returns (verify, pins): the SQS client once got the pair itself as
    ``verify=``, so every HTTPS request (AWS's SQS) failed inside botocore with a TypeError."""
    from pipeline.s3 import make_sqs_client
    config = parse_config(config_dict("redis://127.0.0.1:1/0", [source_dict(
        "trail-bucket", "http://127.0.0.1:1", sqs={"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/q"})]))
    client = make_sqs_client(config.sources[0])
    verify = client._endpoint.http_session._verify  # noqa: SLF001  (what each HTTPS connection loads)
    assert verify is True or isinstance(verify, str), verify
