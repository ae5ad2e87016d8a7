"""CloudTrail record -> ECS document, as Elastic's ``aws.cloudtrail`` pipeline writes it.

``ecs_document`` applies the processors of the version recorded in ``ecs_tables`` (aws
package 8.8.0) in order, written out as straight-line code over the record's fields (a
generic path walker cost ~100 µs per record), with Elasticsearch's semantics: the pipeline
first drops null, "", "-" and "none" values and the objects/lists left empty (here: each
value is pruned when it is read, which is the same thing), a ``rename`` is skipped when its
source is missing, dates go through the ``ISO8601`` parser (the session's creationDate also
through the basic formats) and come out as ``yyyy-MM-ddTHH:mm:ss.SSSZ``, objects kept as
text are Java ``toString()`` renderings in HashMap order, mustache values render like Java,
the final script drops what is left empty.  The record is never modified; the document may
share the record's (unpruned-equal) sub-objects.

Not reproduced, because they need Elasticsearch-side data or are not about the record:
``source.geo``/``source.as`` (GeoIP databases), the parsed ``user_agent.*`` sub-fields
(Elastic's ua-parser regexes; ``user_agent.original`` is kept), ``event.created``,
``event.ingested``, ``event.original``, ``tags``, and the ``actor_target_mapping`` script
(``related.entity``, ``*.entity.id``, ``host.target.id``: only with that tag).  Where
Elastic's pipeline would record a failure (``error.message``, ``event.kind:
pipeline_error``: a date it cannot parse, a grok or Painless step on a value of the wrong
type) the remaining processors are applied and the failure is not recorded.
"""
from __future__ import annotations

import re
from typing import Any

from . import ecs_tables as T
from .common import _IPS, _TIMES, MISSING, _check_ip, _parse_times, _times, es_timestamp, is_ip
from .javaish import EMPTY_STRINGS as _EMPTY
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


def ecs_document(record: dict, retain: str = "all") -> dict:
    """The ECS document for ``record`` (nested objects, as Elasticsearch stores it), with the
    pipeline's ``retain`` setting: "all" (its default) keeps the payloads (requestParameters,
    responseElements, additionalEventData, serviceEventDetails) as text and as objects under
    aws.cloudtrail.flattened, "keyword" as text only, "flattened" as objects only, "minimal"
    as text plus the objects' fields Elastic's detection rules read, "none" neither (the
    stream's form: its entry carries the record itself in ``event``)."""
    if not isinstance(record, _DICT):
        record = {}
    if retain == "all":
        keep_text = keep_flat = True
    else:
        keep_text = retain in _KEEP_TEXT
        keep_flat = retain in _KEEP_FLAT
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
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        ct["event_version"] = value

    identity = get("userIdentity")
    if identity.__class__ is _DICT and identity or isinstance(identity, _DICT) and identity:
        _identity(identity, ct, user, cloud, related_user)

    source_name = get("eventSource")
    if source_name.__class__ is str and source_name not in _EMPTY or source_name is not None and (
            source_name := pruned(source_name)) is not MISSING:
        if source_name.__class__ is str:
            service = _SERVICES_GET(source_name)
            if service is None:
                service = _service(source_name)
            if service:
                cloud["service"] = {"name": service}
        event["provider"] = source_name
    name = get("eventName")
    if name.__class__ is str and name not in _EMPTY:
        action = name
        event["action"] = action
    else:
        name = MISSING if name is None else pruned(name)
        action = "" if name is MISSING else java_str(name)
        if action:
            event["action"] = action
    value = get("eventCategory")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        ct["event_category"] = value
    extra_data = get("additionalEventData")
    if action == "UserAuthentication" and "name" not in user and isinstance(extra_data, _DICT):
        value = pruned(extra_data.get("UserName", MISSING)) if "UserName" in extra_data else MISSING
        if value is not MISSING:  # a rename: the name leaves additionalEventData
            user["name"] = value
            extra_data = {k: v for k, v in extra_data.items() if k != "UserName"}
    cloud["provider"] = "aws"
    value = get("awsRegion")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        cloud["region"] = value
    address = get("sourceIPAddress")
    source_ip = None
    if address.__class__ is str and address not in _EMPTY:
        known = _IPS_GET(address)
        if known is None:
            known = _check_ip(address)
        if known and (":" in address or _no_leading_zero(address)):
            source_ip = address
            doc["source"] = {"address": address, "ip": address}
        else:
            doc["source"] = {"address": address}
    elif address is not None and (address := pruned(address)) is not MISSING:
        source = doc["source"] = {"address": address}
        if _inet(address):
            source_ip = source["ip"] = address
    else:
        address = None
    value = get("userAgent")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        doc["user_agent"] = {"original": value}
    error_code = get("errorCode")
    if (error_code.__class__ is str and error_code not in _EMPTY
            or error_code is not None and (error_code := pruned(error_code)) is not MISSING):
        ct["error_code"] = error_code
        failed = True
    else:
        failed = False
    error_message = get("errorMessage")
    if (error_message.__class__ is str and error_message not in _EMPTY
            or error_message is not None and (error_message := pruned(error_message)) is not MISSING):
        ct["error_message"] = error_message
        failed = True

    # the payload script over the four payload objects, written out: aws.cloudtrail always exists from here on
    flattened: dict[str, Any] = {}
    request = response = None
    value = get("requestParameters")
    if value is not None:
        if keep_text or keep_flat:
            request, rendered = _prune_render_map(value) if value.__class__ is _DICT and value else prune_render(value)
            if rendered is not None:
                if keep_text:
                    ct["request_parameters"] = rendered
                if keep_flat and (len(rendered) * 2 < _MAX_CHARS or _java_length(rendered) < _MAX_CHARS):
                    flattened["request_parameters"] = request
        else:
            # kept as the record holds it: each value read below is pruned where it is read,
            # the same values as pruning the whole object first (without walking all of it)
            request = value
    value = get("responseElements")
    if value is not None:
        if keep_text or keep_flat:
            response, rendered = _prune_render_map(value) if value.__class__ is _DICT and value else prune_render(value)
            if rendered is not None:
                if keep_text:
                    ct["response_elements"] = rendered
                if keep_flat and (len(rendered) * 2 < _MAX_CHARS or _java_length(rendered) < _MAX_CHARS):
                    flattened["response_elements"] = response
        else:
            response = value
    details = get("serviceEventDetails")
    if keep_text or keep_flat:
        if extra_data is not None:
            extra_data, rendered = prune_render(extra_data)
            if rendered is not None:
                if keep_text:
                    ct["additional_eventdata"] = rendered
                if keep_flat and (len(rendered) * 2 < _MAX_CHARS or _java_length(rendered) < _MAX_CHARS):
                    flattened["additional_eventdata"] = extra_data
        if details is not None:
            details, rendered = prune_render(details)
            if rendered is not None:
                if keep_text:
                    ct["service_event_details"] = rendered
                if keep_flat and (len(rendered) * 2 < _MAX_CHARS or _java_length(rendered) < _MAX_CHARS):
                    flattened["service_event_details"] = details
    # else: extra_data and details stay as the record holds them, pruned value by value where read

    value = get("requestID")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        ct["request_id"] = value
    value = get("eventID")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        event["id"] = value
    value = get("eventType")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        ct["event_type"] = value
    value = get("apiVersion")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        ct["api_version"] = value
    value = get("managementEvent")
    if value.__class__ is bool:  # a convert to string
        ct["management_event"] = "true" if value else "false"
    elif value is not None and (value := pruned(value)) is not MISSING:
        ct["management_event"] = _convert_string(value)
    value = get("readOnly")
    if (value.__class__ is bool or value.__class__ is str and value not in _EMPTY
            or value is not None and (value := pruned(value)) is not MISSING):
        ct["read_only"] = value
    value = get("resources")
    if value is not None and (value := pruned(value)) is not MISSING:
        ct["resources"] = _dedupe_resources(value) if isinstance(value, list) else value
    value = get("recipientAccountId")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        ct["recipient_account_id"] = value
        if "account" not in cloud:
            cloud["account"] = {"id": value}
    value = get("sharedEventID")
    if value is None or (value := pruned(value)) is MISSING:
        value = get("sharedEventId")
        value = MISSING if value is None else pruned(value)
    if value is not MISSING:
        ct["shared_event_id"] = value
    value = get("vpcEndpointId")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        ct["vpc_endpoint_id"] = value
    value = get("vpcEndpointAccountId")
    if value is not None and (value := pruned(value)) is not MISSING:
        ct["vpc_endpoint_account_id"] = value
    addendum = get("addendum")
    if isinstance(addendum, _DICT) and addendum:
        out: dict[str, Any] = {}
        for src, dst in T.ADDENDUM_RENAMES:
            value = addendum.get(src)
            if value is not None and (value := pruned(value)) is not MISSING:
                out[dst] = value
        if out:
            ct["addendum"] = out

    if request.__class__ is not _DICT and not isinstance(request, _DICT):
        request = None
    if response.__class__ is not _DICT and not isinstance(response, _DICT):
        response = None
    if request is not None:
        for key in T.RELATED_USER_FROM_REQUEST:
            value = request.get(key)
            if value is not None and (value := pruned(value)) is not MISSING:
                value = java_str(value)
                if value not in related_user:
                    related_user.append(value)
    if response is not None:
        target = response.get("user")
        if isinstance(target, _DICT):
            value = target.get("userId")
            if value is not None and (value := pruned(value)) is not MISSING:
                value = java_str(value)
                if value not in related_user:
                    related_user.append(value)
    if action == "ConsoleLogin" and isinstance(extra_data, _DICT):
        console: dict[str, Any] = {}
        value = extra_data.get("MobileVersion")
        if value is not None and (value := pruned(value)) is not MISSING:
            console["mobile_version"] = value != "No"
        value = extra_data.get("LoginTo")
        if value is not None and (value := pruned(value)) is not MISSING:
            console["login_to"] = value
        value = extra_data.get("MFAUsed")
        if value is not None and (value := pruned(value)) is not MISSING:
            console["mfa_used"] = value != "No"
        if console:
            ct["console_login"] = {"additional_eventdata": console}

    # "Add ECS categorization"
    event["kind"] = "event"
    event["type"] = ["info"]
    event["outcome"] = "failure" if failed else "success"
    if action:
        if action == "ConsoleLogin" and response is not None:
            result = response.get("ConsoleLogin")
            if result.__class__ is not _STR and result is not None:
                result = pruned(result)
            if isinstance(result, _STR) and result not in _EMPTY:
                event["outcome"] = result.lower()
        categorization = _CATEGORIZATION_GET(action)
        if categorization is not None:
            event["category"] = list(categorization[0])
            event["type"] = list(categorization[1])

    # digest-file fields (the same pipeline also ingests digest files)
    if not _DIGEST_KEYS.isdisjoint(record):  # (cheaper than a cache by key tuple: measured)
        _digest_fields(record, doc, cloud, ct, flattened)

    # the ``set`` processors with ``copy_from`` (group and user ids and names), written out
    if response is not None and ("group" in response or "user" in response):
        value = response.get("group")
        if isinstance(value, _DICT) and (value := value.get("groupId")) is not None and (
                value := pruned(value)) is not MISSING:
            doc["group"] = {"id": value}
        value = response.get("user")
        if isinstance(value, _DICT) and (value := value.get("userId")) is not None and (
                value := pruned(value)) is not MISSING:
            user["target"] = {"id": value}
    if request is not None and not _NAMES.isdisjoint(request):
        value = request.get("newUserName")
        if value is not None and (value := pruned(value)) is not MISSING:
            user["changes"] = {"name": value}
        value = request.get("groupName")
        if value is not None and (value := pruned(value)) is not MISSING:
            doc.setdefault("group", {})["name"] = value
        value = request.get("userName")
        if value is not None and (value := pruned(value)) is not MISSING:
            user.setdefault("target", {})["name"] = value
    value = get("insightDetails")
    if value is not None and (value := pruned(value)) is not MISSING:
        flattened["insight_details"] = value

    tls = get("tlsDetails")
    if isinstance(tls, _DICT) and tls:
        out = {}
        version = tls.get("tlsVersion")
        if version.__class__ is not str:
            version = MISSING if version is None else pruned(version)
        if version == "tlsVersion":
            tls = None  # the pipeline removes such tlsDetails whole
        elif version is not MISSING:
            if isinstance(version, _STR) and "v" in version:
                split = _TLS_VERSIONS.get(version)
                if split is None:
                    protocol, _, number = version.partition("v")
                    split = (protocol.lower(), number)
                    if len(_TLS_VERSIONS) < 64:  # a handful in practice ("TLSv1.2", "TLSv1.3")
                        _TLS_VERSIONS[version] = split
                if split[0]:
                    out["version_protocol"] = split[0]
                if split[1]:
                    out["version"] = split[1]
            else:  # the dissect fails: its on_failure renames the value to tls.version
                out["version"] = version
        if tls is not None:
            value = tls.get("cipherSuite")
            if (value.__class__ is str and value not in _EMPTY
                    or value is not None and (value := pruned(value)) is not MISSING):
                out["cipher"] = value
            value = tls.get("clientProvidedHostHeader")
            if (value.__class__ is str and value not in _EMPTY
                    or value is not None and (value := pruned(value)) is not MISSING):
                out["client"] = {"server_name": value}
            value = tls.get("keyExchange")
            if value is not None and (value := pruned(value)) is not MISSING:
                ct["tls_details"] = {"key_exchange": value}
            if out:
                doc["tls"] = out

    # "Standardize user fields"
    name = user.get("name")
    if "email" not in user and name.__class__ is str and name.find("@") > 0:
        user["email"] = name
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
    changes = user.get("changes")
    if changes is not None:
        value = java_str(changes["name"])
        if value not in related_user:
            related_user.append(value)
    uid = ct.get("user_identity")
    if uid is not None:
        behalf = uid.get("on_behalf_of")
        if behalf is not None and "user_id" in behalf:
            value = java_str(behalf["user_id"])
            if value not in related_user:
                related_user.append(value)
    related: dict[str, Any] = doc.get("related") or {}
    if related_user:
        related["user"] = related_user
    related_ip = []
    if source_ip is not None:
        related_ip.append(source_ip.__class__ is str and source_ip or java_str(source_ip))
    if isinstance(details, _DICT):
        value = details.get("sourceIpAddress")
        if value is not None and _inet(value) and value not in related_ip:
            related_ip.append(value)
    if related_ip:
        related["ip"] = related_ip
    hosts = _related_hosts(doc, ct, source_ip, address, request, response)
    if hosts:
        related["hosts"] = hosts
    if related:
        doc["related"] = related

    if retain == "minimal" and flattened:
        flattened = _minimal(flattened)
    if flattened:
        ct["flattened"] = flattened
    if ct:
        doc["aws"] = {"cloudtrail": ct}
    if user:
        doc["user"] = user
    doc["event"] = event
    doc["cloud"] = cloud
    return doc


def _minimal(flattened: dict) -> dict:
    """``retain: minimal``: of the payload objects, only the fields Elastic's detection rules
    read; digest and Insights content whole."""
    out: dict[str, Any] = {}
    for part, key in T.MINIMAL_FLATTENED:
        container = flattened.get(part)
        if isinstance(container, _DICT) and key in container:
            out.setdefault(part, {})[key] = container[key]
    for part in T.MINIMAL_PRESERVED:
        if part in flattened:
            out[part] = flattened[part]
    return out


def _identity(identity: dict, ct: dict, user: dict, cloud: dict, related_user: list) -> None:
    """The userIdentity processors, in pipeline order."""
    iget = identity.get
    uid: dict[str, Any] = {}  # aws.cloudtrail.user_identity
    kind = iget("type")
    if kind.__class__ is str and kind not in _EMPTY or kind is not None and (kind := pruned(kind)) is not MISSING:
        uid["type"] = kind
    value = iget("userName")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        user["name"] = value
    value = iget("principalId")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        user["id"] = value
    arn = iget("arn")
    if arn.__class__ is str and arn not in _EMPTY or arn is not None and (arn := pruned(arn)) is not MISSING:
        uid["arn"] = arn
    value = iget("accountId")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        cloud["account"] = {"id": value}
    value = iget("accessKeyId")
    if value.__class__ is str and value not in _EMPTY or value is not None and (value := pruned(value)) is not MISSING:
        uid["access_key_id"] = value
    context = iget("sessionContext")
    session: dict[str, Any] = {}
    issued: dict[str, Any] = {}
    issuer = None
    if isinstance(context, _DICT):
        attributes = context.get("attributes")
        if isinstance(attributes, _DICT):
            value = attributes.get("mfaAuthenticated")
            if (value.__class__ is str and value not in _EMPTY
                    or value is not None and (value := pruned(value)) is not MISSING):
                session["mfa_authenticated"] = value
            value = attributes.get("creationDate")
            if value.__class__ is str:
                created = (_TIMES_GET(value) or _parse_times(value))[0]
                if created is None and value:
                    created = _basic_date_time(value)
            else:
                created = _times(value)[0]
            if created is not None:
                session["creation_date"] = created
        issuer = context.get("sessionIssuer")
        if isinstance(issuer, _DICT):
            sget = issuer.get
            value = sget("type")
            if (value.__class__ is str and value not in _EMPTY
                    or value is not None and (value := pruned(value)) is not MISSING):
                issued["type"] = value
            if kind.__class__ is str and kind in _ROLE_SESSION_TYPES:
                value = sget("userName")
                if (value.__class__ is str and value not in _EMPTY
                        or value is not None and (value := pruned(value)) is not MISSING):
                    user["name"] = value  # override: true
            value = sget("principalId")
            if (value.__class__ is str and value not in _EMPTY
                    or value is not None and (value := pruned(value)) is not MISSING):
                issued["principal_id"] = value
        else:
            issuer = None
    # the role session name (grok on the ARN), its email form and local part
    if kind.__class__ is str and kind in _SESSION_NAME_TYPES and arn.__class__ is str and ":sts:" in arn and "/" in arn:
        match = _SESSION_ARN.match(arn)
        if match is not None:
            session_name = match.group(1)
            if session_name:
                if session_name not in related_user:
                    related_user.append(session_name)
                if "@" in session_name:
                    prefix = session_name.split("@", 1)[0]
                    if prefix and prefix not in related_user:
                        related_user.append(prefix)
                    if "email" not in user:
                        user["email"] = session_name
    behalf = iget("onBehalfOf")
    if isinstance(behalf, _DICT) and behalf:
        out: dict[str, Any] = {}
        user_id = behalf.get("userId")
        if user_id is not None and (user_id := pruned(user_id)) is not MISSING:
            out["user_id"] = user_id
        value = behalf.get("identityStoreArn")
        if value is not None and (value := pruned(value)) is not MISSING:
            out["identity_store_arn"] = value
        if out:
            uid["on_behalf_of"] = out
        if user_id is not MISSING and kind == "IdentityCenterUser" and "id" not in user:
            user["id"] = user_id
    if issuer is not None:
        value = issuer.get("arn")
        if (value.__class__ is str and value not in _EMPTY
                or value is not None and (value := pruned(value)) is not MISSING):
            issued["arn"] = value
        value = issuer.get("accountId")
        if (value.__class__ is str and value not in _EMPTY
                or value is not None and (value := pruned(value)) is not MISSING):
            issued["account_id"] = value
    if issued:
        session["session_issuer"] = issued
    if not _IDENTITY_KEYS.isdisjoint(identity):
        for src, dst in T.IDENTITY_RENAMES:
            if src[0] in identity:
                _move(identity, src, uid, dst)
    if isinstance(context, _DICT) and not _CONTEXT_KEYS.isdisjoint(context):
        for src, dst in T.SESSION_CONTEXT_RENAMES:
            if src[0] in context:
                _move(context, src, session, dst)
    if session:
        uid["session_context"] = session
    if uid:
        ct["user_identity"] = uid


def _move(source: dict, path: tuple, target: dict, dest: tuple) -> None:
    """A rename of ``source[path]`` (pruned) to ``target[dest]``, when present."""
    value: Any = source
    for part in path:
        if not isinstance(value, _DICT):
            return
        value = value.get(part)
        if value is None:
            return
    value = pruned(value)
    if value is MISSING:
        return
    for part in dest[:-1]:
        target = target.setdefault(part, {})
    target[dest[-1]] = value


def _inet(value: Any) -> bool:
    """Whether Elasticsearch's ``convert`` to ``ip`` accepts ``value``: an IPv6 address, or a
    dotted-quad IPv4 address without leading zeros (``InetAddresses`` refuses them)."""
    return is_ip(value) and (":" in value or _no_leading_zero(value))


def _no_leading_zero(address: str) -> bool:
    """No part of a dotted quad (digits and dots only) starts with "0" and goes on."""
    if "0" not in address:
        return True
    if address[0] == "0" and address[1] != ".":
        return False
    at = address.find(".0")
    while at >= 0:
        if at + 2 < len(address) and address[at + 2] != ".":
            return False
        at = address.find(".0", at + 2)
    return True


def _convert_string(value: Any) -> Any:
    """Elasticsearch's ``convert`` to string: ``toString()`` of each value (of each item of a list)."""
    if isinstance(value, list):
        return [java_str(item) for item in value]
    return value if isinstance(value, str) else java_str(value)


_BASIC = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d{3}))?(Z|[+-]\d{2}:?\d{2})")


def _basic_date_time(value: str) -> str | None:
    """The creation date's fallback formats, ``basic_date_time_no_millis`` and
    ``basic_date_time`` (yyyyMMdd'T'HHmmss[.SSS]Z)."""
    match = _BASIC.fullmatch(value)
    if match is None:
        return None
    y, mo, d, h, mi, s, ms, zone = match.groups()
    return es_timestamp(f"{y}-{mo}-{d}T{h}:{mi}:{s}{'.' + ms if ms else ''}{zone}")


def _related_hosts(doc: dict, ct: dict, source_ip: Any, address: Any, request: Any, response: Any) -> list:
    """related.hosts: the TLS host header, a host-name source address, requestParameters'
    computerName, then the EC2 instance ids the script finds."""
    hosts: list = []
    tls = doc.get("tls")
    if tls is not None:
        server = tls.get("client", {}).get("server_name")
        if server is not None:
            if server.__class__ is not str:
                server = java_str(server)
            if not server.endswith(".amazonaws.com"):
                hosts.append(server)
    if source_ip is None and address is not None and address.__class__ is str and "." in address \
            and " " not in address and not address.endswith(".amazonaws.com") and address not in hosts:
        hosts.append(address)
    if request is not None:
        value = request.get("computerName")
        if value is not None and (value := pruned(value)) is not MISSING:
            value = java_str(value)
            if value not in hosts:
                hosts.append(value)
    if request is None and response is None and "resources" not in ct:
        return hosts
    found: list = []
    resources = ct.get("resources")
    if isinstance(resources, list):
        for resource in resources:
            if isinstance(resource, _DICT):
                arn = resource.get("arn")
                if isinstance(arn, str) and ":instance/" in arn:
                    _add_instance(found, arn[arn.rfind("/") + 1:])
    for container in (request, response):
        if container is None or _HOST_KEYS.isdisjoint(container):
            continue
        for key in T.HOST_SCALAR_KEYS:
            _add_instance(found, container.get(key))
        ids = container.get("instanceIds")
        if isinstance(ids, list):
            for item in ids:
                _add_instance(found, item)
        items = container.get("instancesSet")
        items = items.get("items") if isinstance(items, _DICT) else None
        if isinstance(items, list):
            for item in items:
                if isinstance(item, _DICT):
                    _add_instance(found, item.get("instanceId"))
    for host in found:
        if host not in hosts:
            hosts.append(host)
    return hosts


def _add_instance(found: list, value: Any) -> None:
    if isinstance(value, str) and len(value) >= 10 and value.startswith("i-") and value not in found:
        found.append(value)


_TLS_VERSIONS: dict[str, tuple[str, str]] = {}
_SERVICES: dict[str, str] = {}  # eventSource -> cloud.service.name ("" for none): a few dozen in practice
_SERVICES_GET = _SERVICES.get


def _service(source_name: str) -> str:
    """cloud.service.name of an eventSource: what comes before ``.amazonaws.com`` (remembered)."""
    service = source_name[:source_name.index(".amazonaws.com")] if source_name.endswith(".amazonaws.com") else ""
    if len(_SERVICES) >= 4096:
        _SERVICES.clear()
    _SERVICES[source_name] = service
    return service


def clear_caches() -> None:
    _TLS_VERSIONS.clear()
    _SERVICES.clear()


_MAX_CHARS = T.FLATTENED_MAX_CHARS
_CATEGORIZATION_GET = T.CATEGORIZATION.get
_DIGEST_KEYS = T.DIGEST_KEYS
_TIMES_GET = _TIMES.get
_IPS_GET = _IPS.get


# grok '^arn:[a-z0-9-]+:sts:.*/%{GREEDYDATA:_tmp.session_name}$' (Joni's "." stops at a newline)
_SESSION_ARN = re.compile(r"arn:[a-z0-9-]+:sts:.*/(.*)\Z")
_ROLE_SESSION_TYPES = T.ROLE_SESSION_TYPES
_KEEP_TEXT = frozenset(("", "all", "keyword", "minimal"))
_KEEP_FLAT = frozenset(("all", "flattened", "minimal"))
_IDENTITY_KEYS = frozenset(src[0] for src, _ in T.IDENTITY_RENAMES)
_CONTEXT_KEYS = frozenset(src[0] for src, _ in T.SESSION_CONTEXT_RENAMES)
_HOST_KEYS = frozenset(T.HOST_SCALAR_KEYS + ("instanceIds", "instancesSet"))
_SESSION_NAME_TYPES = T.SESSION_NAME_TYPES


def _digest_fields(record: dict, doc: dict, cloud: dict, ct: dict, flattened: dict) -> None:
    """The digest-file processors (``awsAccountId``, ``digest*``, ``logFiles``...), in
    pipeline order; aws.cloudtrail.digest then moves under aws.cloudtrail.flattened."""
    get = record.get
    value = get("awsAccountId")
    if value is not None and (value := pruned(value)) is not MISSING and "account" not in cloud:
        cloud["account"] = {"id": value}
    value = get("digestS3Object")
    if value is not None and (value := pruned(value)) is not MISSING:
        doc["file"] = {"path": value}
    digest: dict[str, Any] = {}
    for src, dst, kind in T.DIGEST_FIELDS:
        value = get(src)
        if value is None:
            continue
        if kind == "date":
            value = es_timestamp(pruned(value))
            if value is None:
                continue
        elif (value := pruned(value)) is MISSING or dst in digest:
            continue
        digest[dst] = value
        if dst == "previous_hash_value":
            doc.setdefault("related", {})["hash"] = [java_str(value)]
        elif dst == "end_time":
            doc["@timestamp"] = value
    if digest:
        flattened["digest"] = digest
