"""eventName -> a human-readable name: "ListMFADevices" -> "List MFA Devices"."""
from __future__ import annotations

import re
from functools import lru_cache

# Word boundaries inside a CamelCase API name: "aB"/"2B" (a new word), "ABc" (an acronym
# followed by a word: "MFADevices"), and a letter followed by a long digit run (Lambda's
# dated names: "UpdateFunctionCode20150331v2").
_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d{4,})")
# Names the rules above would split wrongly.
_REPAIRS = ((re.compile(r"\bI Pv([46])"), r"IPv\1"),)
_SPACES = re.compile(r"[\s_]+")


def display_name(event_name: object) -> str:
    """Humanize a CloudTrail eventName; "" when there is none."""
    if not isinstance(event_name, str):
        return ""
    return _humanize(event_name)


NO_NAME = "CloudTrail Event"  # a record that says nothing about what it is


def record_display_name(record: dict) -> str:
    """The stream's ``display_name``: the humanized eventName; for records without one
    (CloudTrail Insights, odd exports) what the record is instead, never empty:
    "API Call Rate Insight Start: Run Instances", "Aws Service Event"."""
    name = record.get("eventName")
    if isinstance(name, str) and name.strip():
        return _humanize(name)
    insight = record.get("insightDetails")
    if isinstance(insight, dict):
        kind = insight.get("insightType")
        state = insight.get("state")
        about = insight.get("eventName")
        head = " ".join(_humanize(part) for part in (kind if isinstance(kind, str) and kind else "Insight",
                                                     state if isinstance(state, str) else "") if part)
        head = head.replace("Api ", "API ")
        return f"{head}: {_humanize(about)}" if isinstance(about, str) and about.strip() else head
    kind = record.get("eventType")
    if isinstance(kind, str) and kind.strip():
        return _humanize(kind)
    return NO_NAME


@lru_cache(maxsize=4096)  # a few hundred eventNames make up nearly every file
def _humanize(event_name: str) -> str:
    text = _BOUNDARY.sub(" ", event_name.strip())
    for pattern, replacement in _REPAIRS:
        text = pattern.sub(replacement, text)
    return _SPACES.sub(" ", text).strip()
