"""Which listed objects are log files: file pattern on the file name, digests and 0-byte skipped."""
from __future__ import annotations

from pipeline.config import parse_config
from pipeline.lister import ListedObject, file_name, find_partitions, is_wanted, list_pages


def source(**overrides):
    base = {"identifier": "s", "bucket": "bkt", "region": "us-east-1",
            "auth": {"method": "instance_role"}}
    base.update(overrides)
    return parse_config({"sources": [base]}).sources[0]


LOG = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/111122223333_CloudTrail_us-east-1_20261101T0800Z_abcdefghijklmnop.json.gz"
DIGEST = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/01/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20261101T090000Z.json.gz"


def test_file_name():
    assert file_name(LOG).startswith("111122223333_CloudTrail_")
    assert file_name("plain.json.gz") == "plain.json.gz"


def test_pattern_matches_the_whole_file_name_only():
    s = source(file_pattern=r".*?\.json\.gz")
    assert is_wanted(s, ListedObject(LOG, 100))
    assert not is_wanted(s, ListedObject(LOG + ".tmp", 100))  # fullmatch, not search
    assert not is_wanted(s, ListedObject("AWSLogs/x.json.gz/readme.txt", 100))  # the name, not the path
    narrow = source(file_pattern=r"\d+_CloudTrail_us-east-1_.*\.json\.gz")
    assert is_wanted(narrow, ListedObject(LOG, 100))
    assert not is_wanted(narrow, ListedObject(LOG.replace("us-east-1_2026", "eu-west-1_2026"), 100))


def test_digests_and_empty_objects_are_skipped():
    s = source()
    assert not is_wanted(s, ListedObject(DIGEST, 500))
    assert not is_wanted(s, ListedObject("CloudTrail-Digest/x.json.gz", 500))
    assert not is_wanted(s, ListedObject(LOG, 0))


def test_list_pages_after_marker(s3, bucket):
    for name in ("a", "b", "c", "d"):
        s3.put_object(Bucket=bucket, Key=f"AWSLogs/{name}.json.gz", Body=b"x")
    s3.put_object(Bucket=bucket, Key="other/e.json.gz", Body=b"x")
    keys = [o.key for page in list_pages(s3, bucket, "AWSLogs/", "AWSLogs/b.json.gz") for o in page]
    assert keys == ["AWSLogs/c.json.gz", "AWSLogs/d.json.gz"]
    keys = [o.key for page in list_pages(s3, bucket, "", "") for o in page]
    assert len(keys) == 5 and "other/e.json.gz" in keys


def test_find_partitions_of_an_organization_trail(s3, bucket):
    org = "AWSLogs/o-abcdef1234/"
    expected = []
    for account in ("111111111111", "222222222222"):
        for region in ("us-east-1", "eu-west-1"):
            folder = f"{org}{account}/CloudTrail/{region}/"
            expected.append(folder)
            s3.put_object(Bucket=bucket, Key=f"{folder}2026/11/01/x.json.gz", Body=b"x")
        s3.put_object(Bucket=bucket, Key=f"{org}{account}/CloudTrail-Digest/us-east-1/2026/11/01/d.json.gz", Body=b"x")
    s3.put_object(Bucket=bucket, Key="AWSLogs/333333333333/CloudTrail/ap-south-1/2026/11/01/y.json.gz", Body=b"x")
    expected.append("AWSLogs/333333333333/CloudTrail/ap-south-1/")
    s3.put_object(Bucket=bucket, Key="unrelated/deep/a/b/c/file.txt", Body=b"x")
    assert find_partitions(s3, bucket, "") == sorted(expected)
    assert find_partitions(s3, bucket, "AWSLogs/") == sorted(expected)
    assert find_partitions(s3, bucket, org) == sorted(expected[:4])
    narrow = "AWSLogs/333333333333/CloudTrail/ap-south-1/"
    assert find_partitions(s3, bucket, narrow) == [narrow]  # a one-region prefix is its own partition
    assert find_partitions(s3, bucket, "unrelated/") == ["unrelated/"]  # no CloudTrail layout: as is
