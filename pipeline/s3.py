"""A boto3 S3 client per log source, with the source's signature, endpoint, addressing style,
credentials (pipeline.credentials), proxy and trusted certificates (pipeline.certificates)
wired through. ``make_aws_client(source, service)`` builds every client of a source (S3, STS,
SQS, CloudTrail); ``make_client(source)`` is the S3 client's entry point.

Proxy credentials travel only inside the proxy URL botocore is given; every message trailpipe
writes names the proxy as ``http://host:port`` and at most its user, never the password.
"""
from __future__ import annotations

import base64
import http.client
import logging
import socket
import threading
import urllib.parse
from typing import Any

import botocore.auth
import botocore.config
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ProxyConnectionError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import SSLError as BotoSSLError
from botocore.httpchecksum import StreamingChecksumBody
from botocore.response import StreamingBody

from pipeline import certificates, defaults
from pipeline.config import AssumeRoleAuth, Proxy, Source
from pipeline.credentials import make_session, session_with

log = logging.getLogger(__name__)

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
    assert source.proxy is not None  # only reported for a source with a proxy
    return (f"source {source.identifier!r}: {operation} through proxy {proxy_label(source.proxy)} failed: "
            "407 Proxy Authentication Required")  # the hint: pipeline.policy


def proxy_connector(source: Source) -> certificates.Connector:
    """A connector tunnelling through the source's proxy with CONNECT (for certificate checks)."""
    proxy = source.proxy
    assert proxy is not None  # only made for a source with a proxy (endpoint_connector)

    def connect(host: str, port: int, timeout: float) -> socket.socket:
        headers = {}
        if proxy.username:
            password = proxy.password.get_secret_value() if proxy.password is not None else ""
            token = base64.b64encode(f"{proxy.username}:{password}".encode()).decode()
            headers["Proxy-Authorization"] = f"Basic {token}"
        tunnel = http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)
        tunnel.set_tunnel(host, port, headers=headers)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            tunnel.connect()
        except OSError as exc:
            tunnel.close()
            # http.client: "Tunnel connection failed: 407 Proxy Authentication Required"
            if f" {PROXY_AUTH_REQUIRED} " in f" {exc} ":
                raise ProxyAuthenticationError(message=_proxy_auth_message(source, f"CONNECT {target}")) from None
            raise ConnectionError(f"proxy {proxy_label(proxy)} failed CONNECT {target}: {exc}") from None
        sock, tunnel.sock = tunnel.sock, None  # the tunnel's socket is now the caller's
        return sock

    return connect


def client_config(source: Source, *, service: str) -> botocore.config.Config:
    proxy = proxy_url(source)
    options: dict[str, Any] = dict(
        region_name=source.region or "us-east-1",
        proxies={"http": proxy, "https": proxy} if proxy else None,
        retries={"max_attempts": 5, "mode": "adaptive"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=defaults.S3_POOL_CONNECTIONS,  # at least the objects in flight
        user_agent_extra=USER_AGENT_EXTRA,
    )
    if service == "s3":
        options.update(
            region_name=source.region,
            signature_version="s3" if source.signature_version == "v2" else "s3v4",
            s3={"addressing_style": source.addressing_style},
        )
    return botocore.config.Config(**options)


def verify_setting(source: Source, url: str | None = None) -> tuple[str | bool, set[bytes]]:
    """``verify=`` for a client of the source talking to ``url`` (default: the S3 endpoint),
    and the endpoint's public key pins. A pinned endpoint is verified by its pin, checked on
    every connection (``certificates.pin_client``), instead of a CA chain."""
    pins = certificates.endpoint_pins(source.trusted_certificates_dir, url or source.endpoint_url)
    if pins:
        return False, pins
    return certificates.ca_bundle(source.trusted_certificates_dir), set()


def check_endpoints(source: Source) -> None:
    """With auto_acquire, each HTTPS endpoint is checked (and maybe pinned) before a client is made."""
    if source.auto_acquire_certificates and source.trusted_certificates_dir:
        for url in endpoints(source):
            certificates.ensure_trusted(source.identifier, url, source.trusted_certificates_dir,
                                        endpoint_connector(source))


def endpoint_connector(source: Source) -> certificates.Connector:
    return proxy_connector(source) if source.proxy else certificates.direct_connector


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
            f"{remedy}; or pin its public key: trailpipe certificates acquire -c CONFIG {source.identifier} "
            f"(or auto_acquire_certificates: true, for an endpoint that never verified)")


def _pin_message(source: Source, exc: BotoSSLError) -> str:
    reason = str(exc.kwargs.get("error") or exc)
    reason = reason[reason.find("the certificate of"):] if "the certificate of" in reason else reason
    return (f"source {source.identifier!r}: {reason.rstrip(')')}; if the endpoint's key changed on purpose, "
            f"compare the new fingerprint with the server's and run: trailpipe certificates acquire "
            f"--replace -c CONFIG {source.identifier}")


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
        if isinstance(caught_exception, BotoSSLError) and certificates.PIN_MISMATCH in str(caught_exception):
            raise UntrustedCertificate(message=_pin_message(source, caught_exception)) from None
        if isinstance(caught_exception, BotoSSLError) and "CERTIFICATE_VERIFY_FAILED" in str(caught_exception):
            raise UntrustedCertificate(message=_untrusted_message(source, caught_exception)) from None

    def after_call(http_response=None, model=None, **_):
        if source.proxy is not None and http_response is not None and http_response.status_code == PROXY_AUTH_REQUIRED:
            raise ProxyAuthenticationError(message=_proxy_auth_message(source, model.name if model else "request"))

    events.register_first("needs-retry", before_retry)
    events.register("after-call", after_call)


def make_aws_client(source: Source, service: str, *, endpoint_url: str | None = None, region: str | None = None,
                    base: Credentials | None = None, verify: str | bool | None = None,
                    trust_url: str | None = None):
    """The one builder of every boto3 client of ``source`` (S3, STS, SQS, CloudTrail): its
    credentials (``pipeline.credentials``: the source's auth, with STS clients from this same
    builder; or exactly ``base``, for that STS client), proxy, timeouts and retries
    (``client_config``), trusted certificates and the error hooks (``install_error_hooks``).

    ``endpoint_url``: None for AWS's endpoint of the service and region. ``trust_url``: the URL
    whose CA setting or public key pin applies (default ``endpoint_url``); with neither, the CA
    bundle (AWS's own endpoints are never pinned). ``verify``: given instead of that setting.
    ``region``: the client's region, when not the source's."""
    pins: set[bytes] = set()
    trust_url = trust_url or endpoint_url
    if verify is None and trust_url:
        verify, pins = verify_setting(source, trust_url)
    elif verify is None:
        verify = certificates.ca_bundle(source.trusted_certificates_dir)
    if base is not None:
        session = session_with(base, source.region)
    else:
        session = make_session(source, lambda credentials: make_aws_client(
            source, "sts", endpoint_url=getattr(source.auth, "sts_endpoint_url", None), base=credentials))
    config = client_config(source, service=service)
    options: dict[str, Any] = {}
    if region is not None:
        config = config.merge(botocore.config.Config(region_name=region))
        options["region_name"] = region
    client = session.client(service, endpoint_url=endpoint_url, config=config, verify=verify, **options)
    if pins:
        certificates.pin_client(client, pins)
    install_error_hooks(client, source)
    return client


def make_sts_client(source: Source, base: Credentials, verify: str | bool | None = None):
    """The STS client that turns ``base`` into the source's role (``assume_role``)."""
    return make_aws_client(source, "sts", endpoint_url=getattr(source.auth, "sts_endpoint_url", None), base=base,
                           verify=verify)


def make_client(source: Source, acquire: bool = True):
    """The S3 client of ``source``; share it across tasks of a process (it pools connections).
    ``acquire=False`` (``trailpipe check``): never pin a certificate on first use. Its GetObject
    goes through ``get_object`` (``DirectGet``)."""
    if acquire:
        check_endpoints(source)
    client = make_aws_client(source, "s3", endpoint_url=source.endpoint_url)
    client.trailpipe_direct_get = DirectGet(client)
    return client


def get_object(client, bucket: str, key: str) -> dict:
    """GetObject: ``{"Body": stream, "ContentLength": n}`` (the keys ``client.get_object``'s
    response has that the object processor reads). Through the client's ``DirectGet`` when it
    has one (``make_client``), else botocore's call."""
    direct = getattr(client, "trailpipe_direct_get", None)
    if direct is not None:
        return direct(bucket, key)
    return client.get_object(Bucket=bucket, Key=key)


# Headers of botocore's GetObject that a signature or a single call owns: made anew per request.
_PER_REQUEST_HEADERS = frozenset({"authorization", "x-amz-date", "date", "x-amz-content-sha256",
                                  "x-amz-security-token", "amz-sdk-invocation-id", "amz-sdk-request"})


class DirectGet:
    """GetObject's answered path without botocore's per-call machinery: the request botocore
    itself built for the bucket's first GetObject (its URL up to the key, its headers, its
    signer's scope) is made again for each key, signed by botocore's signer with the client's
    credentials (refreshed as they expire), and sent through the client's own HTTP session (its
    proxy, certificates, pins, pool and timeouts), its ``before-send`` handlers called as
    botocore calls them (the S3 request count). A 200 answer's body is checked as botocore
    checks it (its length, and a ``x-amz-checksum-*`` the answer carries).

    Anything else falls back to botocore's call, which alone decides errors: an error status
    (drained, then asked again through ``client.get_object``: its retries, error parsing and
    hooks), a failed connection, a bucket whose request botocore built differently. On small
    CloudTrail files this halves the client's CPU per object (issue 22; ``python
    ops/bench/s3_client_bench.py``): endpoint rules, parameter validation and serialization,
    the event chain, response parsing and the retry bookkeeping are botocore's per call."""

    def __init__(self, client):
        self._client = client
        # bucket -> (URL up to the key, headers, signer, Signature V2's path up to the key or None)
        self._learned: dict[str, tuple[str, dict[str, str], Any, str | None]] = {}
        self._seen = threading.local()  # botocore's last GetObject request in this thread
        client.meta.events.register("before-send.s3.GetObject", self._note_request)

    def _note_request(self, request=None, **_) -> None:
        self._seen.request = request  # kept as is: read only when learning (not on the direct path)

    def __call__(self, bucket: str, key: str) -> dict:
        learned = self._learned.get(bucket)
        if learned is not None:
            answer = self._direct(learned, key)
            if answer is not None:
                return answer
        self._seen.request = None
        response = self._client.get_object(Bucket=bucket, Key=key)
        # Answered through botocore: learned from its request, the first time or anew after a
        # direct miss that botocore got right (a bucket moved region, a form no longer fitting).
        seen = self._seen.request
        if seen is not None:
            self._learn(bucket, key, seen.url, {name: value.decode() if isinstance(value, bytes) else value
                                                for name, value in seen.headers.items()})
        return response

    def _learn(self, bucket: str, key: str, url: str, headers: dict[str, str]) -> None:
        self._learned.pop(bucket, None)
        quoted = urllib.parse.quote(key, safe="/~")  # how botocore writes a key into the path
        authorization = headers.get("Authorization", "")
        auth = self._signer(authorization)
        if (auth is None or not url.endswith("/" + quoted) or "?" in url
                or any(name.lower().startswith("x-amz-s3session") for name in headers)):  # S3 Express: its own auth
            return  # built some other way: botocore keeps making this bucket's requests
        kept = {name: value for name, value in headers.items() if name.lower() not in _PER_REQUEST_HEADERS}
        # Signature V2 signs /bucket/key whatever the URL (botocore's auth_path), V4 the URL's path.
        virtual_host = not urllib.parse.urlsplit(url).path.startswith(f"/{bucket}/")
        auth_path = f"/{bucket}/" if authorization.startswith("AWS ") and virtual_host else None
        self._learned[bucket] = (url[: len(url) - len(quoted)], kept, auth, auth_path)

    def _signer(self, authorization: str):
        credentials = self._client._request_signer._credentials  # noqa: SLF001  (botocore's, refreshed)
        if credentials is None:
            return None
        if authorization.startswith("AWS4-HMAC-SHA256 Credential="):
            # Credential=KEY/DATE/REGION/SERVICE/aws4_request: the scope botocore's rules chose.
            scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
            if len(scope) != 5:
                return None
            return lambda: botocore.auth.S3SigV4Auth(credentials.get_frozen_credentials(), scope[3], scope[2])
        if authorization.startswith("AWS "):
            return lambda: botocore.auth.HmacV1Auth(credentials.get_frozen_credentials())
        return None

    def _direct(self, learned: tuple[str, dict[str, str], Any, str | None], key: str) -> dict | None:
        head, headers, auth, auth_path = learned
        quoted = urllib.parse.quote(key, safe="/~")
        request = AWSRequest(method="GET", url=head + quoted, headers=dict(headers))
        if auth_path is not None:
            request.auth_path = auth_path + quoted  # botocore reads it (HmacV1Auth)
        auth().add_auth(request)
        prepared = request.prepare()
        prepared.stream_output = True
        events = self._client.meta.events
        try:
            answers = events.emit("before-send.s3.GetObject", request=prepared)
            response = next((answer for _, answer in answers if answer is not None), None)
            if response is None:
                response = self._client._endpoint.http_session.send(prepared)  # noqa: SLF001
        except BotoCoreError as exc:
            log.debug("GetObject %s: %s; asked again through botocore", key, exc)
            return None
        if response.status_code != 200:
            try:
                response.raw.read()  # drained: its connection goes back to the pool
                response.raw.release_conn()
            except Exception:  # noqa: BLE001  (botocore asks again and decides; this one is dropped)
                response.raw.close()
            return None
        length = response.headers.get("content-length")
        return {"Body": _checked_body(response.raw, length, response.headers),
                "ContentLength": int(length) if length is not None else None}


def _checked_body(raw, length: str | None, headers) -> StreamingBody:
    """The body as botocore's GetObject gives it: its length checked at its end, and the first
    of the answer's checksums botocore would check (``x-amz-checksum-*``) verified."""
    from botocore import httpchecksum  # noqa: PLC0415  (its tables, not a public API)

    # (botocore releases before the priority list: the checksums S3 answers with most)
    priority = getattr(httpchecksum, "_ALGORITHMS_PRIORITY_LIST", ("crc64nvme", "crc32c", "crc32", "sha1", "sha256"))
    classes = getattr(httpchecksum, "_CHECKSUM_CLS", {})
    for algorithm in priority:
        expected = headers.get(f"x-amz-checksum-{algorithm}")
        checksum = classes.get(algorithm)
        if expected and "-" not in expected and checksum is not None:  # "-N": of parts, not checkable
            return StreamingChecksumBody(raw, length, checksum(), expected)
    return StreamingBody(raw, length)


def sqs_view(source: Source) -> Source:
    """The source as its SQS queue sees it: ``sqs.region``/``sqs.auth``/``sqs.endpoint_url`` where
    set, else the source's region and auth and the queue URL's endpoint (``sqs.endpoint``; AWS's
    SQS endpoint of the region for its legacy queue.amazonaws.com URLs)."""
    sqs = source.sqs
    assert sqs is not None  # only for a source with a queue
    region = sqs.region or source.region
    return source.model_copy(update={
        "region": region, "auth": sqs.auth or source.auth,
        "endpoint_url": sqs.endpoint or f"https://sqs.{region}.amazonaws.com"})


def make_sqs_client(source: Source):
    """The SQS client of ``source``'s notification queue: same credentials machinery, proxy and
    trusted certificates as its S3 client (those of its SQS endpoint; STS works out its own)."""
    view = sqs_view(source)
    assert source.sqs is not None  # sqs_view checked it
    return make_aws_client(view, "sqs", endpoint_url=source.sqs.endpoint, trust_url=view.endpoint_url)
