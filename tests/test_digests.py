"""pipeline.digests: names, fetching, signature verification, chain links, public key sources
(a directory of keys, and CloudTrail's ListPublicKeys through boto3 on the wire)."""
from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import TEST_KEY_ID
from support.cloudtrail_api import CloudTrailKeysAPI
from support.cloudtrail_digests import Trail, fingerprint, private_key, public_der, write_public_keys

from pipeline import digests as dg

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def keys_dir(tmp_path):
    write_public_keys(tmp_path, 0)
    return dg.DirPublicKeys(str(tmp_path))


def test_valid_digest_verifies_and_links(s3, bucket, keys_dir):
    trail = Trail(s3, bucket)
    logs = [trail.put_log(T0 + timedelta(minutes=5), "aaaaaaaaaaaaaaaa")]
    first_key = trail.deliver_digest(T0 + timedelta(hours=1), logs)
    second_key = trail.deliver_digest(T0 + timedelta(hours=2), [])
    first, second = dg.fetch_digest(s3, bucket, first_key), dg.fetch_digest(s3, bucket, second_key)
    dg.verify_digest(first, keys_dir)
    dg.verify_digest(second, keys_dir)
    assert first.log_files[0]["s3Object"] == logs[0][0]
    assert dg.check_previous(s3, second, dg.Link.of(first), keys_dir) == []
    assert dg.check_previous(s3, second, None, keys_dir) == []  # fetched from S3 when not known
    assert dg.check_previous(s3, first, None, keys_dir) == []  # the first of a chain links nowhere


def kinds(problems):
    return [p.kind for p in problems]


def test_each_tampering_is_its_own_kind(s3, bucket, keys_dir):
    trail = Trail(s3, bucket)
    first_key = trail.deliver_digest(T0 + timedelta(hours=1), [])
    first = dg.fetch_digest(s3, bucket, first_key)
    # Content altered after signing: the signature no longer verifies.
    raw = json.loads(gzip.decompress(s3.get_object(Bucket=bucket, Key=first_key)["Body"].read()))
    raw["logFiles"] = [{"s3Bucket": bucket, "s3Object": "planted", "hashValue": "0" * 64}]
    meta = s3.head_object(Bucket=bucket, Key=first_key)["Metadata"]
    s3.put_object(Bucket=bucket, Key=first_key, Body=gzip.compress(json.dumps(raw).encode()), Metadata=meta)
    with pytest.raises(dg.DigestProblem) as caught:
        dg.verify_digest(dg.fetch_digest(s3, bucket, first_key), keys_dir)
    assert caught.value.kind == dg.SIGNATURE
    # Signed by another key pair under CloudTrail's fingerprint.
    forged = dg.fetch_digest(s3, bucket, trail.deliver_digest(T0 + timedelta(hours=2), [], sign_with=1))
    assert pytest.raises(dg.DigestProblem, dg.verify_digest, forged, keys_dir).value.kind == dg.SIGNATURE
    # Copied to another key: it says where it sits.
    other = first_key.replace("2026/11/01", "2026/11/02")
    s3.copy_object(Bucket=bucket, Key=other, CopySource={"Bucket": bucket, "Key": forged.key})
    moved = dg.fetch_digest(s3, bucket, other)
    assert pytest.raises(dg.DigestProblem, dg.verify_digest, moved, keys_dir).value.kind == dg.MOVED
    # A public key nobody has.
    stranger = Trail(s3, bucket, name="other", key=2).deliver_digest(T0 + timedelta(hours=1), [])
    problem = pytest.raises(dg.DigestProblem, dg.verify_digest, dg.fetch_digest(s3, bucket, stranger), keys_dir)
    assert problem.value.kind == dg.INVALID and fingerprint(private_key(2)) in problem.value.detail
    # Not a digest at all / gone.
    s3.put_object(Bucket=bucket, Key="AWSLogs/x.json.gz", Body=b"not json")
    assert pytest.raises(dg.DigestProblem, dg.fetch_digest, s3, bucket, "AWSLogs/x.json.gz").value.kind == dg.INVALID
    assert pytest.raises(dg.DigestProblem, dg.fetch_digest, s3, bucket, "AWSLogs/gone").value.kind == dg.MISSING
    # Links: a hash or signature that differ from the previous digest's own.
    good = dg.Link.of(first)
    after = dg.fetch_digest(s3, bucket, Trail(s3, bucket).deliver_digest(T0 + timedelta(hours=3), []))
    assert kinds(dg.check_previous(s3, after, None, keys_dir)) == []
    after.fields.update(previousDigestS3Object=first_key, previousDigestHashValue=good.sha256,
                        previousDigestSignature="00")
    assert kinds(dg.check_previous(s3, after, good, keys_dir)) == [dg.CHAIN]
    after.fields.update(previousDigestSignature=good.signature, previousDigestHashValue="1" * 64)
    assert kinds(dg.check_previous(s3, after, good, keys_dir)) == [dg.CHAIN]
    after.fields.update(previousDigestS3Object="AWSLogs/deleted-digest.json.gz")
    assert kinds(dg.check_previous(s3, after, good, keys_dir)) == [dg.MISSING]


def test_key_file_named_by_another_fingerprint_is_a_warning(tmp_path, caplog):
    (tmp_path / fingerprint(private_key(0))).write_bytes(public_der(private_key(1)))  # misnamed
    keys = dg.DirPublicKeys(str(tmp_path))
    assert keys.get(fingerprint(private_key(0)), None, "us-east-1") is None
    assert "is named by fingerprint" in caplog.text
    assert keys.get(fingerprint(private_key(1)), None, "us-east-1") == public_der(private_key(1))
    assert keys.get("../../etc/passwd", None, "us-east-1") is None


@pytest.mark.parametrize("encoding", ["PEM", "DER"])
@pytest.mark.parametrize("public_format", ["PKCS1", "SubjectPublicKeyInfo"])
def test_public_keys_dir_reads_pem_and_der_pkcs1_and_spki_under_any_name(tmp_path, caplog, encoding,
                                                                          public_format):
    """What openssl and most tools write (PEM SPKI as <fp>.pem), CloudTrail's DER PKCS#1, any name."""
    from cryptography.hazmat.primitives import serialization

    names = {0: f"{fingerprint(private_key(0))}.pem", 1: "trail-key-2026.pub"}
    for n, name in names.items():
        (tmp_path / name).write_bytes(private_key(n).public_key().public_bytes(
            getattr(serialization.Encoding, encoding), getattr(serialization.PublicFormat, public_format)))
    (tmp_path / "README").write_text("the CloudTrail keys of our trails")
    keys = dg.DirPublicKeys(str(tmp_path))
    for n in names:
        assert keys.get(fingerprint(private_key(n)), None, "us-east-1") == public_der(private_key(n))
    assert "README holds no RSA public key" in caplog.text
    assert "is named by fingerprint" not in caplog.text
    # A key added later is found without a restart.
    (tmp_path / "later.der").write_bytes(public_der(private_key(2)))
    assert keys.get(fingerprint(private_key(2)), None, "us-east-1") == public_der(private_key(2))


def test_pem_keys_verify_a_digest_end_to_end(s3, bucket, tmp_path):
    from cryptography.hazmat.primitives import serialization

    (tmp_path / f"{fingerprint(private_key(0))}.pem").write_bytes(private_key(0).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    trail = Trail(s3, bucket)
    logs = [trail.put_log(T0 + timedelta(minutes=5), "aaaaaaaaaaaaaaaa")]
    digest = dg.fetch_digest(s3, bucket, trail.deliver_digest(T0 + timedelta(hours=1), logs))
    dg.verify_digest(digest, dg.DirPublicKeys(str(tmp_path)))  # raises on any problem


def test_public_keys_from_cloudtrail_list_public_keys(make_runtime, s3, bucket):
    """The ListPublicKeys path, on the wire: signed with the source's credentials, in the trail's
    home region, around the digest's time, paged; keys rotate, so the right one is picked."""
    trail = Trail(s3, bucket, home="eu-west-1")
    digest_key = trail.deliver_digest(T0 + timedelta(hours=1), [])
    with CloudTrailKeysAPI() as api:
        api.add_key(public_der(private_key(3)), fingerprint(private_key(3)), T0 - timedelta(days=30),
                    T0 - timedelta(hours=2))  # the previous key, rotated out
        api.add_key(public_der(private_key(0)), fingerprint(private_key(0)), T0 - timedelta(hours=2),
                    T0 + timedelta(days=30))
        runtime = make_runtime(bucket, integrity={"enabled": True, "endpoint_url": api.url})
        source = runtime.config.sources[0]
        keys = dg.public_keys_for(source)
        assert isinstance(keys, dg.CloudTrailPublicKeys)
        digest = dg.fetch_digest(s3, bucket, digest_key)
        dg.verify_digest(digest, keys)
        assert {r["access_key"] for r in api.requests} == {TEST_KEY_ID}
        assert {r["region"] for r in api.requests} == {"eu-west-1"}  # the trail's home region
        assert len(api.requests) == 2  # two keys in the margin, one per page
        start, end = api.requests[0]["start"], api.requests[0]["end"]
        assert start < (T0 + timedelta(hours=1)).timestamp() < end
        dg.verify_digest(digest, keys)  # cached: no new request
        assert len(api.requests) == 2
        # A key ListPublicKeys does not return: the digest is invalid, and the message says where we looked.
        stranger = Trail(s3, bucket, name="x", home="eu-west-1", key=2).deliver_digest(T0 + timedelta(hours=1), [])
        problem = pytest.raises(dg.DigestProblem, dg.verify_digest, dg.fetch_digest(s3, bucket, stranger), keys)
        assert problem.value.kind == dg.INVALID and "ListPublicKeys" in problem.value.detail


def test_runtime_keeps_the_public_keys_until_the_source_is_forgotten(make_runtime, s3, bucket):
    """The Runtime owns each source's public key source (its CloudTrail clients, the keys they
    fetched): kept across discoveries, dropped with the source's clients by ``forget_s3`` (after
    a configuration error), so a fixed credential or certificate is used without a restart."""
    trail = Trail(s3, bucket, home="eu-west-1")
    digest_key = trail.deliver_digest(T0 + timedelta(hours=1), [])
    with CloudTrailKeysAPI() as api:
        api.add_key(public_der(private_key(0)), fingerprint(private_key(0)), T0 - timedelta(hours=2),
                    T0 + timedelta(days=30))
        runtime = make_runtime(bucket, integrity={"enabled": True, "endpoint_url": api.url})
        source = runtime.config.sources[0]
        digest = dg.fetch_digest(runtime.s3(source), bucket, digest_key)
        keys = runtime.public_keys(source)
        dg.verify_digest(digest, keys)
        assert len(api.requests) == 1
        assert runtime.public_keys(source) is keys
        dg.verify_digest(digest, runtime.public_keys(source))  # kept: no new request
        assert len(api.requests) == 1
        client = keys.client_for_region("eu-west-1")
        runtime.forget_s3(source)  # what a task does once the source is failing
        fresh = runtime.public_keys(source)
        assert fresh is not keys and fresh.client_for_region("eu-west-1") is not client
        dg.verify_digest(digest, fresh)  # asked again, through a new client
        assert len(api.requests) == 2


def test_cloudtrail_keys_client_verifies_with_a_ca_setting_not_a_pair():
    """``verify_setting`` returns (verify, pins): the ListPublicKeys client once got the pair
    itself as ``verify=``, so every HTTPS request (AWS's CloudTrail) failed with a TypeError."""
    from conftest import config_dict, source_dict

    from pipeline.config import parse_config
    for endpoint in (None, "https://127.0.0.1:1"):
        integrity = {"enabled": True, **({"endpoint_url": endpoint} if endpoint else {})}
        config = parse_config(config_dict("redis://127.0.0.1:1/0", [source_dict(
            "trail-bucket", "http://127.0.0.1:1", integrity=integrity)]))
        client = dg.cloudtrail_keys_for(config.sources[0]).client_for_region("eu-west-1")
        verify = client._endpoint.http_session._verify  # noqa: SLF001  (what each HTTPS connection loads)
        assert verify is True or isinstance(verify, str), (endpoint, verify)
