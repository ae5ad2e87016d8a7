"""Commands that put work on the fleet: discover, backfill, schedule sync."""
from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from pipeline import defaults
from pipeline.config import format_duration
from pipeline.runtime import Runtime
from workers.cli.common import config_option, open_config
from workers.cli.render import progress_printer


@click.command()
@config_option
@click.argument("identifier", required=False)
def discover(config_path: str, identifier: str | None) -> None:
    """Enqueue a discovery now, of one source or of all."""
    config = open_config(config_path, serve_data=False)
    from workers.app import app, configure  # noqa: PLC0415  (Celery only for this command)

    configure(config)
    sources = [config.source(identifier)] if identifier else config.sources
    for source in sources:
        app.send_task("trailpipe.discover", args=(source.identifier,), queue=source.queue_name)
        click.echo(f"discovery of {source.identifier} enqueued on {source.queue_name}")


@click.command()
@config_option
@click.argument("identifier")
@click.option("--since", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last day (default: today).")
@click.option("--workers", default=defaults.BACKFILL_WORKERS, show_default=True, help="Objects ingested at once.")
def backfill(config_path: str, identifier: str, since, until, workers: int) -> None:
    """Ingest a source's history from its date folders; safe beside the live schedule."""
    from pipeline.backfill import backfill as run_backfill  # noqa: PLC0415
    from pipeline.credentials import warm_up  # noqa: PLC0415
    from pipeline.runtime import tune_gc  # noqa: PLC0415

    warm_up()
    tune_gc()

    runtime = Runtime(open_config(config_path, serve_data=False))
    source = runtime.config.source(identifier)
    last_day = (until or datetime.now(UTC)).date()
    if since.date() > last_day:
        raise click.UsageError("--since is after --until")
    show = progress_printer(sys.stderr.isatty())
    progress = run_backfill(source, runtime.state, runtime.s3(source), since.date(), last_day,
                            runtime.limits, workers, show)
    if sys.stderr.isatty():
        click.echo("", err=True)
    click.echo(f"backfill of {identifier} {since.date()}..{last_day}: {progress.objects_done} objects, "
               f"{progress.events} events, {progress.objects_failed} dead-lettered, "
               f"{progress.objects_skipped} already known, {progress.objects_deferred} left to the live pipeline")


@click.group()
def schedule() -> None:
    """The beat schedule kept in Redis (celery-redbeat)."""


@schedule.command("sync")
@config_option
def schedule_sync(config_path: str) -> None:
    """Apply the config's sources and recurrences to the schedule now, without restarting beat."""
    config = open_config(config_path, serve_data=False)
    from workers.app import configure, sync_schedule  # noqa: PLC0415

    configure(config)
    from pipeline.sqs_consumer import RUN_SECONDS  # noqa: PLC0415

    for name in sync_schedule():
        kind, identifier = name.split(":", 1)
        source = config.source(identifier)
        every = {"discover": format_duration(source.recurrence), "consume": f"{RUN_SECONDS}s"}.get(
            kind, f"{int(config.sweep_interval.total_seconds())}s")
        click.echo(f"{name}: every {every} on {source.queue_name}")
