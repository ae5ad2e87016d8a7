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


def lua_constants() -> str:
    """``local STATUS_CLAIMED = 'claimed'`` ... for the head of every Lua script."""
    return "\n".join(f"local STATUS_{status.name} = '{status.value}'" for status in Status) + "\n"
