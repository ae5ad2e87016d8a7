"""Realistic CloudTrail log files for the demo, the tests and the benchmark.

Keys follow CloudTrail's layout
``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<random>.json.gz``;
records look like what CloudTrail writes (eventVersion 1.08-1.11, identities, TLS details).
Everything is derived from a seed, so a run can be repeated exactly.
"""
from __future__ import annotations

import gzip
import random
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

ACCOUNTS = ("111122223333", "444455556666", "777788889999")
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")

# (eventSource, eventName, readOnly)
EVENTS = (
    ("signin.amazonaws.com", "ConsoleLogin", False),
    ("sts.amazonaws.com", "AssumeRole", True),
    ("sts.amazonaws.com", "GetCallerIdentity", True),
    ("s3.amazonaws.com", "ListBuckets", True),
    ("s3.amazonaws.com", "GetBucketAcl", True),
    ("s3.amazonaws.com", "PutBucketPolicy", False),
    ("ec2.amazonaws.com", "DescribeInstances", True),
    ("ec2.amazonaws.com", "RunInstances", False),
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", False),
    ("iam.amazonaws.com", "CreateUser", False),
    ("iam.amazonaws.com", "AttachUserPolicy", False),
    ("iam.amazonaws.com", "ListRoles", True),
    ("kms.amazonaws.com", "Decrypt", True),
    ("cloudtrail.amazonaws.com", "LookupEvents", True),
    ("lambda.amazonaws.com", "Invoke", False),
)
USER_AGENTS = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.debian.12 prompt/off command/ec2.describe-instances",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.8",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0 Safari/537.36",
    "terraform-provider-aws/5.42.0 (+https://registry.terraform.io/providers/hashicorp/aws)",
)
USERS = ("alice", "bob", "ci-deployer", "security-audit", "zoë-ops")


@dataclass(frozen=True)
class LogFile:
    key: str
    body: bytes  # gzip JSON
    records: int
    event_ids: tuple[str, ...]


def _random_suffix(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(16))


def log_key(account: str, region: str, when: datetime, rng: random.Random, prefix: str = "") -> str:
    return (f"{prefix}AWSLogs/{account}/CloudTrail/{region}/{when:%Y/%m/%d}/"
            f"{account}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{_random_suffix(rng)}.json.gz")


def make_record(rng: random.Random, account: str, region: str, when: datetime) -> dict:
    event_source, event_name, read_only = rng.choice(EVENTS)
    user = rng.choice(USERS)
    event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    failed = rng.random() < 0.05
    record = {
        "eventVersion": rng.choice(("1.08", "1.09", "1.10", "1.11")),
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(17)),
            "arn": f"arn:aws:iam::{account}:user/{user}",
            "accountId": account,
            "accessKeyId": "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
            "userName": user,
            "sessionContext": {
                "attributes": {"creationDate": (when - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "mfaAuthenticated": rng.choice(("true", "false"))},
            },
        },
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "userAgent": rng.choice(USER_AGENTS),
        "requestParameters": {"maxResults": 1000, "filterSet": {}} if read_only else {
            "resourceName": f"demo-{rng.randint(1, 99999)}", "tags": [{"key": "team", "value": "sec"}]},
        "responseElements": None if read_only else {"requestId": str(uuid.UUID(int=rng.getrandbits(128)))},
        "requestID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "eventID": event_id,
        "readOnly": read_only,
        "eventType": "AwsConsoleSignIn" if event_name == "ConsoleLogin" else "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": f"{event_source.split('.')[0]}.{region}.amazonaws.com"},
    }
    if event_name == "ConsoleLogin":
        record["responseElements"] = {"ConsoleLogin": "Failure" if failed else "Success"}
        record["additionalEventData"] = {"MFAUsed": rng.choice(("Yes", "No")), "MobileVersion": "No"}
    elif failed:
        record["errorCode"] = "AccessDenied"
        record["errorMessage"] = f"User: arn:aws:iam::{account}:user/{user} is not authorized to perform this action"
    return record


def make_log_file(rng: random.Random, account: str, region: str, when: datetime, records: int,
                  prefix: str = "") -> LogFile:
    items = [make_record(rng, account, region, when - timedelta(seconds=rng.randint(0, 300)))
             for _ in range(records)]
    body = gzip.compress(orjson.dumps({"Records": items}), compresslevel=6, mtime=0)
    return LogFile(log_key(account, region, when, rng, prefix), body, records,
                   tuple(r["eventID"] for r in items))


def make_digest(account: str, region: str, when: datetime, prefix: str = "") -> tuple[str, bytes]:
    """A CloudTrail-Digest file: it sits beside the logs and must never be ingested as events."""
    key = (f"{prefix}AWSLogs/{account}/CloudTrail-Digest/{region}/{when:%Y/%m/%d}/"
           f"{account}_CloudTrail-Digest_{region}_demo-trail_{region}_{when:%Y%m%dT%H%M%SZ}.json.gz")
    digest = {"awsAccountId": account, "digestStartTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "digestEndTime": (when + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "digestS3Bucket": "demo", "digestS3Object": key, "logFiles": [],
              "Records": [{"eventID": "digest-must-not-be-emitted"}]}
    return key, gzip.compress(orjson.dumps(digest), mtime=0)


def make_bucket_files(seed: int = 7, files: int = 24, min_records: int = 20, max_records: int = 120,
                      start: datetime | None = None, prefix: str = "") -> list[LogFile]:
    """``files`` log files spread over the accounts and regions, five minutes apart."""
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    out = []
    for index in range(files):
        account = ACCOUNTS[index % len(ACCOUNTS)]
        region = REGIONS[(index // len(ACCOUNTS)) % len(REGIONS)]
        when = start + timedelta(minutes=5 * index)
        out.append(make_log_file(rng, account, region, when, rng.randint(min_records, max_records), prefix))
    return out
