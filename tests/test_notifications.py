"""Envelope parsing: every shape S3 notifications reach SQS in, and what is not one.

The bodies follow the AWS documentation's examples; test_sqs_consumer.py feeds the parser the
bodies moto's S3, SNS and EventBridge really send.
"""
from __future__ import annotations

import json

import pytest

from pipeline.notifications import ObjectRef, parse

KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/111122223333_CloudTrail_us-east-1_20261101T0800Z_abc.json.gz"


def s3_record(key: str, bucket: str = "trail-bucket", event: str = "ObjectCreated:Put", size=1234) -> dict:
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-01T08:05:00.000Z", "eventName": event,
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                   "object": {"key": key, "size": size, "eTag": "x", "sequencer": "0A"}}}


def sns(message: dict | str, kind: str = "Notification") -> str:
    return json.dumps({"Type": kind, "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:111122223333:t",
                       "Subject": "Amazon S3 Notification",
                       "Message": message if isinstance(message, str) else json.dumps(message),
                       "Timestamp": "2026-11-01T08:05:01.000Z", "SignatureVersion": "1"})


def eventbridge(key: str, detail_type: str = "Object Created", bucket: str = "trail-bucket") -> str:
    return json.dumps({"version": "0", "id": "e-1", "detail-type": detail_type, "source": "aws.s3",
                       "account": "111122223333", "time": "2026-11-01T08:05:00Z", "region": "us-east-1",
                       "resources": [f"arn:aws:s3:::{bucket}"],
                       "detail": {"version": "0", "bucket": {"name": bucket},
                                  "object": {"key": key, "size": 5, "etag": "b1"}, "reason": "PutObject"}})


def test_s3_event_with_several_records_and_url_encoded_keys():
    body = json.dumps({"Records": [s3_record("team+a%2Bb/" + KEY.replace("/", "%2F")),
                                   s3_record("plain/x%3Ay.json.gz", size=0),
                                   s3_record("gone.json.gz", event="ObjectRemoved:Delete")]})
    note = parse(body)
    assert note.kind == "s3"
    # "+" is a space, "%2B" a plus, "%2F" a slash; the removal announces nothing new.
    assert note.objects == [ObjectRef("trail-bucket", "team a+b/" + KEY, 1234),
                            ObjectRef("trail-bucket", "plain/x:y.json.gz", 0)]


def test_sns_wrapped_s3_event():
    note = parse(sns({"Records": [s3_record(KEY)]}))
    assert note.kind == "sns" and note.objects == [ObjectRef("trail-bucket", KEY, 1234)]


def test_eventbridge_object_created_key_is_not_decoded():
    note = parse(eventbridge("logs/a+b.json.gz"))
    assert note.kind == "eventbridge" and note.objects == [ObjectRef("trail-bucket", "logs/a+b.json.gz", 5)]
    deleted = parse(eventbridge(KEY, detail_type="Object Deleted"))
    assert deleted.kind == "other" and deleted.objects == []


def test_cloudtrail_delivery_notice_through_sns_and_raw():
    notice = {"s3Bucket": "trail-bucket", "s3ObjectKey": [KEY, KEY.replace("abc", "def")]}
    for body in (sns(notice), json.dumps(notice)):
        note = parse(body)
        assert note.kind == "cloudtrail"
        assert [o.key for o in note.objects] == [KEY, KEY.replace("abc", "def")]
        assert all(o.bucket == "trail-bucket" and o.size is None for o in note.objects)


@pytest.mark.parametrize("body", [
    json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-01T08:00:00Z",
                "Bucket": "trail-bucket", "RequestId": "r", "HostId": "h"}),
    sns({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "trail-bucket"}),
])
def test_test_events(body):
    note = parse(body)
    assert note.kind == "test" and note.objects == []


@pytest.mark.parametrize("body, kind", [
    ("", "unparseable"),
    ("not json at all", "unparseable"),
    (b"\xff\xfe\x00garbage", "unparseable"),
    ("[1, 2, 3]", "unparseable"),
    ('"a string"', "unparseable"),
    ("{}", "unparseable"),
    ('{"Records": [{"eventName": "ObjectCreated:Put"}]}', "unparseable"),  # no s3 part
    ('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": ""}, "object": {"key": "k"}}}]}',
     "unparseable"),
    ('{"s3Bucket": "b", "s3ObjectKey": [1, 2]}', "unparseable"),
    (sns("this SNS message is not JSON"), "unparseable"),
    (json.dumps({"detail-type": "Object Created", "source": "aws.s3", "detail": {}}), "unparseable"),
    (json.dumps({"Records": []}), "other"),
    (json.dumps({"Records": [s3_record(KEY, event="ObjectRemoved:Delete")]}), "other"),
    (sns({"x": 1}, kind="SubscriptionConfirmation"), "other"),
])
def test_garbage_and_bodies_announcing_nothing(body, kind):
    note = parse(body)
    assert note.kind == kind and note.objects == []


def test_one_malformed_record_does_not_hide_the_good_ones():
    body = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": None}, s3_record(KEY)]})
    note = parse(body)
    assert note.kind == "s3" and [o.key for o in note.objects] == [KEY]
    assert "1 malformed" in note.detail
