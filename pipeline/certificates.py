"""Server certificates a source trusts: CA certificates in a directory, and public key pins.

``trusted_certificates_dir``: every ``.der`` and ``.pem`` file in it is trusted *in addition to*
the usual public CAs (certifi's bundle, or ``AWS_CA_BUNDLE``). botocore wants one PEM file, so
the certificates are combined into a bundle, written atomically and only when its content
changed: ``<dir>/.trailpipe-ca-bundle.pem``, or under the temp directory when ``<dir>`` is not
writable.

Pins: ``<dir>/pinned-<host>-<port>.pin`` holds the SHA-256 of the public key (the
SubjectPublicKeyInfo) of the endpoint's own (leaf) certificate, ``sha256//<base64>``, one per
line (several: a key rollover). A pinned endpoint is trusted by that key alone, on every
connection, for that host and port alone: never a CA, so nothing acquired for one host can
vouch for another. ``trailpipe certificates acquire`` pins explicitly and prints the
fingerprint to compare with the server's.

``auto_acquire_certificates``: before the first client of a source is made, each HTTPS endpoint
is checked with a TLS handshake. If it verifies with the CAs, that is remembered
(``<dir>/.verified-<host>-<port>``) and nothing else happens. If it does not, it has never
verified and nothing is pinned for it yet, its leaf key is pinned (logged with the fingerprint).
An endpoint that verified once is never auto-acquired: failing later is an error (a
man in the middle looks exactly like that), fixed only by the explicit command. A pinned
endpoint presenting another key is an error too.

Files ``acquired-*`` (CA certificates stored by earlier versions' trust on first use) are no
longer trusted: a warning says to pin the endpoint instead.
"""
from __future__ import annotations

import base64
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
from datetime import UTC, datetime
from pathlib import Path

import botocore.awsrequest
import botocore.httpsession
import botocore.session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pipeline.errors import TrailpipeError

log = logging.getLogger(__name__)

TRUSTED_SUFFIXES = (".der", ".pem")
LEGACY_ACQUIRED_PREFIX = "acquired-"  # CA certificates of the old trust on first use: ignored
PIN_PREFIX = "pinned-"
PIN_SUFFIX = ".pin"
VERIFIED_PREFIX = ".verified-"
PIN_MISMATCH = "does not match its pinned public key"
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
    sha256: str  # of the certificate, hex, lower case
    key_sha256: bytes  # of its public key (SubjectPublicKeyInfo, DER): what a pin holds

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer

    @property
    def pin(self) -> str:
        """``sha256//<base64>``: as curl's --pinnedpubkey and HPKP write it."""
        return "sha256//" + base64.b64encode(self.key_sha256).decode("ascii")

    @property
    def key_fingerprint(self) -> str:
        """The public key's SHA-256 as colon-separated hex, to compare by eye."""
        return ":".join(f"{b:02X}" for b in self.key_sha256)

    def __str__(self) -> str:
        return f"subject {self.subject!r} SHA-256 {self.sha256}"


def describe(der: bytes) -> CertificateInfo:
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return CertificateInfo(der=der, subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                           sha256=cert.fingerprint(hashes.SHA256()).hex(), key_sha256=hashlib.sha256(spki).digest())


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
    files = []
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in TRUSTED_SUFFIXES or path.name.startswith(".") or not path.is_file():
            continue
        if path.name.startswith(LEGACY_ACQUIRED_PREFIX):
            # A CA acquired on first use would vouch for every host: no longer trusted.
            log.warning("%s is ignored: a certificate acquired on first use is no longer trusted as a CA; "
                        "pin the endpoint with: trailpipe certificates acquire -c CONFIG IDENTIFIER", path)
            continue
        files.append(path)
    return files


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


# --- public key pins -----------------------------------------------------------------------------


def endpoint_address(url: str) -> tuple[str, int] | None:
    """(host, port) of an https URL; None for http (nothing to verify)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "https" or not parsed.hostname:
        return None
    return parsed.hostname, parsed.port or 443


def _file_name(prefix: str, host: str, port: int, suffix: str = "") -> str:
    return f"{prefix}{re.sub(r'[^A-Za-z0-9.-]', '_', host)}-{port}{suffix}"


def pin_path(directory: Path, host: str, port: int) -> Path:
    return Path(directory) / _file_name(PIN_PREFIX, host, port, PIN_SUFFIX)


def verified_path(directory: Path, host: str, port: int) -> Path:
    return Path(directory) / _file_name(VERIFIED_PREFIX, host, port)


def read_pins(path: Path) -> set[bytes]:
    """The key digests a pin file holds (``sha256//<base64>`` lines; ``#`` comments)."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise CertificateError(f"pin file {str(path)!r} cannot be read: {why}") from None
    pins = set()
    for line in (line.strip() for line in lines):
        if not line or line.startswith("#"):
            continue
        try:
            digest = base64.b64decode(line.removeprefix("sha256//"), validate=True)
        except ValueError:
            digest = b""
        if not line.startswith("sha256//") or len(digest) != 32:
            raise CertificateError(f"pin file {str(path)!r} holds a line that is not sha256//<base64 of 32 bytes>")
        pins.add(digest)
    if not pins:
        raise CertificateError(f"pin file {str(path)!r} holds no pin")
    return pins


def endpoint_pins(directory: str | os.PathLike | None, url: str) -> set[bytes]:
    """The pinned key digests of the endpoint of ``url`` (empty: not pinned)."""
    address = endpoint_address(url)
    if not directory or address is None:
        return set()
    return read_pins(pin_path(Path(directory), *address))


def write_pin(directory: Path, host: str, port: int, leaf: CertificateInfo) -> Path:
    path = pin_path(directory, host, port)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    text = (f"# trailpipe: public key of {host}:{port}, pinned {when}\n"
            f"# certificate subject {leaf.subject!r}, issuer {leaf.issuer!r}\n"
            f"# key SHA-256 {leaf.key_fingerprint}\n{leaf.pin}\n")
    write_atomically(path, text.encode("ascii"))
    return path


class PinMismatch(ssl.SSLError):
    """The endpoint presented a public key other than the pinned one(s)."""


def check_pin(host: str, port: int, der: bytes | None, pins: set[bytes]) -> None:
    if not der:
        raise PinMismatch(f"{host}:{port} presented no certificate: it {PIN_MISMATCH}")
    leaf = describe(der)
    if leaf.key_sha256 not in pins:
        raise PinMismatch(f"the certificate of {host}:{port} ({leaf.subject}, key {leaf.pin}) {PIN_MISMATCH}")


def pinned_pool_class(pins: set[bytes]) -> type:
    """An HTTPS connection pool (botocore's) whose every connection checks the leaf's key."""
    frozen = frozenset(pins)

    class PinnedConnection(botocore.awsrequest.AWSHTTPSConnection):
        def connect(self) -> None:
            super().connect()
            try:
                check_pin(self.host, self.port, self.sock.getpeercert(binary_form=True), set(frozen))
            except PinMismatch:
                self.close()
                raise
            self.is_verified = True  # by the pin (the CA chain of a pinned endpoint is not used)

    class PinnedPool(botocore.awsrequest.AWSHTTPSConnectionPool):
        ConnectionCls = PinnedConnection

    return PinnedPool


def pin_client(client, pins: set[bytes]) -> None:
    """Make every HTTPS connection of a botocore client check ``pins`` (the client must have been
    made with ``verify=False``: the pin replaces the CA chain, and is checked on every connection)."""
    # botocore has no public hook for the pool class: its URLLib3Session's (tests/test_certificates.py
    # fails should a botocore release move them).
    session = client._endpoint.http_session  # noqa: SLF001
    classes = dict(session._pool_classes_by_scheme, https=pinned_pool_class(pins))  # noqa: SLF001
    session._pool_classes_by_scheme = classes  # noqa: SLF001  (later proxy managers take this dict)
    session._manager.pool_classes_by_scheme = classes  # noqa: SLF001
    session._manager.clear()  # noqa: SLF001


# --- the handshakes -----------------------------------------------------------------------------


def direct_connector(host: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


def presented_chain(host: str, port: int, connect: Connector = direct_connector,
                    timeout: float = HANDSHAKE_TIMEOUT) -> list[bytes]:
    """The certificates the server sends, leaf first, without verifying them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with context.wrap_socket(connect(host, port, timeout), server_hostname=host) as tls:
        leaf = tls.getpeercert(binary_form=True)
        assert leaf is not None  # None only without a certificate: no TLS server omits it here
        return [leaf]


def verify_error(host: str, port: int, cafile: str, connect: Connector = direct_connector,
                 timeout: float = HANDSHAKE_TIMEOUT) -> str | None:
    """None if the endpoint's certificate verifies against ``cafile`` (and its name matches), else why not."""
    context = ssl.create_default_context(cafile=cafile)
    try:
        with context.wrap_socket(connect(host, port, timeout), server_hostname=host):
            return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)


def leaf_certificate(host: str, port: int, connect: Connector = direct_connector) -> CertificateInfo:
    return describe(presented_chain(host, port, connect)[0])


@dataclass(frozen=True)
class Acquired:
    url: str
    leaf: CertificateInfo
    path: Path
    previous: frozenset[bytes]  # the pins replaced (empty: the first pin, or already pinned)
    verifies: str | None  # None if the endpoint also verifies with the CAs, else why not
    written: bool  # False: the key was pinned already


def acquire(url: str, directory: str | os.PathLike, connect: Connector = direct_connector, *,
            expect: str | None = None, replace: bool = False) -> Acquired:
    """Pin the public key the endpoint of ``url`` presents now (``trailpipe certificates acquire``).

    ``expect``: the fingerprint (``sha256//…`` or hex, colons allowed) the key must have, as
    read from the server by other means. An existing different pin is replaced only with
    ``replace``."""
    address = endpoint_address(url)
    if address is None:
        raise CertificateError(f"{url} is not an https URL: nothing to pin")
    directory = Path(directory)
    host, port = address
    try:
        leaf = leaf_certificate(host, port, connect)
        verifies = verify_error(host, port, _cafile(directory), connect)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionError(f"cannot reach {url} to read its certificate: {exc}") from None
    if expect is not None and _fingerprint_bytes(expect) != leaf.key_sha256:
        raise CertificateError(f"the public key of {url} is {leaf.pin} ({leaf.key_fingerprint}), not the "
                               f"expected {expect}: nothing pinned")
    path = pin_path(directory, host, port)
    previous = read_pins(path) if path.exists() else set()
    if previous and leaf.key_sha256 not in previous and not replace:
        raise CertificateError(f"{url} presents a public key other than the one pinned in {path}: "
                               f"{leaf.pin} ({leaf.key_fingerprint}); if the change is expected, "
                               f"acquire again with --replace")
    written = leaf.key_sha256 not in previous
    if written:
        try:
            write_pin(directory, host, port, leaf)
        except OSError as exc:
            raise CertificateError(f"cannot write the pin {path}: {exc.strerror or exc}") from None
    return Acquired(url, leaf, path, frozenset(previous if written else ()), verifies, written)


def _fingerprint_bytes(text: str) -> bytes | None:
    text = text.strip()
    if text.startswith("sha256//"):
        try:
            return base64.b64decode(text[8:], validate=True)
        except ValueError:
            return None
    try:
        return bytes.fromhex(text.replace(":", ""))
    except ValueError:
        return None


def ensure_trusted(source_id: str, url: str, directory: str | os.PathLike,
                   connect: Connector = direct_connector) -> None:
    """``auto_acquire_certificates`` for one endpoint of a source; see the module docstring."""
    address = endpoint_address(url)
    if address is None:
        return
    host, port = address
    directory = Path(directory)
    pins = read_pins(pin_path(directory, host, port))
    try:
        if pins:
            try:
                check_pin(host, port, presented_chain(host, port, connect)[0], pins)
            except PinMismatch as exc:
                raise CertificateError(
                    f"source {source_id!r}: {exc} ({pin_path(directory, host, port)}); if the change is "
                    f"expected, run: trailpipe certificates acquire --replace -c CONFIG {source_id}") from None
            return
        reason = verify_error(host, port, _cafile(directory), connect)
        if reason is None:
            _remember_verified(directory, host, port)
            return
        leaf = leaf_certificate(host, port, connect)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionError(f"source {source_id!r}: cannot reach {url} to check its certificate: {exc}") from None
    if verified_path(directory, host, port).exists():
        raise CertificateError(
            f"source {source_id!r}: the certificate of {url} verified before and does not any more ({reason}); "
            f"it now presents {leaf.subject!r} with key {leaf.pin}. Not trusted automatically: if the change "
            f"is expected, compare that fingerprint with the server's and run: "
            f"trailpipe certificates acquire -c CONFIG {source_id}")
    try:
        path = write_pin(directory, host, port, leaf)
    except OSError as exc:
        raise CertificateError(f"source {source_id!r}: cannot store the pin of {url} in {directory}: "
                               f"{exc.strerror or exc}") from None
    log.warning("source %s: pinned on first use the public key of %s: %s (key SHA-256 %s; certificate %s) "
                "in %s", source_id, url, leaf.pin, leaf.key_fingerprint, leaf, path)


def _remember_verified(directory: Path, host: str, port: int) -> None:
    path = verified_path(directory, host, port)
    if path.exists():
        return
    try:
        write_atomically(path, datetime.now(UTC).isoformat(timespec="seconds").encode() + b"\n")
    except OSError as exc:  # a read-only directory: auto-acquire could not store a pin there either
        log.warning("cannot record that %s:%d verified (%s)", host, port, exc.strerror or exc)


def _cafile(directory: Path) -> str:
    bundle = ca_bundle(directory)
    return bundle if isinstance(bundle, str) else default_ca_file()
