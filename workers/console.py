"""What the CLI and the demo share: the celery command line and an event's one-line rendering
(its own module, so ``workers.demo`` does not import ``workers.cli``, which imports it)."""
from __future__ import annotations

import sys

import orjson


def celery_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "workers.app", *args]


def format_event(fields: dict[bytes, bytes]) -> str:
    get = lambda name: fields.get(name.encode(), b"").decode("utf-8", "replace")  # noqa: E731
    record = orjson.loads(fields.get(b"event", b"{}"))
    identity = record.get("userIdentity") or {}
    who = identity.get("userName") or identity.get("arn") or identity.get("type") or "-"
    return (f"{get('event_time')}  {get('account')}/{get('region') or '-'}  {get('event_name')}"
            f"  by {who}  from {record.get('sourceIPAddress') or '-'}  [{get('source')}]")
