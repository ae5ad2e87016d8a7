"""The dead-letter stream: objects that could not be ingested, with their reason.

``list_entries`` reads it (with ``{source}`` in ``deadletter_stream``: every source's, each on
its own shard of a Redis Cluster); ``retry`` claims the chosen objects again (keeping each checkpoint,
so records emitted before a failure are not emitted twice), enqueues them and removes their
entries from the stream.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pipeline.store import StateStore
from pipeline.store.schema import DeadLetterField


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    source: str
    key: str
    error_class: str
    message: str
    attempts: str
    failed_at: str
    stream: str = field(default="", compare=False)  # the dead-letter stream holding it

    def as_dict(self) -> dict[str, str]:
        return {"id": self.entry_id, "source": self.source, "object": self.key,
                "error_class": self.error_class, "message": self.message,
                "attempts": self.attempts, "failed_at": self.failed_at}


def list_entries(state: StateStore, source: str | None = None, sources: Iterable[str] = ()) -> list[DeadLetter]:
    """The letters (of ``source``, else of all), oldest first; ``sources``: the configured ones,
    whose streams are read besides those of every source with state."""
    streams = state.deadletter_streams([source] if source is not None else sources)
    if source is not None and len(streams) > 1:
        streams = [state.keys.deadletter(source)]  # a stream per source: only its own
    entries = []
    for stream in streams:
        for entry_id, fields in state.letters(stream):
            get = lambda name, fields=fields: fields.get(name.encode(), b"").decode("utf-8", "replace")  # noqa: E731
            letter = DeadLetter(entry_id.decode(), get(DeadLetterField.SOURCE), get(DeadLetterField.OBJECT),
                                get(DeadLetterField.ERROR_CLASS), get(DeadLetterField.MESSAGE),
                                get(DeadLetterField.ATTEMPTS), get(DeadLetterField.FAILED_AT), stream)
            if source is None or letter.source == source:
                entries.append(letter)
    if len(streams) > 1:
        entries.sort(key=lambda letter: tuple(int(part) for part in letter.entry_id.split("-")))
    return entries


def retry(state: StateStore, letters: list[DeadLetter], enqueue: Callable[[str, str], None],
          known_sources: set[str]) -> list[DeadLetter]:
    """Retry ``letters``; returns those enqueued again. Entries of unknown sources are kept."""
    retried = []
    for letter in letters:
        if letter.source not in known_sources:
            continue
        if state.retry_failed(letter.source, letter.key):
            enqueue(letter.source, letter.key)
            retried.append(letter)
        # Retried, or no longer failed (done since, or forgotten): the entry has served.
        state.delete_letter(letter.stream or state.keys.deadletter(letter.source), letter.entry_id)
    return retried
