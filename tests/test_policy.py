"""One error policy: every error the pipeline meets is classified once, here; and what is done
about it is decided once (``decide``, pure: its Action for each kind, step and attempt)."""
from __future__ import annotations

import random

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
from pipeline.policy import (
    DISCOVERY_RETRY_SECONDS,
    MAX_TRANSIENT_RETRIES,
    MAX_UNEXPECTED_RETRIES,
    Do,
    ErrorKind,
    Step,
    Verdict,
    classify,
    decide,
    note,
    notification_hint,
)
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


# -- decide: what is done about each verdict ---------------------------------------------------
VERDICTS = {
    ErrorKind.PERMANENT: Verdict(ErrorKind.PERMANENT, "CorruptGzip", "not gzip"),
    ErrorKind.TRANSIENT: Verdict(ErrorKind.TRANSIENT, "InternalError", "a bug", retry_limit=MAX_UNEXPECTED_RETRIES),
    ErrorKind.THROTTLED: Verdict(ErrorKind.THROTTLED, "SlowDown", "slow down"),
    ErrorKind.CONFIGURATION: Verdict(ErrorKind.CONFIGURATION, "SignatureDoesNotMatch", "no match",
                                     "check the source's secret_access_key"),
    ErrorKind.DENIED: Verdict(ErrorKind.DENIED, "AccessDenied", "Access Denied", "grant s3:GetObject"),
}
OBJECT_ACTIONS = {ErrorKind.PERMANENT: Do.DEAD_LETTER, ErrorKind.TRANSIENT: Do.RETRY, ErrorKind.THROTTLED: Do.RETRY,
                  ErrorKind.CONFIGURATION: Do.WAIT, ErrorKind.DENIED: Do.DENIED}
DISCOVERY_ACTIONS = {ErrorKind.PERMANENT: Do.RETRY, ErrorKind.TRANSIENT: Do.RETRY, ErrorKind.THROTTLED: Do.RETRY,
                     ErrorKind.CONFIGURATION: Do.FAIL_SOURCE, ErrorKind.DENIED: Do.FAIL_SOURCE}


def test_every_kind_has_a_verdict_here():
    assert set(VERDICTS) == set(ErrorKind) == set(OBJECT_ACTIONS) == set(DISCOVERY_ACTIONS)


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_an_object_s_first_error_by_kind(kind):
    verdict = VERDICTS[kind]
    action = decide(verdict, 0, Step.OBJECT, rng=random.Random(1))
    assert action.do is OBJECT_ACTIONS[kind] and action.verdict is verdict and action.attempt == 0
    assert action.error_class == verdict.error_class and action.reason == verdict.description
    assert 0 <= action.after <= 1.0  # the first backoff (also the countdown should Redis refuse the action)
    if kind is ErrorKind.CONFIGURATION:
        assert "check the source's secret_access_key" in action.reason  # the source is failing with the hint


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_a_discovery_s_error_by_kind(kind):
    action = decide(VERDICTS[kind], 0, Step.DISCOVERY, rng=random.Random(1))
    assert action.do is DISCOVERY_ACTIONS[kind] and action.reason == VERDICTS[kind].description
    assert DISCOVERY_RETRY_SECONDS <= action.after <= DISCOVERY_RETRY_SECONDS + 1.0


@pytest.mark.parametrize("kind", list(ErrorKind))
@pytest.mark.parametrize("step", [Step.DIGESTS, Step.NOTIFICATIONS])
def test_digests_and_notifications_only_note_every_kind(kind, step):
    action = decide(VERDICTS[kind], 40, step)
    assert action.do is Do.NOTE and action.reason == VERDICTS[kind].description and action.after == 0


def test_an_object_is_dead_lettered_once_its_retry_limit_is_reached():
    surprise = VERDICTS[ErrorKind.TRANSIENT]
    assert decide(surprise, MAX_UNEXPECTED_RETRIES - 1).do is Do.RETRY
    gave_up = decide(surprise, MAX_UNEXPECTED_RETRIES)
    assert gave_up.do is Do.DEAD_LETTER and gave_up.error_class == "InternalError"  # named as what it was
    assert gave_up.reason == f"gave up after {MAX_UNEXPECTED_RETRIES + 1} tries: InternalError: a bug"
    s3_500 = Verdict(ErrorKind.TRANSIENT, "InternalError500", "oops", retry_limit=MAX_TRANSIENT_RETRIES)
    exhausted = decide(s3_500, MAX_TRANSIENT_RETRIES)
    assert exhausted.do is Do.DEAD_LETTER and exhausted.error_class == "RetriesExhausted"


@pytest.mark.parametrize("kind", [ErrorKind.THROTTLED, ErrorKind.CONFIGURATION, ErrorKind.DENIED])
def test_kinds_without_a_limit_never_dead_letter_for_their_attempts(kind):
    assert decide(VERDICTS[kind], 10_000).do is OBJECT_ACTIONS[kind]
    redis_away = Verdict(ErrorKind.TRANSIENT, "ConnectionError", "down", "is Redis up?", retry_limit=None)
    assert decide(redis_away, 10_000).do is Do.RETRY


def test_a_discovery_gives_up_until_the_next_recurrence_at_the_limit():
    surprise = VERDICTS[ErrorKind.TRANSIENT]
    assert decide(surprise, MAX_UNEXPECTED_RETRIES - 1, Step.DISCOVERY).do is Do.RETRY
    gave_up = decide(surprise, MAX_UNEXPECTED_RETRIES, Step.DISCOVERY)
    assert gave_up.do is Do.FAIL_SOURCE and gave_up.error_class == "InternalError"
    assert gave_up.reason.startswith(f"discovery gave up after {MAX_UNEXPECTED_RETRIES + 1} tries: InternalError")


def test_the_countdown_grows_with_the_attempt_and_is_capped():
    throttled = VERDICTS[ErrorKind.THROTTLED]
    late = [decide(throttled, 12).after for _ in range(200)]
    assert max(late) <= 300.0 and sum(late) / len(late) > 50
    assert all(5.0 <= decide(throttled, 30, Step.DISCOVERY).after <= 305.0 for _ in range(50))
    # Pure but for the jitter: the same draw, the same action.
    assert decide(throttled, 3, rng=random.Random(7)) == decide(throttled, 3, rng=random.Random(7))


@pytest.mark.parametrize("exc, step, hint", [
    (client_error("AccessDenied", operation="ReceiveMessage"), "ReceiveMessage", "sqs:ReceiveMessage"),
    (client_error("AWS.SimpleQueueService.NonExistentQueue", 400, "ReceiveMessage"), "ReceiveMessage",
     "check sqs.queue_url"),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "ReceiveMessage", "SQS was not reachable"),
    (redis.ConnectionError("down"), "claim/enqueue", "Redis or the Celery broker"),
    (ValueError("odd"), "DeleteMessageBatch", "the messages stay in the queue"),
])
def test_the_notification_consumer_s_hints_live_in_the_policy(exc, step, hint):
    assert hint in notification_hint(exc, step)
    line = note(exc, Step.NOTIFICATIONS, step)
    assert line.do is Do.NOTE and line.reason.startswith(f"{step} failed: {type(exc).__name__}: ")
    assert hint in line.reason


def test_a_digest_folder_s_error_is_noted_with_its_hint():
    line = note(client_error("AccessDeniedException", 400, "ListPublicKeys"), Step.DIGESTS)
    assert line.do is Do.NOTE and "cloudtrail:ListPublicKeys" in line.reason and "ClientError" in line.reason
