"""CloudTrail digest files: what they say, and whether CloudTrail signed them.

Every hour CloudTrail writes per account and region a digest (where it sits, and what its key
says: ``pipeline.layout``) listing the log files it delivered in that hour with the SHA-256 of
their uncompressed bytes.
The algorithm follows aws-cli's ``cloudtrail validate-logs``: the object's metadata
``signature`` (hex) is RSASSA-PKCS1-v1_5/SHA-256 over
``digestEndTime\\n digestS3Bucket/digestS3Object\\n sha256hex(uncompressed)\\n previousDigestSignature|null``
with the public key (PKCS#1 DER) whose MD5 hex is ``digestPublicKeyFingerprint``. We check more
than the CLI: each digest's ``previousDigestHashValue`` and ``previousDigestSignature`` must
equal the previous digest's own hash and signature.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pipeline.config import Source
from pipeline.errors import BadObject
from pipeline.layout import digest_name
from pipeline.parser import parse_digest

log = logging.getLogger(__name__)

SIGNATURE_ALGORITHM = "SHA256withRSA"
KEY_SEARCH_MARGIN = timedelta(days=1)  # public keys rotate: ListPublicKeys around the digest's time

# Problem kinds (integrity violations and `verify` problems).
MISSING = "digest_missing"  # the chain names a digest that is not in S3 (deleted)
SIGNATURE = "digest_signature_invalid"  # the signature does not verify (forged or altered)
MOVED = "digest_moved"  # the digest does not sit where it says it sits
CHAIN = "digest_chain_broken"  # previous hash/signature differ from the previous digest's
INVALID = "digest_invalid"  # unreadable, fields missing, unknown public key


class DigestProblem(Exception):
    def __init__(self, kind: str, key: str, detail: str):
        super().__init__(f"{kind}: {key}: {detail}")
        self.kind, self.key, self.detail = kind, key, detail


@dataclass
class Digest:
    """One digest as fetched: its fields, its own hash and the signature CloudTrail attached."""

    bucket: str
    key: str
    fields: dict
    sha256: str  # of the uncompressed digest
    signature: str | None
    signature_algorithm: str | None

    @property
    def log_files(self) -> list[dict]:
        return self.fields["logFiles"]

    @property
    def previous_key(self) -> str | None:
        return self.fields.get("previousDigestS3Object")

    @property
    def end_time(self) -> datetime:
        return parse_time(self.fields["digestEndTime"])


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def fetch_digest(s3, bucket: str, key: str) -> Digest:
    """GET and parse a digest; DigestProblem MISSING when it is gone, INVALID when unreadable."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise DigestProblem(MISSING, key, "named by the chain but not in S3 (deleted?)") from None
        raise
    body = response["Body"]
    try:
        try:
            fields = parse_digest(body)
        except BadObject as exc:
            raise DigestProblem(INVALID, key, exc.reason) from None
    finally:
        body.close()
    metadata = {k.lower(): v for k, v in (response.get("Metadata") or {}).items()}
    return Digest(bucket, key, fields, fields["contentSha256"], metadata.get("signature"),
                  metadata.get("signature-algorithm"))


def string_to_sign(digest: Digest) -> bytes:
    f = digest.fields
    previous = f.get("previousDigestSignature")
    return (f"{f['digestEndTime']}\n{f['digestS3Bucket']}/{f['digestS3Object']}\n{digest.sha256}\n"
            f"{'null' if previous is None else previous}").encode()


def fingerprint(der: bytes) -> str:
    """CloudTrail's public key fingerprint: the MD5 hex of the PKCS#1 DER."""
    return hashlib.md5(der).hexdigest()  # noqa: S324  (an identifier, not a security function)


class PublicKeys(Protocol):
    def get(self, fingerprint: str, digest: Digest, region: str) -> bytes | None:
        """The PKCS#1 DER public key with that fingerprint, or None when there is none."""


class DirPublicKeys:
    """The public keys in a directory: PEM or DER, PKCS#1 (as ``aws cloudtrail list-public-keys``
    returns them) or SubjectPublicKeyInfo (as ``openssl rsa -pubout`` writes them), under any file
    name, indexed by the fingerprint computed from the key. A file named by another fingerprint
    is a warning (the key is still used by its own); a file that holds no public key, too. The
    folder is read again when a fingerprint is not found and its files changed (a key added)."""

    def __init__(self, directory: str):
        self.directory = Path(directory)
        self.keys: dict[str, bytes] = {}
        self._seen: tuple | None = None

    def _listing(self) -> tuple:
        try:
            return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                                for p in self.directory.iterdir() if p.is_file() and not p.name.startswith(".")))
        except OSError as exc:
            log.warning("public_keys_dir %s cannot be read: %s", self.directory, exc.strerror)
            return ()

    def _load(self) -> None:
        listing = self._listing()
        if listing == self._seen:
            return
        keys: dict[str, bytes] = {}
        for name, _, _ in listing:
            path = self.directory / name
            try:
                der = pkcs1_der(path.read_bytes())
            except OSError as exc:
                log.warning("public key file %s cannot be read: %s", path, exc.strerror)
                continue
            if der is None:
                log.warning("public key file %s holds no RSA public key (PEM or DER, PKCS#1 or "
                            "SubjectPublicKeyInfo): ignored", path)
                continue
            computed = fingerprint(der)
            named = name.split(".", 1)[0].lower()
            if re.fullmatch(r"[0-9a-f]{32}", named) and named != computed:
                log.warning("public key file %s is named by fingerprint %s but its key's fingerprint is %s: "
                            "used as %s", path, named, computed, computed)
            keys[computed] = der
        self.keys, self._seen = keys, listing

    def get(self, fingerprint_hex: str, digest: Digest, region: str) -> bytes | None:
        if fingerprint_hex not in self.keys:
            self._load()
        return self.keys.get(fingerprint_hex)

    def describe(self) -> str:
        return f"public_keys_dir {str(self.directory)!r}"


def pkcs1_der(data: bytes) -> bytes | None:
    """The PKCS#1 DER of the RSA public key in ``data`` (PEM or DER; PKCS#1 or SPKI), else None."""
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, rsa.RSAPublicKey):
        return None
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


class CloudTrailPublicKeys:
    """CloudTrail's ListPublicKeys in the trail's home region, around the digest's time; cached."""

    def __init__(self, client_for_region):
        self.client_for_region = client_for_region
        self.cache: dict[tuple[str, str], bytes] = {}

    def get(self, fingerprint_hex: str, digest: Digest, region: str) -> bytes | None:
        if (region, fingerprint_hex) in self.cache:
            return self.cache[(region, fingerprint_hex)]
        when = digest.end_time
        client = self.client_for_region(region)
        params = {"StartTime": when - KEY_SEARCH_MARGIN, "EndTime": when + KEY_SEARCH_MARGIN}
        while True:
            page = client.list_public_keys(**params)
            for item in page.get("PublicKeyList", []):
                self.cache[(region, item["Fingerprint"])] = item["Value"]
            if not page.get("NextToken"):
                break
            params["NextToken"] = page["NextToken"]
        return self.cache.get((region, fingerprint_hex))

    def describe(self) -> str:
        return "CloudTrail ListPublicKeys"


def cloudtrail_keys_for(source: Source) -> CloudTrailPublicKeys:
    """ListPublicKeys with the source's credentials, proxy and trusted certificates: one client
    per region, made when first asked for (the CloudTrail endpoint's trust setting; AWS's own,
    without a URL, is never pinned)."""
    from pipeline.s3 import make_aws_client  # noqa: PLC0415  (boto3 only when ListPublicKeys is used)

    clients: dict[str, object] = {}

    def client_for_region(region: str):
        if region not in clients:
            clients[region] = make_aws_client(source, "cloudtrail", endpoint_url=source.integrity.endpoint_url,
                                              region=region)
        return clients[region]

    return CloudTrailPublicKeys(client_for_region)


def public_keys_for(source: Source, directory: str | None = None) -> PublicKeys:
    directory = directory or source.integrity.public_keys_dir
    return DirPublicKeys(directory) if directory else cloudtrail_keys_for(source)


def verify_digest(digest: Digest, keys: PublicKeys) -> None:
    """Raise DigestProblem unless the digest sits where it says and CloudTrail's key signed it.

    Errors reaching the key source (ListPublicKeys refused, network) propagate: they say
    nothing about the digest, which is checked again later.
    """
    f, key = digest.fields, digest.key
    if f.get("digestS3Bucket") != digest.bucket or f.get("digestS3Object") != key:
        raise DigestProblem(MOVED, key, f"says it sits at s3://{f.get('digestS3Bucket')}/{f.get('digestS3Object')}")
    if not digest.signature:
        raise DigestProblem(SIGNATURE, key, "no x-amz-meta-signature on the object")
    algorithm = digest.signature_algorithm or f.get("digestSignatureAlgorithm")
    if algorithm != SIGNATURE_ALGORITHM:
        raise DigestProblem(INVALID, key, f"signature algorithm {algorithm!r} is not {SIGNATURE_ALGORITHM}")
    name = digest_name(key)
    region = name.home_region if name else (f.get("awsRegion") or "us-east-1")
    wanted = f.get("digestPublicKeyFingerprint") or ""
    der = keys.get(wanted, digest, region)
    if der is None:
        where = keys.describe() if hasattr(keys, "describe") else "the public keys"
        raise DigestProblem(INVALID, key, f"no public key with fingerprint {wanted!r} in {where} ({region})")
    try:
        public_key = serialization.load_der_public_key(der)  # PKCS#1 (CloudTrail's) or SPKI
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("not an RSA key")
        signature = bytes.fromhex(digest.signature)
    except ValueError as exc:
        raise DigestProblem(INVALID, key, f"unusable public key or signature: {exc}") from None
    try:
        public_key.verify(signature, string_to_sign(digest), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise DigestProblem(SIGNATURE, key, f"signature does not verify with key {wanted}") from None


@dataclass(frozen=True)
class Link:
    """What a verified digest is: enough to check the next digest's previous* fields."""

    key: str
    sha256: str
    signature: str

    @classmethod
    def of(cls, digest: Digest) -> Link:
        return cls(digest.key, digest.sha256, digest.signature or "")


def check_link(digest: Digest, previous: Link) -> DigestProblem | None:
    """The digest's record of its previous digest must match that digest exactly."""
    f = digest.fields
    if f.get("previousDigestHashValue") != previous.sha256:
        return DigestProblem(CHAIN, digest.key, f"previousDigestHashValue differs from the SHA-256 of "
                                                f"{previous.key}")
    if f.get("previousDigestSignature") != previous.signature:
        return DigestProblem(CHAIN, digest.key, f"previousDigestSignature differs from the signature of "
                                                f"{previous.key}")
    return None


def check_previous(s3, digest: Digest, known: Link | None, keys: PublicKeys) -> list[DigestProblem]:
    """Check the link from ``digest`` back to its previous digest.

    ``known``: the previous digest of the chain already handled (None at the start). When the
    digest names another one (something between them), that one is fetched: a missing object is
    a deleted digest. A null previous is a gap (logging was off), not a problem.
    """
    previous_key = digest.previous_key
    if previous_key is None:
        return []
    if known is not None and known.key == previous_key:
        problem = check_link(digest, known)
        return [problem] if problem else []
    bucket = digest.fields.get("previousDigestS3Bucket") or digest.bucket
    try:
        previous = fetch_digest(s3, bucket, previous_key)
    except DigestProblem as exc:
        return [exc]
    problem = check_link(digest, Link.of(previous))
    return [problem] if problem else []
