"""How the commands print: text that may hold what others wrote (escaped), a source's status,
a check's steps, a verify report, the backfill's progress bar."""
from __future__ import annotations

import json
import time

import click

from pipeline.logs import escape_controls
from workers.console import format_event

__all__ = ["format_event", "notification_line", "progress_printer", "say", "show_check", "show_status_row",
           "show_verify"]


def say(text: str, **kwargs) -> None:
    """Print text that may hold S3 keys or record fields (anyone who writes to the bucket
    chooses them): control characters escaped, so nothing reaches the terminal raw."""
    click.echo(escape_controls(text), **kwargs)


def show_status_row(row: dict, notifications: bool) -> None:
    """One source of ``trailpipe status`` (``notifications``: it has an SQS queue)."""
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
    if notifications:
        click.echo(f"  {notification_line(row)}")


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


def show_check(source, result) -> None:
    """One source's ``trailpipe check`` steps, its sample event and verdict."""
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


def show_verify(report) -> None:
    """``trailpipe verify``'s report as text."""
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


def progress_printer(stream_is_tty: bool):
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
