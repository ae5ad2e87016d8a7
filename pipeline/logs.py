"""Log lines as JSON, one object per line, for log shippers (TRAILPIPE_LOG_FORMAT=json).

Fields: time, level, logger, process, message; plus the structured fields a record carries
(``extra=``): source, key, outcome, records, events, duration, reason.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

STRUCTURED_FIELDS = ("source", "key", "outcome", "records", "events", "duration", "reason", "task_id",
                     "task_name")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
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
        return json.dumps(line, ensure_ascii=False, default=str)


def use_json(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
