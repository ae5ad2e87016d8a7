"""One CloudTrail record -> the fields of its stream entry."""
from __future__ import annotations

from pipeline.config import Source
from pipeline.normalize import canonical_keys, derive_fields


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


def is_excluded(source: Source, record: dict) -> bool:
    """``exclude_event_names`` (like Splunk's exclude_describe_events) drops matching records."""
    pattern = source.exclude_regex
    return pattern is not None and pattern.fullmatch(_text(record.get("eventName"))) is not None
