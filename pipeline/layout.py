"""CloudTrail's S3 key layout: partitions, delivery times, and where to start listing.

``[custom/]AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/
<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<random>.json.gz``
(Insights files the same under ``CloudTrail-Insight/``). Inside one partition
(account + region) keys sort in delivery-time order, so a delivery time maps to a key
position that ListObjectsV2's StartAfter can start from.

Digest files (log file integrity validation) sit beside the logs:
``[custom/]AWSLogs/[o-org/]<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/
<account>_CloudTrail-Digest_<region>_<trail>_<home-region>_<YYYYMMDDTHHMMSSZ>[_backfill].json.gz``.
This module is the only one that knows these layouts; the others call its functions.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase

LOG_FOLDER = "CloudTrail/"
DIGEST_FOLDER = "CloudTrail-Digest/"
INSIGHT_FOLDER = "CloudTrail-Insight/"

_ORG = r"o-[a-z0-9]{10,32}/"
_FOLDER = r"CloudTrail(?:-Insight)?"
# A partition: the region folder of one account's trail.
PARTITION = re.compile(
    rf"^(?P<base>(?:[^/]+/)*?AWSLogs/(?:{_ORG})?)(?P<account>\d{{12}})/(?P<folder>{_FOLDER})/(?P<region>[a-z0-9-]+)/")
# What can still lead to a partition when listing folder by folder (Delimiter "/").
_PARTIAL = re.compile(
    rf"^(?:[^/]+/){{0,2}}?AWSLogs/(?:{_ORG})?(?:\d{{12}}/(?:{_FOLDER}/)?)?$|^(?:[^/]+/){{1,2}}$")
_KEY_TIME = re.compile(rf"_{_FOLDER}_[a-z0-9-]+_(\d{{8}}T\d{{4}})Z_[^/]*$")
# A digest file's key: its folder (the digest partition), chain and time.
DIGEST_KEY = re.compile(
    rf"^(?P<partition>(?:[^/]+/)*?AWSLogs/(?:{_ORG})?(?P<account>\d{{12}})/CloudTrail-Digest/"
    r"(?P<region>[a-z0-9-]+)/)(?P<ymd>\d{4}/\d{2}/\d{2})/(?P=account)_CloudTrail-Digest_(?P=region)_"
    r"(?P<trail>.+)_(?P<home>[a-z]{2}(?:-[a-z]+)+-\d+)_(?P<stamp>\d{8}T\d{6}Z)(?P<backfill>_backfill)?\.json\.gz$")
# File names of digests and Insights files wherever they sit (backfills, copies).
_DIGEST_NAME = "*_CloudTrail-Digest_*.json.gz"
_INSIGHT_NAME = "*_CloudTrail-Insight_*.json.gz"


def partition_of(prefix: str) -> str | None:
    """The partition (region folder) that ``prefix`` lies in, or None if it lies above one."""
    match = PARTITION.match(prefix)
    return match.group(0) if match else None


def is_partition(prefix: str) -> bool:
    match = PARTITION.match(prefix)
    return match is not None and match.end() == len(prefix)


def may_lead_to_partition(prefix: str) -> bool:
    """A folder worth listing deeper: AWSLogs/, o-…/, <account>/, CloudTrail/, or a custom prefix."""
    return _PARTIAL.match(prefix) is not None and DIGEST_FOLDER not in prefix


def delivery_time(key: str) -> datetime | None:
    """The delivery minute in a CloudTrail file name, or None for a key of another shape."""
    match = _KEY_TIME.search(key)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None


def key_position(partition: str, when: datetime) -> str:
    """A StartAfter value: every key of ``partition`` delivered at ``when`` or later sorts after it."""
    match = PARTITION.match(partition)
    if not match:
        raise ValueError(f"{partition!r} is not a CloudTrail partition")
    stamp = when.astimezone(UTC)
    return (f"{match.group(0)}{stamp:%Y/%m/%d}/{match.group('account')}_{match.group('folder')}_"
            f"{match.group('region')}_{stamp:%Y%m%dT%H%M}Z")


def start_after(partition: str, marker: str, lookback: timedelta, not_before: datetime) -> str:
    """Where a discovery of ``partition`` starts listing.

    With a marker whose delivery time is known: at (that time - lookback), so files that land
    late behind the marker are still found; never before ``not_before`` (keys older than that
    may have been forgotten already, and must not be listed again). Otherwise at the marker.
    """
    newest = delivery_time(marker) if marker else None
    region_folder = partition_of(partition)
    if newest is None or region_folder is None:
        return marker
    since = max(newest - lookback, not_before)
    return min(marker, key_position(region_folder, since))


def first_listing_after(partition: str, since: datetime) -> str:
    """Where a listing of a partition starts at the earliest when only files delivered at
    ``since`` or later are wanted (``ignore_older``; what bounds the first listing of a new or
    reset source): their key position in a CloudTrail partition; "" (the whole partition,
    filtered by LastModified) otherwise."""
    region_folder = partition_of(partition)
    return key_position(region_folder, since) if region_folder is not None else ""


# --------------------------------------------------------------------------- digests and Insights


def in_digest_folder(key: str) -> bool:
    """A key in a ``CloudTrail-Digest/`` folder (at the top of the bucket too): never a log file."""
    return f"/{DIGEST_FOLDER}" in f"/{key}"


def is_digest_key(key: str) -> bool:
    """True for CloudTrail digest files (log file integrity validation), incl. backfill ones."""
    return f"/{DIGEST_FOLDER}" in key or fnmatchcase(posixpath.basename(key), _DIGEST_NAME)


def is_insight_key(key: str) -> bool:
    """True for CloudTrail Insights log files (``AWSLogs/<acct>/CloudTrail-Insight/...``)."""
    return f"/{INSIGHT_FOLDER}" in key or fnmatchcase(posixpath.basename(key), _INSIGHT_NAME)


@dataclass(frozen=True)
class DigestName:
    """What a digest's key says: its folder (partition), chain and time."""

    key: str
    partition: str
    account: str
    region: str
    trail: str
    home_region: str
    time: datetime
    backfill: bool

    @property
    def chain(self) -> str:
        """Digests of one trail, region and account link to each other; backfill ones apart."""
        return f"{self.partition}|{self.trail}|{self.home_region}" + ("|backfill" if self.backfill else "")


def digest_name(key: str) -> DigestName | None:
    """What a digest's key says; None for a key that is not a digest file's."""
    match = DIGEST_KEY.match(key)
    if not match:
        return None
    when = datetime.strptime(match.group("stamp"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return DigestName(key, match.group("partition"), match.group("account"), match.group("region"),
                      match.group("trail"), match.group("home"), when, bool(match.group("backfill")))


def digest_partition(log_partition: str) -> str | None:
    """The digest folder beside a log partition (``…/CloudTrail/<region>/``); None for others."""
    match = PARTITION.match(log_partition)
    if not match or f"{match.group('folder')}/" != LOG_FOLDER:
        return None
    return f"{match.group('base')}{match.group('account')}/{DIGEST_FOLDER}{match.group('region')}/"


def log_partition_of(digest_partition: str) -> str | None:
    """The log partition a digest folder (``…/CloudTrail-Digest/<region>/``) vouches for."""
    return partition_of(digest_partition.replace(f"/{DIGEST_FOLDER}", f"/{LOG_FOLDER}"))


def digest_day_position(partition: str, when: datetime) -> str:
    """A StartAfter value: every digest of ``partition`` from ``when``'s day on sorts after it."""
    return f"{partition}{when.astimezone(UTC):%Y/%m/%d}/"
