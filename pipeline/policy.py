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

What is done about a verdict is decided here too, once for every caller: ``decide(verdict,
attempt, step)`` is pure (an ``Action``: retry after N s, wait for the next recurrence with the
source failing, wait as a denied read, dead-letter with a reason, mark the source failing, or
only note it) and ``apply(action, state, source, key, runner)`` performs it through the
``StateStore``. Ingest (``pipeline.ingest.process_object``, the Celery task's body), discovery
(``pipeline.discovery.discover`` and ``discover_once``, the task's body) and backfill decide and
apply; the Celery tasks only turn a retry into ``self.retry(countdown=...)``. Digest folders and
the SQS consumer only note their errors (counted, kept for status, tried again next time):
``note(exc, step)`` gives the line they log, with the hint; hints live here only. One backoff
(``pipeline.backoff``) for the tasks and the supervisor.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING

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

from pipeline.backoff import backoff
from pipeline.certificates import CertificateError
from pipeline.config import format_duration
from pipeline.credentials import CredentialsUnavailable
from pipeline.errors import Backpressure, BadObject
from pipeline.s3 import ProxyAuthenticationError, UntrustedCertificate
from pipeline.store.schema import ObjectField, Status

if TYPE_CHECKING:
    from pipeline.config import Source
    from pipeline.store import StateStore

log = logging.getLogger(__name__)

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


# -- backoff (pipeline.backoff): the tasks' retries ------------------------------------------
DISCOVERY_BACKOFF_MAX_SECONDS = 300.0
DISCOVERY_RETRY_SECONDS = 5.0  # a discovery's retry waits this much more than the backoff


# -- what is done about a verdict --------------------------------------------------------------
class Step(str, Enum):
    """Who met the error: it decides what a retry is."""
    OBJECT = "object"  # ingest of one object (its Celery task retries; a backfill leaves it to the sweep)
    DISCOVERY = "discovery"  # a listing of the source (its Celery task retries)
    DIGESTS = "digests"  # a digest folder: noted, tried again at the next discovery
    NOTIFICATIONS = "notifications"  # the SQS consumer: noted, the message comes back


class Do(str, Enum):
    RETRY = "retry"  # count the error; release the object for ``after`` seconds; the task retries then
    WAIT = "wait"  # the source is wrong: mark it failing; the object waits for the next recurrence
    DENIED = "denied"  # the read is denied: the object waits, or is dead-lettered after denied_object_timeout
    DEAD_LETTER = "dead_letter"  # count the error; dead-letter the object (``error_class``, ``reason``)
    FAIL_SOURCE = "fail_source"  # no object: mark the source failing (``error_class``, ``reason``)
    NOTE = "note"  # log and count it where the caller does; tried again next time


@dataclass(frozen=True)
class Action:
    do: Do
    verdict: Verdict
    attempt: int = 0
    after: float = 0.0  # the retry's countdown: for RETRY, and for any action Redis refused to record
    error_class: str = ""  # what the dead letter or the source's health calls it
    reason: str = ""  # the dead letter's or the health's message; for NOTE, the line to log


def decide(verdict: Verdict, attempt: int = 0, step: Step = Step.OBJECT,
           rng: random.Random | None = None) -> Action:
    """What to do about ``verdict`` at the ``attempt``-th retry (0: the first try) of ``step``.
    Pure but for the backoff's jitter (``rng``)."""
    kind, description = verdict.kind, verdict.description
    exhausted = verdict.retry_limit is not None and attempt >= verdict.retry_limit
    if step in (Step.DIGESTS, Step.NOTIFICATIONS):
        return Action(Do.NOTE, verdict, attempt, error_class=verdict.error_class, reason=description)
    if step is Step.DISCOVERY:
        after = DISCOVERY_RETRY_SECONDS + backoff(attempt, cap=DISCOVERY_BACKOFF_MAX_SECONDS, rng=rng)
        if kind in (ErrorKind.CONFIGURATION, ErrorKind.DENIED):
            # Raised before or by the listing: the source is failing; the next recurrence retries.
            return Action(Do.FAIL_SOURCE, verdict, attempt, after, verdict.error_class, description)
        if exhausted:  # gave up until the next recurrence: visible as failing, with the cause
            return Action(Do.FAIL_SOURCE, verdict, attempt, after, verdict.error_class,
                          f"discovery gave up after {attempt + 1} tries: {description}")
        return Action(Do.RETRY, verdict, attempt, after, verdict.error_class, description)
    after = backoff(attempt, rng=rng)
    if kind is ErrorKind.CONFIGURATION:
        # The source is wrong, not the object: it waits (no retry burnt) and the sweep enqueues
        # it again once a discovery has found the source ok.
        return Action(Do.WAIT, verdict, attempt, after, verdict.error_class, description)
    if kind is ErrorKind.DENIED:
        return Action(Do.DENIED, verdict, attempt, after, verdict.error_class, description)
    if kind is ErrorKind.PERMANENT:
        return Action(Do.DEAD_LETTER, verdict, attempt, after, verdict.error_class, description)
    if exhausted:
        return Action(Do.DEAD_LETTER, verdict, attempt, after,
                      "InternalError" if verdict.error_class == "InternalError" else "RetriesExhausted",
                      f"gave up after {attempt + 1} tries: {description}")
    return Action(Do.RETRY, verdict, attempt, after, verdict.error_class, description)


@dataclass(frozen=True)
class Outcome:
    """What applying an action came to."""
    outcome: str  # retry | deferred (waits for the next recurrence) | failed (dead-lettered)
    #               | failing (the source, no object) | superseded (another runner has the object) | noted
    reason: str = ""
    retry_in: float | None = None  # retry: the task's countdown


def apply(action: Action, state: StateStore, source: Source, key: str = "", runner: str = "",
          forget_client: Callable[[], None] | None = None) -> Outcome:
    """Perform ``action`` for ``source`` (and its object ``key``, under ``runner``) through the
    state store. ``forget_client``: drop the source's cached client once the source is failing,
    so the next try builds it with what the user has fixed. Redis away meanwhile: a retry after
    ``action.after`` (the pending sweep is the safety net), never an exception."""
    try:
        return _apply(action, state, source, key, runner, forget_client)
    except redis.RedisError:
        return _retry(action, source, key)  # Redis is away too: retry later


def _apply(action: Action, state: StateStore, source: Source, key: str, runner: str,
           forget_client: Callable[[], None] | None) -> Outcome:
    sid, verdict = source.identifier, action.verdict
    if action.do is Do.NOTE:
        return Outcome("noted", action.reason)
    if action.do is Do.FAIL_SOURCE:
        state.set_health(sid, False, action.error_class, action.reason)
        if forget_client is not None:
            forget_client()
        log.error("source %s is failing: %s", sid, action.reason,
                  extra={"source": sid, "error_class": action.error_class})
        return Outcome("failing", verdict.description)
    if action.do is Do.WAIT:
        state.release(sid, key, retry_in_seconds=source.recurrence.total_seconds(), runner=runner)
        if forget_client is not None:
            forget_client()
        state.set_health(sid, False, action.error_class, action.reason)  # counts the error too
        log.error("object source=%s key=%s waits, the source is failing: %s", sid, key, action.reason)
        return Outcome("deferred", action.reason)
    if action.do is Do.DENIED:
        return _denied_read(action, state, source, key, runner)
    state.count_error(sid, verdict.error_class)  # (set_health and note_denied count theirs)
    if action.do is Do.RETRY:
        if key and not state.release(sid, key, retry_in_seconds=action.after, runner=runner) and \
                _held_elsewhere(state, sid, key):
            # No longer ours (taken over after this runner was presumed dead, or finished):
            # no retry, the live runner has it.
            return Outcome("superseded")
        return _retry(action, source, key)
    # DEAD_LETTER
    if not state.fail(sid, key, action.error_class, action.reason, runner=runner) and (
            _held_elsewhere(state, sid, key) or not state.fail(sid, key, action.error_class, action.reason)):
        # Presumed dead, this execution was replaced (or the object finished): the live runner
        # decides; this one writes nothing more.
        return Outcome("superseded")
    state.forget_denied(sid, key)
    log.error("object source=%s key=%s dead-lettered: %s", sid, key, verdict.description)
    return Outcome("failed", verdict.description)


def _retry(action: Action, source: Source, key: str) -> Outcome:
    what = f"object source={source.identifier} key={key}" if key else f"discovery of {source.identifier}"
    log.warning("%s: %s; retry %d", what, action.verdict.description, action.attempt + 1)
    return Outcome("retry", action.verdict.description, action.after)


def _denied_read(action: Action, state: StateStore, source: Source, key: str, runner: str) -> Outcome:
    """The source's identity may not read ``key``: the source is failing (no read works) or
    degraded (others are read); the object waits like on a configuration error (released until
    the next recurrence, no retry burnt). Denied for ``denied_object_timeout`` while the source is
    degraded, it is dead-lettered with that reason."""
    sid, verdict = source.identifier, action.verdict
    seen = state.note_denied(sid, key, verdict.error_class, verdict.description,
                             source.denied_object_timeout)
    if seen.expired:
        reason = (f"read denied for {format_duration(timedelta(milliseconds=seen.denied_ms))}, longer than the "
                  f"source's denied_object_timeout of {format_duration(source.denied_object_timeout)}, while its "
                  f"other objects are read: {verdict.description}")
        if not state.fail(sid, key, verdict.error_class, reason, runner=runner):
            return Outcome("superseded")  # another runner has it now: it decides
        state.forget_denied(sid, key)
        log.error("object source=%s key=%s dead-lettered: %s", sid, key, reason)
        return Outcome("failed", f"{verdict.error_class}: {reason}")
    state.release(sid, key, retry_in_seconds=source.recurrence.total_seconds(), runner=runner)
    log.warning("object source=%s key=%s waits, its read is denied (source %s): %s", sid, key, seen.state,
                verdict.description)
    return Outcome("deferred", verdict.description)


def _held_elsewhere(state: StateStore, source: str, key: str) -> bool:
    """After this runner's release or fail was refused: another runner holds the object, or it
    finished (True); or nobody holds it, the error having come before this execution began it
    (False: retried, or dead-lettered, as before)."""
    return state.object_state(source, key).get(ObjectField.STATE) in (Status.PROCESSING, Status.DONE, Status.FAILED)


# -- what digest folders and the SQS consumer say about their errors ---------------------------
DIGESTS_HINT = ("tried again at the next discovery; with ListPublicKeys the source's credentials need "
                "cloudtrail:ListPublicKeys")
NOTIFICATION_BACKEND_STEPS = frozenset({"claim/enqueue", "Redis"})
NOTIFICATION_BACKEND_HINT = ("Redis or the Celery broker was not reachable; the message stays in the queue and "
                             "is received again")
NOTIFICATION_DENIED_HINT = ("grant the source's credentials sqs:ReceiveMessage, sqs:DeleteMessage and "
                            "sqs:ChangeMessageVisibility on the queue")
NOTIFICATION_NO_QUEUE_HINT = "check sqs.queue_url (and sqs.region / sqs.endpoint_url)"
NOTIFICATION_UNREACHABLE_HINT = "SQS was not reachable; check sqs.endpoint_url, the proxy and the network"
NOTIFICATION_OTHER_HINT = "the messages stay in the queue and are received again; the listing still runs"


def notification_hint(exc: BaseException, step: str = "") -> str:
    """What to do about an SQS consumer error, for the log and `trailpipe status`."""
    if step in NOTIFICATION_BACKEND_STEPS:
        return NOTIFICATION_BACKEND_HINT
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    if "AccessDenied" in code:
        return NOTIFICATION_DENIED_HINT
    if "NonExistentQueue" in code or code == "QueueDoesNotExist":
        return NOTIFICATION_NO_QUEUE_HINT
    if isinstance(exc, (BotoCoreError, ConnectionError, TimeoutError)):
        return NOTIFICATION_UNREACHABLE_HINT
    return NOTIFICATION_OTHER_HINT


def note(exc: BaseException, step: Step, what: str = "") -> Action:
    """The NOTE for an error of a step that is tried again next time (digests, notifications),
    its ``reason`` the line to log and keep: ``what`` (the SQS call) failed, the error, the hint."""
    action = decide(classify(exc), 0, step)
    if step is Step.NOTIFICATIONS:
        line = f"{what} failed: {type(exc).__name__}: {exc}; {notification_hint(exc, what)}"
    else:
        line = f"{type(exc).__name__}: {exc} ({DIGESTS_HINT})"
    return Action(Do.NOTE, action.verdict, error_class=action.error_class, reason=line)
