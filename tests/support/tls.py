"""A throwaway certificate authority and a TLS-terminating TCP forwarder.

``make_pki(dir)`` writes a self-signed CA and a server certificate for 127.0.0.1/localhost
signed by it; ``TLSFront`` accepts TLS on a loopback port and forwards the plaintext to a
backend (e.g. the moto server), so tests get a real HTTPS S3 endpoint.
"""
from __future__ import annotations

import datetime
import ipaddress
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pipeline.redis_server import TLS


@dataclass
class Pki:
    ca_pem: Path
    ca_der: Path
    cert_pem: Path  # the server certificate followed by the CA (the chain the server sends)
    leaf_pem: Path  # the server certificate alone
    key_pem: Path
    ca_sha256: str

    def redis_tls(self, replication: bool = False) -> TLS:
        """This server certificate (chain) for ``RedisServer(tls=...)``, trusted by the CA."""
        return TLS(cert=self.cert_pem, key=self.key_pem, ca=self.ca_pem, replication=replication)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "trailpipe tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(directory: Path, ca_name: str = "trailpipe test CA") -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder()
               .subject_name(_name(ca_name)).issuer_name(_name(ca_name))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(_name("localhost")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    pki = Pki(ca_pem=directory / "ca.pem", ca_der=directory / "ca.der", cert_pem=directory / "server-chain.pem",
              leaf_pem=directory / "server.pem", key_pem=directory / "server.key",
              ca_sha256=ca_cert.fingerprint(hashes.SHA256()).hex())
    pki.ca_pem.write_bytes(ca_cert.public_bytes(pem))
    pki.ca_der.write_bytes(ca_cert.public_bytes(serialization.Encoding.DER))
    pki.leaf_pem.write_bytes(cert.public_bytes(pem))
    pki.cert_pem.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    pki.key_pem.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return pki


class TLSFront:
    """TLS on ``127.0.0.1:<port>`` in front of a plaintext TCP backend, one thread per connection."""

    def __init__(self, backend: tuple[str, int], cert_pem: Path, key_pem: Path):
        self.backend = backend
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert_pem), str(key_pem))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # accept() wakes up to notice stop()
        self.port = self.listener.getsockname()[1]
        self.accepted = 0  # TCP connections, handshake or not
        self.connections = 0  # completed TLS handshakes
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def use_certificate(self, cert_pem: Path, key_pem: Path) -> None:
        """Present another certificate from the next connection on."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert_pem), str(key_pem))
        self.context = context

    def start(self) -> TLSFront:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self.listener.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        try:
            client.settimeout(10)
            tls = self.context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):
            client.close()
            return
        self.connections += 1
        try:
            backend = socket.create_connection(self.backend, timeout=10)
        except OSError:
            tls.close()
            return
        tls.settimeout(None)
        backend.settimeout(None)
        try:
            _pump(tls, backend)
        finally:
            tls.close()
            backend.close()


def _pump(tls: ssl.SSLSocket, backend: socket.socket) -> None:
    while True:
        # An SSL socket may hold decrypted bytes select() cannot see.
        readable = [tls] if tls.pending() else select.select([tls, backend], [], [], 30)[0]
        if not readable:
            return
        for sock in readable:
            try:
                data = sock.recv(65536)
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            (backend if sock is tls else tls).sendall(data)
