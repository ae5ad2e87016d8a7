"""Log lines as JSON, one object per line, for log shippers (TRAILPIPE_LOG_FORMAT=json).

Fields: time, level, logger, process, message; plus the structured fields a record carries
(``extra=``): source, key, outcome, records, events, duration, reason.

S3 keys and record fields are chosen by whoever can write to the bucket: control characters
in them would forge log lines (a newline) or drive the terminal (escape sequences). Plain-text
logs and the CLI's output pass every such text through ``escape_controls``; JSON logs escape
them as JSON does (C1 controls included).
"""
from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

# C0 and C1 controls, DEL, and the Unicode line separators and bidi overrides ("Trojan source").
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as ``\\xNN``/``\\uNNNN``: one printable line."""
    return _CONTROLS.sub(_escaped, text)


class EscapeControls(logging.Filter):
    """Escape control characters in the message of every record a handler writes (tracebacks
    keep their lines; the message is what carries keys and reasons)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = escape_controls(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True


def use_escaping(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        if not any(isinstance(f, EscapeControls) for f in handler.filters):
            handler.addFilter(EscapeControls())

STRUCTURED_FIELDS = ("source", "key", "outcome", "records", "events", "duration", "reason", "task_id",
                     "task_name")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "message": record.getMessage(),
        }
        for field in STRUCTURED_FIELDS:
            value = getattr(record, field, None)
            if value not in (None, ""):
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # json escapes C0 controls; C1 ones and the separators are written \\uNNNN as well.
        return _CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(line, ensure_ascii=False, default=str))


def use_json(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
