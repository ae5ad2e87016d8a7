"""A boto3 S3 client per log source, with the source's signature, endpoint, addressing style,
credentials (pipeline.credentials), proxy and trusted certificates (pipeline.certificates)
wired through. ``make_client(source)`` is the entry point.

Proxy credentials travel only inside the proxy URL botocore is given; every message trailpipe
writes names the proxy as ``http://host:port`` and at most its user, never the password.
"""
from __future__ import annotations

import base64
import socket
import urllib.parse

import botocore.config
from botocore.credentials import Credentials
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import ProxyConnectionError
from botocore.exceptions import SSLError as BotoSSLError

from pipeline import certificates
from pipeline.config import AssumeRoleAuth, Proxy, Source
from pipeline.credentials import make_session, session_with

USER_AGENT_EXTRA = "trailpipe"
PROXY_AUTH_REQUIRED = 407


class ProxyAuthenticationError(BotoConnectionError):
    """The proxy answered 407: its username/password are wrong or missing."""

    fmt = "{message}"


class UntrustedCertificate(BotoSSLError):
    """The endpoint's certificate does not verify against the trusted CAs."""

    fmt = "{message}"


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


def proxy_label(proxy: Proxy) -> str:
    """How messages name the proxy: ``http://host:port`` (user 'name'), never the password."""
    user = f" (user {proxy.username!r})" if proxy.username else " (no user)"
    return f"http://{proxy.host}:{proxy.port}{user}"


def _proxy_auth_message(source: Source, operation: str) -> str:
    return (f"source {source.identifier!r}: {operation} through proxy {proxy_label(source.proxy)} failed: "
            f"407 Proxy Authentication Required; check proxy.username and proxy.password")


def proxy_connector(source: Source) -> certificates.Connector:
    """A connector tunnelling through the source's proxy with CONNECT (for certificate checks)."""
    proxy = source.proxy

    def connect(host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if proxy.username:
            password = proxy.password.get_secret_value() if proxy.password is not None else ""
            token = base64.b64encode(f"{proxy.username}:{password}".encode()).decode()
            request += f"Proxy-Authorization: Basic {token}\r\n"
        try:
            sock.sendall((request + "\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk or len(head) > 65536:
                    raise ConnectionError(f"proxy {proxy_label(proxy)} closed the connection during CONNECT")
                head += chunk
            status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = status_line.split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            if status == PROXY_AUTH_REQUIRED:
                raise ProxyAuthenticationError(message=_proxy_auth_message(source, f"CONNECT {target}"))
            if status != 200:
                raise ConnectionError(f"proxy {proxy_label(proxy)} answered CONNECT {target} with {status_line!r}")
        except BaseException:
            sock.close()
            raise
        return sock

    return connect


def client_config(source: Source, *, service: str) -> botocore.config.Config:
    proxy = proxy_url(source)
    options = dict(
        region_name=source.region or "us-east-1",
        proxies={"http": proxy, "https": proxy} if proxy else None,
        retries={"max_attempts": 5, "mode": "adaptive"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=10,
        user_agent_extra=USER_AGENT_EXTRA,
    )
    if service == "s3":
        options.update(
            region_name=source.region,
            signature_version="s3" if source.signature_version == "v2" else "s3v4",
            s3={"addressing_style": source.addressing_style},
        )
    return botocore.config.Config(**options)


def verify_setting(source: Source) -> str | bool:
    """``verify=`` for the source's clients; with auto_acquire, each HTTPS endpoint is checked first."""
    if source.auto_acquire_certificates and source.trusted_certificates_dir:
        connect = proxy_connector(source) if source.proxy else certificates.direct_connector
        for url in endpoints(source):
            certificates.ensure_trusted(source.identifier, url, source.trusted_certificates_dir, connect)
    return certificates.ca_bundle(source.trusted_certificates_dir)


def endpoints(source: Source) -> list[str]:
    urls = [source.endpoint_url]
    if isinstance(source.auth, AssumeRoleAuth) and source.auth.sts_endpoint_url:
        urls.append(source.auth.sts_endpoint_url)
    return urls


def _untrusted_message(source: Source, exc: BotoSSLError) -> str:
    reason = str(exc.kwargs.get("error") or exc)
    if "certificate verify failed: " in reason:
        reason = reason.split("certificate verify failed: ", 1)[1].split(" (_ssl.c", 1)[0]
    where = exc.kwargs.get("endpoint_url") or source.endpoint_url
    remedy = (f"put its CA certificate (.der or .pem) into trusted_certificates_dir "
              f"{source.trusted_certificates_dir!r}" if source.trusted_certificates_dir
              else "put its CA certificate (.der or .pem) into a directory named by trusted_certificates_dir")
    return (f"source {source.identifier!r}: the TLS certificate of {where} is not trusted ({reason}); "
            f"{remedy}, or set auto_acquire_certificates: true to trust it on first use")


def install_error_hooks(client, source: Source) -> None:
    """Clear, final errors for what retrying cannot fix, naming the proxy but never its password:
    a proxy's 407 (ProxyAuthenticationError) and an untrusted certificate (UntrustedCertificate)."""
    events = client.meta.events

    def before_retry(caught_exception=None, operation=None, **_):
        # Raised here, before botocore's retry handler would try (and back off) four more times.
        name = operation.name if operation is not None else "request"
        if (isinstance(caught_exception, ProxyConnectionError) and source.proxy is not None
                and str(PROXY_AUTH_REQUIRED) in str(caught_exception.kwargs.get("error"))):
            # HTTPS goes through CONNECT: urllib3 reports "Tunnel connection failed: 407 ...".
            raise ProxyAuthenticationError(message=_proxy_auth_message(source, name)) from None
        if isinstance(caught_exception, BotoSSLError) and "CERTIFICATE_VERIFY_FAILED" in str(caught_exception):
            raise UntrustedCertificate(message=_untrusted_message(source, caught_exception)) from None

    def after_call(http_response=None, model=None, **_):
        if source.proxy is not None and http_response is not None and http_response.status_code == PROXY_AUTH_REQUIRED:
            raise ProxyAuthenticationError(message=_proxy_auth_message(source, model.name if model else "request"))

    events.register_first("needs-retry", before_retry)
    events.register("after-call", after_call)


def make_sts_client(source: Source, base: Credentials, verify: str | bool):
    auth = source.auth
    client = session_with(base, source.region).client(
        "sts", endpoint_url=getattr(auth, "sts_endpoint_url", None),
        config=client_config(source, service="sts"), verify=verify)
    install_error_hooks(client, source)
    return client


def make_client(source: Source):
    """The S3 client of ``source``; share it across tasks of a process (it pools connections)."""
    verify = verify_setting(source)
    session = make_session(source, lambda base: make_sts_client(source, base, verify))
    client = session.client("s3", endpoint_url=source.endpoint_url,
                            config=client_config(source, service="s3"), verify=verify)
    install_error_hooks(client, source)
    return client


def sqs_view(source: Source) -> Source:
    """The source as its SQS queue sees it: ``sqs.region``/``sqs.auth``/``sqs.endpoint_url`` where
    set, else the source's region and auth and AWS's SQS endpoint of that region (the URL only
    names the endpoint for a certificate check; the client lets botocore resolve it)."""
    sqs = source.sqs
    region = sqs.region or source.region
    return source.model_copy(update={
        "region": region, "auth": sqs.auth or source.auth,
        "endpoint_url": sqs.endpoint_url or f"https://sqs.{region}.amazonaws.com"})


def make_sqs_client(source: Source):
    """The SQS client of ``source``'s notification queue: same credentials machinery, proxy and
    trusted certificates as its S3 client."""
    view = sqs_view(source)
    verify = verify_setting(view)
    session = make_session(view, lambda base: make_sts_client(view, base, verify))
    client = session.client("sqs", endpoint_url=source.sqs.endpoint_url,
                            config=client_config(view, service="sqs"), verify=verify)
    install_error_hooks(client, view)
    return client
