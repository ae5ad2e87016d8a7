"""CloudTrail record -> ECS document, as Elastic's ``aws.cloudtrail`` pipeline writes it.

``ecs_document`` replays the pipeline's processors in order (tables in ``ecs_tables``) on
a pruned copy of the record, with Elasticsearch's semantics: a ``rename`` fails (and is
skipped) when its source is missing or its target already exists, dates go through the
``ISO8601`` parser and come out as ``yyyy-MM-ddTHH:mm:ss.SSSZ``, objects kept as text are
Java ``toString()`` renderings in HashMap order, mustache values render like Java.

Not reproduced, because they need Elasticsearch-side data or are not about the record:
``source.geo``/``source.as`` (GeoIP databases), the parsed ``user_agent.*`` sub-fields
(Elastic's ua-parser regexes; ``user_agent.original`` is kept), ``event.created``,
``event.ingested``, ``event.original``, ``tags``, and ``related.entity`` (only in the
2.25.0 preview's ``entity`` sub-pipeline).  Where Elastic's pipeline would stop with an
``error.message`` (a Painless null dereference on a ConsoleLogin without
responseElements, a dissect mismatch on an odd tlsVersion) the remaining processors are
applied null-safely instead.
"""
from __future__ import annotations

from typing import Any

from . import ecs_tables as T
from .common import MISSING, dig, es_timestamp, is_ip, path_parts
from .javaish import drop_empty, hashmap_capacity, hashmap_order, java_str, template_value




def _get(obj: Any, path: str) -> Any:
    return dig(obj, path, MISSING)


def _has(obj: Any, path: str) -> bool:
    return _get(obj, path) is not MISSING


def _set(obj: dict, path: str, value: Any) -> bool:
    parts = path_parts(path)
    for part in parts[:-1]:
        nxt = obj.get(part)
        if nxt is None:
            nxt = obj[part] = {}
        elif not isinstance(nxt, dict):
            return False
        obj = nxt
    obj[parts[-1]] = value
    return True


def _remove(obj: Any, path: str) -> None:
    parts = path_parts(path)
    for part in parts[:-1]:
        obj = obj.get(part) if isinstance(obj, dict) else None
    if isinstance(obj, dict):
        obj.pop(parts[-1], None)


def _rename(src_doc: dict, src: str, dst_doc: dict, dst: str) -> bool:
    """Elasticsearch ``rename`` (with ignore_failure)."""
    value = _get(src_doc, src)
    if value is MISSING or _has(dst_doc, dst):
        return False
    if not _set(dst_doc, dst, value):
        return False
    _remove(src_doc, src)
    return True


def _append_unique(doc: dict, path: str, value: Any) -> None:
    current = _get(doc, path)
    if current is MISSING:
        _set(doc, path, [value])
    elif isinstance(current, list):
        if value not in current:
            current.append(value)


def _date(json: dict, src: str, doc: dict, dst: str) -> None:
    stamp = es_timestamp(_get(json, src))
    if stamp is not None:
        _set(doc, dst, stamp)


def _java_length(text: str) -> int:
    """``String.length()``: UTF-16 code units."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _dedupe_resources(resources: list) -> list:
    """The pipeline's resources script: rename ARN/accountId, drop duplicates by
    arn_accountId_type, return ``new ArrayList(uniqueResources.values())`` (HashMap order)."""
    unique: dict[str, dict] = {}
    for original in resources:
        if not isinstance(original, dict):
            continue
        resource = dict(original)
        if "ARN" in resource:
            resource["arn"] = resource.pop("ARN")
        if "accountId" in resource:
            resource["account_id"] = resource.pop("accountId")
        key = "_".join(java_str(resource[k]) if k in resource else "" for k in ("arn", "account_id", "type"))
        unique[key] = resource  # like HashMap.put: a repeated key keeps its first position
    order = hashmap_order(list(unique), hashmap_capacity(len(unique)))
    return [unique[key] for key in order]


def ecs_document(record: dict) -> dict:
    """The ECS document for ``record`` (nested objects, as Elasticsearch stores it)."""
    json = drop_empty(record)
    if not isinstance(json, dict):
        json = {}
    doc: dict[str, Any] = {}

    _set(doc, "ecs.version", T.ECS_VERSION)
    _date(json, "eventTime", doc, "@timestamp")

    for src, dst in T.RENAMES_IDENTITY:
        if src == "userIdentity.userName":
            name = _get(json, src)
            if name is not MISSING:
                _append_unique(doc, "related.user", java_str(name))
        if src == "userIdentity.sessionContext.sessionIssuer.type":
            _date(json, "userIdentity.sessionContext.attributes.creationDate",
                  doc, "aws.cloudtrail.user_identity.session_context.creation_date")
        _rename(json, src, doc, dst)

    action = template_value(json, "eventName")
    if action:
        _set(doc, "event.action", action)
    _rename(json, T.RENAME_EVENT_CATEGORY[0], doc, T.RENAME_EVENT_CATEGORY[1])
    region = _get(json, "awsRegion")
    if region is not MISSING:
        _set(doc, "cloud.region", region)
    _rename(json, T.RENAME_SOURCE[0], doc, T.RENAME_SOURCE[1])
    address = _get(doc, "source.address")
    if is_ip(address):
        _set(doc, "source.ip", address)
    user_agent = _get(json, "userAgent")
    if user_agent is not MISSING:
        _set(doc, "user_agent.original", user_agent)
    for src, dst in T.RENAMES_ERROR:
        _rename(json, src, doc, dst)

    cloudtrail = _get(doc, "aws.cloudtrail")
    if isinstance(cloudtrail, dict):
        flattened = cloudtrail.setdefault("flattened", {})
        for src, name in T.FLATTENED:
            value = json.get(src)
            if value is not None:
                rendered = java_str(value)
                cloudtrail[name] = rendered
                if _java_length(rendered) < T.FLATTENED_MAX_CHARS:
                    flattened[name] = value

    for src, dst in T.RENAMES_EVENT:
        _rename(json, src, doc, dst)
    if isinstance(json.get("resources"), list):
        json["resources"] = _dedupe_resources(json["resources"])
    _rename(json, "resources", doc, "aws.cloudtrail.resources")
    for src, dst in T.RENAMES_ACCOUNT:
        _rename(json, src, doc, dst)

    request = _get(doc, "aws.cloudtrail.flattened.request_parameters")
    if isinstance(request, dict):
        for key in T.RELATED_USER_FROM_REQUEST:
            if request.get(key) is not None:
                _append_unique(doc, "related.user", java_str(request[key]))

    if json.get("eventName") == "ConsoleLogin":
        extra = _get(doc, "aws.cloudtrail.flattened.additional_eventdata")
        if isinstance(extra, dict):
            console: dict[str, Any] = {}
            for src, dst in T.CONSOLE_LOGIN_FLAGS:
                if extra.get(src) is not None:
                    console[dst] = extra[src] != "No"
            for src, dst in T.CONSOLE_LOGIN_COPY:
                if extra.get(src) is not None:
                    console[dst] = extra[src]
            if console:
                _set(doc, "aws.cloudtrail.console_login.additional_eventdata", console)

    # "Add ECS categorization"
    _set(doc, "event.kind", "event")
    _set(doc, "event.type", ["info"])
    failed = _has(doc, "aws.cloudtrail.error_code") or _has(doc, "aws.cloudtrail.error_message")
    _set(doc, "event.outcome", "failure" if failed else "success")
    action = _get(doc, "event.action")
    if action is not MISSING:
        if action == "ConsoleLogin":
            result = _get(doc, "aws.cloudtrail.flattened.response_elements.ConsoleLogin")
            if isinstance(result, str):
                _set(doc, "event.outcome", result.lower())
        categorization = T.CATEGORIZATION.get(action)
        if categorization is not None:
            _set(doc, "event.category", list(categorization[0]))
            _set(doc, "event.type", list(categorization[1]))

    # digest-file fields
    for src, dst in T.RENAMES_DIGEST:
        _rename(json, src, doc, dst)
    if json.get("previousDigestHashAlgorithm") == "SHA-256":
        if _rename(json, "previousDigestSignature", doc, "file.hash.sha256"):
            _append_unique(doc, "related.hash", template_value(doc, "file.hash.sha256"))
    _rename(json, "logFiles", doc, "aws.cloudtrail.digest.log_files")
    for src, dst in T.DIGEST_DATES:
        _date(json, src, doc, dst)
    for src, dst in T.RENAMES_DIGEST_2:
        _rename(json, src, doc, dst)
    for src, dst in T.DIGEST_DATES_2:
        _date(json, src, doc, dst)
    for src, dst in T.RENAMES_DIGEST_3:
        _rename(json, src, doc, dst)

    for dst, path in T.TEMPLATE_SETS:
        value = template_value(doc, path)
        if value:
            _set(doc, dst, value)
    for src, dst in T.LATE_MOVES:
        _rename(doc, src, doc, dst)

    version = _get(json, "tlsDetails.tlsVersion")
    if isinstance(version, str) and "v" in version:
        protocol, _, number = version.partition("v")
        _set(doc, "tls.version_protocol", protocol.lower())
        _set(doc, "tls.version", number)
    for src, dst in T.TLS_RENAMES:
        _rename(json, src, doc, dst)
    return doc
