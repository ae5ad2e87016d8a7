"""A CloudTrail stand-in for tests: delivers log files and hourly digests signed as CloudTrail signs
them, with its own RSA key pair. Written from the format description (not from pipeline.digests),
so a shared misunderstanding cannot make both sides agree.

- digest body: gzip of the JSON document; object metadata ``signature`` (hex) and
  ``signature-algorithm`` (SHA256withRSA);
- signed string: ``digestEndTime\\ndigestS3Bucket/digestS3Object\\nsha256hex(uncompressed)\\n
  previousDigestSignature`` (``null`` for the first digest), RSASSA-PKCS1-v1_5 with SHA-256;
- public key: PKCS#1 DER; fingerprint: its MD5 hex.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_KEYS: dict[int, rsa.RSAPrivateKey] = {}


def private_key(n: int = 0) -> rsa.RSAPrivateKey:
    """RSA key pairs made once per test session (2048-bit generation takes a moment)."""
    if n not in _KEYS:
        _KEYS[n] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEYS[n]


def public_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def fingerprint(key: rsa.RSAPrivateKey) -> str:
    return hashlib.md5(public_der(key)).hexdigest()


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_body(key: str, events: int = 3) -> tuple[bytes, bytes]:
    """(gzip body, uncompressed bytes) of a small CloudTrail log file."""
    records = [{"eventVersion": "1.08", "eventID": f"{key}#{n}", "eventName": "GetObject",
                "eventTime": "2026-11-01T08:00:00Z", "awsRegion": "us-east-1",
                "recipientAccountId": "111122223333"} for n in range(events)]
    raw = json.dumps({"Records": records}).encode()
    return gzip.compress(raw, mtime=0), raw


class Trail:
    """One trail's deliveries to one account/region folder of a bucket."""

    def __init__(self, s3, bucket: str, account: str = "111122223333", region: str = "us-east-1",
                 name: str = "main-trail", home: str = "us-east-1", base: str = "AWSLogs/", key: int = 0):
        self.s3, self.bucket, self.account, self.region = s3, bucket, account, region
        self.name, self.home, self.base = name, home, base
        self.key = private_key(key)
        self.previous: dict | None = None  # bucket, key, sha256, signature of the last digest

    def log_key(self, when: datetime, suffix: str) -> str:
        return (f"{self.base}{self.account}/CloudTrail/{self.region}/{when:%Y/%m/%d}/"
                f"{self.account}_CloudTrail_{self.region}_{when:%Y%m%dT%H%M}Z_{suffix}.json.gz")

    def put_log(self, when: datetime, suffix: str, events: int = 3) -> tuple[str, bytes]:
        """Deliver a log file; returns (key, uncompressed bytes)."""
        key = self.log_key(when, suffix)
        body, raw = log_body(key, events)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return key, raw

    def digest_key(self, end: datetime, backfill: bool = False) -> str:
        delivered = end + timedelta(minutes=7)
        return (f"{self.base}{self.account}/CloudTrail-Digest/{self.region}/{delivered:%Y/%m/%d}/"
                f"{self.account}_CloudTrail-Digest_{self.region}_{self.name}_{self.home}_"
                f"{delivered:%Y%m%dT%H%M%S}Z{'_backfill' if backfill else ''}.json.gz")

    def deliver_digest(self, end: datetime, logs: list[tuple[str, bytes]], *, sign_with: int | None = None,
                       override: dict | None = None, link: bool = True, backfill: bool = False) -> str:
        """Write the digest of the hour ending at ``end`` listing ``logs`` (key, uncompressed bytes).

        ``sign_with``: another key pair signs (a forgery); ``override``: fields changed before
        signing (CloudTrail's signature stays valid); ``link=False``: no previous digest (a gap);
        ``backfill``: a backfill digest (its own file name).
        """
        key = self.digest_key(end, backfill)
        previous = self.previous if link else None
        doc = {
            "awsAccountId": self.account,
            "digestStartTime": iso(end - timedelta(hours=1)),
            "digestEndTime": iso(end),
            "digestS3Bucket": self.bucket,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": fingerprint(self.key),
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": iso(end - timedelta(minutes=5)),
            "oldestEventTime": iso(end - timedelta(minutes=55)),
            "previousDigestS3Bucket": previous["bucket"] if previous else None,
            "previousDigestS3Object": previous["key"] if previous else None,
            "previousDigestHashValue": previous["sha256"] if previous else None,
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous["signature"] if previous else None,
            "logFiles": [{"s3Bucket": self.bucket, "s3Object": log_key,
                          "hashValue": hashlib.sha256(raw).hexdigest(), "hashAlgorithm": "SHA-256",
                          "newestEventTime": iso(end - timedelta(minutes=5)),
                          "oldestEventTime": iso(end - timedelta(minutes=55))} for log_key, raw in logs],
        }
        doc.update(override or {})
        raw = json.dumps(doc).encode()
        sha = hashlib.sha256(raw).hexdigest()
        signed = (f"{doc['digestEndTime']}\n{doc['digestS3Bucket']}/{doc['digestS3Object']}\n{sha}\n"
                  f"{doc['previousDigestSignature'] or 'null'}").encode()
        signer = self.key if sign_with is None else private_key(sign_with)
        signature = signer.sign(signed, padding.PKCS1v15(), hashes.SHA256()).hex()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=gzip.compress(raw),
                           Metadata={"signature": signature, "signature-algorithm": "SHA256withRSA"})
        self.previous = {"bucket": self.bucket, "key": key, "sha256": sha, "signature": signature}
        return key


def write_public_keys(directory, *keys: int) -> None:
    """Save public keys as CloudTrail's ListPublicKeys hands them out: PKCS#1 DER, named by fingerprint."""
    for n in keys:
        (directory / fingerprint(private_key(n))).write_bytes(public_der(private_key(n)))
