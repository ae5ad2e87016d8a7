"""The dead-letter streams' entries, as ``trailpipe deadletter`` lists and deletes them (the
letters are written and trimmed with their objects' state: pipeline.store.objects)."""
from __future__ import annotations

from pipeline.replies import StreamEntries, as_stream
from pipeline.store.base import RedisStore


class DeadLetterStore(RedisStore):
    def letters(self, stream: str) -> StreamEntries:
        """Every entry of a dead-letter stream, oldest first."""
        return as_stream(self.redis.xrange(stream))

    def delete_letter(self, stream: str, entry_id: str) -> int:
        return int(self.redis.xdel(stream, entry_id))  # type: ignore[arg-type]
