"""``trailpipe demo``: a local S3 API (moto, loopback: ``pipeline.local_s3``) with a bucket of
realistic CloudTrail files, the real pipeline (a celery worker and beat) on an embedded
redis-server, events shown as they arrive, then a summary. Its three parts are started, watched
(restarted should one die) and stopped by ``trailpipe run``'s supervisor, driven from the demo's
own loop (``Supervisor.check``). Ends by itself, or on Ctrl-C, cleanly.
"""
from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import boto3
import click
import yaml

from pipeline.config import load_config
from pipeline.demo_data import ACCOUNTS, REGIONS, make_bucket_files, make_digest
from pipeline.embedded import EmbeddedRedis, RunLock
from pipeline.local_s3 import LocalS3
from pipeline.logs import escape_controls
from pipeline.redis_server import find_redis_server, server_version
from pipeline.runtime import Runtime
from pipeline.store.schema import Stat
from pipeline.supervisor import Part, Supervisor
from workers.console import format_event
from workers.launch import celery_part, embedded_redis_part, redis_answers

DEMO_DIR = Path(".trailpipe") / "demo"
BUCKET = "trailpipe-demo-cloudtrail"
SOURCE = "demo-org-trail"


def server_name() -> str:
    path = find_redis_server()
    return f"{Path(path).name} {'.'.join(map(str, server_version(path)))}"


def fill_bucket(endpoint: str, files: int) -> tuple[int, int]:
    """Upload the log files plus one digest and one non-log object; return (files, records)."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="demo", aws_secret_access_key="demo-secret")
    s3.create_bucket(Bucket=BUCKET)
    logs = make_bucket_files(files=files)
    for log in logs:
        s3.put_object(Bucket=BUCKET, Key=log.key, Body=log.body)
    digest_key, digest_body = make_digest(ACCOUNTS[0], REGIONS[0], datetime(2026, 11, 1, 9, tzinfo=UTC))
    s3.put_object(Bucket=BUCKET, Key=digest_key, Body=digest_body)
    s3.put_object(Bucket=BUCKET, Key="AWSLogs/README.txt", Body=b"not a log file")
    return len(logs), sum(log.records for log in logs)


def demo_config(endpoint: str, secret_file: Path) -> dict:
    # No redis_url: the embedded redis-server under state_dir, which `trailpipe status/tail -c`
    # with this file reach afterwards too. Paths are relative to the file's folder (DEMO_DIR), so
    # it works from any working directory.
    return {
        "state_dir": ".",
        "sources": [{
            "identifier": SOURCE,
            "bucket": BUCKET,
            "region": "us-east-1",
            "signature_version": "v4",
            "endpoint_url": endpoint,
            "auth": {"method": "access_key", "access_key_id": "demo",
                     "secret_access_key_file": secret_file.name},
            "directory_prefix": "AWSLogs/",
            "file_pattern": r".*?\.json\.gz",
            "recurrence": "1M",
        }],
    }


MISSING_MOTO = ("trailpipe demo: the demo runs a local S3 API (moto's server), which this install lacks: "
                "pip install 'moto[server]>=5' (the `demo` extra of trailpipe; `make demo` in a clone has it), "
                "or run the compose demo: docker compose --profile demo up")


def trailpipe_command() -> str:
    """How to run ``trailpipe`` as printed, from the current folder: plain ``trailpipe`` when the
    shell finds this very one on PATH, else the path of this install's script (.venv/bin/trailpipe)."""
    script = Path(sys.executable).parent / "trailpipe"
    on_path = shutil.which("trailpipe")
    if not script.exists() or (on_path and Path(on_path).resolve() == script.resolve()):
        return "trailpipe"
    try:
        return str(script.absolute().relative_to(Path.cwd()))
    except ValueError:
        return shlex.quote(str(script.absolute()))


def next_steps(config_path: Path) -> str:
    """The commands to look at the results afterwards, each runnable as printed from this folder."""
    tool, config = trailpipe_command(), shlex.quote(str(config_path))
    commands = [(f"{tool} status -c {config}", "make status"),
                (f"{tool} tail -c {config} -n 20", "make tail"),
                (f"{tool} deadletter list -c {config}", "make deadletter")]
    via_make = "MAKELEVEL" in os.environ  # started by `make demo`: the shortcuts work here too
    # The shortcut as a shell comment: the whole line still runs as printed.
    lines = [f"  {command}" + (f"    # or: {short}" if via_make else "") for command, short in commands]
    return (f"look at the results afterwards (the data stays in {DEMO_DIR}):\n" + "\n".join(lines) + "\n"
            "the demo's local S3 stopped with it: status, tail and deadletter read the data kept; "
            "check, run and backfill with this config need an S3 again (run the demo again)")


def _wait_up(supervisor: Supervisor, part: Part, timeout: float = 60.0) -> Part | None:
    """Drive the supervisor until ``part`` is up; the part that cannot start, if one gives up."""
    deadline = time.monotonic() + timeout
    while not part.up:
        failed = supervisor.check()
        if failed is not None:
            return failed
        if time.monotonic() > deadline:
            return part
        time.sleep(supervisor.poll)
    return None


def _cannot_start(part: Part) -> str:
    return f"trailpipe demo: {part.name} cannot start: it {part.last_exit or 'was not ready in time'}; {part.hint}"


def run_demo(files: int = 24, timeout: int = 180, show: int = 15) -> int:
    if importlib.util.find_spec("moto") is None:
        click.echo(MISSING_MOTO, err=True)
        return 2
    started = time.monotonic()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True, mode=0o700)
    secret_file = DEMO_DIR / "demo-secret"
    secret_file.touch(mode=0o600)
    secret_file.write_text("demo-secret")
    interrupted = False
    with ExitStack() as stack:
        stack.enter_context(RunLock(DEMO_DIR))
        log_path = DEMO_DIR / "worker.log"
        log_path.touch(mode=0o600)
        log_file = stack.enter_context(open(log_path, "ab"))  # worker, beat and the supervisor's lines

        def tell(text: str) -> None:
            log_file.write(f"trailpipe demo: {escape_controls(text)}\n".encode())
            log_file.flush()

        redis_server = EmbeddedRedis(DEMO_DIR)
        local_s3 = LocalS3()
        stack.callback(local_s3.stop)  # after the parts (the stack unwinds backwards): no worker sees it go
        config_path = DEMO_DIR / "config.yaml"
        env = dict(os.environ, TRAILPIPE_CONFIG=str(config_path.resolve()))
        env.pop("TRAILPIPE_REDIS_URL", None)
        # The parts of `trailpipe run`, started and stopped by the same supervisor: the embedded
        # redis-server, one worker, beat (stopped in reverse order: beat first, Redis last).
        # Worker and beat start once Redis answers and the config (the bucket's endpoint) is written.
        redis_part = embedded_redis_part(redis_server)
        redis_up = redis_answers(lambda: redis_server.url)
        celery = [("worker", ("worker", "--concurrency", "2", "--loglevel", "info", "--hostname", "demo@%h")),
                  ("beat", ("beat", "--loglevel", "info", "--schedule", str(DEMO_DIR / "celerybeat-schedule")))]
        parts = [redis_part, *(celery_part(name, args, env, DEMO_DIR, stop_seconds=20, output=log_file,
                                           wait_for=lambda: config_path.exists() and redis_up(),
                                           hint=f"see {log_path}") for name, args in celery)]
        supervisor = Supervisor(parts, say=tell, state_dir=DEMO_DIR)
        stack.callback(supervisor.stop)
        stats: dict = {}
        runtime = None
        try:
            failed = _wait_up(supervisor, redis_part)
            if failed is not None:
                click.echo(_cannot_start(failed), err=True)
                return 1
            click.echo(f"embedded {server_name()} on 127.0.0.1:{redis_server.server.port} "
                       f"(AOF in {redis_server.folder})")
            endpoint = local_s3.start().url
            log_files, expected_events = fill_bucket(endpoint, files)
            click.echo(f"local S3 at {endpoint}: bucket {BUCKET} holds {log_files} CloudTrail files "
                       f"({expected_events} records), 1 digest file and 1 other object")
            # Whole or not at all (worker and beat start as soon as it exists): written aside, renamed.
            written = config_path.with_suffix(".tmp")
            written.touch(mode=0o600)
            written.write_text(yaml.safe_dump(demo_config(endpoint, secret_file), sort_keys=False))
            written.replace(config_path)
            runtime = Runtime(load_config(config_path))
            click.echo(f"celery worker + beat starting (log: {log_path}); events from stream "
                       f"{runtime.config.stream}:")
            last_id: bytes | str = "0-0"
            shown = 0
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for _, entries in runtime.state.read_streams({runtime.config.stream: last_id}, count=500,
                                                             block_ms=500):
                    for entry_id, fields in entries:
                        last_id = entry_id
                        if shown < show:
                            click.echo("  " + format_event(fields))
                            shown += 1
                        elif shown == show:
                            click.echo("  ...")
                            shown += 1
                stats = runtime.state.stats(SOURCE)
                if stats.get(Stat.OBJECTS_DONE, 0) + stats.get(Stat.OBJECTS_FAILED, 0) >= log_files:
                    break
                failed = supervisor.check()  # restarts whatever died; a part that cannot start ends it
                if failed is not None:
                    click.echo(_cannot_start(failed), err=True)
                    break
        except KeyboardInterrupt:
            interrupted = True
            click.echo("interrupted: stopping cleanly")
        if runtime is None:
            return 0 if interrupted else 1
        elapsed = time.monotonic() - started
        events = stats.get(Stat.EVENTS_EMITTED, 0)
        click.echo("")
        click.echo("summary")
        click.echo(f"  objects: {stats.get(Stat.OBJECTS_DONE, 0)} done, {stats.get(Stat.OBJECTS_FAILED, 0)} failed "
                   f"of {log_files} log files (digest and non-log objects skipped)")
        click.echo(f"  events:  {events} emitted of {expected_events} records; stream length "
                   f"{runtime.state.stream_length_of(runtime.config.stream)}")
        click.echo(f"  time:    {elapsed:.1f} s in all")
        ok = not interrupted and events == expected_events and stats.get(Stat.OBJECTS_DONE, 0) == log_files
        click.echo("demo complete" if ok else "demo did NOT complete", err=not ok)
        click.echo(next_steps(config_path))
        return 0 if ok or interrupted else 1


if __name__ == "__main__":
    # python -m workers.demo seed ENDPOINT [FILES]: fill a demo bucket (the compose demo profile).
    import sys

    if len(sys.argv) not in (3, 4) or sys.argv[1] != "seed":
        sys.exit("usage: python -m workers.demo seed ENDPOINT [FILES]")
    count, records = fill_bucket(sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 24)
    print(f"s3 demo bucket {BUCKET}: {count} CloudTrail files, {records} records")
