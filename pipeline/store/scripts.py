"""The one registry of trailpipe's Lua scripts (``pipeline/store/lua/``).

Each script is sent headed by what it uses of:
- the schema's names as constants (``OBJ_STATE``, ``STATUS_DONE``, ``STAT_OBJECTS_DONE`` ...:
  ``pipeline.store.schema.lua_constants``), so a field, counter or state is spelled once;
- the shared functions (preludes) of ``lua/_NAME.lua``: ``redis_now_ms()`` (Redis's clock,
  ``TIME``: every deadline, heartbeat and lease is compared on it, never on a process's clock),
  ``holds_lease()`` (the discovery lease still holds our fencing token), ``held_by()`` (the
  object is processing under this runner), ``create_claimed()``/``pend_claim()`` (a new object
  claimed: its hash, its pending deadline, its count) and ``reserve_events()`` (the EPS throttle).

``Scripts(client)`` registers each script once per client (``register_script``: EVALSHA,
reloaded on NOSCRIPT), when it is first used.
"""
from __future__ import annotations

import re
from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

from pipeline.store.schema import lua_constants

# Every script, by name (lua/NAME.lua); its KEYS are all one source's (or the global slot's).
SCRIPT_NAMES = (
    # pipeline.store.sources
    "acquire_lease", "renew_lease", "release_lease", "reset_markers", "advance_marker", "throttle",
    "set_health",
    # pipeline.store.objects
    "claim_object", "sweep_pending", "begin_object", "heartbeat_object", "commit_batch", "trim_events",
    "release_object", "fail_object", "trim_deadletters", "retry_object",
    # pipeline.store.integrity
    "reconcile_log_file", "record_violation", "advance_digest_chain",
    # pipeline.store.watch
    "check_epoch",
)

# The preludes (lua/_NAME.lua), in the order they are prepended (a prelude may call an earlier one).
PRELUDES = ("clock", "lease", "object", "gcra")


@cache
def _lua(name: str) -> str:
    return resources.files("pipeline.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


@cache
def _functions(prelude: str) -> tuple[str, ...]:
    return tuple(re.findall(r"^local function (\w+)\(", _lua(f"_{prelude}"), re.MULTILINE))


def _calls(text: str, prelude: str) -> bool:
    return any(re.search(rf"\b{function}\(", text) for function in _functions(prelude))


@cache
def script_preludes(name: str) -> tuple[str, ...]:
    """The preludes ``name`` needs: those it calls, and those they call."""
    text = _lua(name)
    needed: set[str] = set()
    for prelude in reversed(PRELUDES):  # a prelude calls only earlier ones
        if _calls(text, prelude) or any(_calls(_lua(f"_{other}"), prelude) for other in needed):
            needed.add(prelude)
    return tuple(prelude for prelude in PRELUDES if prelude in needed)


@cache
def script_text(name: str) -> str:
    """The script as sent: constants, preludes, then the script."""
    if name not in SCRIPT_NAMES:
        raise KeyError(f"no Lua script {name!r} (pipeline.store.scripts.SCRIPT_NAMES)")
    body = "".join(_lua(f"_{prelude}") for prelude in script_preludes(name)) + _lua(name)
    return lua_constants(body) + body


class Scripts:
    """The scripts of one client, each registered once (at its first use)."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._registered: dict[str, Script] = {}

    def __getitem__(self, name: str) -> Script:
        script = self._registered.get(name)
        if script is None:
            script = self._registered[name] = self.client.register_script(script_text(name))
        return script
