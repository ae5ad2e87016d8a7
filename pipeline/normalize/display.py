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


@lru_cache(maxsize=4096)  # a few hundred eventNames make up nearly every file
def _humanize(event_name: str) -> str:
    text = _BOUNDARY.sub(" ", event_name.strip())
    for pattern, replacement in _REPAIRS:
        text = pattern.sub(replacement, text)
    return _SPACES.sub(" ", text).strip()
