"""CloudTrail record -> ECS document, as Elastic's ``aws.cloudtrail`` pipeline writes it.

``ecs_document`` applies the pipeline's processors in order (tables in ``ecs_tables``),
written out as straight-line code over the record's fields (a generic path walker cost
~100 µs per record), with Elasticsearch's semantics: the pipeline first drops null and ""
values and the objects/lists left empty (here: each value is pruned when it is read,
which is the same thing), a ``rename`` is skipped when its source is missing or its
target already exists, dates go through the ``ISO8601`` parser and come out as
``yyyy-MM-ddTHH:mm:ss.SSSZ``, objects kept as text are Java ``toString()`` renderings in
HashMap order, mustache values render like Java.  The record is never modified; the
document may share the record's (unpruned-equal) sub-objects.

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

import re
from typing import Any

from . import ecs_tables as T
from .common import _IPS, _TIMES, MISSING, _check_ip, _parse_times, _times, es_timestamp, is_ip
from .javaish import _prune_render_map, hashmap_capacity, hashmap_order, java_str, prune_render, pruned

_DICT = dict
_STR = str
_NAMES = frozenset(("newUserName", "groupName", "userName"))


def _java_length(text: str) -> int:
    """``String.length()`` (UTF-16 code units), exact from half the limit up: below it, the
    comparison with the limit comes out the same whatever the text holds."""
    if len(text) * 2 < T.FLATTENED_MAX_CHARS:
        return len(text)
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


def _template(value: Any, *path: str) -> str:
    """Mustache ``'{{a.b}}'`` on the document: missing -> "", lists indexed by number only."""
    for part in path:
        if isinstance(value, _DICT):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            return ""
        if value is None:
            return ""
    return java_str(value)


# Reading a value the way the pipeline sees it (after its drop-empty script): the idiom
#     if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
# takes the common case (a non-empty string) in two tests and skips a missing key (None)
# without a call; anything else goes through ``pruned``.


def ecs_document(record: dict) -> dict:
    """The ECS document for ``record`` (nested objects, as Elasticsearch stores it)."""
    if not isinstance(record, _DICT):
        record = {}
    get = record.get
    doc: dict[str, Any] = {"ecs": {"version": T.ECS_VERSION}}
    ct: dict[str, Any] = {}  # aws.cloudtrail
    user: dict[str, Any] = {}
    event: dict[str, Any] = {}
    cloud: dict[str, Any] = {}
    related_user: list = []

    value = get("eventTime")
    stamp = (_TIMES_GET(value) or _parse_times(value)) if value.__class__ is str else _times(value)
    if stamp[0] is not None:
        doc["@timestamp"] = stamp[0]

    value = get("eventVersion")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        ct["event_version"] = value

    identity = get("userIdentity")
    if identity.__class__ is _DICT and identity or isinstance(identity, _DICT) and identity:
        iget = identity.get
        uid: dict[str, Any] = {}  # aws.cloudtrail.user_identity
        value = iget("type")
        if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
            uid["type"] = value
        value = iget("userName")
        if value.__class__ is str and value:
            related_user.append(value)
            user["name"] = value
        elif value is not None and (value := pruned(value)) is not MISSING:
            related_user.append(java_str(value))
            user["name"] = value
        value = iget("principalId")
        if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
            user["id"] = value
        arn = iget("arn")
        if arn.__class__ is str and arn or arn is not None and (arn := pruned(arn)) is not MISSING:
            uid["arn"] = arn
        value = iget("accountId")
        if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
            cloud["account"] = {"id": value}
        value = iget("accessKeyId")
        if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
            uid["access_key_id"] = value
        context = iget("sessionContext")
        if isinstance(context, _DICT):
            session: dict[str, Any] = {}
            attributes = context.get("attributes")
            if isinstance(attributes, _DICT):
                value = attributes.get("mfaAuthenticated")
                if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
                    session["mfa_authenticated"] = value
                value = attributes.get("creationDate")
                created = ((_TIMES_GET(value) or _parse_times(value)) if value.__class__ is str else _times(value))[0]
                if created is not None:
                    session["creation_date"] = created
            issuer = context.get("sessionIssuer")
            if isinstance(issuer, _DICT):
                sget = issuer.get
                issued: dict[str, Any] = {}
                value = sget("type")
                if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
                    issued["type"] = value
                value = sget("userName")
                if (value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING) \
                        and "name" not in user:
                    user["name"] = value
                value = sget("principalId")
                if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
                    issued["principal_id"] = value
                value = sget("arn")
                if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
                    issued["arn"] = value
                value = sget("accountId")
                if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
                    issued["account_id"] = value
                if issued:
                    session["session_issuer"] = issued
            if session:
                uid["session_context"] = session
        value = iget("invokedBy")
        if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
            uid["invoked_by"] = value
        if uid:
            ct["user_identity"] = uid
        _identities(arn if arn.__class__ is str else uid.get("arn"), user, related_user)

    value = get("eventSource")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        event["provider"] = value
    name = get("eventName")
    if name.__class__ is str and name:
        action = name
        event["action"] = action
    else:
        name = MISSING if name is None else pruned(name)
        action = "" if name is MISSING else java_str(name)
        if action:
            event["action"] = action
    value = get("eventCategory")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        ct["event_category"] = value
    value = get("awsRegion")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        cloud["region"] = value
    address = get("sourceIPAddress")
    if address.__class__ is str and address:
        known = _IPS_GET(address)
        if known is None:
            known = _check_ip(address)
        if known:
            doc["source"] = {"address": address, "ip": address}
        else:
            doc["source"] = {"address": address}
    elif address is not None and (address := pruned(address)) is not MISSING:
        source = doc["source"] = {"address": address}
        if is_ip(address):
            source["ip"] = address
    value = get("userAgent")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        doc["user_agent"] = {"original": value}
    error_code = get("errorCode")
    if (error_code.__class__ is str and error_code
            or error_code is not None and (error_code := pruned(error_code)) is not MISSING):
        ct["error_code"] = error_code
        failed = True
    else:
        failed = False
    error_message = get("errorMessage")
    if (error_message.__class__ is str and error_message
            or error_message is not None and (error_message := pruned(error_message)) is not MISSING):
        ct["error_message"] = error_message
        failed = True

    flattened = None
    request = response = None
    if ct:  # the pipeline's script runs only when aws.cloudtrail exists by now
        flattened = ct["flattened"] = {}
        # T.FLATTENED, written out
        value = get("requestParameters")
        if value is not None:
            request, rendered = _prune_render_map(value) if value.__class__ is _DICT and value else prune_render(value)
            if rendered is not None:
                ct["request_parameters"] = rendered
                if len(rendered) * 2 < _MAX_CHARS or _java_length(rendered) < _MAX_CHARS:
                    flattened["request_parameters"] = request
                else:
                    request = None
            else:
                request = None
        value = get("responseElements")
        if value is not None:
            response, rendered = _prune_render_map(value) if value.__class__ is _DICT and value else prune_render(value)
            if rendered is not None:
                ct["response_elements"] = rendered
                if len(rendered) * 2 < _MAX_CHARS or _java_length(rendered) < _MAX_CHARS:
                    flattened["response_elements"] = response
                else:
                    response = None
            else:
                response = None
        value = get("additionalEventData")
        if value is not None:
            value, rendered = prune_render(value)
            if rendered is not None:
                ct["additional_eventdata"] = rendered
                if len(rendered) * 2 < _MAX_CHARS or _java_length(rendered) < _MAX_CHARS:
                    flattened["additional_eventdata"] = value
        value = get("serviceEventDetails")
        if value is not None:
            value, rendered = prune_render(value)
            if rendered is not None:
                ct["service_event_details"] = rendered
                if len(rendered) * 2 < _MAX_CHARS or _java_length(rendered) < _MAX_CHARS:
                    flattened["service_event_details"] = value

    # T.RENAMES_EVENT, written out
    value = get("requestID")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        ct["request_id"] = value
    value = get("eventID")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        event["id"] = value
    value = get("eventType")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        ct["event_type"] = value
    value = get("apiVersion")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        ct["api_version"] = value
    value = get("managementEvent")
    if (value.__class__ is bool
            or value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING):
        ct["management_event"] = value
    value = get("readOnly")
    if (value.__class__ is bool
            or value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING):
        ct["read_only"] = value
    value = get("resources")
    if value is not None and (value := pruned(value)) is not MISSING:
        ct["resources"] = _dedupe_resources(value) if isinstance(value, list) else value
    # T.RENAMES_ACCOUNT, written out
    value = get("recipientAccountId")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        ct["recipient_account_id"] = value
    value = get("sharedEventId")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        ct["shared_event_id"] = value
    value = get("vpcEndpointId")
    if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
        ct["vpc_endpoint_id"] = value

    if request.__class__ is not _DICT and not isinstance(request, _DICT):
        request = None
    if response.__class__ is not _DICT and not isinstance(response, _DICT):
        response = None
    if request is not None:
        for key in T.RELATED_USER_FROM_REQUEST:
            value = request.get(key)
            if value is not None:
                value = java_str(value)
                if value not in related_user:
                    related_user.append(value)
    if name == "ConsoleLogin" and flattened is not None:
        extra = flattened.get("additional_eventdata")
        if isinstance(extra, _DICT):
            console: dict[str, Any] = {}
            for src, dst in T.CONSOLE_LOGIN_FLAGS:
                if extra.get(src) is not None:
                    console[dst] = extra[src] != "No"
            for src, dst in T.CONSOLE_LOGIN_COPY:
                if extra.get(src) is not None:
                    console[dst] = extra[src]
            if console:
                ct["console_login"] = {"additional_eventdata": console}

    # "Add ECS categorization"
    event["kind"] = "event"
    event["type"] = ["info"]
    event["outcome"] = "failure" if failed else "success"
    if action:
        if action == "ConsoleLogin" and response is not None:
            result = response.get("ConsoleLogin")
            if isinstance(result, _STR):
                event["outcome"] = result.lower()
        categorization = _CATEGORIZATION_GET(action)
        if categorization is not None:
            event["category"] = list(categorization[0])
            event["type"] = list(categorization[1])

    # digest-file fields (the same pipeline also ingests digest files)
    digest = not _DIGEST_KEYS.isdisjoint(record)  # (cheaper than a cache by key tuple: measured)
    if digest:
        _digest_fields(record, doc, cloud, ct)

    if flattened is not None and (
            response is not None and ("group" in response or "user" in response)
            or request is not None and not _NAMES.isdisjoint(request)):
        if response is None:
            response = {}
        if request is None:
            request = {}
        group_id = _template(response, "group", "groupId")
        target_id = _template(response, "user", "userId")
        new_name = _template(request, "newUserName")
        group_name = _template(request, "groupName")
        target_name = _template(request, "userName")
        if group_id:
            doc.setdefault("group", {})["id"] = group_id
        if target_id:
            user.setdefault("target", {})["id"] = target_id
        if new_name:
            user["changes"] = {"name": new_name}
        if group_name:
            doc.setdefault("group", {})["name"] = group_name
        if target_name:
            user.setdefault("target", {})["name"] = target_name
    if digest and ct:  # T.LATE_MOVES: only the digest processors set these
        for src, dst in (("digest", "digest"), ("insight_details", "insight_details")):
            if src in ct:
                moved = ct.get("flattened")
                if moved is None:
                    moved = ct["flattened"] = {}
                if dst not in moved:
                    moved[dst] = ct.pop(src)

    tls = get("tlsDetails")
    if isinstance(tls, _DICT):
        out: dict[str, Any] = {}
        version = tls.get("tlsVersion")
        if version.__class__ is not str:
            version = pruned(version)
        if isinstance(version, _STR) and "v" in version:
            split = _TLS_VERSIONS.get(version)
            if split is None:
                protocol, _, number = version.partition("v")
                split = (protocol.lower(), number)
                if len(_TLS_VERSIONS) < 64:  # a handful in practice ("TLSv1.2", "TLSv1.3")
                    _TLS_VERSIONS[version] = split
            out["version_protocol"], out["version"] = split
        value = tls.get("cipherSuite")
        if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
            out["cipher"] = value
        value = tls.get("clientProvidedHostHeader")
        if value.__class__ is str and value or value is not None and (value := pruned(value)) is not MISSING:
            out["client"] = {"server_name": value}
        if out:
            doc["tls"] = out

    if ct:
        doc["aws"] = {"cloudtrail": ct}
    if user:
        doc["user"] = user
    if event:
        doc["event"] = event
    if cloud:
        doc["cloud"] = cloud
    if related_user:
        related = doc.get("related")
        if related is None:
            doc["related"] = {"user": related_user}
        else:
            related["user"] = related_user
    return doc


_TLS_VERSIONS: dict[str, tuple[str, str]] = {}


def clear_caches() -> None:
    _TLS_VERSIONS.clear()


_MAX_CHARS = T.FLATTENED_MAX_CHARS
_CATEGORIZATION_GET = T.CATEGORIZATION.get
_DIGEST_KEYS = T.DIGEST_KEYS
_TIMES_GET = _TIMES.get
_IPS_GET = _IPS.get


_EMAIL = re.compile(r"[^@\s/:]+@[^@\s/:]+\.[^@\s/:.]+")


def _identities(arn: Any, user: dict, related_user: list) -> None:
    """What the current aws.cloudtrail pipeline adds about the caller (issue 13, read from
    Elastic's test expectations): ``related.user`` gets the role session name of an
    AssumedRole ARN, ``user.id`` and ``user.name`` (the session issuer's role name when the
    caller is a role); an email address as session name (SSO sessions) or as user name
    (console users) becomes ``user.email``, and a session email's local part is related too."""
    if (arn.__class__ is str or isinstance(arn, str)) and ":assumed-role/" in arn:
        session = arn.rsplit("/", 1)[-1]
        if session:
            if session not in related_user:
                related_user.append(session)
            if "@" in session and _EMAIL.fullmatch(session):
                user.setdefault("email", session)
                local = session.split("@", 1)[0]
                if local not in related_user:
                    related_user.append(local)
    name = user.get("name")
    if isinstance(name, str) and "@" in name and _EMAIL.fullmatch(name):
        user.setdefault("email", name)
    value = user.get("id")
    if value is not None:
        if value.__class__ is not str:
            value = java_str(value)
        if value not in related_user:
            related_user.append(value)
    if name is not None:
        if name.__class__ is not str:
            name = java_str(name)
        if name not in related_user:
            related_user.append(name)


def _digest_fields(record: dict, doc: dict, cloud: dict, ct: dict) -> None:
    """The digest-file processors (``awsAccountId``, ``digest*``, ``logFiles``...) and the
    insightDetails rename, in pipeline order; rare in event records."""
    get = record.get
    value = get("awsAccountId")
    if value.__class__ is not str or not value:
        value = pruned(value)
    if value is not MISSING and "account" not in cloud:
        cloud["account"] = {"id": value}
    value = get("digestS3Object")
    if value.__class__ is not str or not value:
        value = pruned(value)
    if value is not MISSING:
        doc["file"] = {"path": value}
    if pruned(get("previousDigestHashAlgorithm")) == "SHA-256":
        value = get("previousDigestSignature")
        if value.__class__ is not str or not value:
            value = pruned(value)
        if value is not MISSING:
            doc.setdefault("file", {})["hash"] = {"sha256": value}
            doc.setdefault("related", {})["hash"] = [java_str(value)]
    digest: dict[str, Any] = {}
    value = get("logFiles")
    if value.__class__ is not str or not value:
        value = pruned(value)
    if value is not MISSING:
        digest["log_files"] = value
    start = es_timestamp(pruned(get("digestStartTime")))
    if start is not None:
        digest["start_time"] = start
    end = es_timestamp(pruned(get("digestEndTime")))
    if end is not None:
        doc["@timestamp"] = end
        digest["end_time"] = end
    value = get("digestS3Bucket")
    if value.__class__ is not str or not value:
        value = pruned(value)
    if value is not MISSING:
        digest["s3_bucket"] = value
    for src, dst in (("newestEventTime", "newest_event_time"), ("oldestEventTime", "oldest_event_time")):
        stamp = es_timestamp(pruned(get(src)))
        if stamp is not None:
            digest[dst] = stamp
    for src, dst in T.RENAMES_DIGEST_3:
        value = get(src)
        if value.__class__ is not str or not value:
            value = pruned(value)
        if value is not MISSING:
            if dst.startswith("aws.cloudtrail.digest."):
                digest[dst[22:]] = value
            else:
                ct[dst[15:]] = value
    if digest:
        ct["digest"] = digest
