"""What the CLI and the demo share: an event's one-line rendering and the one-line explanation of
an expected failure (its own module, so ``workers.demo`` does not import ``workers.cli``, which
imports it). The Celery command line is ``workers.launch``'s."""
from __future__ import annotations

import orjson


def format_event(fields: dict[bytes, bytes]) -> str:
    get = lambda name: fields.get(name.encode(), b"").decode("utf-8", "replace")  # noqa: E731
    record = orjson.loads(fields.get(b"event", b"{}"))
    identity = record.get("userIdentity") or {}
    who = identity.get("userName") or identity.get("arn") or identity.get("type") or "-"
    return (f"{get('event_time')}  {get('account')}/{get('region') or '-'}  {get('event_name')}"
            f"  by {who}  from {record.get('sourceIPAddress') or '-'}  [{get('source')}]")


def explain(exc: BaseException) -> str | None:
    """An expected failure of a command (Redis or the broker away, S3 unreachable or refusing, a
    file it may not read) as one line with a hint, or None for a bug (left to its traceback).
    Never a URL or secret: only the error's own words, the host and port at most."""
    import botocore.exceptions as boto  # noqa: PLC0415  (only when a command failed)
    import kombu.exceptions  # noqa: PLC0415
    import redis  # noqa: PLC0415

    from pipeline.policy import classify  # noqa: PLC0415

    if isinstance(exc, redis.AuthenticationError) or (
            isinstance(exc, redis.ResponseError) and str(exc).startswith(("WRONGPASS", "NOAUTH"))):
        return f"Redis refused the login: {exc} (check the password or user in redis_url / TRAILPIPE_REDIS_URL)"
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return f"cannot reach Redis: {exc} (is `trailpipe run` or your redis_url server up?)"
    if isinstance(exc, redis.ResponseError) and str(exc).startswith("NOPERM"):
        return f"Redis refused a command: {exc} (the redis_url user's ACL must allow trailpipe's keys and commands)"
    if isinstance(exc, redis.RedisError):
        return f"Redis error: {exc}"
    if isinstance(exc, kombu.exceptions.OperationalError):
        return (f"cannot reach the Celery broker: {exc} (is `trailpipe run` or your broker_url / redis_url "
                f"server up?)")
    if isinstance(exc, (boto.EndpointConnectionError, boto.ConnectTimeoutError, boto.ProxyConnectionError)):
        return (f"{type(exc).__name__}: {exc} (the endpoint does not answer: check endpoint_url, the proxy and "
                f"the network; the demo's local S3 stops with `trailpipe demo`)")
    if isinstance(exc, (boto.ClientError, boto.BotoCoreError)) or type(exc).__module__.startswith("pipeline."):
        verdict = classify(exc)
        if verdict.error_class == "InternalError":
            return None
        return f"{verdict.error_class}: {verdict.message}" + (f" (hint: {verdict.hint})" if verdict.hint else "")
    if isinstance(exc, PermissionError):
        where = f" {exc.filename}" if exc.filename else ""
        return (f"permission denied:{where} (run as the user that owns it, or give this user access; "
                f"a config or state folder of another user is not readable)")
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc}: {exc.filename}"
    return None
