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
from .category import failed
from .common import dig, epoch_millis, ip_list, is_ip, text

_FIRST_WORD = re.compile(r"[A-Z][a-z]+")


def _prune(obj: dict) -> dict:
    """Drop None values and empty objects, recursively (the record's own data is attached
    after pruning, untouched)."""
    out = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            value = _prune(value)
            if not value:
                continue
        if value is None:
            continue
        out[key] = value
    return out


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
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def classify(record: dict) -> tuple[int, int]:
    """(class_uid, activity_id) for the record."""
    name = text(record.get("eventName")) or ""
    source = record.get("eventSource")
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
    type_ = _str(identity.get("type"))
    name = _str(identity.get("userName")) or _str(dig(identity, "sessionContext.sessionIssuer.userName"))
    return {
        "uid": _str(identity.get("arn")),
        "uid_alt": _str(identity.get("principalId")),
        "name": name,
        "type": type_,
        "type_id": T.USER_TYPE_IDS.get(type_, 99) if type_ else 0,
        "account": {"uid": _str(identity.get("accountId"))},
        "credential_uid": _str(identity.get("accessKeyId")),
    }


def _actor(identity: dict) -> dict:
    attributes = dig(identity, "sessionContext.attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    provider = _str(dig(identity, "sessionContext.webIdFederationData.federatedProvider")) or _str(
        identity.get("identityProvider")
    )
    return {
        "user": _actor_user(identity),
        "session": {
            "created_time": epoch_millis(attributes.get("creationDate")),
            "is_mfa": _bool(attributes.get("mfaAuthenticated")),
            "issuer": _str(dig(identity, "sessionContext.sessionIssuer.arn")),
        },
        "invoked_by": _str(identity.get("invokedBy")),
        "idp": {"name": provider},
    }


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
            return {
                "uid": _str(created.get("arn")),
                "uid_alt": _str(created.get(id_key)),
                "name": name,
                "type": type_,
                "type_id": type_id,
            }
    return _actor_user(identity)


def _auth_user(record: dict, identity: dict) -> dict:
    """The subject of an Authentication: the assumed role for AssumeRole*, else the caller."""
    name = record.get("eventName")
    if isinstance(name, str) and name.startswith("Assume"):
        role_arn = _str(dig(record, "requestParameters.roleArn"))
        assumed = dig(record, "responseElements.assumedRoleUser")
        assumed = assumed if isinstance(assumed, dict) else {}
        if role_arn or assumed:
            return {
                "uid": role_arn or _str(assumed.get("arn")),
                "uid_alt": _str(assumed.get("assumedRoleId")),
                "name": _str(dig(record, "requestParameters.roleSessionName")),
                "type": "AssumedRole",
                "type_id": 99,
            }
    return _actor_user(identity)


def _src_endpoint(record: dict) -> dict:
    address = record.get("sourceIPAddress")
    endpoint: dict[str, Any] = {"uid": _str(record.get("vpcEndpointId"))}
    if is_ip(address):
        endpoint["ip"] = address
    elif (addresses := ip_list(address)) is not None:
        endpoint["ip"] = addresses[0]
        endpoint["intermediate_ips"] = addresses[1:]
    else:
        endpoint["domain"] = _str(address)
    return endpoint


def _resources(record: dict) -> list | None:
    resources = record.get("resources")
    if not isinstance(resources, list):
        return None
    out = []
    for resource in resources:
        if isinstance(resource, dict):
            item = _prune({
                "uid": _str(resource.get("ARN")) or _str(resource.get("arn")),
                "type": _str(resource.get("type")),
                "owner": {"account": {"uid": _str(resource.get("accountId"))}},
            })
            if item:
                out.append(item)
    return out or None


def _without(obj: dict, paths: tuple[str, ...]) -> dict:
    """A copy of ``obj`` without the dotted ``paths`` (objects left empty are dropped)."""
    out = dict(obj)
    for path in paths:
        head, _, rest = path.partition(".")
        if not rest:
            out.pop(head, None)
        elif isinstance(out.get(head), dict):
            out[head] = _without(out[head], (rest,))
            if not out[head]:
                del out[head]
    return out


def ocsf_event(record: dict) -> dict:
    """The OCSF 1.1.0 event for ``record`` (a dict ready for JSON)."""
    class_uid, activity_id = classify(record)
    class_name, category_uid, category_name = T.CLASSES[class_uid]
    event_name = text(record.get("eventName"))
    activity_name = T.ACTIVITY_NAMES[class_uid].get(activity_id, "Other")
    if activity_id == 99 and event_name:
        activity_name = event_name
    status_id, status = T.STATUS_FAILURE if failed(record) else T.STATUS_SUCCESS
    identity = record.get("userIdentity")
    identity = identity if isinstance(identity, dict) else None
    extra = record.get("additionalEventData")

    event: dict[str, Any] = {
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "class_uid": class_uid,
        "class_name": class_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "severity_id": T.SEVERITY[0],
        "severity": T.SEVERITY[1],
        "status_id": status_id,
        "status": status,
        "status_code": _str(record.get("errorCode")),
        "status_detail": _str(record.get("errorMessage")),
        "time": epoch_millis(record.get("eventTime")),
        "metadata": {
            "version": T.OCSF_VERSION,
            "uid": _str(record.get("eventID")),
            "product": {
                **T.PRODUCT,
                "version": _str(record.get("eventVersion")),
                "feature": {"name": _str(record.get("eventCategory"))},
            },
            "event_code": _str(record.get("eventType")),
            "profiles": list(T.PROFILES),
        },
        "cloud": {
            "provider": "AWS",
            "region": _str(record.get("awsRegion")),
            "account": {"uid": _str(record.get("recipientAccountId"))},
        },
        "actor": _actor(identity) if identity else None,
        "api": {
            "operation": event_name,
            "service": {"name": _str(record.get("eventSource"))},
            "version": _str(record.get("apiVersion")),
            "request": {"uid": _str(record.get("requestID"))},
            "response": {
                "error": _str(record.get("errorCode")),
                "message": _str(record.get("errorMessage")),
            },
        },
        "src_endpoint": _src_endpoint(record),
        "http_request": {"user_agent": _str(record.get("userAgent"))},
        "resources": _resources(record),
    }
    mapped_extra: tuple[str, ...] = ()
    if class_uid == T.AUTHENTICATION:
        event["user"] = _auth_user(record, identity or {})
        event["service"] = {"name": _str(record.get("eventSource"))}
        if isinstance(extra, dict):
            event["is_mfa"] = _bool(extra.get("MFAUsed"))
            event["dst_endpoint"] = {"svc_name": _str(extra.get("LoginTo"))}
            mapped_extra = T.MAPPED_AUTH_EXTRA
        protocol = T.AUTH_PROTOCOLS.get(event_name or "")
        if protocol:
            event["auth_protocol_id"], event["auth_protocol"] = protocol
    elif class_uid == T.ACCOUNT_CHANGE:
        event["user"] = _target_user(record, identity or {})
        policy_arn = _str(dig(record, "requestParameters.policyArn"))
        policy_name = _str(dig(record, "requestParameters.policyName"))
        if policy_arn or policy_name:
            event["policy"] = {"uid": policy_arn, "name": policy_name or policy_arn.rsplit("/", 1)[-1]}

    unmapped = {key: value for key, value in record.items() if key not in T.MAPPED_TOP_LEVEL}
    unmapped.pop("userIdentity", None)
    if identity:
        rest = _without(identity, T.MAPPED_USER_IDENTITY)
        if rest:
            unmapped["userIdentity"] = rest
    elif "userIdentity" in record and record["userIdentity"] is not None:
        unmapped["userIdentity"] = record["userIdentity"]
    if mapped_extra and isinstance(extra, dict):
        rest = _without(extra, mapped_extra)
        if rest:
            unmapped["additionalEventData"] = rest
        else:
            unmapped.pop("additionalEventData", None)
    if event["time"] is None and record.get("eventTime") is not None:
        unmapped["eventTime"] = record["eventTime"]  # not a time OCSF can carry
    event = _prune(event)
    for key, field in (("request", "requestParameters"), ("response", "responseElements")):
        data = record.get(field)
        if data is not None:
            event.setdefault("api", {}).setdefault(key, {})["data"] = data
    if unmapped:
        event["unmapped"] = unmapped
    return event
