"""The lifecycle of one S3 object, shared by the Python code and the Lua scripts.

    claimed ──begin──▶ processing ──last batch──▶ done
       ▲                  │  │
       └──release─────────┘  └──bad object / poison / retries exhausted──▶ failed
                                              (deadletter retry: failed ──▶ claimed)

The Lua scripts get these names as constants (``pipeline.state`` prepends them to every
script), so a state is spelled in exactly one place.
"""
from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    CLAIMED = "claimed"  # listed and enqueued, no worker has started it (or one gave it back)
    PROCESSING = "processing"  # a worker holds it; its heartbeat keeps it from the sweep
    DONE = "done"  # every record emitted; the record expires state_retention later
    FAILED = "failed"  # dead-lettered with its reason; lives as long as its dead letter

    def __str__(self) -> str:
        return self.value


TERMINAL_STATUSES = frozenset({Status.DONE, Status.FAILED})


class Health(str, Enum):
    """A source's health (``P:src:S:health`` ``state``; ``trailpipe_source_up``: 1, 0.5, 0, 0)."""

    OK = "ok"  # its last discovery listed every partition and no object is denied
    DEGRADED = "degraded"  # some objects may not be read (they wait), the others flow
    FAILING = "failing"  # a configuration error, an endpoint that cannot be reached, or no read works
    UNKNOWN = "unknown"  # no discovery has ended yet (never stored: the absence of a state)

    def __str__(self) -> str:
        return self.value


def lua_constants() -> str:
    """``local STATUS_CLAIMED = 'claimed'``, ``local HEALTH_OK = 'ok'`` ... for the head of every
    Lua script."""
    return ("\n".join(f"local STATUS_{status.name} = '{status.value}'" for status in Status) + "\n"
            + "\n".join(f"local HEALTH_{health.name} = '{health.value}'" for health in Health) + "\n")
