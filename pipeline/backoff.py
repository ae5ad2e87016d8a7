"""One backoff, for the Celery tasks' retries (pipeline.policy) and the supervisor's restarts."""
from __future__ import annotations

import random

BASE_SECONDS = 1.0
MAX_SECONDS = 300.0


def backoff(attempt: int, base: float = BASE_SECONDS, cap: float = MAX_SECONDS, jitter: bool = True,
            rng: random.Random | None = None) -> float:
    """Exponential backoff: ``base * 2**attempt``, at most ``cap``; with full jitter (a uniform
    draw below it: the retries of many objects spread out) or without (the supervisor)."""
    delay = min(cap, base * 2 ** min(attempt, 64))  # (the exponent bounded: no float overflow)
    return (rng or random).uniform(0, delay) if jitter else delay
