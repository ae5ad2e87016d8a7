"""``trailpipe check``: what QRadar's "Test" button does for a log source, step by step.

config valid → credentials resolved → ListObjectsV2 on the prefix → newest matching log file →
GetObject → parsed N records → one sample event. The file is read as ingest reads it: the same
record reader under the source's caps (``ingest.read_records``), and the sample is the first
entry ingest would emit (``emitter.batch_entries``). The first failing step ends the source's
check with its error class and a hint (pipeline.policy). Nothing is written to Redis and nothing
is emitted: the S3 client is a fresh one, not counted in the shared metrics.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from pipeline.config import Source
from pipeline.credentials import CredentialsUnavailable
from pipeline.emitter import batch_entries
from pipeline.ingest import open_object, read_records
from pipeline.layout import delivery_time, key_position, partition_of
from pipeline.lister import find_partitions, is_wanted, list_pages
from pipeline.policy import classify
from pipeline.s3 import make_client

RECENT = timedelta(days=2)  # where the newest log file is looked for first
MAX_PAGES_PER_PARTITION = 5
MAX_PARTITIONS = 50


@dataclass
class Step:
    name: str
    ok: bool
    detail: str = ""
    error_class: str = ""
    hint: str = ""


@dataclass
class SourceCheck:
    source: str
    steps: list[Step] = field(default_factory=list)
    sample: dict | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)


def _masked(access_key_id: str) -> str:
    return access_key_id[:4] + "…" + access_key_id[-4:] if len(access_key_id) > 8 else "…"


def _newest_log_file(source: Source, s3, first_page: list) -> str | None:
    """The newest wanted key: listed from two days back in each partition, else from the first page."""
    newest: tuple[datetime, str] | None = None
    since = datetime.now(UTC) - RECENT
    for partition in find_partitions(s3, source.bucket, source.list_prefix)[:MAX_PARTITIONS]:
        region_folder = partition_of(partition)
        position = key_position(region_folder, since) if region_folder else ""
        if not position.startswith(partition):
            position = ""  # a prefix narrower than the region folder: list it from its start
        for number, page in enumerate(list_pages(s3, source.bucket, partition, position)):
            for obj in page:
                when = delivery_time(obj.key)
                if when is not None and is_wanted(source, obj) and (newest is None or (when, obj.key) > newest):
                    newest = (when, obj.key)
            if number + 1 >= MAX_PAGES_PER_PARTITION:
                break
    if newest is not None:
        return newest[1]
    wanted = [obj.key for obj in first_page if is_wanted(source, obj)]
    return wanted[-1] if wanted else None


def _connection_hint(exc: Exception, source: Source) -> str:
    """What to check when the endpoint does not answer at all (no S3 error to go by)."""
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)):
        local = urlsplit(source.endpoint_url).hostname in ("127.0.0.1", "localhost", "::1")
        return ("nothing answers at endpoint_url: check it, the proxy and the network"
                + ("; a local S3 (such as the one `trailpipe demo` runs) must be running" if local else ""))
    return ""


def _client_without_pinning(source: Source):
    return make_client(source, acquire=False)  # a check changes no state, trust included


def check_source(source: Source, make_s3: Callable[[Source], Any] = _client_without_pinning) -> SourceCheck:
    result = SourceCheck(source.identifier)
    steps = result.steps
    steps.append(Step("config valid", True))
    current = "credentials resolved"
    try:
        s3 = make_s3(source)
        credentials = s3._request_signer._credentials  # noqa: SLF001  (resolves the source's auth now)
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
        if frozen is None:
            raise CredentialsUnavailable(message="no credentials could be resolved")
        steps.append(Step(current, True, f"{source.auth.method}, access key {_masked(frozen.access_key)}"))

        current = f"ListObjectsV2 on {source.list_prefix or '/'!r}"
        first = next(iter(list_pages(s3, source.bucket, source.list_prefix, "")), [])
        steps.append(Step(current, True, f"{len(first)} object(s) on the first page"))

        current = "newest matching log file"
        key = _newest_log_file(source, s3, first)
        if key is None:
            steps.append(Step(current, False, f"no object under the prefix matches file_pattern "
                                              f"{source.file_pattern!r}", "NoLogFiles",
                              "check directory_prefix and file_pattern"))
            return result
        steps.append(Step(current, True, key))

        current = "GetObject"
        body = open_object(s3, source, key)
        steps.append(Step(current, True, "readable"))
        current = "parse"
        count = 0
        sample: dict[str, str | bytes] | None = None
        try:
            for item in read_records(source, body):
                count += 1
                if sample is None:  # the first record exclude_event_names keeps, as ingest emits it
                    entries = batch_entries(source, key, [item])
                    sample = entries[0] if entries else None
        finally:
            body.close()
        steps.append(Step(current, True, f"parsed {count} record(s)"))
        if sample is not None:
            result.sample = {name: (value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
                             for name, value in sample.items()}
            steps.append(Step("sample event", True, f"{result.sample.get('event_name', '')}"))
        elif count:
            steps.append(Step("sample event", True, "none: exclude_event_names drops every record"))
    except Exception as exc:  # noqa: BLE001  (every failure is reported with its class and hint)
        verdict = classify(exc)
        steps.append(Step(current, False, verdict.message, verdict.error_class,
                          verdict.hint or _connection_hint(exc, source)))
    return result

