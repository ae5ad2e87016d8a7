"""Server certificates a source trusts, and trust on first use.

``trusted_certificates_dir``: every ``.der`` and ``.pem`` file in it is trusted *in addition to*
the usual public CAs (certifi's bundle, or ``AWS_CA_BUNDLE``). botocore wants one PEM file, so
the certificates are combined into a bundle, written atomically and only when its content
changed: ``<dir>/.trailpipe-ca-bundle.pem``, or under the temp directory when ``<dir>`` is not
writable.

``auto_acquire_certificates``: before the first client of a source is made, each HTTPS endpoint
is checked with a TLS handshake. If it verifies, nothing happens. If it does not and no
certificate was acquired for it yet, the certificate it presents (its self-signed root when it
sends one, else its own) is stored in the directory as ``acquired-<host>-<port>.der`` and
trusted from then on. If a stored one exists and the endpoint no longer verifies, its
certificate changed: that is an error until the user deletes the stored file.

TLS verification is never turned off.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import ssl
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import botocore.httpsession
import botocore.session
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from pipeline.errors import TrailpipeError

log = logging.getLogger(__name__)

TRUSTED_SUFFIXES = (".der", ".pem")
ACQUIRED_PREFIX = "acquired-"
BUNDLE_NAME = ".trailpipe-ca-bundle.pem"
HANDSHAKE_TIMEOUT = 10.0
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.DOTALL)

# (host, port, timeout) -> a connected socket to the endpoint (directly or through a proxy tunnel)
Connector = Callable[[str, int, float], socket.socket]


class CertificateError(TrailpipeError):
    """A trusted certificate cannot be read, or an endpoint's certificate cannot be trusted."""


@dataclass(frozen=True)
class CertificateInfo:
    der: bytes
    subject: str
    issuer: str
    sha256: str  # hex, lower case

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer

    def __str__(self) -> str:
        return f"subject {self.subject!r} SHA-256 {self.sha256}"


def describe(der: bytes) -> CertificateInfo:
    cert = x509.load_der_x509_certificate(der)
    return CertificateInfo(der=der, subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                           sha256=cert.fingerprint(hashes.SHA256()).hex())


def read_certificates(path: Path) -> list[bytes]:
    """The certificates (DER) in a ``.der`` or ``.pem`` file, whichever encoding it really holds."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"trusted certificate {str(path)!r} cannot be read: {exc.strerror}") from None
    if b"-----BEGIN" in data:
        blocks = _PEM_CERT.findall(data)
        if not blocks:
            raise CertificateError(f"trusted certificate {str(path)!r} holds no PEM CERTIFICATE block")
        ders = [ssl.PEM_cert_to_DER_cert(block.decode("ascii", "replace")) for block in blocks]
    else:
        ders = [data]
    for der in ders:
        try:
            x509.load_der_x509_certificate(der)
        except ValueError:
            raise CertificateError(
                f"trusted certificate {str(path)!r} is not a DER or PEM X.509 certificate") from None
    return ders


def trusted_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.suffix.lower() in TRUSTED_SUFFIXES and not p.name.startswith(".") and p.is_file())


def default_ca_file() -> str:
    """The CA bundle botocore would use: ``AWS_CA_BUNDLE``/``ca_bundle`` in the AWS config, else certifi."""
    configured = botocore.session.get_session().get_config_variable("ca_bundle")
    return configured or botocore.httpsession.get_cert_path(True)


def bundle_text(directory: Path) -> str | None:
    """The PEM bundle of the default CAs plus every trusted certificate; None if none is trusted."""
    parts = []
    for path in trusted_files(directory):
        for der in read_certificates(path):
            info = describe(der)
            parts.append(f"# {path.name}: {info.subject} (SHA-256 {info.sha256})\n{ssl.DER_cert_to_PEM_cert(der)}")
    if not parts:
        return None
    default = Path(default_ca_file()).read_text(encoding="ascii", errors="replace")
    return default.rstrip("\n") + "\n\n# trailpipe: trusted_certificates_dir " + str(directory) + "\n" + "".join(
        p if p.endswith("\n") else p + "\n" for p in parts)


def _bundle_path(directory: Path) -> Path:
    if os.access(directory, os.W_OK | os.X_OK):
        return directory / BUNDLE_NAME
    private = Path(tempfile.gettempdir()) / f"trailpipe-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    if private.stat().st_uid != os.getuid() or private.is_symlink():
        raise CertificateError(f"{private} belongs to another user: cannot keep the CA bundle there")
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    return private / f"ca-bundle-{digest}.pem"


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` so readers see the old or the new content, never a part."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def ca_bundle(directory: str | os.PathLike | None) -> str | bool:
    """``verify=`` for botocore: the bundle's path, or True (the default CAs) when nothing is trusted."""
    if not directory:
        return True
    directory = Path(directory)
    text = bundle_text(directory)
    if text is None:
        return True
    data = text.encode("ascii", "replace")
    path = _bundle_path(directory)
    try:
        unchanged = path.read_bytes() == data
    except OSError:
        unchanged = False
    if not unchanged:
        try:
            write_atomically(path, data)
        except OSError as exc:
            raise CertificateError(f"cannot write the CA bundle {path}: {exc.strerror or exc}") from None
        log.info("CA bundle %s written: default CAs plus %d trusted file(s) of %s",
                 path, len(trusted_files(directory)), directory)
    return str(path)


# --- trust on first use -------------------------------------------------------------------------


def endpoint_address(url: str) -> tuple[str, int] | None:
    """(host, port) of an https URL; None for http (nothing to verify)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "https" or not parsed.hostname:
        return None
    return parsed.hostname, parsed.port or 443


def acquired_path(directory: Path, host: str, port: int) -> Path:
    return directory / f"{ACQUIRED_PREFIX}{re.sub(r'[^A-Za-z0-9.-]', '_', host)}-{port}.der"


def direct_connector(host: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


def presented_chain(host: str, port: int, connect: Connector = direct_connector,
                    timeout: float = HANDSHAKE_TIMEOUT) -> list[bytes]:
    """The certificates the server sends, leaf first, without verifying them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with context.wrap_socket(connect(host, port, timeout), server_hostname=host) as tls:
        # get_unverified_chain is public from Python 3.13; 3.10-3.12 have it on the private object.
        getter = getattr(tls, "get_unverified_chain", None) or getattr(
            getattr(tls, "_sslobj", None), "get_unverified_chain", None)
        if getter is not None:
            chain = getter() or []
            ders = [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]
            if ders:
                return ders
        return [tls.getpeercert(binary_form=True)]


def verify_error(host: str, port: int, cafile: str, connect: Connector = direct_connector,
                 timeout: float = HANDSHAKE_TIMEOUT) -> str | None:
    """None if the endpoint's certificate verifies against ``cafile`` (and its name matches), else why not."""
    context = ssl.create_default_context(cafile=cafile)
    try:
        with context.wrap_socket(connect(host, port, timeout), server_hostname=host):
            return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)


def _trust_anchor(chain: list[CertificateInfo]) -> CertificateInfo:
    """The certificate to trust: the topmost self-signed one the server sent, else its own."""
    roots = [c for c in chain if c.self_signed]
    return roots[-1] if roots else chain[0]


def ensure_trusted(source_id: str, url: str, directory: str | os.PathLike,
                   connect: Connector = direct_connector) -> None:
    """Trust on first use for one endpoint of a source; see the module docstring."""
    address = endpoint_address(url)
    if address is None:
        return
    host, port = address
    directory = Path(directory)
    try:
        reason = verify_error(host, port, _cafile(directory), connect)
        if reason is None:
            return
        chain = [describe(der) for der in presented_chain(host, port, connect)]
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionError(f"source {source_id!r}: cannot reach {url} to check its certificate: {exc}") from None
    stored_path = acquired_path(directory, host, port)
    if stored_path.exists():
        stored = describe(read_certificates(stored_path)[0])
        if any(c.sha256 == stored.sha256 for c in chain):
            raise CertificateError(
                f"source {source_id!r}: the certificate of {url} does not verify ({reason}) although "
                f"the acquired {stored} in {stored_path} is still the one it presents")
        new = _trust_anchor(chain)
        raise CertificateError(
            f"source {source_id!r}: the certificate of {url} changed: trusted on first use "
            f"SHA-256 {stored.sha256} ({stored.subject}), now presented SHA-256 {new.sha256} "
            f"({new.subject}); if the change is expected, delete {stored_path} to trust the new one")
    anchor = _trust_anchor(chain)
    try:
        write_atomically(stored_path, anchor.der)
    except OSError as exc:
        raise CertificateError(f"source {source_id!r}: cannot store the certificate of {url} in {directory}: "
                               f"{exc.strerror or exc}") from None
    log.warning("source %s: trusting on first use the certificate of %s: %s (stored in %s)",
                source_id, url, anchor, stored_path)
    try:
        reason = verify_error(host, port, _cafile(directory), connect)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionError(f"source {source_id!r}: cannot reach {url} to check its certificate: {exc}") from None
    if reason is not None:
        stored_path.unlink(missing_ok=True)
        raise CertificateError(
            f"source {source_id!r}: the certificate of {url} does not verify even with the acquired {anchor} "
            f"({reason}); the server does not send its root CA: copy the CA certificate into {directory}")


def _cafile(directory: Path) -> str:
    bundle = ca_bundle(directory)
    return bundle if isinstance(bundle, str) else default_ca_file()
