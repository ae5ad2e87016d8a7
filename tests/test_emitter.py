"""Tests for pipeline.emitter: the stream entries of records."""
from __future__ import annotations

import orjson
from conftest import config_dict, source_dict

from pipeline import defaults
from pipeline.config import parse_config
from pipeline.emitter import account_of, batch_entries
from pipeline.normalize import canonical_keys, derive_fields, restore_carried

ROUTING = ("event", "event_id", "event_name", "event_time", "source", "object", "account", "region")


def _source(**overrides):
    config = parse_config(config_dict("redis://127.0.0.1:1/0", [source_dict("bucket-1", "http://127.0.0.1:1", **overrides)]))
    return config.sources[0]


def _record_by_record(source, key: str, raw: bytes, record: dict) -> dict:
    """One record's entry built on its own with ``derive_fields``: the reference ``batch_entries``
    must equal (the emitter's ``entry_fields`` did this before ``trailpipe check`` used the batch path)."""
    record = canonical_keys(record)

    def text(name: str) -> str:
        value = record.get(name)
        return value if isinstance(value, str) else ("" if value is None else str(value))

    fields = {"event": raw, "event_id": text("eventID"), "event_name": text("eventName"),
              "event_time": text("eventTime"), "source": source.identifier, "object": key,
              "account": account_of(record), "region": text("awsRegion")}
    fields.update(derive_fields(record, source.output_formats))
    if tuple(source.stream_fields) != defaults.STREAM_FIELDS:
        keep = set(source.stream_fields) | set(source.output_formats)
        fields = {name: value for name, value in fields.items() if name in keep}
    return fields


def _restored(entry: dict) -> dict:
    """``entry`` with its documents parsed and whole again (what the entry's fields carry put back)."""
    return {name: restore_carried(name, orjson.loads(value), entry) if name in ("ecs", "ocsf") else value
            for name, value in entry.items()}


def test_entry_carries_the_raw_record_and_the_routing_fields():
    record = {"eventID": "e-1", "eventName": "GetObject", "eventTime": "2024-03-04T05:06:07Z",
              "awsRegion": "eu-west-1", "userIdentity": {"accountId": "111122223333"}}
    raw = orjson.dumps(record)
    (fields,) = batch_entries(_source(), "AWSLogs/k.json.gz", [(raw, record)])
    assert tuple(fields)[:8] == ROUTING
    assert fields["event"] is raw  # the record's bytes, not serialized again
    assert fields["account"] == "111122223333"  # no recipientAccountId: the caller's account
    assert fields["display_name"] == "Get Object" and fields["category"] == "Read Activity"
    assert "ecs" not in fields and "ocsf" not in fields


def test_lower_cased_record_routes_like_cloudtrail():
    record = {"eventid": "e-2", "eventname": "ConsoleLogin", "eventtime": "2024-03-04T05:06:07Z",
              "awsregion": "us-east-1", "recipientaccountid": "111122223333",
              "responseelements": {"ConsoleLogin": "Success"}}
    (fields,) = batch_entries(_source(output_formats=["ecs", "ocsf"]), "k", [(orjson.dumps(record), record)])
    assert (fields["event_id"], fields["event_name"], fields["event_time"], fields["account"], fields["region"]) == (
        "e-2", "ConsoleLogin", "2024-03-04T05:06:07Z", "111122223333", "us-east-1")
    assert fields["category"] == "User Login Success"
    assert orjson.loads(fields["ecs"])["event"]["outcome"] == "success"
    assert "action" not in orjson.loads(fields["ecs"])["event"]  # the entry's event_name carries it
    assert _restored(fields)["ecs"]["event"]["action"] == "ConsoleLogin"
    assert orjson.loads(fields["ocsf"])["class_uid"] == 3002


def test_batch_entries_equal_the_entries_record_by_record():
    records = [{"eventID": f"e-{i}", "eventName": name, "eventTime": "2024-03-04T05:06:07Z", "awsRegion": "us-east-1",
                "recipientAccountId": "111122223333", "userIdentity": {"type": "IAMUser", "userName": f"u{i}"}}
               for i, name in enumerate(["GetObject", "ConsoleLogin", "DescribeInstances", "CreateUser"])]
    records.append({"eventid": "e-9", "eventname": "ListBuckets", "eventtime": "2024-03-04T05:06:07Z"})
    items = [(orjson.dumps(r), r) for r in records]
    source = _source(output_formats=["ecs", "ocsf"], exclude_event_names="Describe.*")
    batch = batch_entries(source, "k", items)
    one_by_one = [_record_by_record(source, "k", raw, r) for raw, r in items if r.get("eventName") != "DescribeInstances"]
    assert [_restored(entry) for entry in batch] == [_restored(entry) for entry in one_by_one] and len(batch) == 4
    assert [tuple(entry) for entry in batch] == [tuple(one_by_one[0])] * 4  # same field names: packed once
    assert batch[-1]["event_name"] == "ListBuckets"  # lower-cased keys read too


def test_lower_cased_records_are_excluded_by_their_event_name():
    record = {"eventname": "DescribeInstances", "eventtime": "2024-03-04T05:06:07Z"}
    assert batch_entries(_source(exclude_event_names="Describe.*"), "k", [(b"{}", record)]) == []


def test_stream_fields_choose_the_entry_fields():
    """`stream_fields` picks the entry's fields (the documents of output_formats come on top);
    record by record and by batch alike."""
    from typing import get_args

    from pipeline.config import Source

    names = get_args(get_args(Source.model_fields["stream_fields"].annotation)[0])
    assert tuple(names) == defaults.STREAM_FIELDS  # the config accepts exactly the default set
    record = {"eventID": "e-1", "eventName": "GetObject", "eventTime": "2026-01-01T00:00:00Z",
              "awsRegion": "eu-west-1", "recipientAccountId": "123456789012",
              "eventSource": "s3.amazonaws.com", "userIdentity": {"type": "IAMUser"}}
    raw = orjson.dumps(record)
    assert list(batch_entries(_source(), "k", [(raw, record)])[0]) == list(defaults.STREAM_FIELDS)
    only_event = _source(stream_fields=["event"])
    assert batch_entries(only_event, "k", [(raw, record)]) == [{"event": raw}]
    assert _record_by_record(only_event, "k", raw, record) == {"event": raw}
    chosen = _source(stream_fields=["event", "event_name", "category"], output_formats=["ecs"])
    (entry,) = batch_entries(chosen, "k", [(raw, record)])
    assert list(entry) == ["event", "event_name", "category", "ecs"] and entry["event_name"] == "GetObject"
    assert _restored(entry) == _restored(_record_by_record(chosen, "k", raw, record))
    # only event_name is carried by this entry: the document keeps event.id and cloud.region
    ecs = orjson.loads(entry["ecs"])
    assert "action" not in ecs["event"] and ecs["event"]["id"] == "e-1" and ecs["cloud"]["region"] == "eu-west-1"


def test_restore_carried_reads_an_entry_as_redis_py_returns_it():
    """XRANGE/XREADGROUP replies have bytes keys and values: the left-out values come back all the same."""
    record = {"eventID": "e-9", "eventName": "PutObject", "eventTime": "2024-03-04T05:06:07Z",
              "eventSource": "s3.amazonaws.com", "awsRegion": "eu-west-1", "recipientAccountId": "111122223333",
              "userIdentity": {"type": "IAMUser", "accountId": "111122223333", "userName": "ana"}}
    (fields,) = batch_entries(_source(output_formats=["ecs", "ocsf"]), "AWSLogs/k.json.gz",
                              [(orjson.dumps(record), record)])
    whole = derive_fields(record, ["ecs", "ocsf"])
    as_replied = {name.encode(): value if isinstance(value, bytes) else value.encode()
                  for name, value in fields.items()}
    for name in ("ecs", "ocsf"):
        left_out = orjson.loads(as_replied[name.encode()])
        assert left_out != orjson.loads(whole[name])  # something was left out to restore
        assert restore_carried(name, left_out, as_replied) == orjson.loads(whole[name])
