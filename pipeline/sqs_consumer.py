"""The notification consumer: S3 events from a source's SQS queue, each object claimed and
enqueued exactly as discovery does; the listing keeps running as reconciliation.

One run (``consume``) long-polls the queue for ``RUN_SECONDS``; Celery beat starts one run per
queue every ``RUN_SECONDS`` (``trailpipe.consume_notifications``), so a queue is polled about
continuously by the fleet and a killed run is simply replaced by the next one.

Per message, in this order (the order is the invariant):
  1. parse the body (pipeline.notifications): every (bucket, key) it announces; a message sent
     longer ago than state_retention - 1H is ignored ("too_old"): its objects' records may have
     expired, so a claim could ingest them twice (the listing never reaches back that far either);
  2. keep the keys of a source on this queue: its bucket, under its prefix, and
     lister.is_wanted (file pattern, no digest, not empty);
  3. claim them (StateStore.claim_many, as discovery does): a key already claimed, by the
     listing or an earlier notification, is skipped, so a duplicate notification is harmless;
  4. enqueue one ingest per new claim;
  5. only then delete the message. A claim whose enqueue was lost stays in the source's
     pending set, which the sweep (discovery, and the sweep task) enqueues again.
A message whose step 3 or 4 failed (Redis or the broker away) is not deleted: it comes back
after its visibility timeout, and after the queue's maxReceiveCount its redrive policy moves it
to the dead-letter queue. The consumer never deletes a message for having been received N
times. Test events, unparseable bodies and events of no interest are deleted and counted: they
never dead-letter an object and never fail the run.

While a message is held its visibility is extended (``VisibilityKeeper``) whenever half of the
queue's visibility timeout has passed, so a slow step never hands it to a second consumer.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.config import Config, Source
from pipeline.lister import ListedObject, is_wanted
from pipeline.notifications import ObjectRef, parse
from pipeline.policy import Step, note
from pipeline.store import StateStore, now_ms
from pipeline.store.schema import NotificationStat

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str], None]  # (source identifier, object key)

RUN_SECONDS = 20  # one run; beat starts a run per queue this often
WAIT_SECONDS = 10  # ReceiveMessage long poll (SQS allows up to 20)
MAX_MESSAGES = 10  # per ReceiveMessage (the SQS maximum)
DEFAULT_VISIBILITY_SECONDS = 30  # SQS's default, if the queue's cannot be read
ERROR_TTL_SECONDS = 3600  # how long status shows the consumer's last error
UNKNOWN_SIZE = -1  # the envelope gives no size (is_wanted skips only size 0)


@dataclass
class ConsumeResult:
    source: str
    received: int = 0
    deleted: int = 0
    enqueued: int = 0
    extended: int = 0
    errors: int = 0
    receive_failed: bool = False  # SQS refused or was unreachable: the caller may rebuild its client
    kinds: dict[str, int] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def queue_sources(config: Config, owner: Source) -> list[Source]:
    """Every source notified through ``owner``'s queue (several sources may share one)."""
    assert owner.sqs is not None  # owners are sources with a queue (queue_owners)
    queue_url = owner.sqs.queue_url
    return [s for s in config.sources if s.sqs is not None and s.sqs.queue_url == queue_url]


def queue_owners(config: Config) -> list[Source]:
    """One source per distinct queue: the first configured. Beat runs one consumer for each."""
    owners: dict[str, Source] = {}
    for source in config.sources:
        if source.sqs is not None:
            owners.setdefault(source.sqs.queue_url, source)
    return list(owners.values())


def matches(source: Source, ref: ObjectRef) -> bool:
    """The listing's own rules: the source's bucket, under its prefix, a wanted file."""
    if ref.bucket != source.bucket or not ref.key.startswith(source.list_prefix):
        return False
    return is_wanted(source, ListedObject(ref.key, UNKNOWN_SIZE if ref.size is None else ref.size))


class VisibilityKeeper:
    """Extends the visibility of held messages once half their visibility timeout has passed."""

    def __init__(self, sqs, queue_url: str, visibility_seconds: int, on_extend: Callable[[int], None]):
        self.sqs = sqs
        self.queue_url = queue_url
        self.visibility = max(1, visibility_seconds)
        self.on_extend = on_extend
        self._held: dict[str, float] = {}  # receipt handle -> when its visibility was last set
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-visibility", daemon=True)

    def __enter__(self) -> VisibilityKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def hold(self, handles: list[str], received_at: float) -> None:
        with self._lock:
            for handle in handles:
                self._held[handle] = received_at

    def drop(self, handles: list[str]) -> None:
        with self._lock:
            for handle in handles:
                self._held.pop(handle, None)

    def _run(self) -> None:
        tick = min(1.0, self.visibility / 4)
        while not self._stop.wait(tick):
            self.extend_due()

    def extend_due(self) -> int:
        now = time.monotonic()
        with self._lock:
            due = [h for h, since in self._held.items() if now - since >= self.visibility / 2]
        extended = 0
        for start in range(0, len(due), MAX_MESSAGES):
            chunk = due[start:start + MAX_MESSAGES]
            entries = [{"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": self.visibility}
                       for n, h in enumerate(chunk)]
            try:
                answer = self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                log.warning("extending the visibility of %d message(s) failed: %s", len(chunk), exc)
                continue
            ok = {chunk[int(item["Id"])] for item in answer.get("Successful", [])}
            with self._lock:
                for handle in ok:
                    if handle in self._held:  # not dropped (deleted) meanwhile
                        self._held[handle] = now
            extended += len(ok)
        if extended:
            self.on_extend(extended)
        return extended


class _Counts:
    """Counters of one run, added to the owner's stats hash as they happen."""

    def __init__(self, state: StateStore, owner: str, result: ConsumeResult):
        self.state, self.owner, self.result = state, owner, result
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1, kind: str = "", source: str | None = None) -> None:
        if amount <= 0:
            return
        try:
            with self._lock:
                self.state.count_notification(source or self.owner, name, kind, amount)
        except redis.RedisError:
            pass  # a metric never decides a message's fate


def queue_visibility(sqs, queue_url: str) -> int:
    """The queue's own visibility timeout (sqs:GetQueueAttributes); SQS's default if unreadable."""
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])
        return int(attributes["Attributes"]["VisibilityTimeout"])
    except (ClientError, BotoCoreError, KeyError, ValueError):
        return DEFAULT_VISIBILITY_SECONDS


def handle_body(body: str, sent_ms: int, sources: list[Source], state: StateStore, enqueue: Enqueue,
                counts: _Counts) -> None:
    """Claim and enqueue what one message announces; raises if that failed (keep the message)."""
    note = parse(body)
    counts.result.kinds[note.kind] = counts.result.kinds.get(note.kind, 0) + 1
    counts.add(NotificationStat.RECEIVED, kind=note.kind)
    if not note.objects:
        log.info("notification of kind %s ignored%s", note.kind, f": {note.detail}" if note.detail else "")
        _ignore(counts, note.kind)
        return
    if datetime.fromtimestamp(sent_ms / 1000, UTC) < state.forget_horizon(datetime.now(UTC), margin=True):
        # Its objects' records may have expired already: claiming them again could ingest them a
        # second time. The listing (which never reaches back that far either) is the authority.
        log.warning("notification sent %.1f h ago ignored: older than state_retention minus 1H; if its "
                    "files were never ingested, use trailpipe backfill", (now_ms() - sent_ms) / 3_600_000)
        _ignore(counts, "too_old", len(note.objects))
        return
    if note.detail:
        log.warning("notification of kind %s: %s", note.kind, note.detail)
    wanted: dict[str, list[str]] = {}
    for ref in note.objects:
        owners = [s for s in sources if matches(s, ref)]
        if not owners:
            _ignore(counts, "filtered")
        for source in owners:
            wanted.setdefault(source.identifier, []).append(ref.key)
    for sid, keys in wanted.items():
        claimed = state.claim_many(sid, keys, 0)  # token 0: no discovery lease is involved
        _ignore(counts, "duplicate", len(keys) - len(claimed), source=sid)
        if not claimed:
            continue
        state.mark_notified(sid, claimed, sent_ms)  # before the enqueue, so the ingest always finds it
        for key in claimed:
            enqueue(sid, key)
            counts.result.enqueued += 1
            counts.add(NotificationStat.ENQUEUED, source=sid)


def _ignore(counts: _Counts, kind: str, amount: int = 1, source: str | None = None) -> None:
    if amount > 0:
        counts.result.ignored[kind] = counts.result.ignored.get(kind, 0) + amount
        counts.add(NotificationStat.IGNORED, amount, kind=kind, source=source)


def consume(owner: Source, sources: list[Source], state: StateStore, sqs, enqueue: Enqueue,
            run_seconds: float = RUN_SECONDS, wait_seconds: int = WAIT_SECONDS) -> ConsumeResult:
    """Receive, claim, enqueue and delete for ``run_seconds``; never raises for what a message holds."""
    started = time.monotonic()
    result = ConsumeResult(owner.identifier)
    counts = _Counts(state, owner.identifier, result)
    assert owner.sqs is not None  # owners are sources with a queue (queue_owners)
    queue_url = owner.sqs.queue_url
    try:
        state.ping()
    except redis.RedisError as exc:
        # Receiving now would only spend the messages' receive counts (and push them toward
        # the dead-letter queue) without claiming anything.
        note_error(state, owner.identifier, exc, "Redis", counts)
        result.seconds = time.monotonic() - started
        return result

    def extended(n: int) -> None:
        result.extended += n
        counts.add(NotificationStat.VISIBILITY_EXTENDED, n)

    visibility = queue_visibility(sqs, queue_url)
    with VisibilityKeeper(sqs, queue_url, visibility, extended) as keeper:
        while (remaining := run_seconds - (time.monotonic() - started)) > 0:
            try:
                answer = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=MAX_MESSAGES,
                    WaitTimeSeconds=max(0, min(wait_seconds, int(remaining))),
                    VisibilityTimeout=visibility,  # the keeper's assumption holds whatever we could read
                    AttributeNames=["SentTimestamp"])
            except (ClientError, BotoCoreError) as exc:
                note_error(state, owner.identifier, exc, "ReceiveMessage", counts)
                result.receive_failed = True
                break
            messages = answer.get("Messages", [])
            if not messages:
                continue
            keeper.hold([m["ReceiptHandle"] for m in messages], time.monotonic())
            result.received += len(messages)
            done = []
            for message in messages:
                sent_ms = int(message.get("Attributes", {}).get("SentTimestamp") or time.time() * 1000)
                try:
                    handle_body(message.get("Body", ""), sent_ms, sources, state, enqueue, counts)
                    done.append(message)
                except Exception as exc:  # noqa: BLE001  (kept in the queue: received again later)
                    note_error(state, owner.identifier, exc, "claim/enqueue", counts)
            _delete(sqs, queue_url, done, counts, state, owner)
            # Stop extending every message now: deleted, or left to come back after its timeout.
            keeper.drop([m["ReceiptHandle"] for m in messages])
            if len(done) < len(messages):
                break  # Redis or the broker is failing: receiving more would only spend receive counts
    result.seconds = time.monotonic() - started
    log.info("notifications of %s: received=%d deleted=%d enqueued=%d ignored=%s extended=%d "
             "errors=%d in %.1fs", owner.identifier, result.received, result.deleted,
             result.enqueued, result.ignored, result.extended,
             result.errors, result.seconds)
    return result


def _delete(sqs, queue_url: str, messages: list[dict], counts: _Counts, state: StateStore,
            owner: Source) -> None:
    if not messages:
        return
    entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
    try:
        answer = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    except (ClientError, BotoCoreError) as exc:
        # Claimed and enqueued already: the redelivered message finds the keys claimed.
        note_error(state, owner.identifier, exc, "DeleteMessageBatch", counts)
        return
    deleted = len(answer.get("Successful", []))
    counts.result.deleted += deleted
    counts.add(NotificationStat.DELETED, deleted)
    for failure in answer.get("Failed", []):
        counts.result.errors += 1
        counts.add(NotificationStat.ERRORS)
        log.warning("deleting a notification of %s failed: %s", owner.identifier, failure.get("Code"))


def note_error(state: StateStore, source_id: str, exc: BaseException, step: str,
               counts: _Counts | None = None) -> None:
    """Count the error and keep it, with a hint, for `trailpipe status` (never raises)."""
    message = note(exc, Step.NOTIFICATIONS, step).reason  # the error and its hint (pipeline.policy)
    log.warning("notification consumer of %s: %s", source_id, message)
    if counts is not None:
        counts.result.errors += 1
    try:
        state.count_notification(source_id, NotificationStat.ERRORS)
        state.set_notify_error(source_id, message, ERROR_TTL_SECONDS)
    except Exception:  # noqa: BLE001  (Redis may be the error itself)
        pass
