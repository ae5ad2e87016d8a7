"""What an SQS message body says: the (bucket, key) of every object it announces.

Envelopes understood, each with its ``kind`` (the label of the notification metrics):

- ``s3``: an S3 event notification, ``{"Records": [{"eventSource": "aws:s3", "eventName":
  "ObjectCreated:…", "s3": {"bucket": {"name"}, "object": {"key", "size"}}}, …]}``; several
  records per message; keys are URL-encoded ("a b" arrives as "a+b") and are decoded here;
- ``sns``: the same inside an SNS envelope (``{"Type": "Notification", "Message": "<json>"}``);
  a topic with raw message delivery sends the bare S3 event, which is ``s3``;
- ``eventbridge``: an EventBridge event ``{"detail-type": "Object Created", "source": "aws.s3",
  "detail": {"bucket": {"name"}, "object": {"key", "size"}}}`` (keys not URL-encoded);
- ``cloudtrail``: CloudTrail's own delivery notice ``{"s3Bucket", "s3ObjectKey": [keys]}``,
  through SNS or raw (keys not URL-encoded);
- ``test``: the ``s3:TestEvent`` S3 sends when a notification is configured (bare or via SNS);
- ``other``: a well-formed envelope announcing no created object (ObjectRemoved, an SNS
  subscription confirmation, an EventBridge "Object Deleted"…);
- ``unparseable``: anything else (not JSON, not UTF-8, a JSON of no known shape).

Parsing never raises: a body of no use is a kind with no objects, which the consumer deletes
and counts (redelivering it could never help).
"""
from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field

OBJECT_CREATED_PREFIX = "ObjectCreated:"
EVENTBRIDGE_CREATED = "Object Created"


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    size: int | None = None  # None: the envelope does not say (CloudTrail's notice)


@dataclass
class Notification:
    kind: str
    objects: list[ObjectRef] = field(default_factory=list)
    detail: str = ""  # why an ``other`` or ``unparseable`` body carries nothing (for the log)


def parse(body: str | bytes) -> Notification:
    """The objects a message body announces; never raises."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Notification("unparseable", detail="not JSON")
    try:
        return _parse_doc(doc, via_sns=False)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a known shape, malformed
        return Notification("unparseable", detail=f"malformed envelope ({type(exc).__name__})")


def _parse_doc(doc, via_sns: bool) -> Notification:
    if not isinstance(doc, dict):
        return Notification("unparseable", detail="not a JSON object")
    if doc.get("Type") in ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation") \
            and "TopicArn" in doc and not via_sns:
        if doc["Type"] != "Notification":
            return Notification("other", detail=f"SNS {doc['Type']}")
        try:
            inner = json.loads(doc["Message"])
        except (ValueError, TypeError):
            return Notification("unparseable", detail="SNS message is not JSON")
        found = _parse_doc(inner, via_sns=True)
        if found.kind == "s3":
            found.kind = "sns"
        return found
    if doc.get("Event") == "s3:TestEvent":
        return Notification("test")
    if isinstance(doc.get("Records"), list):
        return _s3_event(doc["Records"])
    if "detail-type" in doc and "detail" in doc:
        return _eventbridge(doc)
    if "s3ObjectKey" in doc and "s3Bucket" in doc:
        keys = doc["s3ObjectKey"]
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise ValueError("s3ObjectKey is not a list of keys")
        return Notification("cloudtrail", [ObjectRef(_text(doc["s3Bucket"]), k) for k in keys])
    return Notification("unparseable", detail="no known envelope")


def _s3_event(records: list) -> Notification:
    objects, malformed = [], 0
    for record in records:
        try:
            if not str(record.get("eventName", "")).startswith(OBJECT_CREATED_PREFIX):
                continue  # ObjectRemoved, Restore, Replication…: nothing new to ingest
            s3 = record["s3"]
            key = urllib.parse.unquote_plus(_text(s3["object"]["key"]))
            objects.append(ObjectRef(_text(s3["bucket"]["name"]), key, _size(s3["object"].get("size"))))
        except (KeyError, TypeError, ValueError, AttributeError):
            malformed += 1  # one bad record must not hide the good ones beside it
    detail = f"{malformed} malformed record(s)" if malformed else ""
    if objects:
        return Notification("s3", objects, detail)
    if malformed:
        return Notification("unparseable", detail=detail)
    return Notification("other", detail="no ObjectCreated record")


def _eventbridge(doc: dict) -> Notification:
    if doc.get("detail-type") != EVENTBRIDGE_CREATED or doc.get("source") != "aws.s3":
        return Notification("other", detail=f"EventBridge {doc.get('detail-type')!r}")
    detail = doc["detail"]
    ref = ObjectRef(_text(detail["bucket"]["name"]), _text(detail["object"]["key"]),
                    _size(detail["object"].get("size")))
    return Notification("eventbridge", [ref])


def _text(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def _size(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
