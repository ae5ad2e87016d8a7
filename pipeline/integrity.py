"""Integrity: CloudTrail's digests, followed by discovery and reconciled with object state.

Discovery (``discover_digests``, after the log partitions) lists each ``CloudTrail-Digest/``
folder beside a log partition from the day of the newest digest handled there, verifies each
new digest (pipeline.digests) and its link to the previous one, and reconciles every log file it
lists: one trailpipe never claimed is claimed and enqueued (it landed behind the listing window);
one ingested is compared with the SHA-256 kept in its state; one not finished yet is compared at
a later discovery. Failures are integrity violations: an entry in the source's violations stream,
a counter per kind (status, metrics), a warning in the log. Digests are never emitted as events.

``verify_range`` is the read-only report of `trailpipe verify`.

Only digests newer than the kept object state (state_retention less a margin) are reconciled:
for older ones trailpipe can no longer tell ingested from not, and claiming would ingest twice.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError

from pipeline import digests as dg
from pipeline.config import Source
from pipeline.layout import (
    DigestName,
    delivery_time,
    digest_day_position,
    digest_name,
    digest_partition,
    key_position,
    log_partition_of,
    partition_of,
)
from pipeline.lister import file_name, find_partitions, list_pages
from pipeline.parser import uncompressed_sha256
from pipeline.policy import Step, note
from pipeline.store import StateStore, Status
from pipeline.store.schema import ObjectField, Reconciled

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str], None]

DIGEST_SPAN = timedelta(hours=1)  # a digest lists the log files of the hour before it
FUTURE_MARGIN = timedelta(hours=2)  # clock skew tolerated for a digest's time
# Log file problem kinds (digest kinds are in pipeline.digests).
LOG_MISMATCH = "log_file_hash_mismatch"  # ingested with another hash than the digest records
LOG_NOT_INGESTED = "log_file_not_ingested"
LOG_DEAD_LETTERED = "log_file_dead_lettered"
LOG_UNLISTED = "log_file_unlisted"  # ingested, yet no digest lists it
LOG_ALTERED_IN_S3 = "log_file_altered"  # older than the kept state: S3's bytes differ from the digest
NO_DIGESTS = "no_digests"  # nothing to prove the range with
HASH_ALGORITHM = "SHA-256"


def settle_awaiting(state: StateStore, source: str) -> tuple[int, int]:
    """Compare the log files that were not finished when their digest came; (settled, mismatches)."""
    awaiting = state.awaiting(source)
    if not awaiting:
        return 0, 0
    settled, mismatches = [], 0
    for key, (status, sha, expected, digest_key) in zip(awaiting, state.awaiting_states(source, awaiting)):
        if status in (Status.CLAIMED, Status.PROCESSING):
            continue
        settled.append(key)
        if status == Status.DONE and sha and expected and sha != expected:
            mismatches += 1
            state.record_violation(source, LOG_MISMATCH, key,
                                   f"ingested with SHA-256 {sha}, digest {digest_key or '?'} records {expected}")
    state.settled(source, settled)
    return len(settled), mismatches


def chains(state: StateStore, source: str) -> dict[str, dg.Link]:
    """digest chain -> the newest digest handled there."""
    return {chain: dg.Link(**link) for chain, link in state.chains(source).items()}


def digest_partitions(log_partitions: list[str]) -> list[str]:
    return sorted({p for p in map(digest_partition, log_partitions) if p})


def _listed_files(source: Source, digest: dg.Digest) -> list[tuple[str, str]]:
    """The log files of this source a digest lists, with their SHA-256."""
    files = []
    for entry in digest.log_files:
        key, expected = entry.get("s3Object"), entry.get("hashValue")
        if entry.get("s3Bucket") != source.bucket or not isinstance(key, str) or not isinstance(expected, str):
            continue
        if entry.get("hashAlgorithm") not in (None, HASH_ALGORITHM):
            continue
        if key.startswith(source.list_prefix) and source.file_regex.fullmatch(file_name(key)):
            files.append((key, expected.lower()))
    return files


def discover_digests(source: Source, state: StateStore, s3, enqueue: Enqueue, token: int,
                     log_partitions: list[str], not_before: datetime,
                     renew: Callable[[], bool] = lambda: True,
                     keys: dg.PublicKeys | None = None, now: datetime | None = None) -> dict[str, int]:
    """Follow the digest folders of a source (one call per discovery, under its lease).

    ``not_before``: object state older than this may be forgotten; digests are reconciled only
    when the files they list are younger. Errors reaching S3 or the key source stop that folder
    (logged, counted as integrity_errors) and the same digests are tried at the next discovery.
    """
    sid = source.identifier
    store = state
    summary: Counter = Counter()
    summary["settled"], summary["mismatches"] = settle_awaiting(state, sid)
    keys = keys or dg.public_keys_for(source)  # (a process keeps one per source: Runtime.public_keys)
    handled = chains(state, sid)
    oldest = not_before + DIGEST_SPAN
    # A digest named in the future waits for its time: one planted far ahead must not make every
    # genuine digest after it look handled already.
    newest = (now or datetime.now(UTC)) + FUTURE_MARGIN
    for partition in digest_partitions(log_partitions):
        try:
            if not _follow_folder(source, store, s3, enqueue, token, partition, handled, (oldest, newest), renew,
                                  keys, summary):
                break  # lease lost
        except Exception as exc:  # noqa: BLE001  (never stops log discovery; tried again next time)
            summary["errors"] += 1
            state.count_integrity_error(sid)
            log.error("digests of source=%s folder=%s not followed: %s", sid, partition,
                      note(exc, Step.DIGESTS).reason)  # the error and its hint (pipeline.policy)
    return dict(summary)


def _follow_folder(source: Source, store: StateStore, s3, enqueue: Enqueue, token: int, partition: str,
                   chains: dict[str, dg.Link], window: tuple[datetime, datetime], renew, keys,
                   summary: Counter) -> bool:
    sid = source.identifier
    oldest, newest_allowed = window
    newest = max((link.key for chain, link in chains.items() if chain.startswith(partition + "|")), default="")
    name = digest_name(newest) if newest else None
    # From the day before the newest digest handled here: chains of several trails interleave.
    since = max(oldest, name.time - timedelta(days=1)) if name else oldest
    for page in list_pages(s3, source.bucket, partition, digest_day_position(partition, since)):
        if not renew():
            return False
        for obj in page:
            name = digest_name(obj.key)
            if name is None or name.time < oldest:
                continue
            if name.time > newest_allowed:
                summary["digests_future"] += 1
                log.warning("source=%s digest %s is dated in the future: left until its time", sid, obj.key)
                continue
            link = chains.get(name.chain)
            if link is not None and obj.key <= link.key:
                continue  # handled already
            digest_link = _handle_digest(source, store, s3, enqueue, token, name, link, keys, summary)
            if not store.advance_chain(sid, token, name.chain, digest_link.__dict__):
                return False
            chains[name.chain] = digest_link
    return True


def _handle_digest(source: Source, store: StateStore, s3, enqueue: Enqueue, token: int,
                   name: DigestName, link: dg.Link | None, keys, summary: Counter) -> dg.Link:
    sid = source.identifier
    try:
        digest = dg.fetch_digest(s3, source.bucket, name.key)
    except dg.DigestProblem as exc:
        store.record_violation(sid, exc.kind, exc.key, exc.detail)
        summary["digests_invalid"] += 1
        return dg.Link(name.key, "", "")
    problems: list[dg.DigestProblem] = []
    trusted = True
    try:
        dg.verify_digest(digest, keys)
    except dg.DigestProblem as exc:
        problems.append(exc)
        trusted = False
    problems += dg.check_previous(s3, digest, link, keys)
    for problem in problems:
        store.record_violation(sid, problem.kind, problem.key, problem.detail)
    summary["digests_valid" if trusted else "digests_invalid"] += 1
    if trusted:  # a listing CloudTrail did not sign is not acted on
        files = _listed_files(source, digest)
        for (key, expected), outcome in zip(files, store.reconcile(sid, token, digest.key, files)):
            summary[f"log_files_{outcome}"] += 1
            if outcome == Reconciled.CLAIMED:
                log.info("source=%s log file %s found through digest %s (the listing missed it)",
                         sid, key, digest.key)
                enqueue(sid, key)
            elif outcome == Reconciled.MISMATCH:
                actual = store.object_state(sid, key).get(ObjectField.SHA256, "?")
                store.record_violation(sid, LOG_MISMATCH, key,
                                       f"ingested with SHA-256 {actual}, digest {digest.key} records {expected}")
    return dg.Link.of(digest)


# ------------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    digests: Counter = field(default_factory=Counter)
    log_files: Counter = field(default_factory=Counter)
    problems: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, kind: str, key: str, detail: str) -> None:
        self.problems.append({"kind": kind, "key": key, "detail": detail})

    @property
    def intact(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "digests": {name: self.digests[name] for name in ("valid", "invalid", "missing")},
            "log_files": {name: self.log_files[name] for name in
                          ("listed", "ingested_intact", "ingested_mismatch", "not_ingested", "dead_lettered",
                           "unlisted", "hashed_from_s3")},
            "problems": self.problems,
            "notes": self.notes,
        }


def verify_range(source: Source, state: StateStore, s3, keys: dg.PublicKeys, since: datetime,
                 until: datetime, now: datetime | None = None) -> VerifyReport:
    """Walk the digests of [since, until] (and the hour after, where the last files are listed).

    Log files are judged by the SHA-256 kept in their state, without downloading them; only
    those older than the kept state (or done before hashes were kept) are downloaded and hashed.
    """
    sid = source.identifier
    now = now or datetime.now(UTC)
    report = VerifyReport()
    kept_since = state.forget_horizon(now)
    partitions = state.cached_partitions(sid, source.list_prefix) or find_partitions(
        s3, source.bucket, source.list_prefix)
    chains: dict[str, list[DigestName]] = {}
    last_digest_end: dict[str, datetime] = {}  # log partition -> end of its newest digest
    for partition in digest_partitions(partitions):
        last = until + DIGEST_SPAN + timedelta(minutes=30)
        for page in list_pages(s3, source.bucket, partition, digest_day_position(partition, since)):
            names = [n for n in map(digest_name, (o.key for o in page)) if n]
            for name in names:
                if since <= name.time <= last:
                    chains.setdefault(name.chain, []).append(name)
            if names and min(n.time for n in names) > last + timedelta(days=1):
                break  # keys sort by day: the range is behind us
    if not chains:
        report.problem(NO_DIGESTS, source.list_prefix or "/",
                       f"no CloudTrail digest between {since:%Y-%m-%dT%H:%MZ} and {until:%Y-%m-%dT%H:%MZ} "
                       f"beside {len(partitions)} partition(s): is log file validation on for the trail?")
    listed: dict[str, tuple[str, str]] = {}  # log file -> (expected SHA-256, digest key)
    for chain in sorted(chains):
        link: dg.Link | None = None
        for name in sorted(chains[chain], key=lambda n: n.key):
            try:
                digest = dg.fetch_digest(s3, source.bucket, name.key)
            except dg.DigestProblem as exc:
                report.digests["invalid"] += 1
                report.problem(exc.kind, exc.key, exc.detail)
                link = None
                continue
            own = []
            try:
                dg.verify_digest(digest, keys)
            except dg.DigestProblem as exc:
                own.append(exc)
            linked = dg.check_previous(s3, digest, link, keys)
            for problem in own + linked:
                report.problem(problem.kind, problem.key, problem.detail)
            report.digests["missing"] += sum(p.kind == dg.MISSING for p in linked)
            broken = own or [p for p in linked if p.kind != dg.MISSING]
            report.digests["invalid" if broken else "valid"] += 1
            if not own:
                for key, expected in _listed_files(source, digest):
                    listed.setdefault(key, (expected, digest.key))
                log_partition = log_partition_of(name.partition)
                if log_partition:
                    last_digest_end[log_partition] = max(digest.end_time, last_digest_end.get(log_partition, since))
            link = dg.Link.of(digest)
    _judge_listed(source, state, s3, listed, kept_since, report)
    _find_unlisted(source, state, s3, partitions, listed, since, until, last_digest_end, report)
    return report


def _judge_listed(source: Source, state: StateStore, s3, listed: dict[str, tuple[str, str]],
                  kept_since: datetime, report: VerifyReport) -> None:
    sid = source.identifier
    keys = sorted(listed)
    hashed = 0
    for key, (status, sha) in zip(keys, state.object_fields(sid, keys, ObjectField.STATE, ObjectField.SHA256)):
        expected, digest_key = listed[key]
        report.log_files["listed"] += 1
        status = status or None
        sha = sha or None
        delivered = delivery_time(key)
        if status is None and delivered is not None and delivered < kept_since:
            hashed += 1
            actual = _hash_from_s3(s3, source.bucket, key)
            report.log_files["hashed_from_s3"] += 1
            if actual != expected:
                report.problem(LOG_ALTERED_IN_S3, key, f"older than the kept state; in S3 its SHA-256 is "
                                                       f"{actual}, digest {digest_key} records {expected}")
            continue
        if status == Status.DONE:
            if sha is None:  # ingested before hashes were kept
                hashed += 1
                sha = _hash_from_s3(s3, source.bucket, key)
            if sha == expected:
                report.log_files["ingested_intact"] += 1
            else:
                report.log_files["ingested_mismatch"] += 1
                report.problem(LOG_MISMATCH, key, f"ingested with SHA-256 {sha}, digest {digest_key} "
                                                  f"records {expected}")
        elif status == Status.FAILED:
            report.log_files["dead_lettered"] += 1
            report.problem(LOG_DEAD_LETTERED, key, f"listed by {digest_key}; see `trailpipe deadletter list`")
        else:
            report.log_files["not_ingested"] += 1
            report.problem(LOG_NOT_INGESTED, key, f"listed by {digest_key}; "
                                                  + ("claimed, not finished yet" if status else "never claimed"))
    if hashed:
        report.notes.append(f"{hashed} log file(s) older than the kept state (state_retention) or ingested "
                            f"before hashes were kept were downloaded from S3 and hashed")


def _hash_from_s3(s3, bucket: str, key: str) -> str:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        return f"(not readable: {exc.response.get('Error', {}).get('Code', '?')})"
    try:
        return uncompressed_sha256(body)
    except Exception as exc:  # noqa: BLE001  (an unreadable file is simply not intact)
        return f"(not readable: {type(exc).__name__})"
    finally:
        body.close()


def _find_unlisted(source: Source, state: StateStore, s3, partitions: list[str], listed: dict,
                   since: datetime, until: datetime, last_digest_end: dict[str, datetime],
                   report: VerifyReport) -> None:
    """Log files of the range trailpipe ingested that no digest lists (up to the newest digest)."""
    sid = source.identifier
    for partition in partitions:
        covered = last_digest_end.get(partition)
        if covered is None or partition_of(partition) != partition:
            continue
        end = min(until, covered)
        candidates = []
        for page in list_pages(s3, source.bucket, partition, key_position(partition, since)):
            for obj in page:
                delivered = delivery_time(obj.key)
                if delivered is None or delivered < since or obj.key in listed:
                    continue
                if delivered > end:
                    break
                candidates.append(obj.key)
            else:
                continue
            break
        for key, (status,) in zip(candidates, state.object_fields(sid, candidates, ObjectField.STATE)):
            if status == Status.DONE:
                report.log_files["unlisted"] += 1
                report.problem(LOG_UNLISTED, key, "ingested, but no digest of the range lists it")
