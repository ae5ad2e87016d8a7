"""Every default value of trailpipe, in one place.

The config model (``pipeline.config``) declares its fields with these, and only it: every other
class takes its values from the loaded config, through ``pipeline.settings.Settings`` (the
stores, the ingest and parse limits), so a default can never differ between the file and the
code (``tests/test_config.py`` checks that no value here is written again elsewhere).

Durations are ``timedelta`` here and in the loaded config (typed once, at load); they become
seconds or milliseconds only where they are handed to Redis or Celery.
"""
from __future__ import annotations

from datetime import timedelta

# -- per source ------------------------------------------------------------------------------
RECURRENCE = timedelta(minutes=15)
LOOKBACK = timedelta(hours=2)
IGNORE_OLDER: timedelta | None = None  # a new or reset source ingests everything (as QRadar does)
EPS_THROTTLE = 5000
MAX_OBJECT_BYTES = 1 << 30  # compressed size as S3 reports it
# Hostile input: what one object may inflate to, what one record may be (CloudTrail records
# are a few KiB; the service's own limit is far below this), and how many records one object
# may hold (CloudTrail files hold a few thousand at most).
MAX_UNCOMPRESSED_BYTES = 1 << 30
MAX_RECORD_BYTES = 4 << 20
MAX_RECORDS_PER_OBJECT = 1_000_000
# The most bytes of one MessagePack argument of commit_batch.lua (a larger batch goes in several):
# no more than one record's value could be as an argument of its own before (Redis refuses one
# over its proto-max-bulk-len).
COMMIT_CHUNK_BYTES = MAX_RECORD_BYTES
# An object the source's identity may not read while its other objects are read (one account's
# KMS key in an organization trail) waits this long, then is dead-lettered with the reason.
DENIED_OBJECT_TIMEOUT = timedelta(days=1)

# -- shared ----------------------------------------------------------------------------------
KEY_PREFIX = "trailpipe"  # every Redis key starts with it
STREAM = "trailpipe:events"  # may hold {source}: one stream per source, keys hash-tagged
DEADLETTER_STREAM = "trailpipe:deadletter"
BATCH_SIZE = 500
# A batch also ends once its records' raw bytes reach this: one commit stays far below what Redis
# takes in one command (client-query-buffer-limit, 1 GB by default), whatever the records' sizes:
# batch_size records of up to MAX_RECORD_BYTES (a hostile object) could pass it, and the object
# would be retried without end as a lost connection.
BATCH_MAX_BYTES = 16 << 20
# How long a done object is remembered (at least each source's lookback plus RETENTION_MARGIN,
# as only keys inside the lookback window are listed again).
STATE_RETENTION = timedelta(days=1)
# The listing never reaches back to keys about to be forgotten: it stops this much inside the
# retention (``pipeline.store.StoreSettings.forget_horizon``).
RETENTION_MARGIN = timedelta(hours=1)
REQUEUE_AFTER = timedelta(minutes=15)  # re-enqueue claims no worker has started by then
# Fast failover: a runner beats every HEARTBEAT_TIMEOUT/4; silent this long (its process or host
# died), its object is enqueued again by the sweep, which runs every SWEEP_INTERVAL.
HEARTBEAT_TIMEOUT = timedelta(seconds=60)
SWEEP_INTERVAL = timedelta(seconds=30)
STATE_DIR = ".trailpipe"  # `trailpipe run`'s folder: the embedded Redis, its password, the lock
MAX_ATTEMPTS = 5  # deliveries of one object whose worker died mid-way
VISIBILITY_TIMEOUT = timedelta(hours=2)  # longer than the longest task
DEADLETTER_MAXLEN = 100_000  # dead letters kept; the oldest are dropped (and forgotten) first
BACKPRESSURE_MAX_WAIT = timedelta(seconds=60)  # then the object is released for a later retry
# wait_replicas: how long each batch waits for its replicas (Redis WAIT) before going on, counted.
WAIT_REPLICAS_TIMEOUT = timedelta(seconds=1)
# RabbitMQ as the broker (broker_url amqp://…): the source queues are quorum queues (replicated,
# Celery's highly available broker); false keeps classic queues.
QUORUM_QUEUES = True

# -- worker processes ------------------------------------------------------------------------
# Each worker process holds many objects in flight: S3 answers a request after tens of
# milliseconds, which threads wait out side by side (Celery's threads pool), while the CPU work
# of all of them shares the process. `trailpipe run` starts one such process per core.
WORKER_POOL = "threads"
WORKER_CONCURRENCY = 32  # objects in flight per worker process
BACKFILL_WORKERS = 32  # objects in flight in `trailpipe backfill`
# Ingest tasks a discovery publishes in one broker round trip (kombu's Producer.batch, a Redis
# pipeline); it also sends what it holds at the end of each listed page.
ENQUEUE_BATCH = 500
# Threads of a process parsing a batch (and making its entries) at once, whatever the objects in
# flight: 32 large objects parsed side by side in one process cost 30% more CPU per event.
CPU_SLOTS_PER_PROCESS = 2
# The cyclic garbage collector of a worker or backfill process (gc.set_threshold): with dozens
# of objects in flight, each holding its batch's records, Python's default (700, 10, 10) makes
# the collector walk them all again and again: 25% of the CPU per event of large files. The
# pipeline's data is freed by reference counting; cycles still get collected, less often.
GC_THRESHOLDS = (100_000, 50, 1000)
# Connections each S3 client keeps (one client per source and process): at least the objects in
# flight, or requests wait for a connection (or open one, and drop it after).
S3_POOL_CONNECTIONS = 128
# Stream entry fields (`stream_fields`): what each entry carries beside the output_formats.
STREAM_FIELDS = ("event", "event_id", "event_name", "event_time", "source", "object", "account", "region",
                 "display_name", "category")
