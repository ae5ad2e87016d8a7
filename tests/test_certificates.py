"""Server certificates against a real HTTPS S3 endpoint: the moto server behind a TLS front
whose certificate is signed by a throwaway CA made for the test."""
from __future__ import annotations

import logging
import os
import urllib.parse
from pathlib import Path

import pytest
from support.proxy_server import proxy_settings, start_or_skip
from support.tls import TLSFront, make_pki

from pipeline import certificates
from pipeline.certificates import CertificateError, ca_bundle
from pipeline.s3 import ProxyAuthenticationError, UntrustedCertificate, make_client

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


def acquire_cli(config_path, *args):
    import subprocess
    import sys

    from conftest import REPO

    return subprocess.run([sys.executable, "-m", "workers.cli", "certificates", "acquire", "-c", str(config_path),
                           *args], capture_output=True, text=True, timeout=60, cwd=REPO)


def pinned_config(tmp_path, redis_server, bucket, url, trusted, **overrides):
    from conftest import config_dict, source_dict, write_config

    return write_config(tmp_path / "c.yaml", config_dict(redis_server.url, [source_dict(
        bucket, url, trusted_certificates_dir=str(trusted), **overrides)]))


def test_acquire_pins_the_leaf_key_and_prints_its_fingerprint(make_runtime, redis_server, bucket, object_key,
                                                              https_endpoint, pki, trusted, tmp_path):
    from pipeline.certificates import describe, pin_path, read_certificates

    leaf = describe(read_certificates(pki.leaf_pem)[0])
    config = pinned_config(tmp_path, redis_server, bucket, https_endpoint.url, trusted)
    result = acquire_cli(config, "test-src")
    assert result.returncode == 0, result.stderr
    assert f"{https_endpoint.url}: pinned public key {leaf.pin}" in result.stdout
    assert f"key SHA-256 {leaf.key_fingerprint}" in result.stdout
    assert "does not verify with the trusted CAs: self-signed certificate in certificate chain" in result.stdout
    pin = pin_path(trusted, "127.0.0.1", https_endpoint.port)
    assert leaf.pin in pin.read_text().splitlines()
    assert not [p for p in trusted.iterdir() if p.suffix in (".der", ".pem")]  # no CA stored, ever
    # Trusted by the pin: no auto_acquire, no CA.
    runtime = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted))
    assert works(make_client(runtime.source("test-src")), bucket)
    again = acquire_cli(config, "test-src")
    assert again.returncode == 0 and "already pinned" in again.stdout
    wrong = acquire_cli(config, "test-src", "--expect", "sha256//" + "A" * 43 + "=")
    assert wrong.returncode == 1 and f"is {leaf.pin}" in wrong.stderr and "nothing pinned" in wrong.stderr


def test_a_pin_vouches_for_its_own_host_only(make_runtime, redis_server, bucket, object_key, moto_endpoint,
                                             https_endpoint, pki, trusted, tmp_path):
    """The old trust on first use stored the CA: any host with a certificate from it was then trusted."""
    config = pinned_config(tmp_path, redis_server, bucket, https_endpoint.url, trusted)
    assert acquire_cli(config, "test-src").returncode == 0
    moto = urllib.parse.urlsplit(moto_endpoint)
    other = TLSFront((moto.hostname, moto.port), pki.cert_pem, pki.key_pem).start()  # same CA, another host
    try:
        runtime = make_runtime(bucket, endpoint_url=other.url, trusted_certificates_dir=str(trusted))
        with pytest.raises(UntrustedCertificate, match="is not trusted"):
            make_client(runtime.source("test-src")).get_object(Bucket=bucket, Key=object_key)
    finally:
        other.stop()


def test_a_pinned_endpoint_presenting_another_key_is_refused_on_every_connection(
        make_runtime, redis_server, bucket, object_key, https_endpoint, pki, trusted, tmp_path):
    config = pinned_config(tmp_path, redis_server, bucket, https_endpoint.url, trusted)
    assert acquire_cli(config, "test-src").returncode == 0
    runtime = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted))
    client = make_client(runtime.source("test-src"))
    assert works(client, bucket)

    impostor = make_pki(tmp_path / "impostor", ca_name="impostor CA")
    (trusted / "impostor-ca.pem").write_bytes(impostor.ca_pem.read_bytes())  # even a CA the user trusts
    https_endpoint.use_certificate(impostor.cert_pem, impostor.key_pem)
    with pytest.raises(UntrustedCertificate) as info:
        make_client(runtime.source("test-src")).get_object(Bucket=bucket, Key=object_key)
    message = str(info.value)
    assert message.startswith("source 'test-src': the certificate of 127.0.0.1:")
    assert "does not match its pinned public key" in message and "certificates acquire --replace" in message
    client.close()  # the pooled connection of the first client is gone: a new one is checked too
    with pytest.raises(UntrustedCertificate, match="pinned public key"):
        client.get_object(Bucket=bucket, Key=object_key)

    refused = acquire_cli(config, "test-src")
    assert refused.returncode == 1 and "acquire again with --replace" in refused.stderr
    replaced = acquire_cli(config, "test-src", "--replace")
    assert replaced.returncode == 0 and "replaced 1 earlier pin(s)" in replaced.stdout
    assert works(make_client(runtime.source("test-src")), bucket)


def test_auto_acquire_pins_the_leaf_key_on_first_use(make_runtime, bucket, object_key, https_endpoint, pki,
                                                     trusted, caplog):
    from pipeline.certificates import describe, pin_path, read_certificates

    leaf = describe(read_certificates(pki.leaf_pem)[0])
    runtime = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted),
                           auto_acquire_certificates=True)
    source = runtime.source("test-src")
    with caplog.at_level(logging.INFO, logger="pipeline.certificates"):
        assert works(make_client(source), bucket)
    pin = pin_path(trusted, "127.0.0.1", https_endpoint.port)
    assert leaf.pin in pin.read_text().splitlines()
    assert (f"source test-src: pinned on first use the public key of {https_endpoint.url}: {leaf.pin} "
            f"(key SHA-256 {leaf.key_fingerprint}") in caplog.text

    caplog.clear()
    mtime = pin.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="pipeline.certificates"):
        assert works(make_client(source), bucket)  # a later client: checked against the pin
    assert pin.stat().st_mtime_ns == mtime and "on first use" not in caplog.text

    impostor = make_pki(trusted.parent / "impostor", ca_name="impostor CA")
    https_endpoint.use_certificate(impostor.cert_pem, impostor.key_pem)
    with pytest.raises(CertificateError, match="does not match its pinned public key"):
        make_client(source)
    assert leaf.pin in pin.read_text()  # untouched


def test_a_host_that_verified_once_is_never_auto_acquired(make_runtime, bucket, object_key, https_endpoint, pki,
                                                          trusted, tmp_path):
    from pipeline.certificates import pin_path

    (trusted / "corporate-ca.der").write_bytes(pki.ca_der.read_bytes())
    runtime = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted),
                           auto_acquire_certificates=True)
    assert works(make_client(runtime.source("test-src")), bucket)  # verifies with the CA

    attacker = make_pki(tmp_path / "attacker", ca_name="attacker CA")
    https_endpoint.use_certificate(attacker.cert_pem, attacker.key_pem)
    with pytest.raises(CertificateError) as info:
        make_client(runtime.source("test-src"))
    message = str(info.value)
    assert "verified before and does not any more" in message and "trailpipe certificates acquire" in message
    assert not pin_path(trusted, "127.0.0.1", https_endpoint.port).exists()


def test_auto_acquire_when_the_server_hides_its_root(make_runtime, bucket, object_key, moto_endpoint, pki, trusted):
    moto = urllib.parse.urlsplit(moto_endpoint)
    front = TLSFront((moto.hostname, moto.port), pki.leaf_pem, pki.key_pem).start()  # no CA in the chain
    try:
        runtime = make_runtime(bucket, endpoint_url=front.url, trusted_certificates_dir=str(trusted),
                               auto_acquire_certificates=True)
        assert works(make_client(runtime.source("test-src")), bucket)  # the leaf's key is what is pinned
    finally:
        front.stop()


def test_certificates_acquired_by_the_old_trust_on_first_use_are_ignored(pki, trusted, caplog):
    (trusted / "acquired-127.0.0.1-443.der").write_bytes(pki.ca_der.read_bytes())
    with caplog.at_level(logging.WARNING, logger="pipeline.certificates"):
        assert ca_bundle(str(trusted)) is True
    assert "no longer trusted as a CA" in caplog.text and "trailpipe certificates acquire" in caplog.text


def test_https_through_the_proxy_with_auto_acquire(make_runtime, bucket, object_key, https_endpoint, pki,
                                                   trusted, tmp_path):
    from pipeline.certificates import pin_path

    proxy = start_or_skip(tmp_path / "proxy")
    try:
        runtime = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted),
                               auto_acquire_certificates=True, proxy=proxy_settings(proxy))
        assert works(make_client(runtime.source("test-src")), bucket)
        assert pin_path(trusted, "127.0.0.1", https_endpoint.port).exists()
        proxy.wait_for_log(f"CONNECT 127.0.0.1:{https_endpoint.port}")

        # A wrong proxy password: the certificate check's CONNECT names the proxy, not the password.
        wrong = make_runtime(bucket, endpoint_url=https_endpoint.url, trusted_certificates_dir=str(trusted),
                             auto_acquire_certificates=True, proxy=proxy_settings(proxy, password="nope-n0pe"))
        pin_path(trusted, "127.0.0.1", https_endpoint.port).unlink()
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
