"""The settings every part of the pipeline runs with, derived from the config once:
``Settings.of(config)``. Durations are the config's timedeltas (typed at load); the stores turn
them into the seconds and milliseconds Redis takes (``StateStore``), the Celery app into its
own (``workers.app.configure``). The defaults are the config's (``pipeline.defaults``), also
for the code that runs without a config (``Settings.default()``): no default is written twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pipeline.config import Config, declared_defaults
from pipeline.ingest import IngestLimits
from pipeline.store import StoreSettings
from pipeline.store.schema import Keys


@dataclass(frozen=True)
class Settings:
    """The shared settings of the config, grouped by who takes them."""

    keys: Keys  # key_prefix, stream, deadletter_stream
    store: StoreSettings  # the StateStore's
    ingest: IngestLimits  # the object processor's (a source's own caps: ParseLimits.of(source))
    sweep_interval: timedelta  # the sweep loop and the state watch
    visibility_timeout: timedelta  # the broker's; the task time limits are set below it

    @classmethod
    def of(cls, config: Config) -> Settings:
        return cls(
            keys=Keys(config.key_prefix, config.stream, config.deadletter_stream),
            store=StoreSettings(
                retention=config.state_retention,
                requeue_after=config.requeue_after,
                heartbeat_timeout=config.heartbeat_timeout,
                stream_maxlen=config.stream_maxlen,
                deadletter_maxlen=config.deadletter_maxlen,
                wait_replicas=config.wait_replicas,
            ),
            ingest=IngestLimits.of(config),
            sweep_interval=config.sweep_interval,
            visibility_timeout=config.visibility_timeout,
        )

    @classmethod
    def default(cls) -> Settings:
        """The settings of a config that sets none of them (tests, tools without a config)."""
        return cls.of(declared_defaults(Config))
