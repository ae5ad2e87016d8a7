"""The Celery tasks' backoff, as a plain function (the processes run in test_workers/test_chaos;
the error policy itself is tests/test_policy.py)."""
from __future__ import annotations

from workers.tasks import backoff_seconds


def test_backoff_grows_with_jitter_and_is_capped():
    early = [backoff_seconds(0) for _ in range(200)]
    late = [backoff_seconds(12) for _ in range(200)]
    assert max(early) <= 1.0 and len(set(early)) > 100
    assert max(late) <= 300.0 and sum(late) / len(late) > 50
