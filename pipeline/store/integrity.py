"""A source's integrity keys: the digest chains, the log files awaiting comparison, the
violations stream (and their counters)."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from pipeline.replies import as_hash, as_members, as_stream
from pipeline.store.base import RedisStore, decoded, now_ms, run_scripts, text
from pipeline.store.schema import ObjectField, Stat

log = logging.getLogger("pipeline.integrity")

VIOLATIONS_MAXLEN = 10000


class IntegrityStore(RedisStore):
    """Scripts: reconcile_log_file, record_violation, advance_digest_chain."""

    requeue_after_ms: int

    def record_violation(self, source: str, kind: str, key: str, detail: str) -> None:
        """An entry in the source's violations stream and its counter (``integrity_violations.<kind>``),
        and a warning in the log."""
        log.warning("integrity violation source=%s kind=%s key=%s: %s", source, kind, key, detail,
                    extra={"source": source, "kind": kind, "key": key})
        self._scripts["record_violation"](
            keys=[self.keys.violations(source), self.keys.stats(source)],
            args=[kind, key, detail, now_ms(), VIOLATIONS_MAXLEN])

    def violations(self, source: str, count: int = 100) -> list[dict]:
        """The newest violations first: {kind, key, detail, at}."""
        entries = as_stream(self.redis.xrevrange(self.keys.violations(source), count=count))
        return [decoded(fields) for _, fields in entries]

    def chains(self, source: str) -> dict[str, dict]:
        """digest chain -> the newest digest handled there, as stored (``{key, sha256, signature}``)."""
        raw = as_hash(self.redis.hgetall(self.keys.digest_chains(source)))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def advance_chain(self, source: str, token: int, chain: str, link: dict) -> bool:
        """Store the chain's newest digest, only while ``token`` holds the lease; counts it."""
        return bool(self._scripts["advance_digest_chain"](
            keys=[self.keys.digest_chains(source), self.keys.lease(source), self.keys.stats(source)],
            args=[token, chain, json.dumps(link)]))

    def reconcile(self, source: str, token: int, digest_key: str, files: list[tuple[str, str]]) -> list[str]:
        """Per (log file key, expected SHA-256): a ``Reconciled`` (claimed, pending, intact, ...)."""
        if not files:
            return []
        script = self._scripts["reconcile_log_file"]
        replies = run_scripts(self.redis, [
            (script, [self.keys.object(source, key), self.keys.stats(source), self.keys.pending(source),
                      self.keys.integrity_awaiting(source)],
             [0, token, key, expected, digest_key, self.requeue_after_ms]) for key, expected in files])
        return [text(reply) for reply in replies]

    def awaiting(self, source: str, limit: int = 10000) -> list[str]:
        """Log files a digest listed before their ingestion finished (the oldest first)."""
        return [k.decode() for k in as_members(self.redis.zrange(self.keys.integrity_awaiting(source), 0, limit - 1))]

    def awaiting_states(self, source: str, keys: Sequence[str]) -> list[tuple[str | None, ...]]:
        """(state, sha256, expected_sha256, digest) of each awaiting log file."""
        fields = (ObjectField.STATE, ObjectField.SHA256, ObjectField.EXPECTED_SHA256, ObjectField.DIGEST)
        replies = self._hash_fields_many([self.keys.object(source, key) for key in keys], fields)
        return [tuple(None if value is None else text(value) for value in values) for values in replies]

    def settled(self, source: str, keys: Sequence[str]) -> None:
        """These awaiting log files are compared: no longer awaited."""
        if keys:
            self.redis.zrem(self.keys.integrity_awaiting(source), *keys)

    def count_integrity_error(self, source: str) -> None:
        """A digest folder could not be followed (S3 or the key source failed)."""
        self.count(source, Stat.INTEGRITY_ERRORS)
