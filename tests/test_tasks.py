"""The one backoff (pipeline.backoff: the Celery tasks' retries, the supervisor's restarts), as a
plain function (the processes run in test_workers/test_chaos; the error policy itself is
tests/test_policy.py)."""
from __future__ import annotations

from pipeline.backoff import backoff


def test_backoff_grows_with_jitter_and_is_capped():
    early = [backoff(0) for _ in range(200)]
    late = [backoff(12) for _ in range(200)]
    assert max(early) <= 1.0 and len(set(early)) > 100
    assert max(late) <= 300.0 and sum(late) / len(late) > 50


def test_backoff_without_jitter_doubles_up_to_its_cap_and_never_overflows():
    assert [backoff(n, 1.0, 30.0, jitter=False) for n in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff(5000, jitter=False) == 300.0 and 0 <= backoff(5000) <= 300.0
