"""List the S3 objects of a source after a marker, and decide which ones are log files."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.config import DIGEST_FOLDER, Source


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int


def file_name(key: str) -> str:
    """The part of the key after the last "/"."""
    return key.rsplit("/", 1)[-1]


def is_wanted(source: Source, obj: ListedObject) -> bool:
    """A log file to ingest: not a digest, not empty, and its file name fully matches the pattern."""
    if f"/{DIGEST_FOLDER}" in f"/{obj.key}":
        return False
    if obj.size == 0:
        return False
    return source.file_regex.fullmatch(file_name(obj.key)) is not None


def list_pages(s3, source: Source, start_after: str) -> Iterator[list[ListedObject]]:
    """Pages of ListObjectsV2 under the source's prefix, in key order, after ``start_after``."""
    paginator = s3.get_paginator("list_objects_v2")
    params = {"Bucket": source.bucket, "Prefix": source.list_prefix}
    if start_after:
        params["StartAfter"] = start_after
    for page in paginator.paginate(**params):
        yield [ListedObject(item["Key"], int(item.get("Size", 0))) for item in page.get("Contents", [])]
