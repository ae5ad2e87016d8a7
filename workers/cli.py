"""The ``trailpipe`` command: validate, discover, run, demo, status, tail, deadletter."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click
import orjson

from pipeline import deadletter as deadletters
from pipeline.config import Config, format_duration, load_config
from pipeline.errors import ConfigError
from pipeline.logs import escape_controls
from pipeline.metrics import source_metrics
from pipeline.redis_server import RedisServer
from pipeline.runtime import Runtime

STATE_DIR = Path(".trailpipe")


def say(text: str, **kwargs) -> None:
    """Print text that may hold S3 keys or record fields (anyone who writes to the bucket
    chooses them): control characters escaped, so nothing reaches the terminal raw."""
    click.echo(escape_controls(text), **kwargs)


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(2)


config_option = click.option("-c", "--config", "config_path", required=True,
                             type=click.Path(dir_okay=False), envvar="TRAILPIPE_CONFIG",
                             help="The YAML config file (or TRAILPIPE_CONFIG).")


@click.group()
def main() -> None:
    """trailpipe: AWS CloudTrail logs from S3 into a Redis stream, on Celery."""


@main.command()
@config_option
def validate(config_path: str) -> None:
    """Check a config file: exit 0 if good, else one line per problem."""
    config = _load(config_path)
    click.echo(f"{config_path}: OK, {len(config.sources)} source(s): "
               + ", ".join(s.identifier for s in config.sources))


@main.command()
@config_option
@click.argument("identifier", required=False)
def discover(config_path: str, identifier: str | None) -> None:
    """Enqueue a discovery now, of one source or of all."""
    config = _load(config_path)
    from workers.app import app, configure  # noqa: PLC0415  (Celery only for this command)

    configure(config)
    sources = [config.source(identifier)] if identifier else config.sources
    for source in sources:
        app.send_task("trailpipe.discover", args=(source.identifier,), queue=source.queue_name)
        click.echo(f"discovery of {source.identifier} enqueued on {source.queue_name}")


def status_rows(runtime: Runtime) -> list[dict]:
    """Per source what `trailpipe metrics` serves (markers of an earlier prefix count as none)."""
    return [{"bucket": source.bucket, "prefix": source.directory_prefix, "queue": source.queue_name,
             **source_metrics(runtime.state, source.identifier, source.list_prefix)}
            for source in runtime.config.sources]


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config_path: str, as_json: bool) -> None:
    """Per source: prefix, marker, objects done/failed, events emitted."""
    runtime = Runtime(_load(config_path))
    rows = status_rows(runtime)
    if as_json:
        click.echo(json.dumps({"sources": rows, "stream_length": runtime.redis.xlen(runtime.config.stream)},
                              indent=2))
        return
    for row in rows:
        say(f"{row['source']}: s3://{row['bucket']} prefix={row['prefix']!r} marker={row['marker']!r}")
        if len(row["partitions"]) > 1:
            for partition, marker in sorted(row["partitions"].items()):
                say(f"  partition {partition}: marker {marker.rsplit('/', 1)[-1]!r}")
        click.echo(f"  objects enqueued={row['objects_enqueued']} done={row['objects_done']} "
                   f"failed={row['objects_failed']} pending={row['objects_pending']}  "
                   f"events emitted={row['events_emitted']}  empty records={row['records_empty']}")
        lag = row["marker_lag_seconds"]
        requests = ", ".join(f"{op}={n}" for op, n in sorted(row["s3_requests"].items())) or "none"
        click.echo(f"  marker lag={'-' if lag is None else f'{lag:.0f}s'}  discoveries={row['discoveries']} "
                   f"(last {row['last_discovery_seconds']:.2f}s)  throttle wait={row['throttle_wait_seconds']:.1f}s")
        click.echo(f"  S3 requests: {requests} (~${row['s3_estimated_cost_usd']:.4f})")
    click.echo(f"stream {runtime.config.stream}: {runtime.redis.xlen(runtime.config.stream)} entries")


def format_event(fields: dict[bytes, bytes]) -> str:
    get = lambda name: fields.get(name.encode(), b"").decode("utf-8", "replace")  # noqa: E731
    record = orjson.loads(fields.get(b"event", b"{}"))
    identity = record.get("userIdentity") or {}
    who = identity.get("userName") or identity.get("arn") or identity.get("type") or "-"
    return (f"{get('event_time')}  {get('account')}/{get('region') or '-'}  {get('event_name')}"
            f"  by {who}  from {record.get('sourceIPAddress') or '-'}  [{get('source')}]")


@main.command()
@config_option
@click.option("--port", default=9808, show_default=True, help="Port to serve /metrics on.")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
def metrics(config_path: str, port: int, address: str) -> None:
    """Serve Prometheus metrics of every source at /metrics, read from the shared state."""
    from pipeline.metrics import serve, wait_forever  # noqa: PLC0415

    runtime = Runtime(_load(config_path))
    serve(runtime, port, address)
    click.echo(f"serving trailpipe metrics on http://{address}:{port}/metrics", err=True)
    try:
        wait_forever()
    except KeyboardInterrupt:
        pass


@main.command()
@config_option
@click.option("-n", "count", default=10, show_default=True, help="How many events.")
@click.option("--raw", is_flag=True, help="Print each entry's fields as JSON.")
def tail(config_path: str, count: int, raw: bool) -> None:
    """Print the newest events from the stream."""
    runtime = Runtime(_load(config_path))
    entries = runtime.redis.xrevrange(runtime.config.stream, count=count)
    for entry_id, fields in reversed(entries):
        if raw:
            click.echo(json.dumps({"id": entry_id.decode(),
                                   **{k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}}))
        else:
            say(format_event(fields))


def _progress_printer(stream_is_tty: bool):
    """A progress bar on a terminal, plain progress lines (at most every 5 s) otherwise."""
    state = {"last": 0.0}

    def show(progress) -> None:
        finished = progress.objects_done + progress.objects_failed + progress.objects_deferred
        todo = max(progress.objects_total - progress.objects_skipped, 0)
        eta = progress.eta_seconds
        eta_text = "-" if eta is None else f"{eta:.0f}s"
        text = (f"objects {finished}/{todo} (failed {progress.objects_failed}, skipped "
                f"{progress.objects_skipped})  events {progress.events}  {progress.rate:.0f} ev/s  ETA {eta_text}")
        now = time.monotonic()
        if stream_is_tty:
            width = 30
            filled = int(width * finished / todo) if todo else width
            click.echo(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}", nl=False, err=True)
        elif now - state["last"] >= 5 or finished == todo:
            click.echo(f"backfill: {text}", err=True)
            state["last"] = now

    return show


@main.command()
@config_option
@click.argument("identifier")
@click.option("--since", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last day (default: today).")
@click.option("--workers", default=2, show_default=True, help="Objects ingested at once.")
def backfill(config_path: str, identifier: str, since, until, workers: int) -> None:
    """Ingest a source's history from its date folders; safe beside the live schedule."""
    from pipeline.backfill import backfill as run_backfill  # noqa: PLC0415

    runtime = Runtime(_load(config_path))
    source = runtime.config.source(identifier)
    last_day = (until or datetime.now(timezone.utc)).date()
    if since.date() > last_day:
        raise click.UsageError("--since is after --until")
    show = _progress_printer(sys.stderr.isatty())
    progress = run_backfill(source, runtime.state, runtime.s3(source), since.date(), last_day,
                            runtime.limits, workers, show)
    if sys.stderr.isatty():
        click.echo("", err=True)
    click.echo(f"backfill of {identifier} {since.date()}..{last_day}: {progress.objects_done} objects, "
               f"{progress.events} events, {progress.objects_failed} dead-lettered, "
               f"{progress.objects_skipped} already known, {progress.objects_deferred} left to the live pipeline")


@main.group()
def schedule() -> None:
    """The beat schedule kept in Redis (celery-redbeat)."""


@schedule.command("sync")
@config_option
def schedule_sync(config_path: str) -> None:
    """Apply the config's sources and recurrences to the schedule now, without restarting beat."""
    config = _load(config_path)
    from workers.app import configure, sync_schedule  # noqa: PLC0415

    configure(config)
    for name in sync_schedule():
        source = config.source(name.split(":", 1)[1])
        click.echo(f"{name}: every {format_duration(source.recurrence)} on {source.queue_name}")


@main.group()
def certificates() -> None:
    """Public key pins of HTTPS endpoints (in a source's trusted_certificates_dir)."""


@certificates.command("acquire")
@config_option
@click.argument("identifier")
@click.option("--expect", help="The key fingerprint the server must present (sha256//BASE64 or hex), "
                               "read from the server by other means.")
@click.option("--replace", is_flag=True, help="Replace a pin the endpoint no longer matches.")
def certificates_acquire(config_path: str, identifier: str, expect: str | None, replace: bool) -> None:
    """Pin the public key each HTTPS endpoint of a source presents now, and print its fingerprint.

    Compare the fingerprint with the server's before trusting it: from then on the endpoint is
    trusted by that key alone (for that host and port only)."""
    from pipeline import certificates as certs  # noqa: PLC0415
    from pipeline.s3 import endpoint_connector, endpoints  # noqa: PLC0415

    config = _load(config_path)
    try:
        source = config.source(identifier)
    except KeyError:
        raise click.UsageError(f"no source {identifier!r} in {config_path}") from None
    if not source.trusted_certificates_dir:
        raise click.UsageError(f"source {identifier!r} has no trusted_certificates_dir: the pin is kept there")
    urls = [url for url in endpoints(source) if certs.endpoint_address(url)]
    if not urls:
        raise click.UsageError(f"source {identifier!r} has no https endpoint: nothing to pin")
    failed = False
    for url in urls:
        try:
            got = certs.acquire(url, source.trusted_certificates_dir, endpoint_connector(source),
                                expect=expect, replace=replace)
        except (certs.CertificateError, ConnectionError) as exc:
            say(f"{url}: {exc}", err=True)
            failed = True
            continue
        leaf = got.leaf
        say(f"{url}: {'pinned' if got.written else 'already pinned'} public key {leaf.pin}")
        say(f"  key SHA-256 {leaf.key_fingerprint}")
        say(f"  certificate subject {leaf.subject!r}, issuer {leaf.issuer!r}, SHA-256 {leaf.sha256}")
        say(f"  pin file {got.path}")
        if got.previous:
            say(f"  replaced {len(got.previous)} earlier pin(s)")
        if got.verifies is not None:
            say(f"  (it does not verify with the trusted CAs: {got.verifies}; the pin is what trusts it)")
    sys.exit(1 if failed else 0)


@main.group()
def deadletter() -> None:
    """Objects that could not be ingested: list them, retry them."""


@deadletter.command("list")
@config_option
@click.option("--source", "source_id", help="Only this source.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def deadletter_list(config_path: str, source_id: str | None, as_json: bool) -> None:
    """List the dead-lettered objects with their reason."""
    runtime = Runtime(_load(config_path))
    letters = deadletters.list_entries(runtime.state, source_id)
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
    config = _load(config_path)
    runtime = Runtime(config)
    from workers.app import app, configure  # noqa: PLC0415  (Celery only for this command)

    configure(config)

    def enqueue(sid: str, object_key: str) -> None:
        app.send_task("trailpipe.ingest_object", args=(sid, object_key), queue=config.source(sid).queue_name)

    letters = [letter for letter in deadletters.list_entries(runtime.state, source_id)
               if retry_all or letter.key == key]
    if not letters:
        click.echo("nothing to retry", err=True)
        sys.exit(1)
    retried = deadletters.retry(runtime.state, letters, enqueue, {s.identifier for s in config.sources})
    for letter in retried:
        say(f"retrying {letter.source} {letter.key}")
    click.echo(f"{len(retried)} object(s) enqueued again")


def celery_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "workers.app", *args]


def run_foreground(command: list[str], env: dict[str, str]) -> int:
    """Run a child, forwarding Ctrl-C/SIGTERM to it so it shuts down warm."""
    child = subprocess.Popen(command, env=env)

    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@main.command()
@config_option
@click.option("--concurrency", default=os.cpu_count() or 2, show_default="one per core",
              help="Worker processes (prefork).")
@click.option("--loglevel", default="info", show_default=True)
def run(config_path: str, concurrency: int, loglevel: str) -> None:
    """Worker and beat in one process tree, for a single machine.

    Without redis_url in the config, starts an embedded redis-server under ./.trailpipe/.
    """
    config = _load(config_path)
    env = dict(os.environ, TRAILPIPE_CONFIG=str(Path(config_path).resolve()))
    STATE_DIR.mkdir(exist_ok=True)
    server = None
    if config.redis_url is None and not os.environ.get("TRAILPIPE_REDIS_URL"):
        server = RedisServer(STATE_DIR / "redis").start()
        env["TRAILPIPE_REDIS_URL"] = server.url
        click.echo(f"embedded redis-server on 127.0.0.1:{server.port}, data in {server.directory}")
    try:
        code = run_foreground(celery_command(
            "worker", "-B", "--concurrency", str(concurrency), "--loglevel", loglevel,
            "--schedule", str(STATE_DIR / "celerybeat-schedule")), env)
    finally:
        if server:
            server.stop()
    sys.exit(code)


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """The benchmark: floor, naive collector and trailpipe on the same data (--help for options)."""
    from workers.bench import main as bench_main  # noqa: PLC0415

    sys.exit(bench_main(list(args)))


@main.command()
@click.option("--files", default=24, show_default=True, help="CloudTrail files to put in the bucket.")
@click.option("--timeout", default=180, show_default=True, help="Give up after this many seconds.")
@click.option("--show", default=15, show_default=True, help="Events to print as they arrive.")
def demo(files: int, timeout: int, show: int) -> None:
    """A local S3 bucket of CloudTrail files through the whole pipeline, then a summary."""
    from workers.demo import run_demo  # noqa: PLC0415

    sys.exit(run_demo(files=files, timeout=timeout, show=show))


if __name__ == "__main__":
    main()
