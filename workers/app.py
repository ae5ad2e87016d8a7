"""The Celery app: ``celery -A workers.app worker|beat|flower``, configured by the YAML file
named in ``TRAILPIPE_CONFIG``.

Reliability settings: a task is acknowledged only after it ran (``acks_late``), a task whose
worker process died is redelivered (``task_reject_on_worker_lost``, prefork; the sweep enqueues
the objects of a dead process again in any pool), a worker takes one task per thread or process
at a time (prefetch 1 × concurrency), and the broker's ``visibility_timeout`` (config
``visibility_timeout_seconds``) is longer than the longest task (the hard time limit is set
below it), so a running task is never handed to a second worker.

Pool: ``trailpipe run``, the systemd unit and compose start workers with Celery's threads pool,
``--pool threads --concurrency 32`` (``pipeline.defaults.WORKER_POOL``/``WORKER_CONCURRENCY``):
32 objects in flight per process, each waiting tens of milliseconds for S3's first byte beside
the others while their CPU work shares the process; one such process per core. The app does
not set ``worker_pool`` itself: Celery would then ignore an explicit ``--pool prefork`` (its
CLI takes prefork for its own default), and a bare ``celery worker`` keeps Celery's defaults
(prefork, one child per core: one object per child). With RabbitMQ as the broker
(``broker_url: amqp://…``) see ``amqp_broker_settings``: quorum queues, and the ingest task
acknowledged at its start, as RabbitMQ's ``consumer_timeout`` takes the visibility timeout's place.
"""
from __future__ import annotations

import os
import ssl
import sys
from datetime import timedelta

from celery import Celery, signals
from kombu import Exchange, Queue

from pipeline.config import Config, load_config
from pipeline.connections import SCHEMES, parse_url
from pipeline.errors import ConfigError
from pipeline.logs import use_escaping, use_json
from pipeline.sqs_consumer import RUN_SECONDS, queue_owners
from pipeline.store.schema import Keys
from workers.launch import READY_FILE_ENV  # set by `trailpipe run` and `demo` for each of their Celery parts

CONFIG_ENV = "TRAILPIPE_CONFIG"


class TrailpipeCelery(Celery):
    def send_task(self, name, args=None, kwargs=None, countdown=None, *rest, **options):
        """With a RabbitMQ broker, a countdown under a second (the full-jitter backoff of a first
        retry) is rounded up to one: native delayed delivery counts whole seconds and kombu's
        ``calculate_routing_key`` raises ``ValueError`` on ``int(countdown) == 0``, which would
        fail the retry (seen with Celery 5.7 / kombu 5.7 on quorum queues)."""
        config = getattr(self, "trailpipe_config", None)
        if countdown is not None and 0 < countdown < 1 and config is not None and config.broker_is_amqp:
            countdown = 1
        return super().send_task(name, args, kwargs, countdown, *rest, **options)


app = TrailpipeCelery("trailpipe", include=["workers.tasks"])
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    result_expires=None,  # no result backend: no celery.backend_cleanup entry in the schedule
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,  # a Redis restart is waited out, not fatal
    # A demoted primary's READONLY, or UNBLOCKED on a blocking pop, is a channel error: retried
    # like a lost connection, not an end of the worker (celery#6348, #7946).
    broker_channel_error_retry=True,
    # Tasks in flight go on through a broker reconnection (a failover): their objects' own
    # commits decide, and a message left unacked comes back after the visibility timeout to
    # find its object done.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    worker_soft_shutdown_timeout=30,  # on SIGTERM, running tasks get this long to finish
    worker_enable_soft_shutdown_on_idle=True,
    # No task events unless asked for: three PUBLISH round trips per task (received, started,
    # succeeded), ~0.3 ms of a worker's CPU per small object (issue 22, py-spy). Flower asks for
    # them while it runs (its --enable_events, on by default: enable_events every 5 s);
    # `celery -A workers.app control enable_events` does the same by hand.
    worker_send_task_events=False,
    # No task-sent event: one broker round trip less per object enqueued (~40% of an enqueue's
    # CPU); Flower shows each task from the moment a worker receives it.
    task_send_sent_event=False,
    worker_hijack_root_logger=True,
    enable_utc=True,
    # HA beat: celery-redbeat keeps the schedule in Redis behind a lock, so any number of beat
    # processes may run; one schedules, the others wait to take over.
    # workers.beat.Scheduler: redbeat, surviving a Redis outage or failover (beat never exits on one).
    beat_scheduler="workers.beat:Scheduler",
    beat_max_loop_interval=30,
    redbeat_lock_timeout=60,  # a dead beat's lock expires after this (2 loops); a standby then takes over
)


def _reuse_kombu_redis_clients() -> None:
    """kombu's Redis channel builds a new ``redis.Redis`` for each publish, acknowledgement and
    unacked-message bookkeeping (``conn_or_acquire``): ~0.1 ms of CPU each with redis-py 8
    (its response-callback table), several per task. One client per channel and connection
    pool does the same (a client is safe to share between threads; its pool hands out the
    connections); a new pool (after a reconnection) gets a new client."""
    from kombu.transport import redis as kombu_redis  # noqa: PLC0415

    channel = kombu_redis.Channel
    if getattr(channel, "trailpipe_reuses_clients", False):
        return
    create = channel._create_client  # noqa: SLF001

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return create(self, asynchronous=True)
        pool = self.pool
        cached = self.__dict__.get("_trailpipe_client")
        if cached is None or cached[0] is not pool:
            cached = self.__dict__["_trailpipe_client"] = (pool, create(self))
        return cached[1]

    setattr(channel, "_create_client", _create_client)  # noqa: B010
    setattr(channel, "trailpipe_reuses_clients", True)  # noqa: B010


_reuse_kombu_redis_clients()


def beat_schedule(config: Config) -> dict:
    """Per source: its discovery at its recurrence. The sweep, which re-enqueues objects whose
    runner died, is no schedule entry: one loop in beat's process sweeps every source every
    ``sweep_interval_seconds`` (``_start_sweeper``, pipeline.sweeper)."""
    schedule = {}
    for source in config.sources:
        schedule[f"discover:{source.identifier}"] = {
            "task": "trailpipe.discover",
            "schedule": source.recurrence,
            "args": (source.identifier,),
            "options": {"queue": source.queue_name},
        }
    # Notification consumers: one run per SQS queue, back to back; a run not started within
    # its interval (a backlogged queue) expires instead of piling up behind the next ones.
    for owner in queue_owners(config):
        schedule[f"consume:{owner.identifier}"] = {
            "task": "trailpipe.consume_notifications",
            "schedule": timedelta(seconds=RUN_SECONDS),
            "args": (owner.identifier,),
            "options": {"queue": owner.queue_name, "expires": RUN_SECONDS},
        }
    return schedule


def redbeat_connection(url: str, sentinel_password: str | None = None) -> tuple[str, dict]:
    """``redbeat_redis_url`` and ``redbeat_redis_options`` for a Redis URL, the credentials moved
    out of the URL: a worker reports its configuration (``celery inspect conf``, Flower) with
    ``*pass*`` keys masked, but ``redbeat_redis_url`` in the clear (pipeline.connections)."""
    redbeat_url, options, _ = parse_url(url).redbeat(sentinel_password)
    return redbeat_url, options


def _redis_broker(url: str, sentinel_password: str | None) -> tuple[str, dict, dict | None]:
    """A Redis broker (one server or Sentinel) through the connection factory; another broker as it is."""
    if url.partition("://")[0].lower() in SCHEMES:
        return parse_url(url).broker(sentinel_password)
    return url, {}, None


# -- RabbitMQ as the broker (broker_url amqp://…) ---------------------------------------------
INGEST_TASK = "trailpipe.ingest_object"


def amqp_broker_settings(config: Config, queues: list[str]) -> dict:
    """Celery settings for a RabbitMQ broker, over those of ``configure``.

    - The source queues are quorum queues (``quorum_queues``, default on): replicated, and
      Celery (≥ 5.5) then turns global QoS off (prefetch is per consumer, still 1 per process).
      Each queue has a topic exchange of its name, so that a countdown (a retry's backoff) goes
      through kombu's native delayed delivery (``celery_delayed_*`` exchanges and queues, bound
      by the worker at start) instead of being held unacknowledged by a worker: quorum queues
      have no global QoS to let a worker take more while it holds ETA tasks.
    - Publisher confirms: an enqueued object is on the queue (on a quorum majority) when the
      publish returns.
    - A channel the broker closes is reconnected, not a worker exit: RabbitMQ closes a
      consumer's channel that holds an unacknowledged message longer than its
      ``consumer_timeout`` (30 min by default; Celery otherwise stops on that
      PRECONDITION_FAILED); the deliveries of that channel not started yet go back to the
      queue and are delivered again, to this worker or another.
    - ``trailpipe.ingest_object`` is acknowledged when a worker process starts it, not after it
      ran: an object may take longer than ``consumer_timeout`` (a large file at a low
      ``eps_throttle``). Losing nothing does not need the message: the object's state in Redis
      does it (claimed objects are in the pending set, a runner beats while it works, the sweep
      enqueues again an object whose runner went silent, and the checkpoint resumes it after
      its last committed batch). The other tasks keep ``acks_late`` (they are short; a
      redelivered discovery takes over its own lease).
    """
    arguments = {"x-queue-type": "quorum"} if config.quorum_queues else None
    tls = config.broker_url_value().lower().startswith("amqps://")
    return {
        # amqps://: the server's chain (system CAs) and its name (kombu fills in the URL's host
        # for server_hostname None), which py-amqp leaves unchecked without a server_hostname.
        "broker_use_ssl": {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None} if tls else None,
        "task_queues": [Queue(name, Exchange(name, type="topic"), routing_key=name, queue_arguments=arguments)
                        for name in queues],
        "broker_transport_options": {"confirm_publish": True},
        "broker_channel_error_retry": True,
        "task_annotations": {INGEST_TASK: {"acks_late": False}},
    }


def configure(config: Config) -> None:
    """Point the app at the config's broker, queues and schedule."""
    queues = sorted({source.queue_name for source in config.sources})
    sentinel_password = config.sentinel_password_value()
    redbeat_url, redbeat_options, redbeat_ssl = parse_url(config.redis_url_value()).redbeat(sentinel_password)
    broker_url, broker_options, broker_ssl = _redis_broker(config.broker_url_value(), sentinel_password)
    visibility = int(config.visibility_timeout.total_seconds())  # Celery's settings are in seconds
    app.conf.update(
        broker_url=broker_url,
        broker_use_ssl=broker_ssl,  # verify the server on rediss:// URLs
        # Sentinel: master_name and the Sentinels' own settings (their password masked by Celery).
        broker_transport_options={"visibility_timeout": visibility, **broker_options},
        task_time_limit=max(30, visibility - 60),
        task_soft_time_limit=max(20, visibility - 120),
        task_queues=[Queue(name) for name in queues],  # a worker without -Q serves them all
        task_default_queue=queues[0],
        beat_schedule=beat_schedule(config),
        redbeat_redis_url=redbeat_url,
        redbeat_redis_use_ssl=redbeat_ssl,
        redbeat_redis_options=redbeat_options,  # the password under a key Celery masks
        # P:redbeat: (P:{global}:redbeat: with {source} streams: one slot of a cluster).
        redbeat_key_prefix=Keys(config.key_prefix, config.stream, config.deadletter_stream).redbeat_prefix(),
    )
    if config.broker_is_amqp:
        app.conf.update(amqp_broker_settings(config, queues))
    else:  # a Redis broker: Celery's defaults for what only RabbitMQ sets; channel errors retried
        # (a demoted primary's READONLY, UNBLOCKED: celery#6348, #7946)
        app.conf.update(broker_channel_error_retry=True, task_annotations=None)
    app.trailpipe_config = config


def sync_schedule() -> list[str]:
    """Write the config's schedule to Redis now (as a beat does at start): entries of new or
    re-timed sources are saved, those of removed sources deleted. Returns the entry names."""
    from workers.beat import Scheduler  # noqa: PLC0415

    scheduler = Scheduler(app=app, lazy=True)
    scheduler.setup_schedule()
    return sorted(app.conf.beat_schedule)


def current_config() -> Config:
    config = getattr(app, "trailpipe_config", None)
    if config is None:
        raise RuntimeError(f"trailpipe is not configured: set {CONFIG_ENV} to the config file")
    return config


def _is_celery_command() -> bool:
    """``celery -A workers.app worker|beat|flower ...`` (not an import by the CLI or the tests)."""
    if not sys.argv or "--help" in sys.argv or "-h" in sys.argv:
        return False  # asking how to use it needs no config
    return os.path.basename(sys.argv[0]) == "celery" or sys.argv[0].endswith(os.path.join("celery", "__main__.py"))


if os.environ.get(CONFIG_ENV):
    try:
        configure(load_config(os.environ[CONFIG_ENV]))
    except ConfigError as exc:
        if not _is_celery_command():
            raise
        sys.exit("trailpipe: " + "; ".join(exc.problems))
elif _is_celery_command():
    # Without it Celery would start against amqp://localhost and beat crash later: say why now.
    sys.exit(f"trailpipe: {CONFIG_ENV} is not set: set it to the config file "
             f"({CONFIG_ENV}=/etc/trailpipe/trailpipe.yaml celery -A workers.app worker)")


def _discover_all_now(**_):
    """A source is discovered once when the schedule starts, not only after its first interval."""
    for source in current_config().sources:
        app.send_task("trailpipe.discover", args=(source.identifier,), queue=source.queue_name)
    for owner in queue_owners(current_config()):  # notifications: consumed from the start too
        app.send_task("trailpipe.consume_notifications", args=(owner.identifier,), queue=owner.queue_name,
                      expires=RUN_SECONDS)


def _json_logs(logger=None, **_):
    """TRAILPIPE_LOG_FORMAT=json: every log line of worker and beat as one JSON object."""
    if os.environ.get("TRAILPIPE_LOG_FORMAT", "").lower() == "json" and logger is not None:
        use_json(logger)


def _escape_logs(logger=None, **_):
    """Control characters in messages (S3 keys, reasons) are escaped: no forged lines, no
    terminal escape sequences (JSON logs escape them too)."""
    if logger is not None:
        use_escaping(logger)


def _say_ready(**_):
    """Under `trailpipe run`: tell the supervisor this part is up (it wrote its pid)."""
    path = os.environ.get(READY_FILE_ENV)
    if path:
        with open(path, "w") as out:
            out.write(str(os.getpid()))


def _watch_state(role: str):
    """Worker (main process) and beat: say how Redis persists, and watch for a state reset."""
    def start(**_):
        from pipeline.runtime import Runtime  # noqa: PLC0415
        from pipeline.state_watch import StateWatch, process_name  # noqa: PLC0415

        config = current_config()
        runtime = Runtime(config)
        StateWatch(runtime.redis, runtime.keys, process_name(role), config.sweep_interval.total_seconds(),
                   on_reset=_after_reset if role == "beat" else None).start()

    return start


def _start_sweeper(**_):
    """Beat (standalone or embedded in a worker): one loop sweeps every source every
    ``sweep_interval_seconds`` and enqueues their overdue objects (pipeline.sweeper)."""
    from pipeline.runtime import Runtime  # noqa: PLC0415
    from pipeline.sweeper import Sweeper, sweep_all  # noqa: PLC0415

    config = current_config()
    runtime = Runtime(config)
    queues = {source.identifier: source.queue_name for source in config.sources}

    def enqueue(source_id: str, key: str) -> None:
        app.send_task(INGEST_TASK, args=(source_id, key), queue=queues[source_id])

    Sweeper(lambda: sweep_all(config.sources, runtime.state, enqueue), config.sweep_interval.total_seconds()).start()


def _after_reset() -> None:
    """Beat after a state reset: the schedule was lost with the rest; write it again, and
    discover every source now (each lists from its ignore_older, or from the top)."""
    sync_schedule()
    _discover_all_now()


def _warm_up(**_):
    """At worker start (before prefork's children fork): S3's model loaded once, not by the first
    tasks; then the garbage collector tuned for many objects in flight (pipeline.runtime.tune_gc)."""
    from pipeline.credentials import warm_up  # noqa: PLC0415
    from pipeline.runtime import tune_gc  # noqa: PLC0415

    warm_up()
    tune_gc()


signals.worker_init.connect(_warm_up, weak=False)
signals.worker_ready.connect(_say_ready, weak=False)
signals.worker_ready.connect(_watch_state("worker"), weak=False)
signals.beat_init.connect(_say_ready, weak=False)
signals.beat_init.connect(_watch_state("beat"), weak=False)
signals.after_setup_logger.connect(_escape_logs, weak=False)
signals.after_setup_task_logger.connect(_escape_logs, weak=False)
signals.after_setup_logger.connect(_json_logs, weak=False)
signals.after_setup_task_logger.connect(_json_logs, weak=False)
signals.beat_init.connect(_discover_all_now, weak=False)
signals.beat_init.connect(_start_sweeper, weak=False)
signals.beat_embedded_init.connect(_start_sweeper, weak=False)
signals.beat_embedded_init.connect(_discover_all_now, weak=False)
