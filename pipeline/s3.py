"""A boto3 S3 client per log source, with the source's signature, endpoint, credentials,
proxy and trusted certificates wired through.
"""
from __future__ import annotations

import ssl
import urllib.parse
from pathlib import Path

import boto3
import botocore.config
from botocore.credentials import InstanceMetadataFetcher, InstanceMetadataProvider

from pipeline.config import AccessKeyAuth, InstanceRoleAuth, Source

USER_AGENT_EXTRA = "trailpipe"


def proxy_url(source: Source) -> str | None:
    """``http://user:password@host:port`` with user and password URL-quoted; None without proxy."""
    proxy = source.proxy
    if proxy is None:
        return None
    userinfo = ""
    if proxy.username:
        userinfo = urllib.parse.quote(proxy.username, safe="")
        if proxy.password is not None:
            userinfo += ":" + urllib.parse.quote(proxy.password.get_secret_value(), safe="")
        userinfo += "@"
    return f"http://{userinfo}{proxy.host}:{proxy.port}"


def ca_bundle(source: Source) -> str | bool:
    """``verify=`` for botocore: a PEM bundle of every .der/.pem in the trusted directory, or True.

    QRadar trusts the DER files copied into its trusted_certificates directory; botocore wants
    one PEM bundle, so the files are combined into ``<dir>/.trailpipe-ca-bundle.pem``.
    """
    if not source.trusted_certificates_dir:
        return True
    directory = Path(source.trusted_certificates_dir)
    pems = []
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() == ".der":
            pems.append(ssl.DER_cert_to_PEM_cert(path.read_bytes()))
        elif path.suffix.lower() == ".pem" and not path.name.startswith(".trailpipe"):
            pems.append(path.read_text(encoding="ascii"))
    if not pems:
        return True
    bundle = directory / ".trailpipe-ca-bundle.pem"
    bundle.write_text("".join(p if p.endswith("\n") else p + "\n" for p in pems), encoding="ascii")
    return str(bundle)


def make_session(source: Source) -> boto3.session.Session:
    auth = source.auth
    if isinstance(auth, AccessKeyAuth):
        return boto3.session.Session(
            aws_access_key_id=auth.access_key_id,
            aws_secret_access_key=auth.secret_access_key.get_secret_value(),
            region_name=source.region,
        )
    if isinstance(auth, InstanceRoleAuth):
        # Only the instance-metadata provider (IMDSv2), not the whole default chain: a log source
        # set to "EC2 instance IAM role" must not silently pick up other credentials.
        session = boto3.session.Session(region_name=source.region)
        provider = InstanceMetadataProvider(
            iam_role_fetcher=InstanceMetadataFetcher(timeout=2, num_attempts=3))
        credentials = provider.load()
        if credentials is None:
            raise RuntimeError(f"source {source.identifier!r}: no EC2 instance role credentials found")
        session._session._credentials = credentials  # RefreshableCredentials: renewed before expiry
        return session
    raise TypeError(f"unknown auth method {auth!r}")


def make_client(source: Source):
    """The S3 client of ``source``; share it across tasks of a process (it pools connections)."""
    proxy = proxy_url(source)
    config = botocore.config.Config(
        signature_version="s3" if source.signature_version == "v2" else "s3v4",
        region_name=source.region,
        proxies={"http": proxy, "https": proxy} if proxy else None,
        retries={"max_attempts": 5, "mode": "adaptive"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=10,
        user_agent_extra=USER_AGENT_EXTRA,
    )
    return make_session(source).client(
        "s3", endpoint_url=source.endpoint_url, config=config, verify=ca_bundle(source))
