"""CloudTrail record -> QRadar-style low-level category (tables in ``categories``)."""
from __future__ import annotations

import re
from typing import cast

from . import categories as C

_PATTERNS = tuple((re.compile(pattern), category) for pattern, category in C.PATTERN_CATEGORIES)
_FIRST_WORD = re.compile(r"[A-Z][a-z]+")


def failed(record: dict) -> bool:
    """Whether the call failed: ``errorCode``/``errorMessage`` present, or a console
    sign-in answered "Failure"."""
    response = record.get("responseElements")
    console = response.get("ConsoleLogin") if isinstance(response, dict) else None
    if isinstance(console, str):
        return console.lower() != "success"
    return bool(record.get("errorCode") or record.get("errorMessage"))


def is_read_only(record: dict, event_name: str) -> bool:
    read_only = record.get("readOnly")
    if read_only is True or (isinstance(read_only, str) and read_only.lower() == "true"):
        return True
    if read_only is False or (isinstance(read_only, str) and read_only.lower() == "false"):
        return False
    word = _FIRST_WORD.match(event_name)
    if word and word.group() == "Batch":
        word = _FIRST_WORD.match(event_name, word.end())
    return word is not None and word.group() in C.READ_VERBS


def category(record: dict) -> str:
    name = record.get("eventName")
    name = name if isinstance(name, str) else ""
    if record.get("eventType") == "AwsCloudTrailInsight":
        return C.DEFAULT  # an Insights record reports unusual volume, not a call
    outcomes = C.OUTCOME_CATEGORIES.get(name)
    if outcomes is not None:
        return outcomes[1] if failed(record) else outcomes[0]
    code = record.get("errorCode")
    if isinstance(code, str) and code in C.ACCESS_DENIED_ERRORS:
        return C.ACCESS_DENIED
    cached = _BY_NAME.get(name, _UNKNOWN)
    if cached is _UNKNOWN:
        found = _by_name(name)
        if len(_BY_NAME) >= 4096:
            _BY_NAME.clear()
        _BY_NAME[name] = found
    else:
        found = cast("str | None", cached)
    if found is not None:
        return found
    if is_read_only(record, name):
        return C.READ_ACTIVITY
    return C.DEFAULT


_UNKNOWN = object()
_BY_NAME: dict[str, str | None] = {}  # eventName -> its category by name alone (tables 3 and 4)


def _by_name(name: str) -> str | None:
    found = C.EVENT_CATEGORIES.get(name)
    if found is not None:
        return found
    for pattern, found in _PATTERNS:
        if pattern.fullmatch(name):
            return found
    return None
