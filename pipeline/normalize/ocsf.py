"""CloudTrail record -> OCSF 1.1.0 event (Authentication, Account Change or API Activity).

Choices where OCSF leaves room (tables in ``ocsf_tables``):

* ``activity_id``: API Activity from the eventName's verb (Create/Run/Generate 1,
  Get/List/Describe/Search/Lookup 2, Update/Put/Modify/Add/Remove/Start/Stop/Attach/
  Detach/Tag/Untag/Enable/Disable 3, Delete/Terminate 4, else 99); Authentication uses
  Logon (1) for ConsoleLogin, SwitchRole, RenewRole and every AssumeRole*/AssumeRoot,
  Logoff (2) for ExitRole, 99 for other sign-in events; Account Change uses the class's
  own activities (Create 1, Enable 2, Password Change 3, Password Reset 4, Disable 5,
  Delete 6, Attach Policy 7, Detach Policy 8, MFA Factor Enable 10 / Disable 11, else 99).
  For 99, ``activity_name`` is the eventName.
* ``status``: Failure when errorCode/errorMessage is present, or when a console sign-in
  answered responseElements.ConsoleLogin = "Failure"; ``status_code``/``status_detail``
  carry errorCode/errorMessage.  ``severity_id`` is always 1 (Informational).
* ``src_endpoint``: ``ip`` for an IP address; for a comma-separated list of IPs the first
  one, the others in ``intermediate_ips``; ``domain`` for anything else (a service name
  such as "ec2.amazonaws.com", "AWS Internal").
* ``actor.user``: uid = ARN, uid_alt = principalId, name = userName (else the session
  issuer's userName, as for ECS ``user.name``), type = userIdentity.type with
  ``type_id`` from ``USER_TYPE_IDS``; credential_uid = accessKeyId.
* ``user`` (the target, required by 3001/3002): the IAM user/role of the request or
  response for Account Change, the assumed role for AssumeRole*, else the actor.
* ``unmapped``: every top-level field not mapped, userIdentity leftovers included.
"""
from __future__ import annotations

import re
from typing import Any

from . import ocsf_tables as T
from .common import _IPS, _TIMES, MISSING, _parse_times, _times, dig, ip_list, is_ip, text

_FIRST_WORD = re.compile(r"[A-Z][a-z]+")


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes"):
            return True
        if lowered in ("false", "no"):
            return False
    return None


def _str(value: Any) -> str | None:
    """A scalar as text (OCSF string attributes); None for missing/empty/objects."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def classify(record: dict) -> tuple[int, int]:
    """(class_uid, activity_id) for the record."""
    name = record.get("eventName")
    source = record.get("eventSource")
    if name.__class__ is str and (source is None or source.__class__ is str):
        known = _CLASSES.get((name, source))
        if known is None:
            known = _classify(record, name, source)
            if not (source == T.IAM_SOURCE and isinstance(T.ACCOUNT_CHANGE_ACTIVITIES.get(name), tuple)):
                if len(_CLASSES) >= 4096:
                    _CLASSES.clear()
                _CLASSES[name, source] = known  # decided by the names alone
        return known
    return _classify(record, text(name) or "", source)


_CLASSES: dict[tuple[str, str | None], tuple[int, int]] = {}


def clear_caches() -> None:
    _CLASSES.clear()
    _HEADS.clear()
    _UNMAPPED_KEYS.clear()
    _IDENTITY_UNMAPPED_KEYS.clear()


def _classify(record: dict, name: str, source: object) -> tuple[int, int]:
    if name in T.AUTH_ACTIVITIES or source == T.SIGNIN_SOURCE or name.startswith(T.AUTH_PREFIX):
        return T.AUTHENTICATION, T.AUTH_ACTIVITIES.get(name, 1 if name.startswith(T.AUTH_PREFIX) else 99)
    if source == T.IAM_SOURCE and name in T.ACCOUNT_CHANGE_ACTIVITIES:
        spec = T.ACCOUNT_CHANGE_ACTIVITIES[name]
        if isinstance(spec, tuple):
            key, choices, default = spec
            value = dig(record, f"requestParameters.{key}")
            spec = choices.get(value, default) if isinstance(value, str) else default
        return T.ACCOUNT_CHANGE, spec
    word = _FIRST_WORD.match(name)
    if word and word.group() == "Batch":
        word = _FIRST_WORD.match(name, word.end())
    return T.API_ACTIVITY, T.API_VERBS.get(word.group(), 99) if word else 99


def _actor_user(identity: dict) -> dict:
    get = identity.get
    user: dict[str, Any] = {}
    value = get("arn")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        user["uid"] = value
    value = get("principalId")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        user["uid_alt"] = value
    name = get("userName")
    if name.__class__ is str and name or name is not None and (name := _str(name)) is not None:
        user["name"] = name
    else:
        context = get("sessionContext")
        issuer = context.get("sessionIssuer") if isinstance(context, dict) else None
        name = _str(issuer.get("userName")) if isinstance(issuer, dict) else None
        if name is not None:
            user["name"] = name
    value = get("type")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        user["type"] = value
        user["type_id"] = _USER_TYPE_IDS_GET(value, 99)
    else:
        user["type_id"] = 0
    value = get("accountId")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        user["account"] = {"uid": value}
    value = get("accessKeyId")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        user["credential_uid"] = value
    return user


_BOOLS = {"true": True, "false": False}  # _bool's answer for CloudTrail's own spellings


def _actor(identity: dict) -> dict:
    get = identity.get
    actor: dict[str, Any] = {"user": _actor_user(identity)}
    context = get("sessionContext")
    provider = None
    if context.__class__ is dict or isinstance(context, dict):
        attributes = context.get("attributes")
        if attributes.__class__ is dict or isinstance(attributes, dict):
            value = attributes.get("creationDate")
            created = ((_TIMES_GET(value) or _parse_times(value)) if value.__class__ is str else _times(value))[1]
            value = attributes.get("mfaAuthenticated")
            mfa = _BOOLS.get(value) if value.__class__ is str else None
            if mfa is None:
                mfa = _bool(value)
            if created is not None:
                session: dict[str, Any] = {"created_time": created}
                if mfa is not None:
                    session["is_mfa"] = mfa
            elif mfa is not None:
                session = {"is_mfa": mfa}
            else:
                session = {}
        else:
            session = {}
        issuer = context.get("sessionIssuer")
        if issuer is not None and isinstance(issuer, dict) and (value := _str(issuer.get("arn"))) is not None:
            session["issuer"] = value
        if session:
            actor["session"] = session
        federation = context.get("webIdFederationData")
        if federation is not None and isinstance(federation, dict):
            provider = _str(federation.get("federatedProvider"))
    value = get("invokedBy")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        actor["invoked_by"] = value
    if provider is None:
        value = get("identityProvider")
        provider = None if value is None else _str(value)
    if provider is not None:
        actor["idp"] = {"name": provider}
    return actor


def _kept(values: dict) -> dict:
    """``values`` without its None values."""
    return {key: value for key, value in values.items() if value is not None}


def _target_user(record: dict, identity: dict) -> dict:
    """The IAM user or role an Account Change is about (falls back to the actor)."""
    request = record.get("requestParameters")
    request = request if isinstance(request, dict) else {}
    response = record.get("responseElements")
    response = response if isinstance(response, dict) else {}
    for kind, name_key, id_key, type_, type_id in (
        ("user", "userName", "userId", "IAMUser", 1),
        ("role", "roleName", "roleId", "Role", 99),
    ):
        created = response.get(kind)
        created = created if isinstance(created, dict) else {}
        name = _str(request.get(name_key)) or _str(created.get(name_key))
        if name or created:
            return _kept({
                "uid": _str(created.get("arn")),
                "uid_alt": _str(created.get(id_key)),
                "name": name,
                "type": type_,
                "type_id": type_id,
            })
    return _actor_user(identity)


def _auth_user(record: dict, identity: dict) -> dict:
    """The subject of an Authentication: the assumed role for AssumeRole*, else the caller."""
    name = record.get("eventName")
    if isinstance(name, str) and name.startswith("Assume"):
        role_arn = _str(dig(record, "requestParameters.roleArn"))
        assumed = dig(record, "responseElements.assumedRoleUser")
        assumed = assumed if isinstance(assumed, dict) else {}
        if role_arn or assumed:
            return _kept({
                "uid": role_arn or _str(assumed.get("arn")),
                "uid_alt": _str(assumed.get("assumedRoleId")),
                "name": _str(dig(record, "requestParameters.roleSessionName")),
                "type": "AssumedRole",
                "type_id": 99,
            })
    return _actor_user(identity)


def _resources(record: dict) -> list | None:
    resources = record.get("resources")
    if not isinstance(resources, list):
        return None
    out = []
    for resource in resources:
        if isinstance(resource, dict):
            item: dict[str, Any] = {}
            if (uid := _str(resource.get("ARN")) or _str(resource.get("arn"))) is not None:
                item["uid"] = uid
            if (value := _str(resource.get("type"))) is not None:
                item["type"] = value
            if (value := _str(resource.get("accountId"))) is not None:
                item["owner"] = {"account": {"uid": value}}
            if item:
                out.append(item)
    return out or None


def _without(obj: dict, tree: dict) -> dict:
    """A copy of ``obj`` without the paths of ``tree`` (a leaf is None); objects left
    empty on those paths are dropped."""
    out = {}
    for key, value in obj.items():
        sub = tree.get(key, MISSING)
        if sub is MISSING:
            out[key] = value
        elif sub is not None:
            if isinstance(value, dict):
                value = _without(value, sub)
                if value:
                    out[key] = value
            else:
                out[key] = value
    return out


def _tree(paths: tuple[str, ...]) -> dict:
    tree: dict = {}
    for path in paths:
        *heads, leaf = path.split(".")
        node = tree
        for head in heads:
            node = node.setdefault(head, {})
        node[leaf] = None
    return tree


_MAPPED_USER_IDENTITY = _tree(T.MAPPED_USER_IDENTITY)
_MAPPED_AUTH_EXTRA = _tree(T.MAPPED_AUTH_EXTRA)


# Reading a string attribute: the idiom
#     if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
# takes the common case (a non-empty string) in two tests and a missing key without a call.


def _head(record: dict, name: Any, source: Any) -> tuple[int, dict, dict]:
    """class_uid and the event's first twelve attributes (class, activity, type, severity,
    status) on success and on failure, by (eventName, eventSource) when those decide them
    alone: each event starts as a copy of one."""
    class_uid, activity_id = classify(record)
    class_name, category_uid, category_name = T.CLASSES[class_uid]
    activity_name = T.ACTIVITY_NAMES[class_uid].get(activity_id, "Other")
    if activity_id == 99:
        event_name = text(name)
        if event_name:
            activity_name = event_name
    heads = []
    for status_id, status in (_STATUS_SUCCESS, _STATUS_FAILURE):
        heads.append({
            "activity_id": activity_id,
            "activity_name": activity_name,
            "category_uid": category_uid,
            "category_name": category_name,
            "class_uid": class_uid,
            "class_name": class_name,
            "type_uid": class_uid * 100 + activity_id,
            "type_name": f"{class_name}: {activity_name}",
            "severity_id": _SEVERITY_ID,
            "severity": _SEVERITY,
            "status_id": status_id,
            "status": status,
        })
    return class_uid, heads[0], heads[1]


_HEADS: dict[tuple[str, str | None], tuple[int, dict, dict]] = {}
_SEVERITY_ID, _SEVERITY = T.SEVERITY
_STATUS_SUCCESS = T.STATUS_SUCCESS
_STATUS_FAILURE = T.STATUS_FAILURE
_PRODUCT_NAME = T.PRODUCT["name"]
_PRODUCT_VENDOR = T.PRODUCT["vendor_name"]
_OCSF_VERSION = T.OCSF_VERSION
_PROFILES = T.PROFILES
_USER_TYPE_IDS_GET = T.USER_TYPE_IDS.get
_MAPPED_TOP_LEVEL = T.MAPPED_TOP_LEVEL
_AUTHENTICATION = T.AUTHENTICATION
_ACCOUNT_CHANGE = T.ACCOUNT_CHANGE
_TIMES_GET = _TIMES.get
_IPS_GET = _IPS.get


def ocsf_event(record: dict, payloads: bool = True) -> dict:
    """The OCSF 1.1.0 event for ``record`` (a dict ready for JSON; attributes without a
    value are left out).  ``payloads=False`` leaves out what only copies the record:
    ``unmapped`` and ``api.request.data``/``api.response.data`` (the stream's form: its entry
    carries the record itself in ``event``)."""
    get = record.get
    name = get("eventName")
    source = get("eventSource")
    head = None
    if name.__class__ is str and (source is None or source.__class__ is str):
        head = _HEADS.get((name, source))
    if head is None:
        head = _head(record, name, source)
        if name.__class__ is str and (source is None or source.__class__ is str) and (name, source) in _CLASSES:
            if len(_HEADS) >= 4096:
                _HEADS.clear()
            _HEADS[name, source] = head  # classify remembered it: decided by the names alone
    class_uid, succeeded, failed_head = head
    event_name = name if name.__class__ is str and name else text(name)
    # failed as pipeline.normalize.category decides it (a console sign-in's answer first)
    response = get("responseElements")
    console = response.get("ConsoleLogin") if response.__class__ is dict or isinstance(response, dict) else None
    error_code = get("errorCode")
    error_message = get("errorMessage")
    if console.__class__ is str or isinstance(console, str):
        is_failed = console.lower() != "success"
    else:
        is_failed = bool(error_code or error_message)
    identity = get("userIdentity")
    if identity.__class__ is not dict and not isinstance(identity, dict):
        identity = None
    if (not (error_code.__class__ is str and error_code
            or error_code is not None and (error_code := _str(error_code)) is not None)):
        error_code = None
    if (not (error_message.__class__ is str and error_message
            or error_message is not None and (error_message := _str(error_message)) is not None)):
        error_message = None
    service = source if source.__class__ is str and source else _str(source)

    event: dict[str, Any] = (failed_head if is_failed else succeeded).copy()
    if error_code is not None:
        event["status_code"] = error_code
    if error_message is not None:
        event["status_detail"] = error_message
    event_time = get("eventTime")
    time = ((_TIMES_GET(event_time) or _parse_times(event_time)) if event_time.__class__ is str
            else _times(event_time))[1]
    if time is not None:
        event["time"] = time
    product: dict[str, Any] = {"name": _PRODUCT_NAME, "vendor_name": _PRODUCT_VENDOR}
    value = get("eventVersion")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        product["version"] = value
    value = get("eventCategory")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        product["feature"] = {"name": value}
    value = get("eventID")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        metadata: dict[str, Any] = {"version": _OCSF_VERSION, "uid": value, "product": product}
    else:
        metadata = {"version": _OCSF_VERSION, "product": product}
    value = get("eventType")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        metadata["event_code"] = value
    metadata["profiles"] = [*_PROFILES]
    event["metadata"] = metadata
    cloud: dict[str, Any] = {"provider": "AWS"}
    value = get("awsRegion")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        cloud["region"] = value
    value = get("recipientAccountId")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        cloud["account"] = {"uid": value}
    event["cloud"] = cloud
    if identity:
        event["actor"] = _actor(identity)
    api: dict[str, Any] = {}
    if event_name is not None:
        api["operation"] = event_name
    if service is not None:
        api["service"] = {"name": service}
    value = get("apiVersion")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        api["version"] = value
    value = get("requestID")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        api["request"] = {"uid": value}
    if error_code is not None:
        api["response"] = {"error": error_code, "message": error_message} if error_message is not None \
            else {"error": error_code}
    elif error_message is not None:
        api["response"] = {"message": error_message}
    if api:
        event["api"] = api
    # src_endpoint: ip for an address, the first of a list of them, else domain
    address = get("sourceIPAddress")
    value = get("vpcEndpointId")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        endpoint: dict[str, Any] = {"uid": value}
    else:
        endpoint = {}
    known = _IPS_GET(address) if address.__class__ is str else None
    if known is None:
        known = is_ip(address)
    if known:
        endpoint["ip"] = address
    elif (addresses := ip_list(address)) is not None:
        endpoint["ip"] = addresses[0]
        endpoint["intermediate_ips"] = addresses[1:]
    elif address.__class__ is str and address or address is not None and (address := _str(address)) is not None:
        endpoint["domain"] = address
    if endpoint:
        event["src_endpoint"] = endpoint
    value = get("userAgent")
    if value.__class__ is str and value or value is not None and (value := _str(value)) is not None:
        event["http_request"] = {"user_agent": value}
    resources = get("resources")
    if resources is not None:
        resources = _resources(record)
        if resources is not None:
            event["resources"] = resources

    extra = None
    if class_uid == _AUTHENTICATION:
        extra = get("additionalEventData")
        event["user"] = _auth_user(record, identity or {})
        if service is not None:
            event["service"] = {"name": service}
        if isinstance(extra, dict):
            if (value := _bool(extra.get("MFAUsed"))) is not None:
                event["is_mfa"] = value
            if (value := _str(extra.get("LoginTo"))) is not None:
                event["dst_endpoint"] = {"svc_name": value}
        else:
            extra = None
        protocol = T.AUTH_PROTOCOLS.get(event_name or "")
        if protocol:
            event["auth_protocol_id"], event["auth_protocol"] = protocol
    elif class_uid == _ACCOUNT_CHANGE:
        event["user"] = _target_user(record, identity or {})
        request = get("requestParameters")
        if isinstance(request, dict):
            policy_arn = _str(request.get("policyArn"))
            policy_name = _str(request.get("policyName"))
            if policy_name:
                event["policy"] = _kept({"uid": policy_arn, "name": policy_name})
            elif policy_arn:
                event["policy"] = _kept({"uid": policy_arn, "name": policy_arn.rsplit("/", 1)[-1]})

    if not payloads:
        return event
    keys = tuple(record)  # records of a file share a few key tuples: the unmapped keys by tuple
    picked = _UNMAPPED_KEYS.get(keys)
    if picked is None:
        picked = _unmapped_keys(keys, _MAPPED_TOP_LEVEL, _UNMAPPED_KEYS)
    unmapped = {}
    for key in picked:
        unmapped[key] = record[key]
    whole = unmapped.pop("userIdentity", None)  # back at the end, when something is left
    if identity:
        rest = _identity_rest(identity)
        if rest:
            unmapped["userIdentity"] = rest
    elif whole is not None:
        unmapped["userIdentity"] = whole
    if extra is not None:
        rest = _without(extra, _MAPPED_AUTH_EXTRA)
        if rest:
            unmapped["additionalEventData"] = rest
        else:
            unmapped.pop("additionalEventData", None)
    if time is None and event_time is not None:
        unmapped["eventTime"] = event_time  # not a time OCSF can carry
    data = get("requestParameters")
    if data is not None:
        _api_data(event, "request", data)
    if response is not None:
        _api_data(event, "response", response)
    if unmapped:
        event["unmapped"] = unmapped
    return event


def _identity_rest(identity: dict) -> dict:
    """``_without(identity, _MAPPED_USER_IDENTITY)``, written out: what userIdentity holds
    beyond what ``actor`` carries."""
    keys = tuple(identity)
    picked = _IDENTITY_UNMAPPED_KEYS.get(keys)
    if picked is None:
        picked = _unmapped_keys(keys, _IDENTITY_MAPPED, _IDENTITY_UNMAPPED_KEYS)
    out = {}
    for key in picked:
        value = identity[key]
        if key == "sessionContext" and isinstance(value, dict):
            rest = {}
            for name, part in value.items():
                mapped = _SESSION_MAPPED.get(name)
                if mapped is not None and isinstance(part, dict):
                    if part.keys() <= mapped:
                        continue  # everything in it is mapped (the usual attributes)
                    part = {k: v for k, v in part.items() if k not in mapped}
                    if not part:
                        continue
                rest[name] = part
            if rest:
                out[key] = rest
        else:
            out[key] = value
    return out


_IDENTITY_MAPPED = frozenset(key for key, sub in _MAPPED_USER_IDENTITY.items() if sub is None)
# sessionContext's mapped objects -> their mapped keys (all leaves, one level down)
_SESSION_MAPPED = {name: frozenset(sub) for name, sub in _MAPPED_USER_IDENTITY["sessionContext"].items()}


_UNMAPPED_KEYS: dict[tuple, tuple] = {}  # a record's keys -> those not in MAPPED_TOP_LEVEL
_IDENTITY_UNMAPPED_KEYS: dict[tuple, tuple] = {}  # userIdentity's keys -> those not mapped


def _unmapped_keys(keys: tuple, mapped: frozenset, cache: dict) -> tuple:
    picked = tuple(key for key in keys if key not in mapped)
    if len(cache) >= 1024:
        cache.clear()
    cache[keys] = picked
    return picked


def _api_data(event: dict[str, Any], part_name: str, data: Any) -> None:
    """``api.<part_name>.data`` = ``data``, beside what the part already holds."""
    api = event.get("api")
    if api is None:
        api = event["api"] = {}
    part = api.get(part_name)
    if part is None:
        api[part_name] = {"data": data}
    else:
        part["data"] = data
