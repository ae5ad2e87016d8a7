"""The ``trailpipe`` command: validate, check, verify, discover, backfill, run, demo, status,
metrics, tail, deadletter, schedule, certificates, bench.

One module per command group: ``checks`` (validate, check, verify, certificates: they change
nothing), ``inspect`` (status, metrics, tail, deadletter: the shared state), ``ingest`` (discover,
backfill, schedule: work for the fleet), ``run`` (run, demo, bench: processes); ``common`` holds
the options and helpers they share, ``render`` how they print.
"""
from __future__ import annotations

import click

from workers.cli import checks, ingest, inspect, run
from workers.cli.common import TrailpipeGroup
from workers.cli.inspect import status_rows

__all__ = ["main", "status_rows"]


@click.group(cls=TrailpipeGroup)
def main() -> None:
    """trailpipe: AWS CloudTrail logs from S3 into a Redis stream, on Celery."""


for command in (checks.validate, checks.check, checks.verify, checks.certificates,
                inspect.status, inspect.metrics, inspect.tail, inspect.deadletter,
                ingest.discover, ingest.backfill, ingest.schedule,
                run.run, run.demo, run.bench):
    main.add_command(command)
