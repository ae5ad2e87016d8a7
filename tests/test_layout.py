"""pipeline.layout: CloudTrail's key layouts (log files, Insights files, digests), the one module
that knows them."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline import layout
from pipeline.layout import is_digest_key, is_insight_key


@pytest.mark.parametrize(
    "key, digest, insight",
    [
        ("AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/02/111122223333_CloudTrail_us-east-1_20240102T0000Z_abc.json.gz", False, False),
        ("p/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/01/02/111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20240102T000000Z.json.gz", True, False),
        ("AWSLogs/o-abc/111122223333/CloudTrail-Digest/eu-west-1/2024/01/02/x.json.gz", True, False),
        ("elsewhere/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20240102T000000Z_backfill.json.gz", True, False),
        ("AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2024/01/02/111122223333_CloudTrail-Insight_us-east-1_20240102T0000Z_x.json.gz", False, True),
        ("copied/111122223333_CloudTrail-Insight_us-east-1_20240102T0000Z_x.json.gz", False, True),
        ("AWSLogs/111122223333/CloudTrail-DigestX/us-east-1/x.json.gz", False, False),
    ],
)
def test_key_kinds(key: str, digest: bool, insight: bool):
    assert is_digest_key(key) is digest
    assert is_insight_key(key) is insight


def test_digest_names():
    key = ("logs/AWSLogs/o-abcdefghij/111122223333/CloudTrail-Digest/eu-west-1/2026/11/01/"
           "111122223333_CloudTrail-Digest_eu-west-1_my_trail_us-east-1_20261101T090712Z.json.gz")
    name = layout.digest_name(key)
    assert (name.partition, name.account, name.region, name.trail, name.home_region) == (
        "logs/AWSLogs/o-abcdefghij/111122223333/CloudTrail-Digest/eu-west-1/", "111122223333", "eu-west-1",
        "my_trail", "us-east-1")
    assert name.time == datetime(2026, 11, 1, 9, 7, 12, tzinfo=UTC) and not name.backfill
    backfill = layout.digest_name(key.replace(".json.gz", "_backfill.json.gz"))
    assert backfill.backfill and backfill.chain == name.chain + "|backfill"
    assert layout.digest_name(key.replace("CloudTrail-Digest/", "CloudTrail/")) is None
    assert layout.digest_name("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/x.json.gz") is None
    assert layout.digest_partition("AWSLogs/o-abcdefghij/111122223333/CloudTrail/eu-west-1/") == \
        "AWSLogs/o-abcdefghij/111122223333/CloudTrail-Digest/eu-west-1/"
    assert layout.digest_partition("AWSLogs/111122223333/CloudTrail-Insight/eu-west-1/") is None
    assert layout.digest_day_position(name.partition, name.time) == name.partition + "2026/11/01/"


def test_a_digest_folder_and_its_log_partition():
    for base in ("", "logs/", "a/b/"):
        for org in ("", "o-abcdefghij/"):
            logs = f"{base}AWSLogs/{org}111122223333/CloudTrail/eu-west-1/"
            digests = layout.digest_partition(logs)
            assert digests == f"{base}AWSLogs/{org}111122223333/{layout.DIGEST_FOLDER}eu-west-1/"
            assert layout.log_partition_of(digests) == logs
            assert layout.in_digest_folder(digests + "2026/11/01/x.json.gz")
            assert not layout.in_digest_folder(logs + "2026/11/01/x.json.gz")
    assert layout.log_partition_of("AWSLogs/111122223333/elsewhere/") is None
    assert layout.in_digest_folder("CloudTrail-Digest/x.json.gz")  # at the top of the bucket too
    assert not layout.in_digest_folder("AWSLogs/111122223333/CloudTrail-DigestX/us-east-1/x.json.gz")


def test_digest_folders_are_never_listed_for_log_partitions():
    assert layout.may_lead_to_partition("AWSLogs/111122223333/")
    assert not layout.may_lead_to_partition("AWSLogs/111122223333/CloudTrail-Digest/")
