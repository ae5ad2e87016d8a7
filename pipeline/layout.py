"""CloudTrail's S3 key layout: partitions, delivery times, and where to start listing.

``[custom/]AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/
<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<random>.json.gz``
(Insights files the same under ``CloudTrail-Insight/``). Inside one partition
(account + region) keys sort in delivery-time order, so a delivery time maps to a key
position that ListObjectsV2's StartAfter can start from.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_ORG = r"o-[a-z0-9]{10,32}/"
_FOLDER = r"CloudTrail(?:-Insight)?"
# A partition: the region folder of one account's trail.
PARTITION = re.compile(
    rf"^(?P<base>(?:[^/]+/)*?AWSLogs/(?:{_ORG})?)(?P<account>\d{{12}})/(?P<folder>{_FOLDER})/(?P<region>[a-z0-9-]+)/")
# What can still lead to a partition when listing folder by folder (Delimiter "/").
_PARTIAL = re.compile(
    rf"^(?:[^/]+/){{0,2}}?AWSLogs/(?:{_ORG})?(?:\d{{12}}/(?:{_FOLDER}/)?)?$|^(?:[^/]+/){{1,2}}$")
_KEY_TIME = re.compile(rf"_{_FOLDER}_[a-z0-9-]+_(\d{{8}}T\d{{4}})Z_[^/]*$")
_MAX_CUSTOM_DEPTH = 2


def partition_of(prefix: str) -> str | None:
    """The partition (region folder) that ``prefix`` lies in, or None if it lies above one."""
    match = PARTITION.match(prefix)
    return match.group(0) if match else None


def is_partition(prefix: str) -> bool:
    match = PARTITION.match(prefix)
    return match is not None and match.end() == len(prefix)


def may_lead_to_partition(prefix: str) -> bool:
    """A folder worth listing deeper: AWSLogs/, o-…/, <account>/, CloudTrail/, or a custom prefix."""
    return _PARTIAL.match(prefix) is not None and "CloudTrail-Digest/" not in prefix


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
