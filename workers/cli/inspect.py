"""Commands that read the shared state: status, metrics, tail, deadletter list/retry."""
from __future__ import annotations

import json
import sys

import click

from pipeline import deadletter as deadletters
from pipeline.logs import escape_controls
from pipeline.metrics import source_metrics
from pipeline.runtime import Runtime
from workers.cli.common import config_option, open_config
from workers.cli.render import format_event, say, show_status_row


def status_rows(runtime: Runtime) -> list[dict]:
    """Per source what `trailpipe metrics` serves (markers of an earlier prefix count as none)."""
    return [{"bucket": source.bucket, "prefix": source.directory_prefix, "queue": source.queue_name,
             "integrity_enabled": source.integrity.enabled,
             **source_metrics(runtime.state, source.identifier, source.list_prefix)}
            for source in runtime.config.sources]


def configured_ids(runtime: Runtime) -> list[str]:
    return [source.identifier for source in runtime.config.sources]


def stream_lengths(runtime: Runtime) -> dict[str, int]:
    """Each events stream's length: one stream, or (``{source}`` in ``stream``) one per source,
    each read on its own shard of a Redis Cluster."""
    return runtime.state.stream_lengths(runtime.state.events_streams(configured_ids(runtime)))


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config_path: str, as_json: bool) -> None:
    """Per source: prefix, marker, objects done/failed, events emitted."""
    from pipeline.metrics import parts_status, redis_status, run_status_lines  # noqa: PLC0415

    runtime = Runtime(open_config(config_path))
    rows = status_rows(runtime)
    streams = stream_lengths(runtime)
    redis_view, run_view = redis_status(runtime.state), parts_status(runtime.config.state_path)
    if as_json:
        click.echo(json.dumps({"sources": rows, "stream_length": sum(streams.values()), "streams": streams,
                               "redis": redis_view, "run": run_view}, indent=2))
        return
    for row in rows:
        show_status_row(row, notifications=runtime.config.source(row["source"]).sqs is not None)
    for name, length in streams.items():
        click.echo(f"stream {name}: {length} entries")
    for line in run_status_lines(redis_view, run_view):
        say(line)


@click.command()
@config_option
@click.option("--port", default=9808, show_default=True, help="Port to serve /metrics on.")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
def metrics(config_path: str, port: int, address: str) -> None:
    """Serve Prometheus metrics of every source at /metrics, read from the shared state."""
    from pipeline.metrics import serve, wait_forever  # noqa: PLC0415

    config = open_config(config_path, serve_data=False)
    tell = lambda text: click.echo(f"trailpipe metrics: {escape_controls(text)}", err=True)  # noqa: E731
    serve(Runtime(config, quick_redis=True), port, address, say=tell)
    tell(f"serving trailpipe metrics on http://{address}:{port}/metrics")
    if config.uses_embedded_redis:
        from pipeline.embedded import embedded_url  # noqa: PLC0415

        if embedded_url(config.state_path) is None:
            tell(f"no `trailpipe run` serves {config.state_path} yet: /metrics answers 503 until one starts "
                 f"(`status` and `tail` read its data without one)")
    try:
        wait_forever()
    except KeyboardInterrupt:
        pass


@click.command()
@config_option
@click.option("-n", "count", default=10, show_default=True, help="How many events.")
@click.option("--raw", is_flag=True, help="Print each entry's fields as JSON.")
def tail(config_path: str, count: int, raw: bool) -> None:
    """Print the newest events from the stream."""
    runtime = Runtime(open_config(config_path))
    entries = []
    for name in runtime.state.events_streams(configured_ids(runtime)):  # one per source with {source}
        entries += runtime.state.newest_entries(name, count)
    entries = sorted(entries, key=lambda entry: entry_order(entry[0]))
    entries = entries[-count:] if count > 0 else entries
    for entry_id, fields in entries:
        if raw:
            click.echo(json.dumps({"id": entry_id.decode(),
                                   **{k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}}))
        else:
            say(format_event(fields))


def entry_order(entry_id: bytes) -> tuple[int, ...]:
    return tuple(int(part) for part in entry_id.decode().split("-"))


@click.group()
def deadletter() -> None:
    """Objects that could not be ingested: list them, retry them."""


@deadletter.command("list")
@config_option
@click.option("--source", "source_id", help="Only this source.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def deadletter_list(config_path: str, source_id: str | None, as_json: bool) -> None:
    """List the dead-lettered objects with their reason."""
    runtime = Runtime(open_config(config_path))
    letters = deadletters.list_entries(runtime.state, source_id, configured_ids(runtime))
    for letter in letters:
        if as_json:
            click.echo(json.dumps(letter.as_dict()))  # ASCII: json escapes every control character
        else:
            say(f"{letter.source}  {letter.key}")
            say(f"  {letter.error_class}: {letter.message} (attempts {letter.attempts})")
    if not as_json:
        click.echo(f"{len(letters)} dead-lettered object(s)")


@deadletter.command("retry")
@config_option
@click.argument("key", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead-lettered object.")
@click.option("--source", "source_id", help="Only this source.")
def deadletter_retry(config_path: str, key: str | None, retry_all: bool, source_id: str | None) -> None:
    """Enqueue dead-lettered objects again: one KEY, or --all."""
    if bool(key) == retry_all:
        raise click.UsageError("give one object KEY, or --all")
    config = open_config(config_path, serve_data=False)
    runtime = Runtime(config)
    from workers.app import app, configure  # noqa: PLC0415  (Celery only for this command)

    configure(config)

    def enqueue(sid: str, object_key: str) -> None:
        app.send_task("trailpipe.ingest_object", args=(sid, object_key), queue=config.source(sid).queue_name)

    letters = [letter for letter in deadletters.list_entries(runtime.state, source_id, configured_ids(runtime))
               if retry_all or letter.key == key]
    if not letters:
        click.echo("nothing to retry", err=True)
        sys.exit(1)
    retried = deadletters.retry(runtime.state, letters, enqueue, {s.identifier for s in config.sources})
    for letter in retried:
        say(f"retrying {letter.source} {letter.key}")
    click.echo(f"{len(retried)} object(s) enqueued again")
