"""The AWS credentials of a source, by ``auth.method``:

- ``access_key``: the key id and its secret (in the config, ``${ENV}``, or ``secret_access_key_file``);
- ``instance_role``: the EC2 instance role from the instance metadata service (IMDSv2), through
  botocore's own provider, so ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` and the other IMDS settings
  apply; the credentials renew themselves before they expire;
- ``assume_role``: ``sts:AssumeRole`` with base credentials (any of the other methods), renewed
  before expiry by assuming the role again;
- ``default_chain``: boto3's default chain (environment, shared profile, container, instance).

Only the instance-metadata provider is consulted for ``instance_role``, not the whole chain: a
source set to the instance role must not silently run with other credentials.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import botocore.utils
from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    Credentials,
    RefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import Loader

from pipeline.config import (
    AccessKeyAuth,
    AssumeRoleAuth,
    DefaultChainAuth,
    InstanceRoleAuth,
    Source,
)

log = logging.getLogger(__name__)

# Instance metadata: a little more patient than botocore's defaults (1 s, 1 attempt), unless set.
IMDS_TIMEOUT_SECONDS = 2
IMDS_ATTEMPTS = 3

# base credentials -> an STS client signing with them (made by pipeline.s3: proxy, CA bundle...)
StsClientFactory = Callable[[Credentials], Any]  # a boto3 STS client (untyped)


class RedactCredentials(logging.Filter):
    """botocore's DEBUG logging prints response bodies (STS AssumeRole's holds the temporary
    secret key and session token) and request headers and canonical requests (the session token):
    this filter blanks those values in the records of the botocore loggers that write them."""

    PATTERNS = (
        re.compile(r"(<(SecretAccessKey|SessionToken)>)[^<]*(</\2>)"),
        re.compile(r"""(["'](?:SecretAccessKey|SessionToken|Token)["']\s*:\s*["'])[^"']*(["'])"""),
        re.compile(r"""(x-amz-security-token["']?\s*[:=]\s*b?["']?)[^"',\s}]+""", re.IGNORECASE),
    )
    LOGGERS = ("botocore.parsers", "botocore.endpoint", "botocore.auth", "botocore.httpsession")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (a broken record is not ours to fix)
            return True
        redacted = message
        for number, pattern in enumerate(self.PATTERNS):
            redacted = pattern.sub(r"\1***\3" if number == 0 else (r"\1***\2" if number == 1 else r"\1***"),
                                   redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

    @classmethod
    def install(cls) -> None:
        for name in cls.LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, cls) for f in logger.filters):
                logger.addFilter(cls())


RedactCredentials.install()


class CredentialsUnavailable(BotoCoreError):
    """No credentials could be had for a source (a transient error for the task retry policy)."""

    fmt = "{message}"


def secret_access_key(source_id: str, auth: AccessKeyAuth) -> str:
    if auth.secret_access_key is not None:
        return auth.secret_access_key.get_secret_value()
    assert auth.secret_access_key_file is not None  # AccessKeyAuth requires one of the two
    path = Path(auth.secret_access_key_file)
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsUnavailable(
            message=f"source {source_id!r}: cannot read secret_access_key_file {str(path)!r}: "
                    f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    if not secret:
        raise CredentialsUnavailable(message=f"source {source_id!r}: secret_access_key_file {str(path)!r} is empty")
    return secret


_LOADER_LOCK = threading.Lock()
_loader: Loader | None = None


def shared_loader() -> Loader:
    """The process's one botocore data loader: service models (S3's is ~12 MB parsed), endpoint
    and retry data are loaded once and shared by every source's session; each source keeps its
    own session, credentials, proxy, certificates and connection pool."""
    global _loader
    with _LOADER_LOCK:
        if _loader is None:
            _loader = botocore.session.Session().get_component("data_loader")
        return _loader


_HTTP_DATE = "%a, %d %b %Y %H:%M:%S GMT"


def parse_timestamp(value):
    """botocore's timestamp parser (``Last-Modified``, ``LastModified``...), without dateutil's
    general parser for the two forms S3 sends: an HTTP date and ISO 8601 (a tenth of a
    millisecond per response less). Anything else goes to botocore's own."""
    if isinstance(value, str):
        try:
            if value.endswith(" GMT"):
                return datetime.strptime(value, _HTTP_DATE).replace(tzinfo=UTC)
            if value.endswith("Z") and "T" in value:
                return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            pass
    return botocore.utils.parse_timestamp(value)


def _core_session() -> botocore.session.Session:
    """A botocore session of its own (credentials, events), loading data through the shared loader."""
    core = botocore.session.Session()
    core.register_component("data_loader", shared_loader())
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    return core


def warm_up() -> None:
    """Load S3's service model and endpoint rules into the shared loader now (a worker at start:
    tens of milliseconds of CPU that its first objects would pay otherwise)."""
    try:
        _core_session().create_client("s3", region_name="us-east-1", aws_access_key_id="warm-up",
                                      aws_secret_access_key="warm-up")  # noqa: S106  (no request is made)
    except Exception as exc:  # noqa: BLE001  (an optimization: never a reason not to start)
        log.debug("S3 model not preloaded: %s", exc)


def _botocore_session() -> botocore.session.Session:
    session = _core_session()
    if "AWS_METADATA_SERVICE_TIMEOUT" not in os.environ:
        session.set_config_variable("metadata_service_timeout", IMDS_TIMEOUT_SECONDS)
    if "AWS_METADATA_SERVICE_NUM_ATTEMPTS" not in os.environ:
        session.set_config_variable("metadata_service_num_attempts", IMDS_ATTEMPTS)
    return session


def instance_role_credentials(source_id: str) -> RefreshableCredentials:
    provider = _botocore_session().get_component("credential_provider").get_provider("iam-role")
    credentials = provider.load()
    if credentials is None:
        raise CredentialsUnavailable(
            message=f"source {source_id!r}: no EC2 instance role credentials from the instance metadata service "
                    "(not on EC2, no role attached, or IMDS unreachable: see AWS_EC2_METADATA_SERVICE_ENDPOINT)")
    return credentials


def default_chain_credentials(source_id: str) -> Credentials:
    credentials = _botocore_session().get_credentials()
    if credentials is None:
        raise CredentialsUnavailable(
            message=f"source {source_id!r}: boto3's default credential chain found no credentials "
                    "(environment, shared config/profile, container or instance role)")
    return credentials


def refresh_margins(duration_seconds: int) -> tuple[int, int]:
    """(advisory, mandatory) seconds before expiry to renew: botocore's 15/10 minutes, less for short sessions.

    With botocore's margins a 15-minute session would be renewed on every call.
    """
    return min(15 * 60, duration_seconds // 3), min(10 * 60, duration_seconds // 6)


def assume_role_credentials(source_id: str, auth: AssumeRoleAuth, base: Credentials,
                            sts_client_factory: StsClientFactory) -> RefreshableCredentials:
    sts = sts_client_factory(base)
    params = {"RoleArn": auth.role_arn, "RoleSessionName": auth.session_name,
              "DurationSeconds": auth.duration_seconds}
    if auth.external_id:
        params["ExternalId"] = auth.external_id

    def fetch() -> dict:
        try:
            response = sts.assume_role(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise CredentialsUnavailable(
                message=f"source {source_id!r}: sts:AssumeRole into {auth.role_arn} failed: "
                        f"{error.get('Code', '?')}: {error.get('Message', '')}") from None
        issued = response["Credentials"]
        log.info("source %s: assumed role %s as %s until %s", source_id, auth.role_arn,
                 issued["AccessKeyId"], issued["Expiration"].isoformat())
        return {"access_key": issued["AccessKeyId"], "secret_key": issued["SecretAccessKey"],
                "token": issued["SessionToken"], "expiry_time": issued["Expiration"].isoformat()}

    advisory, mandatory = refresh_margins(auth.duration_seconds)
    return RefreshableCredentials.create_from_metadata(
        fetch(), refresh_using=fetch, method="assume-role",
        advisory_timeout=advisory, mandatory_timeout=mandatory)


def credentials_for(source_id: str, auth, sts_client_factory: StsClientFactory | None = None) -> Credentials:
    """botocore credentials for ``auth``; refreshable ones renew themselves."""
    if isinstance(auth, AccessKeyAuth):
        return Credentials(auth.access_key_id, secret_access_key(source_id, auth), method="trailpipe-config")
    if isinstance(auth, InstanceRoleAuth):
        return instance_role_credentials(source_id)
    if isinstance(auth, DefaultChainAuth):
        return default_chain_credentials(source_id)
    if isinstance(auth, AssumeRoleAuth):
        if sts_client_factory is None:
            raise ValueError("assume_role needs an STS client factory")
        base = credentials_for(source_id, auth.base)
        return assume_role_credentials(source_id, auth, base, sts_client_factory)
    raise TypeError(f"unknown auth method {auth!r}")


class _GivenCredentials(CredentialProvider):
    METHOD = "trailpipe"
    CANONICAL_NAME = "trailpipe"

    def __init__(self, credentials: Credentials):
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def session_with(credentials: Credentials, region: str | None) -> boto3.session.Session:
    """A boto3 session that signs with exactly ``credentials`` (refreshable ones keep refreshing)."""
    core = _core_session()
    core.register_component("credential_provider", CredentialResolver([_GivenCredentials(credentials)]))
    loader = shared_loader()
    with _LOADER_LOCK:
        session = boto3.session.Session(botocore_session=core, region_name=region)
        # boto3 adds its data folder to the (shared) loader's search paths once per session.
        paths = loader.search_paths
        paths[:] = list(dict.fromkeys(paths))
    return session


def make_session(source: Source, sts_client_factory: StsClientFactory | None = None) -> boto3.session.Session:
    return session_with(credentials_for(source.identifier, source.auth, sts_client_factory), source.region)
