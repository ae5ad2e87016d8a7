"""The one door to Redis: every key name and field (``schema``), every Lua script (``scripts``)
and every Redis call of trailpipe (the stores of each area, composed in ``StateStore``). No module
outside this package calls a Redis command (``tests/test_store_boundary.py``)."""
from pipeline.store.base import now_ms, ping, run_scripts
from pipeline.store.objects import ObjectStart
from pipeline.store.schema import Health, Keys, Status
from pipeline.store.sources import DeniedRead
from pipeline.store.state import StateStore, StoreSettings
from pipeline.store.watch import WatchStore

__all__ = ["DeniedRead", "Health", "Keys", "ObjectStart", "StateStore", "Status", "StoreSettings", "WatchStore",
           "now_ms", "ping", "run_scripts"]
