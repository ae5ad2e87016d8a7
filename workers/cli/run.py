"""Commands that start processes: run (supervised worker, beat, embedded Redis), demo, bench."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from pipeline import defaults
from pipeline.logs import escape_controls
from workers.cli.common import config_option, load_or_exit
from workers.launch import celery_part, embedded_redis_part, redis_answers


@click.command()
@config_option
@click.option("--concurrency", default=defaults.WORKER_CONCURRENCY, show_default=True,
              help="Objects in flight per worker process (threads: each waits for S3 beside the others).")
@click.option("--processes", default=os.cpu_count() or 2, show_default="one per core",
              help="Worker processes (each uses one core for its objects' CPU work).")
@click.option("--loglevel", default="info", show_default=True)
def run(config_path: str, concurrency: int, processes: int, loglevel: str) -> None:
    """Worker and beat (and, without redis_url, an embedded redis-server) for a single machine,
    supervised: whatever dies is restarted. Ends on Ctrl-C/SIGTERM (exit 0), or with exit 3 when
    a part cannot start at all (it failed before it was ready several times in a row)."""
    from pipeline.embedded import AlreadyRunning, EmbeddedRedis, RunLock  # noqa: PLC0415
    from pipeline.state_watch import redis_check  # noqa: PLC0415
    from pipeline.supervisor import Part, Supervisor  # noqa: PLC0415

    config = load_or_exit(config_path)
    state_dir = config.state_path
    env = dict(os.environ, TRAILPIPE_CONFIG=str(Path(config_path).resolve()),
               TRAILPIPE_STATE_DIR=str(state_dir.resolve()))
    say = lambda text: click.echo(f"trailpipe run: {escape_controls(text)}", err=True)  # noqa: E731
    try:
        lock = RunLock(state_dir).acquire()
    except AlreadyRunning as exc:
        say(str(exc))
        sys.exit(2)
    parts: list[Part] = []
    embedded = None
    if config.uses_embedded_redis:
        embedded = EmbeddedRedis(state_dir)
        parts.append(embedded_redis_part(embedded))
        say(f"embedded redis-server on 127.0.0.1:{embedded.server.port} (password in "
            f"{embedded.folder}/password), data in {embedded.folder} (AOF on)")
    else:
        persists, text = redis_check(config)
        say(text if persists else f"WARNING: {text}")
    redis_up = redis_answers(lambda: embedded.url if embedded is not None else config.redis_url_value(),
                             config.sentinel_password_value())
    beat_schedule = str(state_dir / "celerybeat-schedule")
    workers = [(f"worker-{n}" if n > 1 else "worker",
                ("worker", "--pool", defaults.WORKER_POOL, "--concurrency", str(concurrency), "--loglevel", loglevel,
                 "--hostname", f"worker{n}@%h")) for n in range(1, max(1, processes) + 1)]
    for name, args in (*workers, ("beat", ("beat", "--loglevel", loglevel, "--schedule", beat_schedule))):
        parts.append(celery_part(name, args, env, state_dir, wait_for=redis_up))
    try:
        code = Supervisor(parts, say=say, state_dir=state_dir).run()
    finally:
        lock.release()
    sys.exit(code)


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """The benchmark: floor, naive collector and trailpipe on the same data (--help for options)."""
    script = Path(__file__).resolve().parents[2] / "ops" / "bench" / "run.py"
    if not script.is_file():
        raise click.ClickException("the benchmark lives in the source tree (ops/bench/run.py): "
                                   "run it from a clone of the repository")
    sys.exit(subprocess.call([sys.executable, str(script), *args]))


@click.command()
@click.option("--files", default=24, show_default=True, help="CloudTrail files to put in the bucket.")
@click.option("--timeout", default=180, show_default=True, help="Give up after this many seconds.")
@click.option("--show", default=15, show_default=True, help="Events to print as they arrive.")
def demo(files: int, timeout: int, show: int) -> None:
    """A local S3 bucket of CloudTrail files through the whole pipeline, then a summary."""
    from workers.demo import run_demo  # noqa: PLC0415

    sys.exit(run_demo(files=files, timeout=timeout, show=show))
