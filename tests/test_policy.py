"""One error policy: every error the pipeline meets is classified once, here."""
from __future__ import annotations

import pytest
import redis
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import SSLError as BotoSSLError

from pipeline.credentials import CredentialsUnavailable
from pipeline.errors import Backpressure, BadObject
from pipeline.policy import MAX_UNEXPECTED_RETRIES, ErrorKind, classify
from pipeline.s3 import ProxyAuthenticationError, UntrustedCertificate


def client_error(code: str, status: int = 403, operation: str = "ListObjectsV2", message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message or f"the {code} message"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


@pytest.mark.parametrize("code, hint", [
    ("SignatureDoesNotMatch", "secret_access_key"),
    ("InvalidAccessKeyId", "access_key_id"),
    ("AccessDenied", "s3:ListBucket"),
    ("NoSuchBucket", "bucket"),
    ("PermanentRedirect", "region"),
    ("AuthorizationHeaderMalformed", "region"),
    ("ExpiredToken", "expired"),
])
def test_source_configuration_errors_name_a_hint(code, hint):
    verdict = classify(client_error(code))
    assert verdict.kind is ErrorKind.CONFIGURATION
    assert verdict.error_class == code
    assert hint in verdict.hint and hint in verdict.description
    assert f"the {code} message" in verdict.description


def test_signature_errors_on_an_object_are_the_source_s_too():
    assert classify(client_error("SignatureDoesNotMatch", operation="GetObject")).kind is ErrorKind.CONFIGURATION


@pytest.mark.parametrize("code, message, error_class, hint", [
    ("AccessDenied", "Access Denied", "AccessDenied", "s3:GetObject"),
    ("AccessDenied", "User: arn:aws:iam::1:user/x is not authorized to perform: kms:Decrypt", "AccessDenied",
     "kms:Decrypt on the trail's KMS key"),
    ("KMS.AccessDeniedException", "", "KMS.AccessDeniedException", "kms:Decrypt"),
    ("KMS.DisabledException", "", "KMS.DisabledException", "enable it"),
    ("KMS.KMSInvalidStateException", "", "KMS.KMSInvalidStateException", "pending deletion"),
    ("KMS.NotFoundException", "", "KMS.NotFoundException", "not found"),
    ("InvalidArgument", "Requests specifying Server Side Encryption with AWS KMS managed keys require AWS "
     "Signature Version 4.", "SignatureVersion4Required", "signature_version to v4"),
])
def test_a_read_denied_for_the_source_s_identity_waits(code, message, error_class, hint):
    verdict = classify(client_error(code, 400 if code.startswith(("KMS", "Inv")) else 403, "GetObject", message))
    assert verdict.kind is ErrorKind.DENIED and verdict.error_class == error_class
    assert hint in verdict.hint and verdict.retry_limit is None


def test_invalid_argument_for_another_reason_is_not_a_denial():
    assert classify(client_error("InvalidArgument", 400, "GetObject", "Invalid range")).kind is ErrorKind.TRANSIENT
    assert classify(client_error("AccessDenied")).kind is ErrorKind.CONFIGURATION  # on the listing


@pytest.mark.parametrize("exc, error_class, field", [
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1/b"), "EndpointUnreachable", "endpoint_url"),
    (ConnectTimeoutError(endpoint_url="http://10.255.255.1/b"), "EndpointUnreachable", "endpoint_url"),
    (ProxyConnectionError(proxy_url="http://127.0.0.1:1", error="refused"), "ProxyUnreachable", "proxy.host"),
    (BotoSSLError(endpoint_url="https://127.0.0.1:9000/b", error="[SSL: WRONG_VERSION_NUMBER] wrong version"),
     "TLSHandshakeFailed", "endpoint_url"),
])
def test_an_endpoint_or_proxy_that_cannot_be_connected_to_is_the_source_s_configuration(exc, error_class, field):
    verdict = classify(exc)
    assert verdict.kind is ErrorKind.CONFIGURATION and verdict.error_class == error_class
    assert field in verdict.hint


def test_connection_level_configuration_errors():
    assert classify(ProxyAuthenticationError(message="407")).kind is ErrorKind.CONFIGURATION
    assert classify(ProxyAuthenticationError(message="407")).error_class == "ProxyAuthenticationRequired"
    untrusted = classify(UntrustedCertificate(message="CERTIFICATE_VERIFY_FAILED"))
    assert untrusted.kind is ErrorKind.CONFIGURATION and untrusted.error_class == "UntrustedCertificate"
    raw_ssl = BotoSSLError(endpoint_url="https://x", error="[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")
    assert classify(raw_ssl).kind is ErrorKind.CONFIGURATION
    assert classify(CredentialsUnavailable(message="no file")).kind is ErrorKind.CONFIGURATION
    assert classify(NoCredentialsError()).kind is ErrorKind.CONFIGURATION


def test_throttling_has_no_limit():
    for exc in (client_error("SlowDown", 503, "GetObject"), Backpressure("stream full")):
        verdict = classify(exc)
        assert verdict.kind is ErrorKind.THROTTLED and verdict.retry_limit is None


def test_transient_errors_have_a_limit_and_redis_out_of_memory_is_transient():
    for exc in (client_error("InternalError", 500, "GetObject"), ReadTimeoutError(endpoint_url="http://x"),
                ConnectionClosedError(endpoint_url="http://x"), ConnectionResetError()):
        verdict = classify(exc)
        assert verdict.kind is ErrorKind.TRANSIENT and verdict.retry_limit, exc
    oom = classify(redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'."))
    assert oom.kind is ErrorKind.TRANSIENT and oom.error_class == "RedisOutOfMemory"
    assert classify(redis.ConnectionError("down")).kind is ErrorKind.TRANSIENT


def test_bad_objects_are_permanent_and_surprises_get_a_short_limit():
    verdict = classify(BadObject("not gzip", "CorruptGzip"))
    assert verdict.kind is ErrorKind.PERMANENT and verdict.error_class == "CorruptGzip"
    surprise = classify(ValueError("a bug"))
    assert surprise.kind is ErrorKind.TRANSIENT and surprise.retry_limit == MAX_UNEXPECTED_RETRIES
    assert surprise.error_class == "InternalError" and "ValueError: a bug" in surprise.message


def test_a_redis_that_cannot_write_for_a_while_is_transient_without_limit():
    for exc in (redis.ReadOnlyError("You can't write against a read only replica."),
                redis.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's unable to"),
                redis.ResponseError("BUSY Redis is busy running a script."),
                redis.BusyLoadingError("Redis is loading the dataset in memory")):
        verdict = classify(exc)
        assert verdict.kind is ErrorKind.TRANSIENT and verdict.retry_limit is None, exc
