"""How every Celery process of trailpipe is started: one command line (``celery_command``), used
by ``trailpipe run``, ``trailpipe demo``, the tests and the benchmark; and the supervisor's parts
for them (``celery_part``: own process group, dies with its parent, ready once it wrote its pid).
"""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from pipeline.embedded import EmbeddedRedis
from pipeline.errors import ConfigError
from pipeline.processes import die_with_parent, stop_process
from pipeline.supervisor import Part

CELERY_APP = "workers.app"
READY_FILE_ENV = "TRAILPIPE_READY_FILE"  # workers.app writes the process's pid there once it is up
CELERY_STOP_SECONDS = 45  # Celery's soft shutdown takes up to 30 s


def celery_command(*args: str, python: str | None = None) -> list[str]:
    """``python -m celery -A workers.app ARGS``, with this interpreter unless told."""
    return [python or sys.executable, "-m", "celery", "-A", CELERY_APP, *args]


def start_child(command: list[str], env: dict[str, str], ready_file: Path,
                output: IO[bytes] | None = None) -> subprocess.Popen:
    """Start a supervised part. Its own process group: Ctrl-C reaches only the supervisor, which
    stops the parts in order; and it gets SIGTERM should the supervisor be killed. It writes its
    pid to ready_file once up. ``output``: where its stdout and stderr go (default: ours)."""
    ready_file.unlink(missing_ok=True)
    return subprocess.Popen(command, env=dict(env, **{READY_FILE_ENV: str(ready_file)}),
                            stdout=output, stderr=subprocess.STDOUT if output is not None else None,
                            start_new_session=True, preexec_fn=die_with_parent)


def wrote_ready(ready_file: Path) -> Callable[[subprocess.Popen], bool]:
    def ready(process: subprocess.Popen) -> bool:
        try:
            return ready_file.read_text().strip() == str(process.pid)
        except OSError:
            return False

    return ready


def redis_answers(url: Callable[[], str], sentinel_password: str | None = None) -> Callable[[], bool]:
    """Whether the Redis at ``url()`` answers a PING (through Sentinels too)."""
    import redis  # noqa: PLC0415

    from pipeline.connections import redis_client  # noqa: PLC0415
    from pipeline.store import ping  # noqa: PLC0415

    def answers() -> bool:
        try:
            with redis_client(url(), sentinel_password, quick=True) as client:
                return ping(client)
        except (redis.RedisError, ConfigError, OSError, ValueError):
            return False

    return answers


def celery_part(name: str, args: tuple[str, ...], env: dict[str, str], state_dir: Path, *,
                wait_for: Callable[[], bool] | None = None, stop_seconds: float = CELERY_STOP_SECONDS,
                output: IO[bytes] | None = None,
                hint: str = "its own log lines above say why (the config, the broker_url, the Python environment)",
                ) -> Part:
    """A Celery process (``worker ...``, ``beat ...``) as a supervisor's part, ready once it wrote
    its pid to ``state_dir/ready-NAME``."""
    ready_file = state_dir / f"ready-{name}"
    return Part(name, lambda: start_child(celery_command(*args), env, ready_file, output),
                lambda process: stop_process(process, timeout=stop_seconds), wait_for=wait_for,
                ready=wrote_ready(ready_file), hint=hint)


def embedded_redis_part(embedded: EmbeddedRedis) -> Part:
    """The embedded redis-server (``trailpipe run`` without redis_url, ``trailpipe demo``) as a
    part: ready once it answers (a restart loading a long AOF keeps nothing else waiting)."""
    return Part("redis-server", embedded.spawn, lambda _process: embedded.stop(),
                ready=lambda _process: embedded.answers(),
                hint=f"see {embedded.folder}/redis.log; TRAILPIPE_REDIS_SERVER names the binary")
