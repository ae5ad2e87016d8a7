"""Records whose keys an exporter lower-cased (``eventname``, ``awsregion``, ``useridentity``)
are still CloudTrail: ``canonical_keys`` gives them CloudTrail's own key names back, so every
normalizer and the routing fields read them like any record.

Only CloudTrail's own structure is renamed (the top level, ``userIdentity`` and its session
context, ``tlsDetails``, ``insightDetails``, each resource); the service-specific contents of
``requestParameters``/``responseElements``/``additionalEventData`` are left as they are.
"""
from __future__ import annotations

from typing import Any

_TOP = (
    "eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
    "sourceIPAddress", "userAgent", "errorCode", "errorMessage", "requestParameters",
    "responseElements", "additionalEventData", "requestID", "eventID", "eventType", "apiVersion",
    "managementEvent", "readOnly", "resources", "recipientAccountId", "serviceEventDetails",
    "sharedEventID", "vpcEndpointId", "vpcEndpointAccountId", "eventCategory", "addendum",
    "sessionCredentialFromConsole", "edgeDeviceDetails", "tlsDetails", "insightDetails",
)
_IDENTITY = (
    "type", "principalId", "arn", "accountId", "accessKeyId", "userName", "sessionContext",
    "invokedBy", "identityProvider", "credentialId", "onBehalfOf", "inScopeOf",
)
_SESSION = ("attributes", "sessionIssuer", "webIdFederationData", "sourceIdentity", "ec2RoleDelivery",
            "assumedRoot")
_ATTRIBUTES = ("creationDate", "mfaAuthenticated")
_ISSUER = ("type", "principalId", "arn", "accountId", "userName")
_FEDERATION = ("federatedProvider", "attributes")
_TLS = ("tlsVersion", "cipherSuite", "clientProvidedHostHeader")
_INSIGHT = ("state", "eventSource", "eventName", "insightType", "insightContext", "errorCode")
_RESOURCE = ("ARN", "accountId", "type")


def _names(names: tuple[str, ...], children: dict | None = None) -> tuple[dict[str, str], dict]:
    return {name.lower(): name for name in names}, children or {}


# lower-cased name -> CloudTrail's name, and the structure below some of them
_SCHEMA = _names(_TOP, {
    "userIdentity": _names(_IDENTITY, {
        "sessionContext": _names(_SESSION, {
            "attributes": _names(_ATTRIBUTES),
            "sessionIssuer": _names(_ISSUER),
            "webIdFederationData": _names(_FEDERATION),
        }),
    }),
    "tlsDetails": _names(_TLS),
    "insightDetails": _names(_INSIGHT),
    "resources": _names(_RESOURCE),  # applied to each item of the list
})


def needs_canonical_keys(record: dict) -> bool:
    """Cheap test: a record with none of CloudTrail's usual camelCase keys but their lower-case
    forms (a normal record answers at the first lookup)."""
    return ("eventTime" not in record and "eventVersion" not in record and "eventName" not in record
            and ("eventtime" in record or "eventname" in record or "eventversion" in record
                 or "awsregion" in record or "useridentity" in record))


def canonical_keys(record: dict) -> dict:
    """``record`` with CloudTrail's key names where only their case differs; the record itself
    when it needs none."""
    if not isinstance(record, dict) or not needs_canonical_keys(record):
        return record
    return _rename(record, _SCHEMA)


def _rename(value: Any, schema: tuple[dict[str, str], dict]) -> Any:
    if isinstance(value, list):
        return [_rename(item, schema) for item in value]
    if not isinstance(value, dict):
        return value
    names, children = schema
    out = {}
    for key, item in value.items():
        name = names.get(key.lower(), key) if isinstance(key, str) else key
        if name != key and name in value:
            name = key  # both spellings present: keep each as it is
        child = children.get(name)
        out[name] = _rename(item, child) if child is not None else item
    return out
