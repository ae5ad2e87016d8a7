"""pipeline.logs: control characters from S3 keys and records never reach a log raw."""
from __future__ import annotations

import io
import json
import logging

from pipeline.logs import EscapeControls, JsonFormatter, escape_controls, use_escaping

HOSTILE = "AWSLogs/x\x1b[2J\x1b]0;owned\x07\nFAKE ERROR line\r\u202e\x9b\x7f.json.gz"


def logger_writing_to(stream: io.StringIO, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [logging.StreamHandler(stream)]
    logger.handlers[0].setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_escape_controls():
    assert escape_controls("plain zoë ✓ text") == "plain zoë ✓ text"
    assert escape_controls(HOSTILE) == ("AWSLogs/x\\x1b[2J\\x1b]0;owned\\x07\\x0aFAKE ERROR line\\x0d\\u202e"
                                        "\\x9b\\x7f.json.gz")


def test_plain_text_log_lines_are_escaped():
    stream = io.StringIO()
    logger = logger_writing_to(stream, "test.logs.plain")
    use_escaping(logger)
    use_escaping(logger)  # once is enough: no second filter
    assert len(logger.handlers[0].filters) == 1
    logger.info("object source=%s key=%s outcome=%s", "src", HOSTILE, "done")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed on %s", HOSTILE)
    text = stream.getvalue()
    assert not any(char in text for char in "\x1b\x07\r\u202e\x9b\x7f")
    assert not any(line.startswith("FAKE") for line in text.splitlines())
    assert text.splitlines()[0] == f"INFO object source=src key={escape_controls(HOSTILE)} outcome=done"
    assert "Traceback (most recent call last):" in text  # tracebacks keep their lines


def test_json_log_lines_escape_c1_controls_too():
    record = logging.LogRecord("pipeline.ingest", logging.INFO, __file__, 1, "key=%s", (HOSTILE,), None)
    record.key = HOSTILE
    line = JsonFormatter().format(record)
    assert "\n" not in line and not any(char in line for char in "\x1b\x07\r\u202e\x9b\x7f")
    parsed = json.loads(line)
    assert parsed["key"] == HOSTILE and parsed["message"] == f"key={HOSTILE}"  # exact, once parsed


def test_the_celery_app_escapes_the_logs_it_sets_up():
    from celery import signals

    import workers.app  # noqa: F401  (connects the signal handlers)

    stream = io.StringIO()
    logger = logger_writing_to(stream, "test.logs.celery")
    signals.after_setup_logger.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None,
                                    format="", colorize=False)
    assert any(isinstance(f, EscapeControls) for f in logger.handlers[0].filters)
    logger.info("key=%s", HOSTILE)
    assert "\x1b" not in stream.getvalue()
