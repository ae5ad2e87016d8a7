"""One error policy: ``classify(exc)`` says what an error means and what to do about it.

- ``PERMANENT``: this object can never be ingested as it is: dead-letter it with the reason.
- ``TRANSIENT``: the next try may work (S3 5xx, timeouts, resets, Redis away or out of memory):
  back off and retry, up to a limit, then dead-letter.
- ``THROTTLED``: S3 or the stream asks us to slow down: back off, without a limit.
- ``CONFIGURATION``: the *source* is wrong (a bad secret, a missing permission, a wrong bucket,
  region, proxy password or certificate, expired credentials). Retrying objects cannot help and
  dead-lettering them would bury the cause: the source is marked failing (with a hint) and
  tried again at its next recurrence; objects wait, their retries untouched. An endpoint or
  proxy that cannot be connected to (refused, DNS, TLS handshake) is one too, after botocore's
  own retries, with a hint naming the field (``endpoint_url``, ``proxy``...).
- ``DENIED``: the source's identity may not read this object (AccessDenied on GetObject, the
  trail's KMS key disabled, pending deletion, gone or not granted, SSE-KMS over Signature
  Version 2). The object waits like on a configuration error (released until the next
  recurrence, no retry burnt, not dead-lettered) and the source is failing, or ``degraded``
  while other objects are read (pipeline.ingest.defer_denied); an object denied for longer
  than the source's ``denied_object_timeout`` while others are read is dead-lettered.

Errors nobody foresaw are TRANSIENT with a short limit (``retry_limit``), then dead-lettered as
``InternalError``, so nothing loops forever and nothing is dropped silently.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import redis
import urllib3.exceptions
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProxyConnectionError,
)
from botocore.exceptions import SSLError as BotoSSLError

from pipeline.certificates import CertificateError
from pipeline.credentials import CredentialsUnavailable
from pipeline.errors import Backpressure, BadObject
from pipeline.s3 import ProxyAuthenticationError, UntrustedCertificate

MAX_TRANSIENT_RETRIES = 30  # about 2.5 hours of backoff
MAX_UNEXPECTED_RETRIES = 3


class ErrorKind(str, Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    THROTTLED = "throttled"
    CONFIGURATION = "configuration"
    DENIED = "denied"


@dataclass(frozen=True)
class Verdict:
    kind: ErrorKind
    error_class: str  # what status, metrics and dead letters call it (an S3 error code, a class)
    message: str  # the error's own words, never a secret
    hint: str = ""  # what the user should check
    retry_limit: int | None = None  # retries before a dead letter (None: no limit)

    @property
    def description(self) -> str:
        return f"{self.error_class}: {self.message}" + (f"; {self.hint}" if self.hint else "")


THROTTLING_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                              "TooManyRequestsException", "503"})
# S3 answers about one object that retrying can never fix.
PERMANENT_OBJECT_CODES = frozenset({"NoSuchKey", "InvalidObjectState", "404", "AccessDenied", "403"})
# S3/STS answers that mean the source's settings are wrong, with what to check.
CONFIGURATION_HINTS = {
    "SignatureDoesNotMatch": "check the source's secret_access_key (it does not belong to access_key_id)",
    "InvalidAccessKeyId": "check the source's access_key_id (the endpoint does not know it)",
    "InvalidClientTokenId": "check the source's access_key_id (STS does not know it)",
    "AccessDenied": "grant s3:ListBucket on the bucket (ops/iam-policy.json) or check the directory_prefix",
    "AllAccessDisabled": "the bucket's access is disabled; check the bucket",
    "NoSuchBucket": "check the source's bucket and endpoint_url",
    "PermanentRedirect": "check the source's region: the bucket is in another region",
    "AuthorizationHeaderMalformed": "check the source's region: the bucket is in another region",
    "IllegalLocationConstraintException": "check the source's region: the bucket is in another region",
    "301": "check the source's region: the bucket is in another region",
    "ExpiredToken": "the credentials expired: check the instance role or assume_role settings",
    "ExpiredTokenException": "the credentials expired: check the instance role or assume_role settings",
    "TokenRefreshRequired": "the credentials expired: check the instance role or assume_role settings",
    "InvalidToken": "the session token is invalid: check the source's auth",
    "RequestTimeTooSkewed": "this machine's clock is off: synchronize it (NTP)",
    "RequestExpired": "this machine's clock is off: synchronize it (NTP)",
}
# Replies of a Redis that cannot serve writes for a while (a replica promoted, loading, a busy
# script, a failed save): transient, without limit, like a connection error.
REDIS_UNAVAILABLE_REPLIES = frozenset({"READONLY", "LOADING", "BUSY", "MISCONF", "TRYAGAIN", "CLUSTERDOWN",
                                       "MASTERDOWN", "NOREPLICAS"})
# What a Redis Cluster answers while a shard fails over or slots move (redis-py's RedisCluster
# retries them first): MOVED/ASK, TRYAGAIN, CLUSTERDOWN, no node reachable, a slot not covered.
REDIS_CLUSTER_SWITCHING = (redis.exceptions.AskError, redis.exceptions.TryAgainError, redis.exceptions.ClusterError,
                           redis.exceptions.RedisClusterException)
# A read the source's identity may not make (the listing works): the object waits (DENIED).
OBJECT_OPERATIONS = frozenset({"GetObject", "HeadObject"})
_DECRYPT = "grant kms:Decrypt on the trail's KMS key to the source's identity (the key policy, or its IAM policy)"
DENIED_READ_HINTS = {
    "AccessDenied": "grant s3:GetObject on the bucket's log files to the source's identity "
                    "(ops/iam-policy.json), and kms:Decrypt on the trail's KMS key for an SSE-KMS trail",
    "403": "grant s3:GetObject on the bucket's log files to the source's identity (ops/iam-policy.json), "
           "and kms:Decrypt on the trail's KMS key for an SSE-KMS trail",
    "KMS.AccessDeniedException": _DECRYPT,
    "AccessDeniedException": _DECRYPT,
    "KMS.DisabledException": "the trail's KMS key is disabled: enable it (kms:EnableKey), or give the trail "
                             "a key that is enabled",
    "KMS.KMSInvalidStateException": "the trail's KMS key is not usable (pending deletion or import): cancel "
                                    "its deletion (kms:CancelKeyDeletion) or check the key's state",
    "KMS.NotFoundException": "the trail's KMS key was not found (deleted, or in another account or region): "
                             "check the key the trail encrypts with and the source's region",
}
SIGV4_HINT = "the object is encrypted with SSE-KMS, which needs Signature Version 4: set the source's " \
             "signature_version to v4 (and its region)"


def _denied(code: str, message: str, operation: str) -> Verdict | None:
    """The verdict for a read the source's identity is denied, else None."""
    if operation not in OBJECT_OPERATIONS:
        return None
    if code == "InvalidArgument" and "Signature Version 4" in message:
        return Verdict(ErrorKind.DENIED, "SignatureVersion4Required", message, SIGV4_HINT)
    if code in DENIED_READ_HINTS:
        hint = _DECRYPT if code in ("AccessDenied", "403") and "kms" in message.lower() else DENIED_READ_HINTS[code]
        return Verdict(ErrorKind.DENIED, code, message, hint)
    return None


def _unreachable(exc: BotoCoreError) -> Verdict | None:
    """An endpoint or proxy that cannot be connected to (after botocore's own retries)."""
    if isinstance(exc, ProxyConnectionError):
        return Verdict(ErrorKind.CONFIGURATION, "ProxyUnreachable", str(exc),
                       "check the source's proxy (proxy.host, proxy.port) and that this machine can reach it")
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return Verdict(ErrorKind.CONFIGURATION, "EndpointUnreachable", str(exc),
                       "check the source's endpoint_url (scheme, host, port: connection refused, no DNS name "
                       "or no route?) or, for assume_role, auth.sts_endpoint_url; and the firewall")
    if isinstance(exc, BotoSSLError):
        return Verdict(ErrorKind.CONFIGURATION, "TLSHandshakeFailed", str(exc),
                       "check the source's endpoint_url: its scheme (https to a plain HTTP port?) and port; "
                       "and the endpoint's TLS setup")
    return None


def _client_error(exc: ClientError) -> Verdict:
    error = exc.response.get("Error", {}) or {}
    code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "ClientError")
    message = str(error.get("Message") or code)
    operation = getattr(exc, "operation_name", "") or ""
    if code in THROTTLING_CODES:
        return Verdict(ErrorKind.THROTTLED, code, message)
    denied = _denied(code, message, operation)
    if denied is not None:
        return denied
    if code in CONFIGURATION_HINTS:
        hint = CONFIGURATION_HINTS[code]
        if code == "AccessDenied" and operation.startswith("AssumeRole"):
            hint = "check the role_arn's trust policy and external_id (ops/iam-policy-assume-role.json)"
        return Verdict(ErrorKind.CONFIGURATION, code, message, hint)
    if code in PERMANENT_OBJECT_CODES:
        return Verdict(ErrorKind.PERMANENT, code, message)
    return Verdict(ErrorKind.TRANSIENT, code, message, retry_limit=MAX_TRANSIENT_RETRIES)


def classify(exc: BaseException) -> Verdict:
    """What ``exc`` means for the object (or discovery) that raised it."""
    if isinstance(exc, BadObject):
        return Verdict(ErrorKind.PERMANENT, exc.error_class, exc.reason)
    if isinstance(exc, Backpressure):
        return Verdict(ErrorKind.THROTTLED, "Backpressure", str(exc))
    if isinstance(exc, ProxyAuthenticationError):
        return Verdict(ErrorKind.CONFIGURATION, "ProxyAuthenticationRequired", str(exc),
                       "check proxy.username and proxy.password")
    if isinstance(exc, (UntrustedCertificate, CertificateError)) or (
            isinstance(exc, BotoSSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc)):
        return Verdict(ErrorKind.CONFIGURATION, "UntrustedCertificate", str(exc),
                       "put the endpoint's certificate in trusted_certificates_dir "
                       "(trailpipe certificates acquire)")
    if isinstance(exc, (CredentialsUnavailable, NoCredentialsError, PartialCredentialsError,
                        CredentialRetrievalError)):
        return Verdict(ErrorKind.CONFIGURATION, "CredentialsUnavailable", str(exc), "check the source's auth")
    if isinstance(exc, ClientError):
        return _client_error(exc)
    if isinstance(exc, redis.ReadOnlyError) or (
            isinstance(exc, redis.ResponseError) and str(exc).split(" ", 1)[0] in REDIS_UNAVAILABLE_REPLIES):
        return Verdict(ErrorKind.TRANSIENT, type(exc).__name__, str(exc),
                       "Redis is failing over, loading or busy: it should pass", retry_limit=None)
    if isinstance(exc, REDIS_CLUSTER_SWITCHING):
        return Verdict(ErrorKind.TRANSIENT, type(exc).__name__, str(exc),
                       "a Redis Cluster shard is failing over or moving slots: it should pass", retry_limit=None)
    if isinstance(exc, redis.ResponseError) and str(exc).startswith("OOM"):
        return Verdict(ErrorKind.TRANSIENT, "RedisOutOfMemory", str(exc),
                       "Redis is full (maxmemory): let consumers catch up or give it memory",
                       retry_limit=None)
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)):
        return Verdict(ErrorKind.TRANSIENT, type(exc).__name__, str(exc), "is Redis up?", retry_limit=None)
    if isinstance(exc, BotoCoreError) and (unreachable := _unreachable(exc)) is not None:
        return unreachable
    if isinstance(exc, (BotoCoreError, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
        return Verdict(ErrorKind.TRANSIENT, type(exc).__name__, str(exc), retry_limit=MAX_TRANSIENT_RETRIES)
    return Verdict(ErrorKind.TRANSIENT, "InternalError", f"{type(exc).__name__}: {exc}",
                   retry_limit=MAX_UNEXPECTED_RETRIES)
