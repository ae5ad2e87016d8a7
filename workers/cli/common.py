"""What the commands share: the ``-c/--config`` option, loading the config (and reaching its
Redis), and the group that turns expected failures into one line (printing is ``render``'s)."""
from __future__ import annotations

import sys

import click

from pipeline.config import Config, load_config
from pipeline.errors import ConfigError
from pipeline.logs import escape_controls
from workers.console import explain


def load_or_exit(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(2)


def open_config(path: str, serve_data: bool = True) -> Config:
    """The config, with its Redis reachable for this command (the embedded one included).
    ``serve_data=False`` for long-running or writing commands: they need a running ``run``
    (serving its data themselves would hold the run lock and keep ``run`` from starting)."""
    from pipeline.embedded import reachable  # noqa: PLC0415

    config = load_or_exit(path)
    click.get_current_context().with_resource(reachable(config, serve_data))
    return config


config_option = click.option("-c", "--config", "config_path", required=True,
                             type=click.Path(dir_okay=False), envvar="TRAILPIPE_CONFIG",
                             help="The YAML config file (or TRAILPIPE_CONFIG).")


class TrailpipeGroup(click.Group):
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
