"""CloudTrail records -> the fields of their stream entries (``batch_entries``: ingest and
``trailpipe check`` alike)."""
from __future__ import annotations

from collections.abc import Iterable

from pipeline import defaults
from pipeline.config import Source
from pipeline.normalize import canonical_keys, derive_batch


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


ROUTING = ("event", "event_id", "event_name", "event_time", "source", "object", "account", "region")
DERIVED = ("display_name", "category")


def batch_entries(source: Source, key: str, items: Iterable[tuple[bytes, dict]]) -> list[dict[str, str | bytes]]:
    """The stream entries of a batch of (raw, record): the source's ``stream_fields`` and
    ``output_formats`` of every record that ``exclude_event_names`` keeps, with the normalizers
    run over the whole batch in turn (``derive_batch``: less CPU than record by record); none
    of them when no field needs them.  The documents leave out the values the entry's own
    fields carry (``pipeline.normalize.CARRIED``; ``restore_carried`` puts them back).  A
    record whose keys an exporter lower-cased is read with CloudTrail's names."""
    kept = []
    for raw, record in items:
        record = canonical_keys(record) if isinstance(record, dict) else {}
        if not is_excluded(source, record):
            kept.append((raw, record))
    wanted = source.stream_fields
    if tuple(wanted) == defaults.STREAM_FIELDS:
        return _default_entries(source, key, kept)
    routing = [name for name in ROUTING if name in wanted]
    identifier = source.identifier
    getters = {
        "event_id": lambda record: _text(record.get("eventID")),
        "event_name": lambda record: _text(record.get("eventName")),
        "event_time": lambda record: _text(record.get("eventTime")),
        "source": lambda _record: identifier,
        "object": lambda _record: key,
        "account": account_of,
        "region": lambda record: _text(record.get("awsRegion")),
    }
    entries = []
    for raw, record in kept:
        fields: dict[str, str | bytes] = {}
        for name in routing:
            fields[name] = raw if name == "event" else getters[name](record)
        entries.append(fields)
    derived_wanted = [name for name in DERIVED if name in wanted]
    if derived_wanted or source.output_formats:
        # the documents leave out what the entry's own fields carry (normalize.CARRIED)
        derived = derive_batch([record for _, record in kept], source.output_formats, carried=entries)
        dropped = [name for name in DERIVED if name not in wanted]
        for fields, extra in zip(entries, derived):
            for derived_name in dropped:
                del extra[derived_name]
            fields.update(extra)
    return entries


def _default_entries(source: Source, key: str, kept: list[tuple[bytes, dict]]) -> list[dict[str, str | bytes]]:
    """Every field (the default ``stream_fields``), written out: the common case, kept fast."""
    identifier = source.identifier
    entries: list[dict[str, str | bytes]] = [{
        "event": raw,
        "event_id": _text(record.get("eventID")),
        "event_name": _text(record.get("eventName")),
        "event_time": _text(record.get("eventTime")),
        "source": identifier,
        "object": key,
        "account": account_of(record),
        "region": _text(record.get("awsRegion")),
    } for raw, record in kept]
    derived = derive_batch([record for _, record in kept], source.output_formats,
                           carried=entries if source.output_formats else None)
    for fields, extra in zip(entries, derived):
        fields.update(extra)
    return entries


def is_excluded(source: Source, record: dict) -> bool:
    """``exclude_event_names`` (like Splunk's exclude_describe_events) drops matching records."""
    pattern = source.exclude_regex
    return pattern is not None and pattern.fullmatch(_text(record.get("eventName"))) is not None
