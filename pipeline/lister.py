"""List a source's S3 objects: its partitions, the keys of a partition after a position, and
which of them are log files.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from pipeline.config import Source
from pipeline.layout import in_digest_folder, is_partition, may_lead_to_partition, partition_of

MAX_PARTITION_DEPTH = 6  # [custom/][custom/]AWSLogs/o-…/<account>/CloudTrail/<region>/


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    modified: datetime | None = None  # LastModified: when S3 received it


def file_name(key: str) -> str:
    """The part of the key after the last "/"."""
    return key.rsplit("/", 1)[-1]


def is_wanted(source: Source, obj: ListedObject) -> bool:
    """A log file to ingest: not a digest, not empty, and its file name fully matches the pattern."""
    if in_digest_folder(obj.key):
        return False
    if obj.size == 0:
        return False
    return source.file_regex.fullmatch(file_name(obj.key)) is not None


def list_pages(s3, bucket: str, prefix: str, start_after: str) -> Iterator[list[ListedObject]]:
    """Pages of ListObjectsV2 under ``prefix``, in key order, after ``start_after``."""
    paginator = s3.get_paginator("list_objects_v2")
    params = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        params["StartAfter"] = start_after
    for page in paginator.paginate(**params):
        yield [ListedObject(item["Key"], int(item.get("Size", 0)), item.get("LastModified"))
               for item in page.get("Contents", [])]


def list_folders(s3, bucket: str, prefix: str) -> list[str]:
    """The sub-folders of ``prefix`` (ListObjectsV2 with Delimiter "/")."""
    paginator = s3.get_paginator("list_objects_v2")
    folders = []
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        folders += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
    return folders


def find_partitions(s3, bucket: str, prefix: str) -> list[str]:
    """The account/region folders under ``prefix``, each listed with its own marker.

    A prefix inside one partition (a narrow, one-region prefix) is its own single partition; so
    is a prefix under which no CloudTrail layout is found (listed as one, from its marker).
    """
    if partition_of(prefix) is not None:
        return [prefix]
    found: list[str] = []
    frontier = [prefix]
    for _ in range(MAX_PARTITION_DEPTH):
        deeper = []
        for folder in frontier:
            for child in list_folders(s3, bucket, folder):
                if is_partition(child):
                    found.append(child)
                elif may_lead_to_partition(child):
                    deeper.append(child)
        if not deeper:
            break
        frontier = deeper
    return sorted(found) or [prefix]
