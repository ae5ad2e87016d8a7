"""The Celery tasks' error policy, as plain functions (the processes run in test_workers/test_chaos)."""
from __future__ import annotations

from botocore.exceptions import ClientError, ReadTimeoutError

from pipeline.ingest import Backpressure
from workers.tasks import TRANSIENT_ERRORS, backoff_seconds, is_throttling


def client_error(code: str, status: int = 503) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


def test_throttling_is_never_permanent():
    assert is_throttling(client_error("SlowDown"))
    assert is_throttling(Backpressure("stream full"))
    assert not is_throttling(client_error("InternalError", 500))
    assert not is_throttling(ValueError("bug"))


def test_transient_errors():
    assert isinstance(client_error("InternalError", 500), TRANSIENT_ERRORS)
    assert isinstance(ReadTimeoutError(endpoint_url="http://x"), TRANSIENT_ERRORS)
    assert isinstance(ConnectionResetError(), TRANSIENT_ERRORS)
    assert not isinstance(ValueError(), TRANSIENT_ERRORS)


def test_backoff_grows_with_jitter_and_is_capped():
    early = [backoff_seconds(0) for _ in range(200)]
    late = [backoff_seconds(12) for _ in range(200)]
    assert max(early) <= 1.0 and len(set(early)) > 100
    assert max(late) <= 300.0 and sum(late) / len(late) > 50
