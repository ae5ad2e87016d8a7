"""A StateStore for tests that build one without a config: the config's default settings
(``Settings.default()``), with the changes a test needs."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import redis

from pipeline.settings import Settings
from pipeline.store import StateStore
from pipeline.store.schema import Keys


def state_store(client: redis.Redis, keys: Keys | None = None, **changes: timedelta | int | None) -> StateStore:
    """``changes``: fields of ``StoreSettings`` (``retention=timedelta(hours=1)``)."""
    settings = Settings.default()
    return StateStore(client, keys or settings.keys, dataclasses.replace(settings.store, **changes))
