"""Server certificates against a real HTTPS S3 endpoint: the moto server behind a TLS front
whose certificate is signed by a throwaway CA made for the test."""
from __future__ import annotations

import logging
import os
import urllib.parse
from pathlib import Path

import pytest

from pipeline import certificates
from pipeline.certificates import CertificateError, acquired_path, ca_bundle
from pipeline.s3 import ProxyAuthenticationError, UntrustedCertificate, make_client
from support.proxy_server import proxy_settings, start_or_skip
from support.tls import TLSFront, make_pki

KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/02/02/b.json.gz"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def https_endpoint(moto_endpoint, pki):
    """A fresh TLS front per test (tests change its certificate): sends its certificate and the CA."""
    moto = urllib.parse.urlsplit(moto_endpoint)
    front = TLSFront((moto.hostname, moto.port), pki.cert_pem, pki.key_pem).start()
    yield front
    front.stop()


@pytest.fixture
def trusted(tmp_path) -> Path:
    directory = tmp_path / "trusted"
    directory.mkdir()
    return directory


@pytest.fixture
def object_key(s3, bucket):
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"over tls")
    return KEY


def works(client, bucket) -> bool:
    return client.get_object(Bucket=bucket, Key=KEY)["Body"].read() == b"over tls"


def test_untrusted_endpoint_fails_with_a_clear_error(make_runtime, bucket, object_key, https_endpoint):
    runtime = make_runtime(bucket, endpoint_url=https_endpoint.url)
    client = make_client(runtime.source("test-src"))
    with pytest.raises(UntrustedCertificate) as info:
        client.get_object(Bucket=bucket, Key=object_key)
    message = str(info.value)
    assert message.startswith(f"source 'test-src': the TLS certificate of {https_endpoint.url}/{bucket}/")
    assert "is not trusted (self-signed certificate in certificate chain)" in message
    assert "trusted_certificates_dir" in message and "auto_acquire_certificates" in message
    assert (https_endpoint.accepted, https_endpoint.connections) == (1, 0)  # not retried: retrying cannot fix it


def test_der_in_trusted_directory(make_runtime, bucket, object_key, https_endpoint, pki, trusted):
    (trusted / "corporate-ca.der").write_bytes(pki.ca_der.read_bytes())
    runtime = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted))
    assert works(make_client(runtime.source("test-src")), bucket)


def test_pem_in_trusted_directory(make_runtime, bucket, object_key, https_endpoint, pki, trusted):
    (trusted / "corporate-ca.pem").write_bytes(pki.ca_pem.read_bytes())
    runtime = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted))
    assert works(make_client(runtime.source("test-src")), bucket)


def test_bundle_holds_default_and_trusted_cas_and_is_rewritten_only_on_change(pki, trusted, tmp_path):
    assert ca_bundle(None) is True
    assert ca_bundle(str(trusted)) is True  # nothing trusted yet: the default CAs
    (trusted / "a.der").write_bytes(pki.ca_der.read_bytes())
    (trusted / "notes.txt").write_text("not a certificate, not read")
    bundle = Path(ca_bundle(str(trusted)))
    text = bundle.read_text()
    default = Path(certificates.default_ca_file()).read_text()
    assert text.startswith(default.rstrip("\n")) and pki.ca_pem.read_text().strip() in text
    assert f"a.der: CN=trailpipe test CA,O=trailpipe tests (SHA-256 {pki.ca_sha256})" in text
    before = bundle.stat()
    assert Path(ca_bundle(str(trusted))) == bundle
    after = bundle.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten

    other = make_pki(tmp_path / "other", ca_name="second CA")
    (trusted / "b.pem").write_bytes(other.ca_pem.read_bytes())
    assert other.ca_pem.read_text().strip() in Path(ca_bundle(str(trusted))).read_text()
    assert not [p for p in trusted.iterdir() if p.name.endswith(".tmp")]  # written through a temp file


def test_bad_certificate_file_is_named(trusted):
    (trusted / "broken.der").write_bytes(b"\x30\x03not a certificate")
    with pytest.raises(CertificateError, match=r"broken.der' is not a DER or PEM X.509 certificate"):
        ca_bundle(str(trusted))
    (trusted / "broken.der").unlink()
    (trusted / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CertificateError, match=r"key.pem' holds no PEM CERTIFICATE block"):
        ca_bundle(str(trusted))


def test_bundle_of_a_read_only_directory_goes_to_the_temp_directory(pki, trusted, monkeypatch):
    (trusted / "a.der").write_bytes(pki.ca_der.read_bytes())
    trusted.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the directory look read-only as to a service user
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == trusted and mode & os.W_OK
                            else real_access(path, mode, **kw))
    try:
        bundle = Path(ca_bundle(str(trusted)))
        assert bundle.parent.name == f"trailpipe-{os.getuid()}" and (bundle.parent.stat().st_mode & 0o777) == 0o700
        assert pki.ca_pem.read_text().strip() in bundle.read_text()
        assert not (trusted / certificates.BUNDLE_NAME).exists()
    finally:
        trusted.chmod(0o755)


def test_auto_acquire_trusts_on_first_use(make_runtime, bucket, object_key, https_endpoint, pki, trusted, caplog):
    runtime = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted),
                           auto_acquire_certificates=True)
    source = runtime.source("test-src")
    with caplog.at_level(logging.INFO, logger="pipeline.certificates"):
        assert works(make_client(source), bucket)
    stored = acquired_path(trusted, "127.0.0.1", https_endpoint.port)
    assert stored.read_bytes() == pki.ca_der.read_bytes()  # the root the server sent, as DER
    assert (f"source test-src: trusting on first use the certificate of {https_endpoint.url}: "
            f"subject 'CN=trailpipe test CA,O=trailpipe tests' SHA-256 {pki.ca_sha256}") in caplog.text

    caplog.clear()
    mtime = stored.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="pipeline.certificates"):
        assert works(make_client(source), bucket)  # a later client: verified against the stored one
    assert stored.stat().st_mtime_ns == mtime and "trusting on first use" not in caplog.text


def test_changed_certificate_is_an_error_until_the_stored_one_is_removed(
        make_runtime, bucket, object_key, https_endpoint, pki, trusted, tmp_path):
    runtime = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted),
                           auto_acquire_certificates=True)
    source = runtime.source("test-src")
    assert works(make_client(source), bucket)
    stored = acquired_path(trusted, "127.0.0.1", https_endpoint.port)

    other = make_pki(tmp_path / "other", ca_name="impostor CA")
    https_endpoint.use_certificate(other.cert_pem, other.key_pem)
    with pytest.raises(CertificateError) as info:
        make_client(source)
    message = str(info.value)
    assert message.startswith(f"source 'test-src': the certificate of {https_endpoint.url} changed: ")
    assert f"trusted on first use SHA-256 {pki.ca_sha256}" in message
    assert f"now presented SHA-256 {other.ca_sha256} (CN=impostor CA,O=trailpipe tests)" in message
    assert f"delete {stored} to trust the new one" in message
    assert stored.read_bytes() == pki.ca_der.read_bytes()  # untouched

    stored.unlink()
    assert works(make_client(source), bucket)
    assert stored.read_bytes() == other.ca_der.read_bytes()


def test_auto_acquire_when_the_server_hides_its_root(make_runtime, bucket, object_key, moto_endpoint, pki, trusted):
    moto = urllib.parse.urlsplit(moto_endpoint)
    front = TLSFront((moto.hostname, moto.port), pki.leaf_pem, pki.key_pem).start()  # no CA in the chain
    try:
        runtime = make_runtime(bucket, endpoint_url=front.url, trusted_certificates_dir=str(trusted),
                               auto_acquire_certificates=True)
        with pytest.raises(CertificateError, match="does not send its root CA: copy the CA certificate into"):
            make_client(runtime.source("test-src"))
        assert not acquired_path(trusted, "127.0.0.1", front.port).exists()
        (trusted / "ca.der").write_bytes(pki.ca_der.read_bytes())  # what the message says to do
        assert works(make_client(runtime.source("test-src")), bucket)
    finally:
        front.stop()


def test_https_through_the_proxy_with_auto_acquire(make_runtime, bucket, object_key, https_endpoint, pki,
                                                   trusted, tmp_path):
    proxy = start_or_skip(tmp_path / "proxy")
    try:
        runtime = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted),
                               auto_acquire_certificates=True, proxy=proxy_settings(proxy))
        assert works(make_client(runtime.source("test-src")), bucket)
        assert acquired_path(trusted, "127.0.0.1", https_endpoint.port).exists()
        proxy.wait_for_log(f"CONNECT 127.0.0.1:{https_endpoint.port}")

        # A wrong proxy password: the certificate check's CONNECT names the proxy, not the password.
        wrong = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted),
                             auto_acquire_certificates=True, proxy=proxy_settings(proxy, password="nope-n0pe"))
        (trusted / acquired_path(trusted, "127.0.0.1", https_endpoint.port).name).unlink()
        with pytest.raises(ProxyAuthenticationError, match="407 Proxy Authentication Required") as info:
            make_client(wrong.source("test-src"))
        assert "nope-n0pe" not in str(info.value)

        # And botocore's own CONNECT (no certificate check: the CA is trusted already).
        (trusted / "ca.der").write_bytes(pki.ca_der.read_bytes())
        plain = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted),
                             proxy=proxy_settings(proxy, password="nope-n0pe"))
        with pytest.raises(ProxyAuthenticationError, match="GetObject through proxy http://127.0.0.1:") as info:
            make_client(plain.source("test-src")).get_object(Bucket=bucket, Key=object_key)
        assert "nope-n0pe" not in str(info.value)
    finally:
        proxy.stop()
