"""The ``trailpipe`` command: validate, discover, run, demo, status, tail, deadletter."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from pipeline import deadletter as deadletters
from pipeline import defaults
from pipeline.config import Config, format_duration, load_config
from pipeline.errors import ConfigError
from pipeline.logs import escape_controls
from pipeline.metrics import source_metrics
from pipeline.processes import die_with_parent, stop_process
from pipeline.runtime import Runtime
from workers.console import celery_command, explain, format_event


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


def _open(path: str, serve_data: bool = True) -> Config:
    """The config, with its Redis reachable for this command (the embedded one included).
    ``serve_data=False`` for long-running or writing commands: they need a running ``run``
    (serving its data themselves would hold the run lock and keep ``run`` from starting)."""
    from pipeline.embedded import reachable  # noqa: PLC0415

    config = _load(path)
    click.get_current_context().with_resource(reachable(config, serve_data))
    return config


config_option = click.option("-c", "--config", "config_path", required=True,
                             type=click.Path(dir_okay=False), envvar="TRAILPIPE_CONFIG",
                             help="The YAML config file (or TRAILPIPE_CONFIG).")


class _Group(click.Group):
    """Errors a user can fix end the command with one clear line and a hint, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(escape_controls(problem), err=True)
            sys.exit(2)
        except Exception as exc:  # noqa: BLE001  (expected failures said in one line; others raise)
            line = explain(exc)
            if line is None:
                raise
            click.echo(f"trailpipe {ctx.invoked_subcommand or ''}: {escape_controls(line)}".replace("  ", " "),
                       err=True)
            sys.exit(2)


@click.group(cls=_Group)
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
def check(config_path: str, identifier: str | None) -> None:
    """Test each source, step by step, as QRadar's "Test" button does; changes nothing.

    Exit 0 when every source passes, 1 otherwise."""
    from pipeline.check import check_source  # noqa: PLC0415

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(f"[FAIL] config valid: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            click.echo(f"       {escape_controls(problem)}")
        sys.exit(1)
    if identifier and identifier not in {s.identifier for s in config.sources}:
        raise click.UsageError(f"no source with identifier {identifier!r}")
    from pipeline.state_watch import redis_check  # noqa: PLC0415

    persists, text = redis_check(config)  # a warning: it fails no source
    click.echo(f"redis:\n  {'[ok]  ' if persists else '[WARN]'} persistence: {escape_controls(text)}")
    failed = 0
    for source in config.sources:
        if identifier and source.identifier != identifier:
            continue
        result = check_source(source)
        click.echo(f"source {source.identifier}: s3://{source.bucket} prefix {source.directory_prefix!r}")
        for step in result.steps:
            if step.ok:
                click.echo(f"  [ok]   {step.name}" + (f": {escape_controls(step.detail)}" if step.detail else ""))
            else:
                click.echo(f"  [FAIL] {step.name}: {step.error_class}: {escape_controls(step.detail)}"
                           + (f"\n         hint: {step.hint}" if step.hint else ""))
        if result.sample is not None:
            click.echo("  sample event fields: " + escape_controls(json.dumps(
                {k: v for k, v in result.sample.items() if k != "event"}, sort_keys=True)))
            click.echo("  event: " + escape_controls(str(result.sample.get("event", ""))[:400]))
        click.echo(f"  => {'PASS' if result.ok else 'FAIL'}")
        failed += not result.ok
    sys.exit(1 if failed else 0)


@main.command()
@config_option
@click.argument("identifier", required=False)
def discover(config_path: str, identifier: str | None) -> None:
    """Enqueue a discovery now, of one source or of all."""
    config = _open(config_path, serve_data=False)
    from workers.app import app, configure  # noqa: PLC0415  (Celery only for this command)

    configure(config)
    sources = [config.source(identifier)] if identifier else config.sources
    for source in sources:
        app.send_task("trailpipe.discover", args=(source.identifier,), queue=source.queue_name)
        click.echo(f"discovery of {source.identifier} enqueued on {source.queue_name}")


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


def notification_line(row: dict) -> str:
    """The notification consumer's counters (and its last error, with a hint) on one line."""
    note = row["notifications"]

    def kinds(counts: dict[str, int]) -> str:
        return ", ".join(f"{kind}={n}" for kind, n in sorted(counts.items())) or "none"

    mean = (f"{note['latency_seconds_sum'] / note['latency_count']:.1f}s" if note["latency_count"] else "-")
    line = (f"notifications received: {kinds(note['received'])}; deleted={note['deleted']} "
            f"enqueued={note['enqueued']} ignored: {kinds(note['ignored'])}; to stream mean={mean}")
    if row["notifications_last_error"]:
        line += f"\n  notification consumer error: {row['notifications_last_error']}"
    return line


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config_path: str, as_json: bool) -> None:
    """Per source: prefix, marker, objects done/failed, events emitted."""
    from pipeline.metrics import parts_status, redis_status, run_status_lines  # noqa: PLC0415

    runtime = Runtime(_open(config_path))
    rows = status_rows(runtime)
    streams = stream_lengths(runtime)
    redis_view, run_view = redis_status(runtime.state), parts_status(runtime.config.state_path)
    if as_json:
        click.echo(json.dumps({"sources": rows, "stream_length": sum(streams.values()), "streams": streams,
                               "redis": redis_view, "run": run_view}, indent=2))
        return
    for row in rows:
        health = row["health"]
        say(f"{row['source']}: s3://{row['bucket']} prefix={row['prefix']!r} marker={row['marker']!r}")
        if health["state"] == "failing":
            say(f"  health: FAILING since {health['since']}: {health['message']}")
        elif health["state"] == "degraded":
            say(f"  health: DEGRADED since {health['since']}: {health['denied_objects']} object(s) may not be "
                f"read (they wait): {health['message']}")
        else:
            say(f"  health: {health['state']} (last success {health['last_success'] or '-'})")
        if len(row["partitions"]) > 1:
            for partition, marker in sorted(row["partitions"].items()):
                say(f"  partition {partition}: marker {marker.rsplit('/', 1)[-1]!r}")
        click.echo(f"  objects enqueued={row['objects_enqueued']} done={row['objects_done']} "
                   f"failed={row['objects_failed']} pending={row['objects_pending']}  "
                   f"events emitted={row['events_emitted']}  empty records={row['records_empty']}")
        seconds = lambda value: "-" if value is None else f"{value:.0f}s"  # noqa: E731
        requests = ", ".join(f"{op}={n}" for op, n in sorted(row["s3_requests"].items())) or "none"
        progress = ("not discovered yet" if not row["discoveries"] and not row["last_discovery_at"]
                    else "caught up" if row["caught_up"] else "behind")
        click.echo(f"  {progress}: ingest lag="
                   f"{seconds(row['ingest_lag_seconds'])}, newest file delivered "
                   f"{seconds(row['newest_object_age_seconds'])} ago  discoveries={row['discoveries']} "
                   f"(last {row['last_discovery_seconds']:.2f}s)  throttle wait={row['throttle_wait_seconds']:.1f}s")
        click.echo(f"  S3 requests: {requests} (~${row['s3_estimated_cost_usd']:.4f})")
        if row["errors"]:
            click.echo("  errors: " + ", ".join(f"{name}={n}" for name, n in sorted(row["errors"].items())))
        if row["integrity_enabled"] or row["integrity_violations"]:
            violations = ", ".join(f"{k}={n}" for k, n in sorted(row["integrity_violations"].items())) or "none"
            click.echo(f"  integrity: digests verified={row['digests_verified']} found by digest="
                       f"{row['log_files_found_by_digest']} errors={row['integrity_errors']}  violations: "
                       f"{violations}")
        if runtime.config.source(row["source"]).sqs is not None:
            click.echo(f"  {notification_line(row)}")
    for name, length in streams.items():
        click.echo(f"stream {name}: {length} entries")
    for line in run_status_lines(redis_view, run_view):
        say(line)


@main.command()
@config_option
@click.option("--port", default=9808, show_default=True, help="Port to serve /metrics on.")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
def metrics(config_path: str, port: int, address: str) -> None:
    """Serve Prometheus metrics of every source at /metrics, read from the shared state."""
    from pipeline.metrics import serve, wait_forever  # noqa: PLC0415

    config = _open(config_path, serve_data=False)
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


@main.command()
@config_option
@click.option("-n", "count", default=10, show_default=True, help="How many events.")
@click.option("--raw", is_flag=True, help="Print each entry's fields as JSON.")
def tail(config_path: str, count: int, raw: bool) -> None:
    """Print the newest events from the stream."""
    runtime = Runtime(_open(config_path))
    entries = []
    for name in runtime.state.events_streams(configured_ids(runtime)):  # one per source with {source}
        entries += runtime.state.newest_entries(name, count)
    entries = sorted(entries, key=lambda entry: _entry_order(entry[0]))
    entries = entries[-count:] if count > 0 else entries
    for entry_id, fields in entries:
        if raw:
            click.echo(json.dumps({"id": entry_id.decode(),
                                   **{k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}}))
        else:
            say(format_event(fields))


def _entry_order(entry_id: bytes) -> tuple[int, ...]:
    return tuple(int(part) for part in entry_id.decode().split("-"))


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
@click.option("--workers", default=defaults.BACKFILL_WORKERS, show_default=True, help="Objects ingested at once.")
def backfill(config_path: str, identifier: str, since, until, workers: int) -> None:
    """Ingest a source's history from its date folders; safe beside the live schedule."""
    from pipeline.backfill import backfill as run_backfill  # noqa: PLC0415
    from pipeline.credentials import warm_up  # noqa: PLC0415
    from pipeline.runtime import tune_gc  # noqa: PLC0415

    warm_up()
    tune_gc()

    runtime = Runtime(_open(config_path, serve_data=False))
    source = runtime.config.source(identifier)
    last_day = (until or datetime.now(UTC)).date()
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
    config = _open(config_path, serve_data=False)
    from workers.app import configure, sync_schedule  # noqa: PLC0415

    configure(config)
    from pipeline.sqs_consumer import RUN_SECONDS  # noqa: PLC0415

    for name in sync_schedule():
        kind, identifier = name.split(":", 1)
        source = config.source(identifier)
        every = {"discover": format_duration(source.recurrence), "consume": f"{RUN_SECONDS}s"}.get(
            kind, f"{int(config.sweep_interval.total_seconds())}s")
        click.echo(f"{name}: every {every} on {source.queue_name}")


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
    runtime = Runtime(_open(config_path))
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
    config = _open(config_path, serve_data=False)
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


# -- verify: CloudTrail's digests against what trailpipe ingested ------------------------------


def _utc(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.UsageError(f"{option}: not an ISO 8601 time (such as 2026-11-01T08:00:00Z)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@main.command()
@config_option
@click.argument("identifier")
@click.option("--since", required=True, help="Start of the range, ISO 8601 (UTC unless it says).")
@click.option("--until", help="End of the range, ISO 8601 (default: now).")
@click.option("--public-keys", "public_keys", type=click.Path(file_okay=False, exists=True),
              help="Directory of CloudTrail public keys named by fingerprint (default: the source's "
                   "integrity.public_keys_dir, else CloudTrail ListPublicKeys).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify(config_path: str, identifier: str, since: str, until: str | None, public_keys: str | None,
           as_json: bool) -> None:
    """Prove a time range with CloudTrail's signed digests: every log file delivered was ingested,
    unaltered, once. Exit 0 only when everything in range is intact."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from pipeline.digests import public_keys_for  # noqa: PLC0415
    from pipeline.integrity import verify_range  # noqa: PLC0415

    runtime = Runtime(_load(config_path))
    try:
        source = runtime.config.source(identifier)
    except KeyError:
        raise click.UsageError(f"no source with identifier {identifier!r}") from None
    start, end = _utc(since, "--since"), _utc(until, "--until") or datetime.now(UTC)
    assert start is not None  # --since is required
    if start > end:
        raise click.UsageError("--since is after --until")
    try:
        report = verify_range(source, runtime.state, runtime.s3(source), public_keys_for(source, public_keys),
                              start, end)
    except (ClientError, BotoCoreError) as exc:
        click.echo(f"source {identifier!r}: verify failed: {exc} (reading the digests needs s3:ListBucket "
                   f"and s3:GetObject; ListPublicKeys needs cloudtrail:ListPublicKeys, or use --public-keys)",
                   err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for problem in report.problems:
            click.echo(f"{problem['kind']}  {problem['key']}\n  {problem['detail']}")
        d, f = report.as_dict()["digests"], report.as_dict()["log_files"]
        click.echo(f"digests: {d['valid']} valid, {d['invalid']} invalid, {d['missing']} missing")
        click.echo(f"log files: {f['listed']} listed, {f['ingested_intact']} ingested intact, "
                   f"{f['ingested_mismatch']} ingested with another hash, {f['not_ingested']} not ingested, "
                   f"{f['dead_lettered']} dead-lettered; {f['unlisted']} ingested but unlisted")
        for note in report.notes:
            click.echo(f"note: {note}")
        click.echo("intact" if report.intact else f"NOT intact: {len(report.problems)} problem(s)")
    sys.exit(0 if report.intact else 1)


def _start_child(command: list[str], env: dict[str, str], ready_file: Path) -> subprocess.Popen:
    # Its own process group: Ctrl-C reaches only the supervisor, which stops the parts in order;
    # and it gets SIGTERM should the supervisor be killed. It writes its pid to ready_file once up.
    ready_file.unlink(missing_ok=True)
    return subprocess.Popen(command, env=dict(env, TRAILPIPE_READY_FILE=str(ready_file)),
                            start_new_session=True, preexec_fn=die_with_parent)


def _wrote_ready(ready_file: Path) -> Callable[[subprocess.Popen], bool]:
    def ready(process: subprocess.Popen) -> bool:
        try:
            return ready_file.read_text().strip() == str(process.pid)
        except OSError:
            return False

    return ready


def _redis_answers(url: Callable[[], str], sentinel_password: str | None = None) -> Callable[[], bool]:
    import redis  # noqa: PLC0415

    from pipeline.connections import redis_client  # noqa: PLC0415
    from pipeline.store import ping  # noqa: PLC0415

    def answers() -> bool:
        try:
            with redis_client(url(), sentinel_password, quick=True) as client:  # through Sentinels too
                return ping(client)
        except (redis.RedisError, ConfigError, OSError, ValueError):
            return False

    return answers


@main.command()
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

    config = _load(config_path)
    state_dir = config.state_path
    env = dict(os.environ, TRAILPIPE_CONFIG=str(Path(config_path).resolve()),
               TRAILPIPE_STATE_DIR=str(state_dir.resolve()))
    say = lambda text: click.echo(f"trailpipe run: {escape_controls(text)}", err=True)  # noqa: E731
    try:
        lock = RunLock(state_dir).acquire()
    except AlreadyRunning as exc:
        say(str(exc))
        sys.exit(2)
    parts = []
    embedded = None
    if config.uses_embedded_redis:
        embedded = EmbeddedRedis(state_dir)
        parts.append(Part("redis-server", embedded.spawn, lambda _process: embedded.stop(),
                          ready=lambda _process: embedded.answers(),
                          hint=f"see {embedded.folder}/redis.log; TRAILPIPE_REDIS_SERVER names the binary"))
        say(f"embedded redis-server on 127.0.0.1:{embedded.server.port} (password in "
            f"{embedded.folder}/password), data in {embedded.folder} (AOF on)")
    else:
        persists, text = redis_check(config)
        say(text if persists else f"WARNING: {text}")
    stop_celery = lambda process: stop_process(process, timeout=45)  # noqa: E731  (soft shutdown: 30 s)
    redis_up = _redis_answers(lambda: embedded.url if embedded is not None else config.redis_url_value(),
                              config.sentinel_password_value())
    beat_schedule = str(state_dir / "celerybeat-schedule")
    workers = [(f"worker-{n}" if n > 1 else "worker",
                ("worker", "--pool", defaults.WORKER_POOL, "--concurrency", str(concurrency), "--loglevel", loglevel,
                 "--hostname", f"worker{n}@%h")) for n in range(1, max(1, processes) + 1)]
    for name, args in (*workers, ("beat", ("beat", "--loglevel", loglevel, "--schedule", beat_schedule))):
        ready_file = state_dir / f"ready-{name}"
        parts.append(Part(name, functools.partial(_start_child, celery_command(*args), env, ready_file),
                          stop_celery, wait_for=redis_up, ready=_wrote_ready(ready_file),
                          hint="its own log lines above say why (the config, the broker_url, the Python environment)"))
    try:
        code = Supervisor(parts, say=say, state_dir=state_dir).run()
    finally:
        lock.release()
    sys.exit(code)


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """The benchmark: floor, naive collector and trailpipe on the same data (--help for options)."""
    script = Path(__file__).resolve().parents[1] / "ops" / "bench" / "run.py"
    if not script.is_file():
        raise click.ClickException("the benchmark lives in the source tree (ops/bench/run.py): "
                                   "run it from a clone of the repository")
    sys.exit(subprocess.call([sys.executable, str(script), *args]))


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
