"""One CloudTrail record -> the fields of its stream entry."""
from __future__ import annotations

from collections.abc import Iterable

from pipeline.config import Source
from pipeline.normalize import canonical_keys, derive_batch, derive_fields


def _text(value) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def account_of(record: dict) -> str:
    """recipientAccountId, else the account of the identity that made the call."""
    account = record.get("recipientAccountId")
    if not account:
        identity = record.get("userIdentity")
        if isinstance(identity, dict):
            account = identity.get("accountId")
    return _text(account)


def entry_fields(source: Source, key: str, raw: bytes, record: dict) -> dict[str, str | bytes]:
    """The stream entry of one record: the raw record as ``event``, the fields to route by, and
    what normalization derives (display_name, category, and the source's output_formats).
    A record whose keys an exporter lower-cased is read with CloudTrail's names."""
    record = canonical_keys(record)
    fields: dict[str, str | bytes] = {
        "event": raw,
        "event_id": _text(record.get("eventID")),
        "event_name": _text(record.get("eventName")),
        "event_time": _text(record.get("eventTime")),
        "source": source.identifier,
        "object": key,
        "account": account_of(record),
        "region": _text(record.get("awsRegion")),
    }
    fields.update(derive_fields(record, source.output_formats))
    return fields


def batch_entries(source: Source, key: str, items: Iterable[tuple[bytes, dict]]) -> list[dict[str, str | bytes]]:
    """The stream entries of a batch of (raw, record): ``entry_fields`` of every record that
    ``exclude_event_names`` keeps, with the normalizers run over the whole batch in turn
    (``derive_batch``: less CPU than record by record)."""
    kept = []
    for raw, record in items:
        record = canonical_keys(record) if isinstance(record, dict) else {}
        if not is_excluded(source, record):
            kept.append((raw, record))
    derived = derive_batch([record for _, record in kept], source.output_formats)
    entries = []
    identifier = source.identifier
    for (raw, record), extra in zip(kept, derived):
        fields: dict[str, str | bytes] = {
            "event": raw,
            "event_id": _text(record.get("eventID")),
            "event_name": _text(record.get("eventName")),
            "event_time": _text(record.get("eventTime")),
            "source": identifier,
            "object": key,
            "account": account_of(record),
            "region": _text(record.get("awsRegion")),
        }
        fields.update(extra)
        entries.append(fields)
    return entries


def is_excluded(source: Source, record: dict) -> bool:
    """``exclude_event_names`` (like Splunk's exclude_describe_events) drops matching records."""
    pattern = source.exclude_regex
    return pattern is not None and pattern.fullmatch(_text(record.get("eventName"))) is not None
