"""Log sources and shared settings, read from one YAML file.

Each source carries every parameter of a QRadar/JSA "Amazon AWS S3 REST API" log source in
snake_case. ``${VAR}`` in any string value is read from the environment, so secrets need
not sit in the file; secrets are held as ``SecretStr`` and never printed.

``load_config`` raises ``ConfigError`` whose ``problems`` are one line per problem, each
naming the source identifier and the field.
"""
from __future__ import annotations

import difflib
import os
import re
import urllib.parse
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticKnownError

from pipeline import defaults
from pipeline.embedded import embedded_url
from pipeline.errors import ConfigError
from pipeline.store.schema import SOURCE_PLACEHOLDER

DEFAULT_ENDPOINT = "https://s3.amazonaws.com"

_RECURRENCE = re.compile(r"^\s*(\d+)\s*([HMD])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"M": 60, "H": 3600, "D": 86400}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MIN_RECURRENCE_SECONDS = 60


def parse_recurrence(text: str) -> int:
    """``"2H"``, ``"15 M"``, ``"1D"`` -> seconds. Minimum one minute: every S3 call costs money.

    Messages never quote the value (a secret pasted into the wrong field must not be printed)."""
    match = _RECURRENCE.match(str(text))
    if not match:
        raise ValueError("is not a recurrence: use a number and a unit H, M or D, such as 2H, 15 M or 1D")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2).upper()]
    if seconds < MIN_RECURRENCE_SECONDS:
        raise ValueError("is shorter than the minimum of 1 minute")
    return seconds


def _duration(value: Any) -> timedelta:
    """A duration field: ``"2H"``/``"15 M"``/``"1D"`` in the file, a timedelta once loaded."""
    if isinstance(value, timedelta):
        return value
    return timedelta(seconds=parse_recurrence(value))


def format_duration(value: timedelta) -> str:
    """The shortest of ``"1D"``, ``"2H"``, ``"15M"`` that says ``value`` (whole minutes)."""
    seconds = int(value.total_seconds())
    for unit in ("D", "H"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds // 60}M"


# Typed once at load: the rest of the code sees a timedelta, never the text.
Duration = Annotated[timedelta, BeforeValidator(_duration)]

_WHOLE_NUMBER: TypeAdapter[int] = TypeAdapter(int)


_MAX_SECONDS = int(timedelta.max.total_seconds())


def _seconds_at_least(minimum: int):
    """A duration field written as whole seconds (``requeue_after_seconds: 900``), a timedelta
    once loaded; pydantic's own errors for an integer field (``must be at least 60``)."""

    def typed(value: Any) -> timedelta:
        if isinstance(value, timedelta):
            seconds = value.total_seconds()
        else:
            try:
                seconds = _WHOLE_NUMBER.validate_python(value)
            except ValidationError as exc:
                raise PydanticKnownError(exc.errors()[0]["type"]) from None  # type: ignore[arg-type]
        if seconds < minimum:
            raise PydanticKnownError("greater_than_equal", {"ge": minimum})
        if seconds > _MAX_SECONDS:  # past what a timedelta holds: an error naming the field, not a crash
            raise PydanticKnownError("less_than_equal", {"le": _MAX_SECONDS})
        return timedelta(seconds=seconds)

    return BeforeValidator(typed)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccessKeyAuth(_Strict):
    """An access key: the secret in the file (or ``${ENV}``), or in a file of its own."""

    method: Literal["access_key"]
    access_key_id: str = Field(min_length=1)
    secret_access_key: SecretStr | None = None
    secret_access_key_file: str | None = None  # read when the client is made; whitespace around it ignored

    @field_validator("secret_access_key")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @field_validator("secret_access_key_file")
    @classmethod
    def _secret_file_readable(cls, value: str | None) -> str | None:
        if value is not None:
            if not Path(value).is_file():
                raise ValueError("is not a file")
            if not os.access(value, os.R_OK):
                raise ValueError("is not readable")
        return value

    @model_validator(mode="after")
    def _exactly_one_secret(self) -> AccessKeyAuth:
        if self.secret_access_key is None and self.secret_access_key_file is None:
            raise ValueError("secret_access_key: is required (or secret_access_key_file: a file holding it)")
        if self.secret_access_key is not None and self.secret_access_key_file is not None:
            raise ValueError("secret_access_key: give only one of secret_access_key and secret_access_key_file")
        return self


class InstanceRoleAuth(_Strict):
    """The EC2 instance's IAM role, from the instance metadata service (IMDSv2)."""

    method: Literal["instance_role"]


class DefaultChainAuth(_Strict):
    """boto3's default chain: environment, shared profile, container role, instance role."""

    method: Literal["default_chain"]


BaseAuth = Annotated[AccessKeyAuth | InstanceRoleAuth | DefaultChainAuth, Field(discriminator="method")]


class AssumeRoleAuth(_Strict):
    """``sts:AssumeRole`` into ``role_arn`` with the ``base`` credentials; renewed before expiry."""

    method: Literal["assume_role"]
    role_arn: str
    external_id: str | None = Field(default=None, min_length=2, max_length=1224, pattern=r"^[A-Za-z0-9_+=,.@:/\-]+$")
    session_name: str = Field(default="trailpipe", min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_+=,.@\-]+$")
    duration_seconds: int = Field(default=3600, ge=900, le=43200)
    sts_endpoint_url: str | None = None  # default: STS of the source's region
    base: BaseAuth

    @field_validator("role_arn")
    @classmethod
    def _role_arn_rule(cls, value: str) -> str:
        if len(value) > 2048 or not re.match(r"^arn:aws[a-z\-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/\-]+$", value):
            raise ValueError("is not an IAM role ARN such as arn:aws:iam::123456789012:role/NAME")
        return value

    @field_validator("sts_endpoint_url")
    @classmethod
    def _sts_endpoint_is_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("is not an http(s) URL")
        return value.rstrip("/") if value else value


Auth = Annotated[AccessKeyAuth | InstanceRoleAuth | AssumeRoleAuth | DefaultChainAuth,
                 Field(discriminator="method")]
# The discriminator tags pydantic puts into error locations ("auth.assume_role.role_arn").
AUTH_METHODS = ("access_key", "instance_role", "assume_role", "default_chain")


class Proxy(_Strict):
    """An HTTP proxy every S3 and STS request goes through (HTTPS through CONNECT)."""

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None

    @field_validator("host")
    @classmethod
    def _host_only(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9.\-]+$|^\[[0-9A-Fa-f:.]+\]$", value):
            raise ValueError("is not a host name or address (no scheme, port or user here)")
        return value

    @model_validator(mode="after")
    def _password_needs_user(self) -> Proxy:
        if self.password is not None and not self.username:
            raise ValueError("password: needs a username")
        return self


class SqsNotifications(_Strict):
    """An SQS queue that S3 event notifications (direct, through SNS or EventBridge) reach.

    region and auth default to the source's; endpoint_url to the queue URL's scheme and host
    (``endpoint``), so a local SQS, a VPC or FIPS endpoint is reached where the queue lives.
    """

    queue_url: str
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    endpoint_url: str | None = None
    auth: Auth | None = None

    @field_validator("queue_url", "endpoint_url")
    @classmethod
    def _is_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("is not an http(s) URL")
        return value.rstrip("/") if value else value

    @property
    def endpoint(self) -> str | None:
        """Where SQS requests go: ``endpoint_url`` if given, else the queue URL's scheme and host;
        None (botocore's regional endpoint) for AWS's legacy ``queue.amazonaws.com`` forms."""
        if self.endpoint_url:
            return self.endpoint_url
        parts = urlsplit(self.queue_url)
        host = (parts.hostname or "").lower()
        if host == "queue.amazonaws.com" or host.endswith(".queue.amazonaws.com"):
            return None
        return f"{parts.scheme}://{parts.netloc}"


# Regions launched before 2014 also accept Signature Version 2; every later region is SigV4 only.
SIGV2_REGIONS = frozenset({
    "us-east-1", "us-west-1", "us-west-2", "eu-west-1", "ap-southeast-1", "ap-southeast-2",
    "ap-northeast-1", "sa-east-1", "us-gov-west-1",
})


class Integrity(_Strict):
    """CloudTrail's signed digest files: verified, and used to find log files the listing missed."""

    enabled: bool = False
    public_keys_dir: str | None = None  # RSA public keys, PEM or DER, any file name; else ListPublicKeys
    endpoint_url: str | None = None  # the CloudTrail API for ListPublicKeys; default: AWS's

    @field_validator("public_keys_dir")
    @classmethod
    def _keys_dir_rule(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError("is not a directory")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _api_is_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("is not an http(s) URL")
        return value


StreamField = Literal["event", "event_id", "event_name", "event_time", "source", "object", "account", "region",
                      "display_name", "category"]  # defaults.STREAM_FIELDS, all of them by default


class Source(_Strict):
    """One log source: a bucket (and prefix) to collect CloudTrail files from."""

    identifier: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")
    signature_version: Literal["v2", "v4"] = "v4"
    # validate_default: the "required with v4" rule must also fire when region is absent.
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$", validate_default=True)
    endpoint_url: str = DEFAULT_ENDPOINT
    addressing_style: Literal["auto", "path", "virtual"] = "auto"  # botocore's s3 addressing_style
    auth: Auth
    directory_prefix: str = "/"
    file_pattern: str = r".*?\.json\.gz"
    event_format: Literal["cloudtrail_json"] = "cloudtrail_json"
    proxy: Proxy | None = None
    auto_acquire_certificates: bool = False
    trusted_certificates_dir: str | None = Field(default=None, validate_default=True)
    recurrence: Duration = defaults.RECURRENCE
    eps_throttle: int = Field(default=defaults.EPS_THROTTLE, ge=1)
    output_formats: list[Literal["ecs", "ocsf"]] = Field(default_factory=list)
    # The fields of each stream entry beside the output_formats' documents (pipeline.emitter).
    stream_fields: list[StreamField] = Field(
        default_factory=lambda: cast(list[StreamField], list(defaults.STREAM_FIELDS)), min_length=1)
    exclude_event_names: str | None = None
    queue: str | None = Field(default=None, min_length=1)
    # Late files: each discovery lists again from (newest delivery time seen - lookback).
    lookback: Duration = defaults.LOOKBACK
    # No listing reaches log files delivered before now - ignore_older, so a new or reset source
    # (no marker) does not ingest its whole history; None: everything. At least ``lookback``.
    # ``backfill`` still reaches the older ones.
    ignore_older: Duration | None = defaults.IGNORE_OLDER
    # Hostile input: an object over one of these caps is dead-lettered (pipeline.parser).
    max_object_bytes: int = Field(default=defaults.MAX_OBJECT_BYTES, ge=1)  # compressed
    max_uncompressed_bytes: int = Field(default=defaults.MAX_UNCOMPRESSED_BYTES, ge=1)
    max_record_bytes: int = Field(default=defaults.MAX_RECORD_BYTES, ge=1)
    max_records_per_object: int = Field(default=defaults.MAX_RECORDS_PER_OBJECT, ge=1)
    integrity: Integrity = Field(default_factory=Integrity)
    # An object denied (AccessDenied, KMS) while others are read waits this long, then is dead-lettered.
    denied_object_timeout: Duration = defaults.DENIED_OBJECT_TIMEOUT
    sqs: SqsNotifications | None = None  # notifications; the listing stays on as reconciliation

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("is not an http(s) URL")
        return value.rstrip("/")

    @field_validator("directory_prefix")
    @classmethod
    def _prefix_rule(cls, value: str) -> str:
        if value != "/" and value.startswith("/"):
            raise ValueError('must not start with "/" ("/" alone means the bucket root)')
        return value

    @field_validator("file_pattern", "exclude_event_names")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a valid regular expression: {exc}") from None
        return value

    @field_validator("region")
    @classmethod
    def _region_for_v4(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value and info.data.get("signature_version", "v4") == "v4":
            raise ValueError("is required with signature_version v4")
        return value

    @field_validator("region")
    @classmethod
    def _region_for_v2(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and info.data.get("signature_version") == "v2" and value not in SIGV2_REGIONS:
            raise ValueError(
                "accepts only Signature Version 4: use signature_version v4 "
                f"(Signature Version 2 works only in {', '.join(sorted(SIGV2_REGIONS))})")
        return value

    @field_validator("trusted_certificates_dir")
    @classmethod
    def _cert_dir_rule(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("auto_acquire_certificates"):
                raise ValueError(
                    "is required with auto_acquire_certificates (the acquired certificate is stored there)"
                )
            return value
        if not Path(value).is_dir():
            raise ValueError("is not a directory")
        return value

    @field_validator("ignore_older")
    @classmethod
    def _ignore_older_covers_lookback(cls, value: timedelta | None, info: ValidationInfo) -> timedelta | None:
        lookback = info.data.get("lookback", defaults.LOOKBACK)
        if value is not None and isinstance(lookback, timedelta) and value < lookback:
            raise ValueError(f"must be at least the source's lookback ({format_duration(lookback)}), "
                             "or late files inside it would be ignored")
        return value

    @field_validator("sqs")
    @classmethod
    def _sqs_region(cls, value: SqsNotifications | None, info: ValidationInfo) -> SqsNotifications | None:
        if value is not None and not value.region and not info.data.get("region"):
            raise ValueError("region: is required when the source has no region")
        return value

    # Derived values, computed from the validated fields.
    @property
    def list_prefix(self) -> str:
        """The S3 Prefix to list: "/" (the bucket root) lists everything."""
        return "" if self.directory_prefix == "/" else self.directory_prefix

    @property
    def file_regex(self) -> re.Pattern[str]:
        return _compiled(self.file_pattern)

    @property
    def exclude_regex(self) -> re.Pattern[str] | None:
        return _compiled(self.exclude_event_names) if self.exclude_event_names else None

    @property
    def queue_name(self) -> str:
        """The Celery queue this source's tasks go to: ``trailpipe.<region>`` unless overridden."""
        return self.queue or f"trailpipe.{self.region or 'default'}"


Model = TypeVar("Model", bound=BaseModel)


def declared_defaults(model: type[Model]) -> Model:
    """A stand-in for ``model`` holding the default each of its fields declares (the values of
    ``pipeline.defaults``), its required fields absent: what the code that runs without a config
    (``Settings.default()``, ``ParseLimits.default()``) takes, so no default is written twice."""
    values = {name: info.get_default(call_default_factory=True)
              for name, info in model.model_fields.items() if not info.is_required()}
    return cast(Model, SimpleNamespace(**values))


_regex_cache: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern not in _regex_cache:
        _regex_cache[pattern] = re.compile(pattern)
    return _regex_cache[pattern]


REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel",  # pipeline.connections.SCHEMES
                 "redis+cluster", "rediss+cluster")
BROKER_SCHEMES = (*REDIS_SCHEMES, "sentinel", "amqp", "amqps", "pyamqp")


def redis_url_problem(url: str) -> str | None:
    """Why ``url`` is no Redis URL (never quoting it: it may hold a password), or None."""
    from pipeline.connections import parse_url  # noqa: PLC0415  (redis-py only when needed)

    try:
        parse_url(url)
    except ValueError as exc:  # its message never quotes the URL
        return str(exc)
    return None


class Config(_Strict):
    """The whole file: shared settings plus the list of sources."""

    # redis://, rediss://, unix://, redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]
    # or redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/ (rediss+... with TLS): may hold a
    # password; None means "embedded redis-server"
    redis_url: SecretStr | None = None
    # defaults to redis_url; amqp://… for RabbitMQ; never a cluster (Celery cannot use one)
    broker_url: SecretStr | None = None
    sentinel_password: SecretStr | None = None  # the Sentinels' own password (requirepass of a Sentinel)
    # Redis WAIT after each batch for this many replicas (narrows what a failover may lose).
    wait_replicas: int | None = Field(default=None, ge=1)
    # With a RabbitMQ broker: the source queues as quorum queues (ignored with a Redis broker).
    quorum_queues: bool = defaults.QUORUM_QUEUES
    stream: str = Field(default=defaults.STREAM, min_length=1)
    deadletter_stream: str = Field(default=defaults.DEADLETTER_STREAM, min_length=1)
    key_prefix: str = Field(default=defaults.KEY_PREFIX, min_length=1, pattern=r"^[A-Za-z0-9._\-]+$")
    batch_size: int = Field(default=defaults.BATCH_SIZE, ge=1, le=10000)
    # How long a done object is remembered: at least each source's lookback plus an hour,
    # as only keys inside the lookback window are listed again (so state stays bounded).
    # A dead-lettered object is remembered as long as its dead letter is listed.
    state_retention: Duration = defaults.STATE_RETENTION
    # The four durations written in whole seconds (their keys end in _seconds): timedeltas once loaded.
    requeue_after: Annotated[timedelta, _seconds_at_least(60)] = Field(
        default=defaults.REQUEUE_AFTER, alias="requeue_after_seconds")
    # Fast failover: a runner beats every heartbeat_timeout/4; silent for heartbeat_timeout, its
    # object is enqueued again by the sweep, which runs every sweep_interval.
    heartbeat_timeout: Annotated[timedelta, _seconds_at_least(10)] = Field(
        default=defaults.HEARTBEAT_TIMEOUT, alias="heartbeat_timeout_seconds")
    sweep_interval: Annotated[timedelta, _seconds_at_least(5)] = Field(
        default=defaults.SWEEP_INTERVAL, alias="sweep_interval_seconds")
    # Where `trailpipe run` keeps the embedded redis-server (data, password, address) and its lock.
    state_dir: str = defaults.STATE_DIR
    max_attempts: int = Field(default=defaults.MAX_ATTEMPTS, ge=1)  # deliveries of one object that died mid-way
    visibility_timeout: Annotated[timedelta, _seconds_at_least(60)] = Field(
        default=defaults.VISIBILITY_TIMEOUT, alias="visibility_timeout_seconds")
    stream_high_watermark: int | None = Field(default=None, ge=1)  # emission waits above this length
    # Above the watermark, emission waits this long at most; then the object is released to a retry.
    backpressure_max_wait: Duration = defaults.BACKPRESSURE_MAX_WAIT
    stream_maxlen: int | None = Field(default=None, ge=1)  # opt-in approximate trimming
    deadletter_maxlen: int = Field(default=defaults.DEADLETTER_MAXLEN, ge=1)  # oldest dropped first
    sources: list[Source] = Field(min_length=1)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            problem = redis_url_problem(value.get_secret_value())
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme.lower()
            if scheme in REDIS_SCHEMES:  # one server or Sentinel: the connection factory's forms
                problem = redis_url_problem(value.get_secret_value()) or _cluster_broker_problem(scheme)
                if problem:
                    raise ValueError(problem)
            elif scheme not in BROKER_SCHEMES:
                raise ValueError("is not a broker URL: use " + ", ".join(f"{s}://" for s in BROKER_SCHEMES))
            if is_amqp_url(value.get_secret_value()):
                # A RabbitMQ URL names its host, and its port is a number (the message never
                # shows it: it may hold a password).
                parts = urllib.parse.urlsplit(value.get_secret_value())
                form = "use amqp://USER:PASSWORD@HOST:PORT/VHOST"
                try:
                    parts.port  # noqa: B018  (raises on a port that is not a number)
                except ValueError:
                    raise ValueError(f"the RabbitMQ port is not a number: {form}") from None
                if not parts.hostname:
                    raise ValueError(f"the RabbitMQ URL names no host: {form}")
        return value

    @model_validator(mode="after")
    def _streams_per_source(self) -> Config:
        """``{source}`` in a stream name (a hash tag per source); on a Redis Cluster it is needed,
        as are a broker that is not the cluster and no ``wait_replicas``."""
        for name in ("stream", "deadletter_stream"):
            rest = getattr(self, name).replace(SOURCE_PLACEHOLDER, "")
            if SOURCE_PLACEHOLDER in getattr(self, name) and ("{" in rest or "}" in rest):
                raise ValueError(f"{name}: may hold braces only as {SOURCE_PLACEHOLDER} (the source's hash tag)")
        if self.redis_url is None or not _is_cluster(self.redis_url.get_secret_value()):
            return self
        for name, example in (("stream", "trailpipe:events:{source}"),
                              ("deadletter_stream", "trailpipe:deadletter:{source}")):
            if SOURCE_PLACEHOLDER not in getattr(self, name):
                raise ValueError(f"{name}: must contain {SOURCE_PLACEHOLDER} when redis_url is a Redis Cluster "
                                 f"(such as {example!r}), so that each source's keys and stream share one hash slot")
        if self.broker_url is None:
            raise ValueError("broker_url: is needed when redis_url is a Redis Cluster, which Celery cannot use as "
                             "its broker (celery/celery#2852): use a plain or Sentinel Redis (redis://, "
                             "redis+sentinel://) or RabbitMQ (amqp://)")
        if self.wait_replicas is not None:
            raise ValueError("wait_replicas: is not available on a Redis Cluster (WAIT counts one connection's "
                             "writes, and a cluster client spreads them over connections): remove it")
        return self

    @model_validator(mode="after")
    def _retention_covers_lookback(self) -> Config:
        for source in self.sources:
            if self.state_retention < source.lookback + defaults.RETENTION_MARGIN:
                raise ValueError(
                    f"state_retention: must be at least source {source.identifier!r}'s lookback"
                    f" plus {format_duration(defaults.RETENTION_MARGIN)}")
        return self

    def source(self, identifier: str) -> Source:
        for source in self.sources:
            if source.identifier == identifier:
                return source
        raise KeyError(f"no source with identifier {identifier!r}")

    @property
    def state_path(self) -> Path:
        return Path(os.environ.get("TRAILPIPE_STATE_DIR") or self.state_dir)

    @property
    def uses_embedded_redis(self) -> bool:
        return self.redis_url is None and not os.environ.get("TRAILPIPE_REDIS_URL")

    def redis_url_value(self) -> str:
        override = os.environ.get("TRAILPIPE_REDIS_URL")
        if override:
            problem = redis_url_problem(override)
            if problem:
                raise ConfigError([f"environment variable TRAILPIPE_REDIS_URL {problem}"])
            if _is_cluster(override) and not all(SOURCE_PLACEHOLDER in name
                                                 for name in (self.stream, self.deadletter_stream)):
                raise ConfigError(["environment variable TRAILPIPE_REDIS_URL is a Redis Cluster: stream and "
                                   f"deadletter_stream must contain {SOURCE_PLACEHOLDER} there"])
            return override
        if self.redis_url is None:
            # The embedded redis-server of `trailpipe run` records its address (and password)
            # in the state folder, readable by this user only.
            url = embedded_url(self.state_path)
            if url is None:
                raise ConfigError([
                    f"redis_url: not set, and no embedded redis-server is recorded in {str(self.state_path)!r}: "
                    "start `trailpipe run` with this config (or set TRAILPIPE_STATE_DIR to its folder), "
                    "or set redis_url"])
            return url
        return self.redis_url.get_secret_value()

    def sentinel_password_value(self) -> str | None:
        return self.sentinel_password.get_secret_value() if self.sentinel_password is not None else None

    def broker_url_value(self) -> str:
        """The Celery broker: ``broker_url``, else the Redis of ``redis_url``. ``TRAILPIPE_REDIS_URL``
        moves a Redis broker with the state, never a RabbitMQ one (that is not a Redis)."""
        if self.broker_url is not None and (self.broker_is_amqp or not os.environ.get("TRAILPIPE_REDIS_URL")):
            return self.broker_url.get_secret_value()
        url = self.redis_url_value()
        if _is_cluster(url):
            raise ConfigError(["broker_url: is needed: the state's Redis is a Redis Cluster, which Celery cannot "
                               "use as its broker (celery/celery#2852): use a plain or Sentinel Redis or amqp://"])
        return url


    @property
    def broker_is_amqp(self) -> bool:
        """RabbitMQ (``amqp://``, ``amqps://``, ``pyamqp://``) rather than Redis as the broker."""
        return self.broker_url is not None and is_amqp_url(self.broker_url.get_secret_value())


AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")  # pipeline.connections.ClusterAddress


def _is_cluster(url: str) -> bool:
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def _cluster_broker_problem(scheme: str) -> str | None:
    from pipeline.connections import CLUSTER_BROKER_REFUSED  # noqa: PLC0415

    return CLUSTER_BROKER_REFUSED if scheme in CLUSTER_SCHEMES else None


def is_amqp_url(url: str) -> bool:
    return url.partition("://")[0].lower() in AMQP_SCHEMES


def _substitute_env(value: Any, path: tuple, problems: list[tuple[tuple, str]]) -> Any:
    """Replace ``${VAR}`` in every string; note each unset variable as a problem at its path."""
    if isinstance(value, dict):
        return {k: _substitute_env(v, path + (k,), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, path + (i,), problems) for i, v in enumerate(value)]
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append((path, f"environment variable {name} is not set"))
                return ""
            return os.environ[name]

        return _ENV_REF.sub(replace, value)
    return value


def _where(raw: Any, loc: tuple) -> str:
    """Describe an error location as "source 'ID' field 'a.b'" or "field 'x'"."""
    if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
        index = loc[1]
        identifier = None
        sources = raw.get("sources") if isinstance(raw, dict) else None
        if isinstance(sources, list) and index < len(sources) and isinstance(sources[index], dict):
            identifier = sources[index].get("identifier")
        # Drop the discriminator tag pydantic inserts for tagged unions ("auth.access_key.x").
        field_parts = [str(p) for p in loc[2:] if p not in AUTH_METHODS]
        who = f"source {identifier!r}" if identifier else f"source #{index + 1} (no identifier)"
        return f"{who} field {'.'.join(field_parts) or '(source)'!r}"
    return f"field {'.'.join(str(p) for p in loc) or '(file)'!r}"


def _split_model_message(loc: tuple, message: str) -> tuple[tuple, str]:
    """Model validators phrase their errors as "field: problem"; move the field into the location."""
    match = re.match(r"^(?:Value error, )?([a-z_]+): (.*)$", message, re.DOTALL)
    if match:
        return loc + (match.group(1),), match.group(2)
    return loc, message.removeprefix("Value error, ")


# pydantic messages that quote the input: said without it.
_VALUE_FREE = {
    "union_tag_invalid": "is not one of the known methods: " + ", ".join(AUTH_METHODS),
    "union_tag_not_found": "needs a method: one of " + ", ".join(AUTH_METHODS),
}

# What a pattern-checked field must look like, in words (pydantic would print the regex).
_PATTERN_WORDS = {
    "identifier": "may hold only letters, digits, '.', '_' and '-', and must start with a letter or digit",
    "bucket": "is not an S3 bucket name: 3 to 63 lower-case letters, digits, '.' and '-'",
    "region": "is not an AWS region name such as us-east-1 or eu-west-1",
    "key_prefix": "may hold only letters, digits, '.', '_' and '-'",
    "external_id": "may hold only letters, digits and _+=,.@:/-",
    "session_name": "may hold only letters, digits and _+=,.@-",
}


def _friendly(err: Mapping[str, Any], field: str) -> str | None:
    """pydantic's message in the words of this file (none of them quotes the value)."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        return _PATTERN_WORDS.get(field, "has characters that are not allowed here")
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = ctx.get("ge", ctx.get("gt", ctx.get("le", ctx.get("lt"))))
        words = {"greater_than_equal": "must be at least", "greater_than": "must be more than",
                 "less_than_equal": "must be at most", "less_than": "must be less than"}[kind]
        return f"{words} {bound}"
    if kind == "string_too_short":
        least = ctx.get("min_length")
        return "must not be empty" if least == 1 else f"must be at least {least} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        least = ctx.get("min_length")
        return "must not be empty" if least == 1 else f"needs at least {least} entries"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    if kind in ("string_type",):
        return "must be text"
    if kind in ("list_type",):
        return "must be a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping (key: value lines)"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the allowed values')}"
    return None


# The model each mapping of the file is checked against, by the name of the key holding it
# (the auth methods are pydantic's discriminator tags in error locations): for "did you mean".
def _model_for(loc: tuple) -> type[BaseModel]:
    models: dict[str, type[BaseModel]] = {
        "sources": Source, "proxy": Proxy, "sqs": SqsNotifications, "integrity": Integrity,
        "access_key": AccessKeyAuth, "instance_role": InstanceRoleAuth, "assume_role": AssumeRoleAuth,
        "default_chain": DefaultChainAuth,
    }
    for part in reversed(loc):
        if isinstance(part, str) and part in models:
            return models[part]
    return Config


def _suggestion(loc: tuple, unknown: str) -> str:
    names = [info.alias or name for name, info in _model_for(loc[:-1]).model_fields.items()]
    close = difflib.get_close_matches(str(unknown), names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _without_value(message: str, err: Mapping[str, Any]) -> str:
    """The message with no trace of the input: a secret pasted into the wrong field (or the
    wrong value for a secret field) must not be printed by ``validate`` or in logs."""
    if err["type"] in _VALUE_FREE:
        return _VALUE_FREE[err["type"]]
    # Our own validators never quote the value; this catches pydantic's and any later slip.
    found = err.get("input")
    if isinstance(found, (str, int, float)) and not isinstance(found, bool):
        text = str(found)
        if len(text) >= 3:  # shorter ones cannot be told apart from the message's own words
            message = message.replace(repr(text), "the value").replace(text, "the value")
    return message


_PATH_KEYS = frozenset({"state_dir", "secret_access_key_file", "trusted_certificates_dir", "public_keys_dir"})


def _resolve_paths(value: Any, base: Path) -> Any:
    """Relative paths of the file (``state_dir``, ``secret_access_key_file``,
    ``trusted_certificates_dir``, ``public_keys_dir``) are relative to the file's folder, so a
    config works from any working directory; ``~`` is the user's home."""
    if isinstance(value, dict):
        return {k: (_as_path(v, base) if k in _PATH_KEYS and isinstance(v, str) and v else _resolve_paths(v, base))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_paths(v, base) for v in value]
    return value


def _as_path(text: str, base: Path) -> str:
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else base / path)


def _duplicate_identifiers(raw: dict) -> list[str]:
    """Checked on the raw list so it is reported beside every other problem, not after them."""
    sources = raw.get("sources")
    if not isinstance(sources, list):
        return []
    seen: set[str] = set()
    problems = []
    for index, source in enumerate(sources):
        identifier = source.get("identifier") if isinstance(source, dict) else None
        if not isinstance(identifier, str):
            continue  # a list or mapping is unhashable; the model reports a non-string identifier
        if identifier in seen:
            problems.append(
                f"{_where(raw, ('sources', index, 'identifier'))}: is used by more than one source"
            )
        seen.add(identifier)
    return problems


def parse_config(raw: Any, base_dir: str | os.PathLike | None = None) -> Config:
    """Validate an already-loaded YAML document; raise ConfigError listing every problem.
    ``base_dir``: the folder relative paths in it are relative to (the config file's)."""
    if not isinstance(raw, dict):
        raise ConfigError(["the config file must be a mapping with a 'sources' list"])
    env_problems: list[tuple[tuple, str]] = []
    data = _substitute_env(raw, (), env_problems)
    if base_dir is not None:
        data = _resolve_paths(data, Path(base_dir))
    problems = [f"{_where(raw, loc)}: {msg}" for loc, msg in env_problems]
    problems += _duplicate_identifiers(raw)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc, message = _split_model_message(tuple(err["loc"]), err["msg"])
            field = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
            if err["type"] == "extra_forbidden":
                message = "is not a known parameter" + _suggestion(loc, field)
            else:
                message = _friendly(err, field) or message
            problems.append(f"{_where(raw, loc)}: {_without_value(message, err)}")
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate the YAML file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read config file {str(path)!r}: {exc.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only the position and the problem: YAML's own message quotes the line, which may hold a secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError([f"config file {str(path)!r} is not valid YAML{where}: {problem}"]) from None
    return parse_config(raw, Path(path).resolve().parent)
