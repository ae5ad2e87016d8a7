"""One door to Redis: no module of pipeline/ or workers/ outside pipeline/store/ calls a Redis
command or builds a script or a pipeline; every Lua script spells the schema's names through its
constants; docs/architecture.md's key schema is schema.py's. Static checks (AST, text): no server."""
from __future__ import annotations

import ast
import json
import logging
import os
import pathlib
import re
import subprocess
import threading
import time

import click
import redis
from conftest import REPO

from pipeline import defaults
from pipeline.store import schema
from pipeline.store.scripts import PRELUDES, SCRIPT_NAMES, script_text

# Modules that may talk to Redis themselves, and why.
ALLOWED = {
    "pipeline/connections.py": "builds the clients (Redis, Sentinel, Cluster) the stores are given",
    "pipeline/redis_server.py": "starts a redis-server and pings it until it is ready",
    "workers/app.py": "patches kombu's Redis channel (the Celery broker's own connection)",
    "workers/beat.py": "celery-redbeat's scheduler and lock (beat's schedule: redbeat's keys)",
}

# Every command method of a redis-py client, and what builds scripts and pipelines.
REDIS_METHODS = {name for name in dir(redis.Redis) if not name.startswith("_")
                 and getattr(getattr(redis.Redis, name), "__module__", "").startswith("redis.commands")}
BUILDERS = {"register_script", "pipeline", "transaction", "pubsub", "execute_command", "evalsha", "eval", "lock"}
# Command names that are also methods of everyday objects (dict.get, Path.exists, log.info,
# click.echo, json.dump, time.time, Event.wait, Keys.object ...): a call counts only on what is
# plainly a Redis client (``x.redis``, ``client``, ``pipe``).
_EVERYDAY = (dict, list, set, str, bytes, pathlib.Path, threading.Event, threading.Thread, logging.Logger,
             subprocess.Popen, time, json, os, click, os.path)
AMBIGUOUS = ({name for kind in _EVERYDAY for name in dir(kind)}
             | {"object", "watch", "command", "json", "ft", "ts", "bf", "cf", "cms", "topk", "tdigest", "vset",
                "lock", "eval", "stats", "health", "digest", "select", "sort", "copy", "move", "keys", "type",
                "delete", "echo", "save", "reset", "role", "sync", "time", "wait", "ping", "auth", "hello",
                "cluster", "sentinel", "failover", "shutdown", "quit", "dump", "restore", "scan", "get", "set",
                "publish", "info", "exists", "append", "touch", "unlink", "rename", "persist", "expire"})
REDISH = {"redis", "client", "pipe", "pipeline", "conn", "connection", "node", "primary", "r"}


def _receiver(node: ast.expr) -> str:
    """The last name of what a method is called on: ``state.redis`` -> redis, ``client`` -> client."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def redis_calls(source: str) -> list[str]:
    """Each call in ``source`` that talks to Redis or builds a script/pipeline: ``line: text``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        method, receiver = node.func.attr, _receiver(node.func.value)
        redish = receiver in REDISH
        if receiver == "redis" and isinstance(node.func.value, ast.Name):
            redish = False  # the module: redis.Redis(...), redis.from_url(...) build clients (connections.py)
        if ((method in BUILDERS and (method not in AMBIGUOUS or redish))
                or (method in REDIS_METHODS and (method not in AMBIGUOUS or redish))
                or (redish and receiver == "redis" and method not in {"close"})):
            found.append(f"{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def _modules():
    for folder in ("pipeline", "workers"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if not relative.startswith("pipeline/store/"):
                yield relative, path


def test_no_module_outside_the_store_calls_redis():
    offenders = {}
    for relative, path in _modules():
        calls = redis_calls(path.read_text(encoding="utf-8"))
        if calls and relative not in ALLOWED:
            offenders[relative] = calls
    assert not offenders, f"Redis called outside pipeline/store/ (add a store method): {offenders}"


def test_the_allowed_modules_exist():
    """An exception names a module of the tree (a renamed module loses it)."""
    for relative in ALLOWED:
        assert (REPO / relative).is_file(), relative


def test_the_check_fails_on_code_that_breaks_the_rule():
    broken = {
        "state.redis.hincrby(state.keys.stats(sid), 'integrity_errors', 1)": 1,
        "pipe = runtime.redis.pipeline(transaction=False)\npipe.xlen(name)\npipe.execute()": 2,
        "script = client.register_script(text)": 1,
        "entries = self.store.redis.xrevrange(stream, count=10)": 1,
        "client.info('persistence'); client.config_get('save')": 2,
        "state.redis.ping()": 1,
        "r = connection.hgetall(key)": 1,
    }
    for source, count in broken.items():
        assert len(redis_calls(source)) >= count, source
    clean = ("log.info('x'); click.echo('y'); keys.object('s', 'k'); path.exists(); json.dump({}, f)\n"
             "event.wait(1); d.get('a'); heartbeats.watch(item); time.time(); state.hincrby_like()\n"
             "redis.Redis.from_url(url); state.stats('s'); runtime.state.stream_lengths(['a'])\n"
             "isinstance(exc, redis.RedisError); client.close()")
    assert redis_calls(clean) == []


def test_importing_redis_exceptions_is_allowed_everywhere():
    assert redis_calls("import redis\ntry:\n    pass\nexcept (redis.RedisError, redis.ConnectionError):\n    pass\n") == []


# -- Lua: the schema's names only through their constants ----------------------------------------
def _code(text: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def test_lua_scripts_spell_no_schema_name():
    names = set(schema.lua_constant_table().values())
    folder = REPO / "pipeline" / "store" / "lua"
    for path in sorted(folder.glob("*.lua")):
        for literal in re.findall(r"'([^']*)'", _code(path.read_text(encoding="utf-8"))):
            assert literal not in names, f"{path.name} spells {literal!r}: use its schema constant"


def test_every_lua_file_is_a_registered_script_or_a_prelude():
    folder = REPO / "pipeline" / "store" / "lua"
    files = {path.stem for path in folder.glob("*.lua")}
    assert files == set(SCRIPT_NAMES) | {f"_{prelude}" for prelude in PRELUDES}
    for name in SCRIPT_NAMES:  # every constant a script uses is defined in its head
        text = script_text(name)
        used = set(re.findall(r"\b([A-Z]+_[A-Z0-9_]+)\b", _code(text)))
        defined = set(re.findall(r"^local ([A-Z]+_[A-Z0-9_]+) =", text, re.MULTILINE))
        assert used <= defined, (name, used - defined)


# -- docs/architecture.md's key schema -----------------------------------------------------------
def _schema_rows() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Documented key -> (type, fields) from the table of "## Redis key schema"."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Redis key schema", 1)[1].split("\n## ", 1)[0]
    table = section.split("\n\n| key | type | owner | fields | content |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.strip().splitlines()[1:]:
        cells = [cell.strip() for cell in re.split(r"\s\|(?=\s)", f" {line.strip().strip('|')} ")]
        key = cells[0].strip("`")
        rows[key] = (cells[1], tuple(re.findall(r"`([^`]+)`", cells[3])))
    return rows


def test_docs_schema_table_matches_schema_py():
    rows = _schema_rows()
    keys = schema.Keys("P", defaults.STREAM, defaults.DEADLETTER_STREAM)  # the streams are named in full
    expected = {schema.key_pattern(keys, entry.method): (entry.type, entry.fields) for entry in schema.KEY_SCHEMA}
    assert set(rows) == set(expected), f"documented but not in schema.py: {set(rows) - set(expected)}; " \
                                       f"in schema.py but not documented: {set(expected) - set(rows)}"
    for key, (kind, fields) in expected.items():
        assert rows[key][0] == kind, key
        assert set(rows[key][1]) == set(fields), (f"{key}: documented but not in schema.py: "
                                                  f"{set(rows[key][1]) - set(fields)}; not documented: "
                                                  f"{set(fields) - set(rows[key][1])}")


def test_every_key_method_is_in_the_schema():
    methods = {name for name, value in vars(schema.Keys).items()
               if callable(value) and not name.startswith("_") and not name.endswith("streams")}
    assert methods == {entry.method for entry in schema.KEY_SCHEMA}


def test_docs_script_table_names_every_script_and_its_owner():
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Lua scripts", 1)[1].split("\n## ", 1)[0]
    table = section.split("| script | owner | does |", 1)[1].split("\n\n", 1)[0]
    documented = {}
    for line in table.strip().splitlines()[1:]:
        cells = [cell.strip().strip("`") for cell in re.split(r"\s\|(?=\s)", f" {line.strip().strip('|')} ")]
        documented[cells[0].removesuffix(".lua")] = cells[1]
    assert set(documented) == set(SCRIPT_NAMES)
    for name, owner in documented.items():  # the owner's module runs it
        module = (REPO / "pipeline" / "store" / f"{owner}.py").read_text(encoding="utf-8")
        assert f'"{name}"' in module, (name, owner)


def forbidden_imports(source: str, forbidden: tuple[str, ...]) -> list[str]:
    """Each import in ``source`` of a module in ``forbidden`` (or under it): ``line: name``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        found += [f"{node.lineno}: {name}" for name in names
                  if any(name == top or name.startswith(top + ".") for top in forbidden)]
    return found


def test_the_import_check_finds_what_it_forbids():
    sample = "import celery\nfrom workers.app import app\nfrom kombu import Queue\nimport celeryish\n"
    assert forbidden_imports(sample, ("celery", "workers")) == ["1: celery", "2: workers.app"]


def test_pipeline_never_imports_celery_or_workers():
    """workers/ imports pipeline/, never the reverse; pipeline/ runs without Celery."""
    offenders = {str(path.relative_to(REPO)): found for path in sorted((REPO / "pipeline").rglob("*.py"))
                 if (found := forbidden_imports(path.read_text(), ("celery", "workers", "redbeat", "flower")))}
    assert offenders == {}
