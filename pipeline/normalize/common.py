"""Small helpers shared by the normalizers: safe lookups, IP and time parsing."""
from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta
from typing import Any

MISSING: Any = object()


_PATHS: dict[str, tuple[str, ...]] = {}


def path_parts(path: str) -> tuple[str, ...]:
    """``path.split(".")``, once per distinct path (the mappings' paths are a fixed set)."""
    parts = _PATHS.get(path)
    if parts is None:
        parts = _PATHS[path] = tuple(path.split("."))
    return parts


def dig(value: Any, path: str, default: Any = None) -> Any:
    """``value[a][b]...`` for ``path`` "a.b...", through dicts only; ``default`` when a
    step is missing or not an object."""
    for part in path_parts(path):
        if not isinstance(value, dict):
            return default
        value = value.get(part, MISSING)
        if value is MISSING:
            return default
    return value


def text(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


# Grok's %{IP} as used by Elastic (``^%{IP:source.ip}$``): IPV4 allows leading zeros.
_OCTET = r"(?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5])"
_GROK_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def is_ip(value: Any) -> bool:
    """Whether Elastic's grok ``^%{IP}$`` accepts ``value`` (IPv4 dotted quad, leading zeros
    allowed, or an IPv6 address, optionally with a %zone)."""
    if not isinstance(value, str) or not value:
        return False
    known = _IPS.get(value)
    return _check_ip(value) if known is None else known


def _check_ip(value: str) -> bool:
    """``is_ip`` of a non-empty string not in ``_IPS`` yet (remembered)."""
    known = _is_ip(value)
    if len(_IPS) >= _CACHE_MAX:
        _IPS.clear()
    _IPS[value] = known
    return known


_IPS: dict[str, bool] = {}  # a file's records come from few addresses


def _is_ip(value: str) -> bool:
    if _GROK_IPV4.fullmatch(value):
        return True
    if ":" not in value:
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def ip_list(value: Any) -> list[str] | None:
    """The addresses of a comma-separated list of IPs (as CloudTrail writes when a request
    went through proxies), or None when ``value`` is not such a list."""
    if not isinstance(value, str) or "," not in value:
        return None
    parts = [part.strip() for part in value.split(",")]
    return parts if parts and all(is_ip(part) for part in parts) else None


# Elasticsearch's ``ISO8601`` date format: extended form only (2019-10-02T21:50:54Z),
# optional time parts and fraction, zone Z / +hh / +hh:mm / +hhmm (default UTC).
_ISO8601 = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?"
)


def parse_iso8601(value: Any) -> datetime | None:
    """Parse like Elasticsearch's ``ISO8601`` date format; an aware UTC datetime or None."""
    if not isinstance(value, str):
        return None
    m = _ISO8601.fullmatch(value)
    if not m:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        nanos = int((frac or "0").ljust(9, "0"))
        moment = datetime(
            int(year), int(month or 1), int(day or 1),
            int(hour or 0), int(minute or 0), int(second or 0),
            nanos // 1000, tzinfo=UTC,
        )
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        if offset >= timedelta(hours=19):
            return None
        try:
            moment -= sign * offset
        except OverflowError:
            return None
    return moment


# A file's records share few distinct times (second resolution): remember the last ones,
# for ECS and OCSF together: text -> (Elasticsearch timestamp, epoch milliseconds).
_TIMES: dict[str, tuple[str | None, int | None]] = {}
_CACHE_MAX = 4096
_NO_TIME = (None, None)



def clear_caches() -> None:
    """Forget the remembered times and addresses (benchmarks: each run starts cold)."""
    _TIMES.clear()
    _IPS.clear()


def _times(value: Any) -> tuple[str | None, int | None]:
    if not isinstance(value, str):
        return _NO_TIME
    times = _TIMES.get(value)
    return _parse_times(value) if times is None else times


def _parse_times(value: str) -> tuple[str | None, int | None]:
    """``_times`` of a string not in ``_TIMES`` yet (remembered)."""
    moment = None
    if len(value) == 20 and value[4::3] == "--T::Z":  # the separators at 4, 7, 10, 13, 16, 19
        try:  # CloudTrail's own form, "2024-03-04T05:06:07Z": the same date rules, in C
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None  # not ASCII digits, or not a date: the general parser decides
    if moment is not None:
        seconds = ((moment.toordinal() - _EPOCH_ORDINAL) * 86400 + moment.hour * 3600
                   + moment.minute * 60 + moment.second)
        times = (value[:19] + ".000Z", seconds * 1000)
    else:
        moment = parse_iso8601(value)
        times = _NO_TIME if moment is None else (  # type: ignore[assignment]  # _NO_TIME is (None, None)
            moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            (moment - _EPOCH) // _MILLISECOND)
    if len(_TIMES) >= _CACHE_MAX:
        _TIMES.clear()
    _TIMES[value] = times
    return times


def es_timestamp(value: Any) -> str | None:
    """Elasticsearch's date processor output: UTC, millisecond precision, ``Z``."""
    return _times(value)[0]


def epoch_millis(value: Any) -> int | None:
    return _times(value)[1]


_MILLISECOND = timedelta(milliseconds=1)
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
