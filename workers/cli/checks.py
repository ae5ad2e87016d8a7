"""Commands that look without changing anything: validate, check, verify, certificates acquire
(which writes only its pin file)."""
from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.logs import escape_controls
from pipeline.runtime import Runtime
from workers.cli.common import config_option, load_or_exit
from workers.cli.render import say, show_check, show_verify


@click.command()
@config_option
def validate(config_path: str) -> None:
    """Check a config file: exit 0 if good, else one line per problem."""
    config = load_or_exit(config_path)
    click.echo(f"{config_path}: OK, {len(config.sources)} source(s): "
               + ", ".join(s.identifier for s in config.sources))


@click.command()
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
        show_check(source, result)
        failed += not result.ok
    sys.exit(1 if failed else 0)


def _utc(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.UsageError(f"{option}: not an ISO 8601 time (such as 2026-11-01T08:00:00Z)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@click.command()
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

    runtime = Runtime(load_or_exit(config_path))
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
        show_verify(report)
    sys.exit(0 if report.intact else 1)


@click.group()
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

    config = load_or_exit(config_path)
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
