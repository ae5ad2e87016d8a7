"""Skews this process's clock by ``TRAILPIPE_TEST_CLOCK_SKEW`` seconds (may be negative): put this
folder on PYTHONPATH of one process only (a worker or beat of a test) to make it a host whose
clock is wrong, without root or libfaketime. ``time.time``/``time.time_ns`` and
``datetime.now``/``utcnow``/``today`` move; monotonic clocks do not (as on a real host).
"""
from __future__ import annotations

import datetime as _datetime
import os
import time as _time

_SKEW = float(os.environ.get("TRAILPIPE_TEST_CLOCK_SKEW", "0") or 0)

if _SKEW:
    _real_time, _real_time_ns = _time.time, _time.time_ns

    def _time_skewed() -> float:
        return _real_time() + _SKEW

    def _time_ns_skewed() -> int:
        return _real_time_ns() + int(_SKEW * 1_000_000_000)

    _time.time = _time_skewed
    _time.time_ns = _time_ns_skewed

    _base = _datetime.datetime

    class _SkewedDatetime(_base):
        @classmethod
        def now(cls, tz=None):
            return cls.fromtimestamp(_time_skewed(), tz)

        @classmethod
        def utcnow(cls):
            return cls.now(_datetime.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls):
            return cls.now()

    _datetime.datetime = _SkewedDatetime  # type: ignore[misc]
