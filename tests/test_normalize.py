"""Tests for pipeline.normalize: display name, category, ECS and OCSF documents."""
from __future__ import annotations

import copy
import gzip
import random
from pathlib import Path

import orjson
import pytest

from pipeline.normalize import canonical_keys, derive_fields, ecs_document, ocsf_event
from pipeline.normalize.category import category
from pipeline.normalize.display import display_name
from pipeline.normalize.javaish import drop_empty, hashmap_order, java_double, java_map_str, java_str
from pipeline.parser import iter_records

OPEN_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "open"
needs_open_data = pytest.mark.skipif(
    not OPEN_DATA.is_dir(), reason=f"open test data not found at {OPEN_DATA}"
)
ALL = ("ecs", "ocsf")


def ecs(record: dict) -> dict:
    doc = orjson.loads(derive_fields(record, ("ecs",), payloads=True)["ecs"])
    assert doc == orjson.loads(orjson.dumps(ecs_document(record)))
    return doc


def ocsf(record: dict) -> dict:
    event = orjson.loads(derive_fields(record, ("ocsf",), payloads=True)["ocsf"])
    assert event == orjson.loads(orjson.dumps(ocsf_event(record)))
    return event


def identity_user(name: str = "alice") -> dict:
    return {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLEPRINCIPAL",
        "arn": f"arn:aws:iam::111122223333:user/{name}",
        "accountId": "111122223333",
        "accessKeyId": "AKIAEXAMPLEKEY",
        "userName": name,
    }


def identity_role() -> dict:
    return {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLEROLE:ci-session",
        "arn": "arn:aws:sts::111122223333:assumed-role/Deployer/ci-session",
        "accountId": "111122223333",
        "accessKeyId": "ASIAEXAMPLEKEY",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEROLE",
                "arn": "arn:aws:iam::111122223333:role/Deployer",
                "accountId": "111122223333",
                "userName": "Deployer",
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": "2024-03-04T05:06:07Z", "mfaAuthenticated": "true"},
        },
    }


def api_call(name: str, source: str = "iam.amazonaws.com", **extra) -> dict:
    record = {
        "eventVersion": "1.09",
        "userIdentity": identity_user(),
        "eventTime": "2024-03-04T05:06:07Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64",
        "requestParameters": None,
        "responseElements": None,
        "requestID": "req-1",
        "eventID": "evt-1",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": "111122223333",
        "eventCategory": "Management",
    }
    record.update(extra)
    return record


def console_login(result: str | None = "Success", **extra) -> dict:
    record = {
        "eventVersion": "1.08",
        "userIdentity": identity_user("bob"),
        "eventTime": "2024-03-04T05:06:07Z",
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.23",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/124.0",
        "requestParameters": None,
        "responseElements": {"ConsoleLogin": result} if result else None,
        "additionalEventData": {"MobileVersion": "No", "LoginTo": "https://console.aws.amazon.com/", "MFAUsed": "Yes"},
        "eventID": "evt-login",
        "readOnly": False,
        "eventType": "AwsConsoleSignIn",
        "managementEvent": True,
        "recipientAccountId": "111122223333",
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": "signin.aws.amazon.com",
        },
    }
    record.update(extra)
    return record


INSIGHT = {
    "eventVersion": "1.07",
    "eventTime": "2024-03-04T05:00:00Z",
    "awsRegion": "us-east-1",
    "eventID": "insight-1",
    "eventType": "AwsCloudTrailInsight",
    "recipientAccountId": "111122223333",
    "sharedEventID": "shared-1",
    "insightDetails": {
        "state": "Start",
        "eventSource": "ssm.amazonaws.com",
        "eventName": "UpdateInstanceInformation",
        "insightType": "ApiCallRateInsight",
        "insightContext": {"statistics": {"baseline": {"average": 85.5}, "insight": {"average": 664.0}}},
    },
    "eventCategory": "Insight",
}


# --------------------------------------------------------------------------- display_name


@pytest.mark.parametrize(
    "name, shown",
    [
        ("ConsoleLogin", "Console Login"),
        ("GetObjectACL", "Get Object ACL"),
        ("ListMFADevices", "List MFA Devices"),
        ("AssumeRoleWithSAML", "Assume Role With SAML"),
        ("DescribeEC2InstanceTypes", "Describe EC2 Instance Types"),
        ("UpdateFunctionCode20150331v2", "Update Function Code 20150331v2"),
        ("ListObjectsV2", "List Objects V2"),
        ("GetIPv6Address", "Get IPv6 Address"),
        ("CreateDBInstance", "Create DB Instance"),
        ("Invoke", "Invoke"),
        ("", ""),
        (None, ""),
        (42, ""),
    ],
)
def test_display_name(name, shown):
    assert display_name(name) == shown
    assert derive_fields({"eventName": name})["display_name"] == (shown or "CloudTrail Event")  # never empty


# --------------------------------------------------------------------------- category


@pytest.mark.parametrize(
    "record, expected",
    [
        (console_login("Success"), "User Login Success"),
        (console_login("Failure", errorMessage="Failed authentication"), "User Login Failure"),
        (console_login(None, errorMessage="Failed authentication"), "User Login Failure"),
        (api_call("CreateUser"), "User Account Added"),
        (api_call("DeleteUser"), "User Account Removed"),
        (api_call("CreateRole"), "User Account Added"),
        (api_call("UpdateUser"), "User Account Changed"),
        (api_call("CreateAccessKey"), "User Account Changed"),
        (api_call("AddUserToGroup"), "Group Member Added"),
        (api_call("RemoveUserFromGroup"), "Group Member Removed"),
        (api_call("CreateGroup"), "Group Added"),
        (api_call("ChangePassword"), "Password Change"),
        (api_call("UpdateLoginProfile"), "Password Change"),
        (api_call("AttachUserPolicy"), "Policy Change"),
        (api_call("DetachRolePolicy"), "Policy Change"),
        (api_call("PutGroupPolicy"), "Policy Change"),
        (api_call("PutRolePermissionsBoundary"), "Policy Change"),
        (api_call("CreatePolicyVersion"), "Policy Change"),
        (api_call("PutBucketPolicy", "s3.amazonaws.com"), "Policy Change"),
        (api_call("AssumeRole", "sts.amazonaws.com"), "Auth Server Login Succeeded"),
        (api_call("AssumeRole", "sts.amazonaws.com", errorCode="AccessDenied"), "Auth Server Login Failed"),
        (api_call("CreateUser", errorCode="AccessDenied", errorMessage="not authorized"), "Access Denied"),
        (api_call("RunInstances", "ec2.amazonaws.com", errorCode="Client.UnauthorizedOperation"), "Access Denied"),
        (api_call("DescribeInstances", "ec2.amazonaws.com", readOnly=True), "Read Activity"),
        (api_call("GetSecretValue", "secretsmanager.amazonaws.com", readOnly=None), "Read Activity"),
        (api_call("BatchGetSecretValue", "secretsmanager.amazonaws.com", readOnly=None), "Read Activity"),
        (api_call("ListBuckets", "s3.amazonaws.com", readOnly="true"), "Read Activity"),
        (api_call("RunInstances", "ec2.amazonaws.com"), "General Audit Event"),
        (api_call("StopLogging", "cloudtrail.amazonaws.com"), "General Audit Event"),
        (api_call("CreateUser", errorCode={"odd": "type"}), "User Account Added"),
        ({}, "General Audit Event"),
        (INSIGHT, "General Audit Event"),
    ],
)
def test_category(record, expected):
    assert category(record) == expected
    assert derive_fields(record)["category"] == expected


def test_categories_are_data():
    from pipeline.normalize import categories

    assert isinstance(categories.EVENT_CATEGORIES, dict)
    assert categories.OUTCOME_CATEGORIES["ConsoleLogin"] == ("User Login Success", "User Login Failure")
    names = set(categories.EVENT_CATEGORIES.values()) | {c for _, c in categories.PATTERN_CATEGORIES}
    assert {"User Account Added", "User Account Removed", "Policy Change", "Group Member Added", "Password Change"} <= names


# --------------------------------------------------------------------------- Java rendering


def test_hashmap_order_matches_elasticsearch():
    # Orders as printed by Elasticsearch's pipeline (Painless toString of the json processor's maps)
    assert hashmap_order(["MobileVersion", "LoginTo", "MFAUsed"]) == ["LoginTo", "MobileVersion", "MFAUsed"]
    assert hashmap_order(
        ["incomingTransitiveTags", "tags", "roleArn", "roleSessionName", "transitiveTagKeys", "durationSeconds"]
    ) == ["incomingTransitiveTags", "transitiveTagKeys", "durationSeconds", "roleArn", "roleSessionName", "tags"]
    assert hashmap_order(["value", "key"]) == ["value", "key"]
    assert hashmap_order(["accessKeyId", "expiration", "sessionToken"]) == ["accessKeyId", "sessionToken", "expiration"]
    # a 52-key object (RDS CreateDBInstance responseElements): the map grew to 64 buckets
    keys = (
        "allocatedStorage associatedRoles autoMinorVersionUpgrade backupRetentionPeriod backupTarget "
        "cACertificateIdentifier certificateDetails copyTagsToSnapshot customerOwnedIpEnabled dBInstanceArn "
        "dBInstanceClass dBInstanceIdentifier dBInstanceStatus dBParameterGroups dBSecurityGroups dBSubnetGroup "
        "dbInstancePort dbiResourceId dedicatedLogVolume deletionProtection domainMemberships engine "
        "engineLifecycleSupport engineVersion httpEndpointEnabled iAMDatabaseAuthenticationEnabled licenseModel "
        "masterUsername monitoringInterval multiAZ networkType optionGroupMemberships pendingModifiedValues "
        "performanceInsightsEnabled preferredBackupWindow preferredMaintenanceWindow publiclyAccessible "
        "readReplicaDBInstanceIdentifiers storageEncrypted storageThroughput storageType tagList vpcSecurityGroups"
    ).split()
    empty = {"associatedRoles", "dBSecurityGroups", "domainMemberships", "readReplicaDBInstanceIdentifiers", "tagList"}
    pruned = drop_empty({k: ([] if k in empty else 1) for k in keys})
    rendered = java_map_str(pruned)
    assert [part.split("=")[0] for part in rendered[1:-1].split(", ")] == (
        "allocatedStorage backupTarget cACertificateIdentifier dbInstancePort dBParameterGroups dbiResourceId "
        "preferredBackupWindow deletionProtection dBInstanceArn dBInstanceIdentifier engine publiclyAccessible "
        "iAMDatabaseAuthenticationEnabled networkType engineVersion performanceInsightsEnabled masterUsername "
        "certificateDetails multiAZ dBInstanceClass storageEncrypted dBSubnetGroup storageThroughput "
        "httpEndpointEnabled vpcSecurityGroups customerOwnedIpEnabled licenseModel pendingModifiedValues "
        "monitoringInterval preferredMaintenanceWindow dBInstanceStatus backupRetentionPeriod "
        "engineLifecycleSupport storageType optionGroupMemberships dedicatedLogVolume autoMinorVersionUpgrade "
        "copyTagsToSnapshot"
    ).split()


def test_pruned_map_keeps_the_capacity_it_grew_to():
    # 13 keys make the HashMap grow to 32 buckets; dropping two null values does not shrink
    # it, so the 11 left iterate in 32-bucket order, not in the order of a fresh 16-bucket map.
    keys = ["eventName", "bucketName", "key", "Host", "x-amz-acl", "acl", "policy", "versionId",
            "uploadId", "partNumber", "tagging", "location", "encryption"]
    pruned = drop_empty({k: (None if k in ("location", "encryption") else "v") for k in keys})
    assert [part.split("=")[0] for part in java_map_str(pruned)[1:-1].split(", ")] == [
        "bucketName", "tagging", "x-amz-acl", "uploadId", "Host", "acl", "versionId", "eventName",
        "partNumber", "key", "policy",
    ]
    fresh = {k: "v" for k in keys[:11]}
    assert java_map_str(fresh).startswith("{bucketName=v, tagging=v, versionId=v,")


@pytest.mark.parametrize(
    "value, text",
    [(1.0, "1.0"), (0.001, "0.001"), (0.0001, "1.0E-4"), (1e7, "1.0E7"), (12345678.9, "1.23456789E7"),
     (9999999.0, "9999999.0"), (-2.5, "-2.5"), (0.0, "0.0"), (1e20, "1.0E20"), (1.5e-5, "1.5E-5")],
)
def test_java_double(value, text):
    assert java_double(value) == text


def test_java_str():
    assert java_str({"b": [1, True, None, "x"], "a": {"c": 2.0}}) == "{a={c=2.0}, b=[1, true, null, x]}"
    assert java_str("plain") == "plain"


# --------------------------------------------------------------------------- ECS


def test_ecs_console_login_success():
    doc = ecs(console_login("Success"))
    assert doc["@timestamp"] == "2024-03-04T05:06:07.000Z"
    assert doc["ecs"] == {"version": "8.11.0"}
    assert doc["event"] == {
        "action": "ConsoleLogin",
        "provider": "signin.amazonaws.com",
        "id": "evt-login",
        "kind": "event",
        "category": ["authentication"],
        "type": ["info"],
        "outcome": "success",
    }
    assert doc["user"] == {"name": "bob", "id": "AIDAEXAMPLEPRINCIPAL"}
    # aws 8.8.0: user.id, then user.name; the source address, and the console's host header
    assert doc["related"] == {"user": ["AIDAEXAMPLEPRINCIPAL", "bob"], "ip": ["198.51.100.23"],
                              "hosts": ["signin.aws.amazon.com"]}
    assert doc["cloud"] == {"region": "us-east-1", "account": {"id": "111122223333"}, "provider": "aws",
                            "service": {"name": "signin"}}
    assert doc["source"] == {"address": "198.51.100.23", "ip": "198.51.100.23"}
    assert doc["user_agent"] == {"original": "Mozilla/5.0 (X11; Linux x86_64) Firefox/124.0"}
    assert doc["tls"] == {
        "version": "1.3",
        "version_protocol": "tls",
        "cipher": "TLS_AES_128_GCM_SHA256",
        "client": {"server_name": "signin.aws.amazon.com"},
    }
    trail = doc["aws"]["cloudtrail"]
    assert trail["console_login"] == {
        "additional_eventdata": {"mobile_version": False, "login_to": "https://console.aws.amazon.com/", "mfa_used": True}
    }
    assert trail["additional_eventdata"] == "{LoginTo=https://console.aws.amazon.com/, MobileVersion=No, MFAUsed=Yes}"
    assert trail["response_elements"] == "{ConsoleLogin=Success}"
    assert trail["flattened"]["response_elements"] == {"ConsoleLogin": "Success"}
    assert "request_parameters" not in trail  # requestParameters is null
    assert trail["user_identity"] == {
        "type": "IAMUser",
        "arn": "arn:aws:iam::111122223333:user/bob",
        "access_key_id": "AKIAEXAMPLEKEY",
    }
    assert trail["event_type"] == "AwsConsoleSignIn"
    assert trail["management_event"] == "true" and trail["read_only"] is False  # aws 8.8.0: convert to string
    assert trail["recipient_account_id"] == "111122223333"
    assert trail["event_category"] == "Management"


def test_ecs_console_login_failure():
    doc = ecs(console_login("Failure", errorMessage="Failed authentication"))
    assert doc["event"]["outcome"] == "failure"
    assert doc["aws"]["cloudtrail"]["error_message"] == "Failed authentication"
    # the outcome of a ConsoleLogin comes from responseElements, even without an error
    assert ecs(console_login("Failure"))["event"]["outcome"] == "failure"
    # no responseElements at all (Elastic's script would stop on a null dereference here)
    doc = ecs(console_login(None, errorMessage="Failed authentication"))
    assert doc["event"]["outcome"] == "failure"
    assert doc["event"]["category"] == ["authentication"]


def test_ecs_hidden_user_name_and_mfa_strings():
    record = console_login("Failure", errorMessage="No username found in supplied account")
    record["userIdentity"] = {"type": "IAMUser", "accountId": "111122223333", "accessKeyId": "", "userName": "HIDDEN_DUE_TO_SECURITY_REASONS"}
    record["additionalEventData"]["MFAUsed"] = "No"
    doc = ecs(record)
    assert doc["user"] == {"name": "HIDDEN_DUE_TO_SECURITY_REASONS"}
    assert doc["aws"]["cloudtrail"]["console_login"]["additional_eventdata"]["mfa_used"] is False
    assert "access_key_id" not in doc["aws"]["cloudtrail"]["user_identity"]  # "" dropped


def test_ecs_assumed_role_identity():
    doc = ecs(api_call("RunInstances", "ec2.amazonaws.com", userIdentity=identity_role()))
    assert doc["user"] == {"name": "Deployer", "id": "AROAEXAMPLEROLE:ci-session"}
    # issue 13: the role session name, user.id and user.name (the issuer's role)
    assert doc["related"]["user"] == ["ci-session", "AROAEXAMPLEROLE:ci-session", "Deployer"]
    assert "email" not in doc["user"]  # "ci-session" is no email address
    session = doc["aws"]["cloudtrail"]["user_identity"]["session_context"]
    assert session == {
        "mfa_authenticated": "true",
        "creation_date": "2024-03-04T05:06:07.000Z",
        "session_issuer": {
            "type": "Role",
            "principal_id": "AROAEXAMPLEROLE",
            "arn": "arn:aws:iam::111122223333:role/Deployer",
            "account_id": "111122223333",
        },
    }
    # aws 8.8.0 also reads the basic formats (basic_date_time_no_millis, basic_date_time)
    identity = identity_role()
    identity["sessionContext"]["attributes"]["creationDate"] = "20131102T010628Z"
    doc = ecs(api_call("RunInstances", "ec2.amazonaws.com", userIdentity=identity))
    session = doc["aws"]["cloudtrail"]["user_identity"]["session_context"]
    assert session["creation_date"] == "2013-11-02T01:06:28.000Z"
    identity["sessionContext"]["attributes"]["creationDate"] = "20131102T010628.250+0100"
    doc = ecs(api_call("RunInstances", "ec2.amazonaws.com", userIdentity=identity))
    session = doc["aws"]["cloudtrail"]["user_identity"]["session_context"]
    assert session["creation_date"] == "2013-11-02T00:06:28.250Z"
    identity["sessionContext"]["attributes"]["creationDate"] = "2013-11-02 01:06"
    doc = ecs(api_call("RunInstances", "ec2.amazonaws.com", userIdentity=identity))
    assert "creation_date" not in doc["aws"]["cloudtrail"]["user_identity"]["session_context"]


def test_ecs_assume_role_text_fields():
    record = api_call(
        "AssumeRole",
        "sts.amazonaws.com",
        userIdentity=identity_role(),
        requestParameters={
            "incomingTransitiveTags": {"Department": "Eng"},
            "tags": [{"value": "ops@example.com", "key": "Email"}, {"value": "42", "key": "CostCenter"}],
            "roleArn": "arn:aws:iam::111122223333:role/Target",
            "roleSessionName": "s1",
            "transitiveTagKeys": ["Email", "CostCenter"],
            "durationSeconds": 3600,
        },
        responseElements={
            "credentials": {"accessKeyId": "ASIANEW", "expiration": "Mar 4, 2024 6:06:07 AM", "sessionToken": "tok"},
            "assumedRoleUser": {"assumedRoleId": "AROATARGET:s1", "arn": "arn:aws:sts::111122223333:assumed-role/Target/s1"},
        },
        resources=[
            {"ARN": "arn:aws:iam::111122223333:role/Target", "accountId": "111122223333", "type": "AWS::IAM::Role"},
            {"ARN": "arn:aws:iam::111122223333:role/Target", "accountId": "111122223333", "type": "AWS::IAM::Role"},
        ],
    )
    doc = ecs(record)
    trail = doc["aws"]["cloudtrail"]
    assert trail["request_parameters"] == (
        "{incomingTransitiveTags={Department=Eng}, transitiveTagKeys=[Email, CostCenter], durationSeconds=3600, "
        "roleArn=arn:aws:iam::111122223333:role/Target, roleSessionName=s1, "
        "tags=[{value=ops@example.com, key=Email}, {value=42, key=CostCenter}]}"
    )
    assert trail["response_elements"] == (
        "{assumedRoleUser={assumedRoleId=AROATARGET:s1, arn=arn:aws:sts::111122223333:assumed-role/Target/s1}, "
        "credentials={accessKeyId=ASIANEW, sessionToken=tok, expiration=Mar 4, 2024 6:06:07 AM}}"
    )
    assert trail["flattened"]["request_parameters"]["durationSeconds"] == 3600
    assert trail["resources"] == [  # duplicates dropped, keys renamed
        {"arn": "arn:aws:iam::111122223333:role/Target", "account_id": "111122223333", "type": "AWS::IAM::Role"}
    ]
    assert doc["event"]["category"] == ["authentication"] and doc["event"]["type"] == ["info"]


def test_ecs_resources_order_is_elasticsearch_hash_order():
    bucket = {"ARN": "arn:aws:s3:::my-bucket", "accountId": "123456789012", "type": "AWS::S3::Bucket"}
    instance = {"ARN": "arn:aws:ec2:us-west-2:123456789012:instance/i-1234567890abcdef0", "accountId": "123456789012", "type": "AWS::EC2::Instance"}
    for resources in ([bucket, instance], [instance, bucket]):
        doc = ecs(api_call("X", "ec2.amazonaws.com", resources=resources))
        assert [r["type"] for r in doc["aws"]["cloudtrail"]["resources"]] == ["AWS::EC2::Instance", "AWS::S3::Bucket"]


def test_ecs_iam_user_and_group_changes():
    doc = ecs(api_call(
        "CreateUser",
        requestParameters={"userName": "carol", "path": "/"},
        responseElements={"user": {"userName": "carol", "userId": "AIDACAROL", "arn": "arn:aws:iam::111122223333:user/carol", "path": "/"}},
    ))
    assert doc["event"]["category"] == ["iam"] and doc["event"]["type"] == ["user", "creation"]
    assert doc["user"]["target"] == {"name": "carol", "id": "AIDACAROL"}
    # aws 8.8.0: requestParameters.userName, responseElements.user.userId, user.id, user.name
    assert doc["related"]["user"] == ["carol", "AIDACAROL", "AIDAEXAMPLEPRINCIPAL", "alice"]
    doc = ecs(api_call("UpdateUser", requestParameters={"userName": "carol", "newUserName": "caroline"}))
    assert doc["user"]["changes"] == {"name": "caroline"}
    assert doc["related"]["user"] == ["carol", "caroline", "AIDAEXAMPLEPRINCIPAL", "alice"]
    doc = ecs(api_call("AddUserToGroup", requestParameters={"groupName": "admins", "userName": "carol"}))
    assert doc["group"] == {"name": "admins"}
    assert doc["event"]["type"] == ["group", "change"]
    doc = ecs(api_call("CreateGroup", requestParameters={"groupName": "ops"},
                       responseElements={"group": {"groupName": "ops", "groupId": "AGPAOPS"}}))
    assert doc["group"] == {"id": "AGPAOPS", "name": "ops"}
    doc = ecs(api_call("DeleteBucket", "s3.amazonaws.com", requestParameters={"bucketName": "b"}))
    assert doc["event"]["category"] == ["file"] and doc["event"]["type"] == ["deletion"]


def test_ecs_failure_and_uncategorized():
    doc = ecs(api_call("RunInstances", "ec2.amazonaws.com", errorCode="Client.UnauthorizedOperation", errorMessage="You are not authorized"))
    assert doc["event"]["outcome"] == "failure"
    assert "category" not in doc["event"] and doc["event"]["type"] == ["info"]
    assert doc["aws"]["cloudtrail"]["error_code"] == "Client.UnauthorizedOperation"
    doc = ecs({"eventVersion": "1.0", "eventTime": "2014-01-01T00:00:00Z"})
    assert "action" not in doc["event"] and doc["event"]["outcome"] == "success"


@pytest.mark.parametrize(
    "address, ip",
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("ec2.amazonaws.com", None),
        ("AWS Internal", None),
        ("203.0.113.7, 10.0.0.1", None),
        ("225.01.00.16", None),  # aws 8.8.0: convert to ip refuses leading zeros (grok %{IP} allowed them)
        ("256.1.1.1", None),
    ],
)
def test_ecs_source(address, ip):
    doc = ecs(api_call("GetObject", "s3.amazonaws.com", sourceIPAddress=address))
    assert doc["source"]["address"] == address
    assert doc["source"].get("ip") == ip


def test_ecs_long_request_parameters_are_text_only():
    record = api_call("PutObject", "s3.amazonaws.com", requestParameters={"key": "k" * 40_000})
    trail = ecs(record)["aws"]["cloudtrail"]
    assert trail["request_parameters"] == "{key=" + "k" * 40_000 + "}"
    assert "flattened" not in trail  # nothing else was kept whole: the empty object is dropped


def test_ecs_numbers_render_like_java():
    record = api_call("PutMetricData", "monitoring.amazonaws.com", requestParameters={"v": 1e7, "w": 0.5, "n": 10})
    assert ecs(record)["aws"]["cloudtrail"]["request_parameters"] == "{v=1.0E7, w=0.5, n=10}"


def test_ecs_insight_record():
    doc = ecs(INSIGHT)
    trail = doc["aws"]["cloudtrail"]
    assert trail["flattened"]["insight_details"]["insightType"] == "ApiCallRateInsight"
    assert "insight_details" not in trail
    assert "user" not in doc and "source" not in doc
    assert doc["event"]["id"] == "insight-1"
    assert trail["event_type"] == "AwsCloudTrailInsight"


def test_ecs_all_null_record():
    record = dict.fromkeys(["userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
                            "sourceIPAddress", "userAgent", "errorCode", "errorMessage", "requestParameters",
                            "responseElements", "resources", "apiVersion", "eventType", "recipientAccountId"])
    record["eventVersion"] = "1.1"
    doc = ecs(record)
    assert doc == {
        "ecs": {"version": "8.11.0"},
        "aws": {"cloudtrail": {"event_version": "1.1"}},
        "event": {"kind": "event", "type": ["info"], "outcome": "success"},
        "cloud": {"provider": "aws"},
    }


# --------------------------------------------------------------------------- OCSF


def test_ocsf_console_login():
    event = ocsf(console_login("Success"))
    assert (event["class_uid"], event["category_uid"], event["activity_id"], event["type_uid"]) == (3002, 3, 1, 300201)
    assert event["class_name"] == "Authentication" and event["activity_name"] == "Logon"
    assert event["status_id"] == 1 and event["status"] == "Success"
    assert event["time"] == 1709528767000
    assert event["metadata"]["uid"] == "evt-login" and event["metadata"]["version"] == "1.1.0"
    assert event["metadata"]["product"] == {"name": "CloudTrail", "vendor_name": "AWS", "version": "1.08", "feature": {"name": "Management"}}
    assert event["cloud"] == {"provider": "AWS", "region": "us-east-1", "account": {"uid": "111122223333"}}
    assert event["actor"]["user"] == {
        "uid": "arn:aws:iam::111122223333:user/bob", "uid_alt": "AIDAEXAMPLEPRINCIPAL", "name": "bob",
        "type": "IAMUser", "type_id": 1, "account": {"uid": "111122223333"}, "credential_uid": "AKIAEXAMPLEKEY",
    }
    assert event["user"]["name"] == "bob"
    assert event["is_mfa"] is True
    assert event["dst_endpoint"] == {"svc_name": "https://console.aws.amazon.com/"}
    assert event["src_endpoint"] == {"ip": "198.51.100.23"}
    assert event["http_request"] == {"user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/124.0"}
    assert event["severity_id"] == 1
    assert event["unmapped"]["tlsDetails"]["tlsVersion"] == "TLSv1.3"
    assert event["unmapped"]["additionalEventData"] == {"MobileVersion": "No"}
    failed = ocsf(console_login("Failure", errorMessage="Failed authentication"))
    assert failed["status_id"] == 2 and failed["status"] == "Failure"
    assert failed["status_detail"] == "Failed authentication"


def test_ocsf_assume_role():
    record = api_call(
        "AssumeRoleWithSAML", "sts.amazonaws.com",
        userIdentity={"type": "SAMLUser", "principalId": "idp:alice", "userName": "alice", "identityProvider": "idp"},
        requestParameters={"roleArn": "arn:aws:iam::111122223333:role/Saml", "principalArn": "arn:aws:iam::111122223333:saml-provider/idp"},
        responseElements={"assumedRoleUser": {"assumedRoleId": "AROASAML:alice", "arn": "arn:aws:sts::111122223333:assumed-role/Saml/alice"}},
    )
    event = ocsf(record)
    assert (event["class_uid"], event["activity_id"]) == (3002, 1)
    assert event["auth_protocol_id"] == 5 and event["auth_protocol"] == "SAML"
    assert event["user"]["uid"] == "arn:aws:iam::111122223333:role/Saml"
    assert event["user"]["uid_alt"] == "AROASAML:alice"
    assert event["actor"]["idp"] == {"name": "idp"}
    assert event["api"]["request"]["data"]["principalArn"].endswith("saml-provider/idp")


@pytest.mark.parametrize(
    "name, class_uid, activity_id",
    [
        ("CreateUser", 3001, 1),
        ("DeleteRole", 3001, 6),
        ("ChangePassword", 3001, 3),
        ("UpdateLoginProfile", 3001, 4),
        ("AttachUserPolicy", 3001, 7),
        ("DeleteRolePolicy", 3001, 8),
        ("EnableMFADevice", 3001, 10),
        ("DeactivateMFADevice", 3001, 11),
        ("CreateAccessKey", 3001, 99),
        ("CreatePolicy", 6003, 1),
        ("GetUser", 6003, 2),
        ("ListUsers", 6003, 2),
    ],
)
def test_ocsf_iam_classes(name, class_uid, activity_id):
    event = ocsf(api_call(name, requestParameters={"userName": "dave", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}))
    assert (event["class_uid"], event["activity_id"], event["type_uid"]) == (class_uid, activity_id, class_uid * 100 + activity_id)
    if class_uid == 3001:
        assert event["category_uid"] == 3
        if name != "ChangePassword":
            assert event["user"]["name"] == "dave"
        if activity_id in (7, 8):
            assert event["policy"] == {"uid": "arn:aws:iam::aws:policy/ReadOnlyAccess", "name": "ReadOnlyAccess"}
    if activity_id == 99:
        assert event["activity_name"] == name


def test_ocsf_update_access_key_status():
    enable = ocsf(api_call("UpdateAccessKey", requestParameters={"userName": "d", "status": "Active"}))
    disable = ocsf(api_call("UpdateAccessKey", requestParameters={"userName": "d", "status": "Inactive"}))
    assert (enable["activity_id"], disable["activity_id"]) == (2, 5)


@pytest.mark.parametrize(
    "name, activity_id",
    [
        ("RunInstances", 1), ("CreateBucket", 1), ("GenerateDataKey", 1),
        ("GetObject", 2), ("DescribeInstances", 2), ("LookupEvents", 2), ("SearchResources", 2), ("BatchGetSecretValue", 2),
        ("PutObject", 3), ("ModifyInstanceAttribute", 3), ("StopLogging", 3), ("StartSession", 3), ("TagResource", 3),
        ("UntagResource", 3), ("EnableKey", 3), ("DisableKey", 3), ("AttachVolume", 3), ("AddPermission", 3),
        ("DeleteTrail", 4), ("TerminateInstances", 4),
        ("Invoke", 99), ("SendCommand", 99), ("", 99),
    ],
)
def test_ocsf_api_activity(name, activity_id):
    event = ocsf(api_call(name, "ec2.amazonaws.com"))
    assert event["class_uid"] == 6003 and event["category_uid"] == 6
    assert event["activity_id"] == activity_id
    assert event["type_uid"] == 600300 + activity_id
    assert event["api"]["service"]["name"] == "ec2.amazonaws.com"
    assert event["api"]["request"]["uid"] == "req-1"
    assert event.get("api", {}).get("operation") == (name or None)


@pytest.mark.parametrize(
    "address, endpoint",
    [
        ("203.0.113.7", {"ip": "203.0.113.7"}),
        ("2001:db8::5", {"ip": "2001:db8::5"}),
        ("ec2.amazonaws.com", {"domain": "ec2.amazonaws.com"}),
        ("AWS Internal", {"domain": "AWS Internal"}),
        ("203.0.113.7, 10.1.2.3, 10.4.5.6", {"ip": "203.0.113.7", "intermediate_ips": ["10.1.2.3", "10.4.5.6"]}),
        (None, None),
    ],
)
def test_ocsf_src_endpoint(address, endpoint):
    event = ocsf(api_call("GetObject", "s3.amazonaws.com", sourceIPAddress=address, vpcEndpointId=None))
    assert event.get("src_endpoint") == endpoint


def test_ocsf_actor_session_and_service_identity():
    event = ocsf(api_call("RunInstances", "ec2.amazonaws.com", userIdentity=identity_role()))
    assert event["actor"]["user"]["name"] == "Deployer" and event["actor"]["user"]["type_id"] == 99
    assert event["actor"]["session"] == {
        "created_time": 1709528767000, "is_mfa": True, "issuer": "arn:aws:iam::111122223333:role/Deployer",
    }
    service = ocsf(api_call("Decrypt", "kms.amazonaws.com", userIdentity={"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
                            sourceIPAddress="ec2.amazonaws.com", eventType="AwsServiceEvent"))
    assert service["actor"] == {"user": {"type": "AWSService", "type_id": 3}, "invoked_by": "ec2.amazonaws.com"}
    assert service["metadata"]["event_code"] == "AwsServiceEvent"


def test_ocsf_insight_and_odd_records():
    event = ocsf(INSIGHT)
    assert event["class_uid"] == 6003 and "actor" not in event
    assert event["unmapped"]["insightDetails"]["state"] == "Start"
    assert event["unmapped"]["sharedEventID"] == "shared-1"
    event = ocsf({"eventTime": "not a time", "eventName": None})
    assert "time" not in event and event["unmapped"]["eventTime"] == "not a time"
    assert event["activity_id"] == 99


# --------------------------------------------------------------------------- robustness


def _deep(levels: int) -> dict:
    value: object = "bottom"
    for i in range(levels):
        value = {"k": value} if i % 2 else [value]
    return {"deep": value}


def test_deep_record_from_the_parser():
    text = b'{"Records":[{"eventVersion":"1.08","requestParameters":' + b"[" * 1020 + b"1" + b"]" * 1020 + b"}]}"
    (raw, record), = iter_records(text)
    fields = derive_fields(record, ALL)
    assert orjson.loads(fields["ocsf"])["class_uid"] == 6003


def _edge_records() -> list[dict]:
    records = [
        api_call("GetObject", "s3.amazonaws.com", eventVersion=version)
        for version in ("1.0", "1.01", "1.02", "1.03", "1.04", "1.05", "1.06", "1.07", "1.08", "1.09", "1.10", "1.11")
    ]
    no_id = api_call("GetObject", "s3.amazonaws.com")
    del no_id["eventID"]
    records += [
        no_id,
        INSIGHT,
        api_call("Decrypt", "kms.amazonaws.com", eventType="AwsServiceEvent", userIdentity={"type": "AWSService", "invokedBy": "AWS Internal"},
                 sourceIPAddress="AWS Internal", serviceEventDetails={"keyId": "k"}),
        api_call("PutObject", "s3.amazonaws.com", eventType="AwsVpceEvents", vpcEndpointId="vpce-1", sourceIPAddress="10.0.0.1",
                 userIdentity={"type": "AWSAccount", "principalId": "", "accountId": "999988887777"}),
        api_call("GetObject", "s3.amazonaws.com", sourceIPAddress="203.0.113.7, 10.0.0.1, 10.0.0.2"),
        api_call("GetObject", "s3.amazonaws.com", sourceIPAddress="s3.amazonaws.com"),
        console_login("Failure", userIdentity={"type": "IAMUser", "userName": "HIDDEN_DUE_TO_SECURITY_REASONS", "accountId": "1"}),
        api_call("GetObject", "s3.amazonaws.com", userIdentity=None, responseElements=None, requestParameters=None),
        api_call("CreateUser", userIdentity={"type": "Root", "sessionContext": {"attributes": {"mfaAuthenticated": "false"}}},
                 additionalEventData={"MFAUsed": "Yes"}),
        api_call("GetObject", "s3.amazonaws.com", userAgent="\u00e9t\u00e9 \u4e2d\u6587 \U0001f600", requestParameters={"key": "caf\u00e9/\u4e2d"}),
        {"eventName": "ConsoleLogin", "responseElements": {"ConsoleLogin": 5}, "userIdentity": "not an object"},
        {"eventName": 7, "eventSource": ["x"], "sourceIPAddress": {"a": 1}, "userAgent": 3, "tlsDetails": {"tlsVersion": "TLS"},
         "resources": [1, None, {"ARN": None}], "requestParameters": "text", "additionalEventData": [1],
         "userIdentity": {"sessionContext": {"attributes": "x", "sessionIssuer": []}}, "eventTime": 1709528767},
        {"eventName": "PutMetricData", "requestParameters": {"big": 2**70, "nan": float("nan"), "inf": float("-inf")}},
        {"eventName": "PutItem", "requestParameters": _deep(1020)},  # orjson parses up to 1024 levels
        {"eventName": "PutItem", "requestParameters": {1: "non-string key"}},
        {},
    ]
    return records


def _mutations(rng: random.Random, record: dict, count: int):
    weird = [None, "", [], {}, 0, -1, 1.5, True, "x", "true", "false", "Yes", "No", ["a", None], {"k": None},
             "HIDDEN_DUE_TO_SECURITY_REASONS", "\u00e9\U0001f600", "1.2.3.4, 5.6.7.8", "AWS Internal"]

    def paths(obj, prefix=()):
        if isinstance(obj, dict):
            for key, value in obj.items():
                yield prefix + (key,)
                yield from paths(value, prefix + (key,))

    all_paths = list(paths(record))
    for _ in range(count):
        mutated = copy.deepcopy(record)
        for _ in range(rng.randint(1, 4)):
            if not all_paths:
                break
            path = rng.choice(all_paths)
            target = mutated
            for key in path[:-1]:
                target = target.get(key) if isinstance(target, dict) else None
            if isinstance(target, dict):
                if rng.random() < 0.2:
                    target.pop(path[-1], None)
                else:
                    target[path[-1]] = copy.deepcopy(rng.choice(weird))
        yield mutated


def _check_all_outputs(record: dict) -> None:
    fields = derive_fields(record, ALL)
    assert set(fields) == {"display_name", "category", "ecs", "ocsf"}
    assert isinstance(fields["display_name"], str) and isinstance(fields["category"], str)
    assert isinstance(fields["ecs"], bytes) and isinstance(fields["ocsf"], bytes)  # JSON, as the stream stores it
    ecs_doc = orjson.loads(fields["ecs"])
    ocsf_event_ = orjson.loads(fields["ocsf"])
    assert ecs_doc["event"]["kind"] == "event"
    assert ocsf_event_["type_uid"] == ocsf_event_["class_uid"] * 100 + ocsf_event_["activity_id"]
    assert ocsf_event_["class_uid"] in (3001, 3002, 6003)


def test_edge_records_never_raise():
    for record in _edge_records():
        _check_all_outputs(record)
    assert derive_fields({}) == {"display_name": "CloudTrail Event", "category": "General Audit Event"}


def test_mutated_records_never_raise():
    rng = random.Random(1234)
    base = [console_login("Success"), api_call("AssumeRole", "sts.amazonaws.com", userIdentity=identity_role(),
                                              requestParameters={"roleArn": "r", "roleSessionName": "s"},
                                              resources=[{"ARN": "a", "accountId": "1", "type": "t"}]),
            api_call("CreateUser", requestParameters={"userName": "u"}, responseElements={"user": {"userId": "i", "userName": "u"}}),
            INSIGHT]
    for record in base:
        for mutated in _mutations(rng, record, 250):
            _check_all_outputs(mutated)


@needs_open_data
def test_every_open_data_record_normalizes():
    count = 0
    for path in sorted((OPEN_DATA / "stratus-red-team").glob("*.json")):
        for record in orjson.loads(path.read_bytes()):
            _check_all_outputs(record)
            count += 1
    for path in sorted((OPEN_DATA / "aws-cloudtrail-processing-library").glob("*.json*")):
        if path.name == "SerializerTestFileBadJsonFormat.json":
            continue
        for _, record in iter_records(path.read_bytes()):
            _check_all_outputs(record)
            count += 1
    assert count == 310 + 41  # as counted in the data set's LICENSES.md


@needs_open_data
def test_open_data_console_login_without_mfa():
    path = OPEN_DATA / "stratus-red-team" / "aws.initial-access.console-login-without-mfa.json"
    record = orjson.loads(path.read_bytes())[0]
    fields = derive_fields(record, ALL)
    assert fields["display_name"] == "Console Login"
    assert fields["category"] == "User Login Success"
    doc = orjson.loads(fields["ecs"])
    assert doc["aws"]["cloudtrail"]["console_login"]["additional_eventdata"]["mfa_used"] is False
    assert doc["event"]["outcome"] == "success"
    event = orjson.loads(fields["ocsf"])
    assert event["class_uid"] == 3002 and event["is_mfa"] is False


def test_gzip_record_round_trip_into_fields():
    doc = gzip.compress(orjson.dumps({"Records": [console_login("Success"), INSIGHT]}))
    fields = [derive_fields(record, ALL) for _, record in iter_records(doc)]
    assert [f["category"] for f in fields] == ["User Login Success", "General Audit Event"]


# --------------------------------------------------------------------------- snapshot

SNAPSHOT = Path(__file__).resolve().parent / "data" / "normalize_snapshot.jsonl.gz"


def test_outputs_match_the_snapshot():
    """Every record of the snapshot (open data, generated records, this module's records; see
    ops/normalize_snapshot.py) still gets exactly the stream fields it got when the snapshot
    was written: a rewrite for speed changes no output."""
    import sys  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
    import normalize_snapshot  # noqa: PLC0415

    entries = normalize_snapshot.load(SNAPSHOT)
    assert len(entries) > 1500
    diffs = normalize_snapshot.differences(entries)
    assert not diffs, [(name, field) for name, field, _, _ in diffs[:10]]


def test_ocsf_session_context_mapping_is_one_level_deep():
    """ocsf._identity_rest drops mapped sessionContext keys one level down only: the table
    must not map anything deeper (or a whole object)."""
    from pipeline.normalize import ocsf  # noqa: PLC0415

    session = ocsf._MAPPED_USER_IDENTITY["sessionContext"]
    assert session and all(isinstance(sub, dict) and sub for sub in session.values())
    assert all(leaf is None for sub in session.values() for leaf in sub.values())
    rest = ocsf._identity_rest({"type": "IAMUser", "x": 1, "sessionContext": {
        "attributes": {"creationDate": "t", "mfaAuthenticated": "false", "other": 2},
        "sessionIssuer": {"arn": "a", "userName": "u"}, "sourceIdentity": "s"}})
    assert rest == {"x": 1, "sessionContext": {"attributes": {"other": 2}, "sourceIdentity": "s"}}


def test_snapshot_through_derive_batch_byte_for_byte():
    """The pipeline's path (derive_batch, batches of 500 crossing its CHUNK boundaries, caches
    warm from earlier records) writes every snapshot record's fields with exactly the text the
    snapshot holds: not even the order of a document's keys changed."""
    import copy  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from pipeline.normalize import CHUNK, clear_caches, derive_batch  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
    import normalize_snapshot  # noqa: PLC0415

    entries = normalize_snapshot.load(SNAPSHOT)
    records = [copy.deepcopy(record) for _, record, _ in entries]
    assert len(records) > 3 * CHUNK
    clear_caches()
    actual = []
    for start in range(0, len(records), 500):
        actual += derive_batch(records[start:start + 500], ALL, payloads=True)
    mismatched = []
    for (name, _, expected), fields in zip(entries, actual):
        text = {key: value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value
                for key, value in fields.items()}
        if text != expected:
            mismatched.append(name)
    assert not mismatched, mismatched[:10]


_PAYLOAD_TEXT = ("request_parameters", "response_elements", "additional_eventdata", "service_event_details")


def _without_payloads(fields: dict) -> dict:
    """The whole documents of ``fields`` less what the stream's form leaves out (issue 22)."""
    out = dict(fields)
    if "ecs" in out:
        doc = orjson.loads(out["ecs"])
        trail = doc.get("aws", {}).get("cloudtrail", {})
        for key in _PAYLOAD_TEXT:
            trail.pop(key, None)
            trail.get("flattened", {}).pop(key, None)
        if trail.get("flattened") == {}:
            del trail["flattened"]
        if trail == {} and "aws" in doc:
            del doc["aws"]
        out["ecs"] = doc
    if "ocsf" in out:
        event = orjson.loads(out["ocsf"])
        event.pop("unmapped", None)
        for part in ("request", "response"):
            api = event.get("api", {})
            if isinstance(api.get(part), dict):
                api[part].pop("data", None)
                if not api[part]:
                    del api[part]
        if event.get("api") == {}:
            del event["api"]
        out["ocsf"] = event
    return out


def _entry_fields(record) -> dict:
    """The routing fields pipeline.emitter writes beside the documents of ``record``."""
    from pipeline.emitter import account_of  # noqa: PLC0415

    record = canonical_keys(record) if isinstance(record, dict) else {}

    def text(value):
        return value if isinstance(value, str) else ("" if value is None else str(value))

    return {"event_id": text(record.get("eventID")), "event_name": text(record.get("eventName")),
            "event_time": text(record.get("eventTime")), "account": account_of(record),
            "region": text(record.get("awsRegion"))}


def test_snapshot_stream_documents_leave_out_only_the_payload_copies():
    """Issue 22: the stream's ECS (Elastic's retain: none) and OCSF documents are the whole
    documents less the payload copies the entry already carries in ``event``: nothing else;
    given the entry's own fields (``carried``), less also what those fields hold, which
    ``restore_carried`` puts back exactly."""
    import sys  # noqa: PLC0415

    from pipeline.normalize import CARRIED, derive_batch, restore_carried  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
    import normalize_snapshot  # noqa: PLC0415

    entries = normalize_snapshot.load(SNAPSHOT)
    records = [copy.deepcopy(record) for _, record, _ in entries]
    stream = derive_batch(records, ALL)
    whole = derive_batch(records, ALL, payloads=True)
    carried = [_entry_fields(record) for record in records]
    shorter = derive_batch(records, ALL, carried=carried)
    smaller = left_out = 0
    for (name, record, _), short, full, fields, shortest in zip(entries, stream, whole, carried, shorter):
        expected = _without_payloads(full)
        assert {"ecs": orjson.loads(short["ecs"]), "ocsf": orjson.loads(short["ocsf"])} == \
            {"ecs": expected["ecs"], "ocsf": expected["ocsf"]}, name
        assert short["display_name"] == full["display_name"] and short["category"] == full["category"]
        smaller += len(short["ecs"]) + len(short["ocsf"]) < len(full["ecs"]) + len(full["ocsf"])
        for document in ALL:
            assert restore_carried(document, orjson.loads(shortest[document]), fields) == expected[document], \
                (name, document)
        left_out += len(shortest["ecs"]) + len(shortest["ocsf"]) < len(short["ecs"]) + len(short["ocsf"])
    assert smaller > len(entries) // 2
    assert left_out > len(entries) * 0.9
    assert derive_fields(records[0], ALL) == stream[0]
    assert {field for paths in CARRIED.values() for _, field in paths} <= set(_entry_fields({}))


def test_stream_documents_leave_out_what_the_entry_carries():
    """The entry's event_id, event_name, account and region are not repeated in its documents;
    where a document has no such value though the entry's field has one, null says so; a
    field the entry lacks (stream_fields) stays in the documents."""
    from pipeline.normalize import derive_batch, restore_carried  # noqa: PLC0415

    record = api_call("CreateUser", eventID="e-1", recipientAccountId="111122223333", awsRegion="eu-west-1")
    whole = derive_batch([record], ALL)[0]
    fields = _entry_fields(record)
    short = derive_batch([record], ALL, carried=[fields])[0]
    ecs_doc, ocsf_doc = orjson.loads(short["ecs"]), orjson.loads(short["ocsf"])
    assert "id" not in ecs_doc["event"] and "action" not in ecs_doc["event"] and "region" not in ecs_doc["cloud"]
    assert "account" not in ecs_doc["cloud"] and "recipient_account_id" not in ecs_doc["aws"]["cloudtrail"]
    assert "uid" not in ocsf_doc["metadata"] and "operation" not in ocsf_doc["api"]
    assert "account" not in ocsf_doc["cloud"] and "region" not in ocsf_doc["cloud"]
    assert b"e-1" not in short["ecs"] and b"e-1" not in short["ocsf"]
    for name in ALL:
        assert restore_carried(name, orjson.loads(short[name]), fields) == orjson.loads(whole[name])
    # the documents built once more are unchanged: nothing shared between records was edited
    assert derive_batch([record], ALL) == [whole]
    # a field the entry does not carry stays in the documents
    partial = {"event_id": fields["event_id"]}
    kept = derive_batch([record], ALL, carried=[partial])[0]
    assert orjson.loads(kept["ecs"])["cloud"]["region"] == "eu-west-1"
    assert "id" not in orjson.loads(kept["ecs"])["event"]
    # the entry has an account, the document none (no recipientAccountId): null, restored away
    odd = api_call("CreateUser", eventID="e-2")
    del odd["recipientAccountId"]
    odd_fields = _entry_fields(odd)
    assert odd_fields["account"]
    odd_short = derive_batch([odd], ALL, carried=[odd_fields])[0]
    odd_whole = derive_batch([odd], ALL)[0]
    assert orjson.loads(odd_short["ecs"])["aws"]["cloudtrail"]["recipient_account_id"] is None
    for name in ALL:
        assert restore_carried(name, orjson.loads(odd_short[name]), odd_fields) == orjson.loads(odd_whole[name])


def test_ecs_stream_form_reads_payload_values_as_pruned():
    """The stream's ECS form (retain: none) reads the payload values its rules need one by one
    instead of pruning whole objects first: the values the pipeline's first script drops
    (null, "", "-", "none", objects left empty) are as absent there as in the whole document."""
    dropped = {"userName": "-", "newUserName": "", "groupName": None, "computerName": "none",
               "instanceId": "", "instanceIds": ["", None], "instancesSet": {"items": [{"instanceId": "-"}]}}
    kept = {"userName": "bob", "newUserName": {"first": "-", "last": "x"}, "groupName": "admins",
            "computerName": "host-1", "instanceId": "i-0123456789abcdef0"}
    records = [
        api_call("CreateUser", requestParameters=dropped,
                 responseElements={"user": {"userId": "-"}, "group": {"groupId": ""}}),
        api_call("CreateUser", requestParameters=kept,
                 responseElements={"user": {"userId": "AIDA1", "arn": None}, "group": {"groupId": "AGPA1"}}),
        api_call("ConsoleLogin", "signin.amazonaws.com", responseElements={"ConsoleLogin": ""},
                 additionalEventData={"MobileVersion": "-", "LoginTo": "", "MFAUsed": None}),
        api_call("ConsoleLogin", "signin.amazonaws.com", responseElements={"ConsoleLogin": "Failure"},
                 additionalEventData={"MobileVersion": "No", "LoginTo": "https://console", "MFAUsed": "none"}),
        api_call("UpdateInstanceInformation", "ssm.amazonaws.com",
                 serviceEventDetails={"sourceIpAddress": "198.51.100.9", "other": ""}),
    ]
    for record in records:
        whole = _without_payloads({"ecs": orjson.dumps(ecs_document(record))})["ecs"]
        assert orjson.loads(orjson.dumps(ecs_document(record, "none"))) == whole, record["eventName"]
    first, second, console, console_failed, details = (ecs_document(r, "none") for r in records)
    assert "target" not in first["user"] and "changes" not in first["user"] and "group" not in first
    assert "host-1" not in first["related"].get("hosts", [])
    assert second["user"]["target"] == {"id": "AIDA1", "name": "bob"}
    assert second["user"]["changes"] == {"name": {"last": "x"}} and second["group"] == {"id": "AGPA1", "name": "admins"}
    assert second["related"]["hosts"] == ["host-1", "i-0123456789abcdef0"]
    assert "{last=x}" in second["related"]["user"] and "AIDA1" in second["related"]["user"]
    assert console["event"]["outcome"] == "success" and "console_login" not in console["aws"]["cloudtrail"]
    assert console_failed["event"]["outcome"] == "failure"
    assert console_failed["aws"]["cloudtrail"]["console_login"] == {
        "additional_eventdata": {"mobile_version": False, "login_to": "https://console"}}
    assert details["related"]["ip"] == ["203.0.113.7", "198.51.100.9"]


def test_ecs_retain_settings_as_elastic():
    """The pipeline's retain setting: which payload copies each value keeps."""
    record = api_call("AuthorizeSecurityGroupIngress", "ec2.amazonaws.com",
                      requestParameters={"groupId": "sg-1", "cidrIp": "0.0.0.0/0", "fromPort": 22},
                      responseElements={"_return": True})
    trail = {retain: ecs_document(record, retain)["aws"]["cloudtrail"] for retain in
             ("all", "keyword", "flattened", "minimal", "none")}
    assert "request_parameters" in trail["all"] and "flattened" in trail["all"]
    assert "request_parameters" in trail["keyword"] and "flattened" not in trail["keyword"]
    assert "request_parameters" not in trail["flattened"] and trail["flattened"]["flattened"]["request_parameters"]
    assert trail["minimal"]["flattened"] == {"request_parameters": {"cidrIp": "0.0.0.0/0", "fromPort": 22}}
    assert "request_parameters" in trail["minimal"]
    assert "request_parameters" not in trail["none"] and "flattened" not in trail["none"]
    # the rules that read the payloads work whatever is kept
    for retain in trail:
        assert ecs_document(record, retain)["event"]["type"] == ["access"]


# --------------------------------------------------------------------------- issue 13: names and casing


def test_display_name_of_records_without_an_event_name():
    insight = {"eventVersion": "1.07", "eventTime": "2024-03-04T05:06:07Z", "eventType": "AwsCloudTrailInsight",
               "eventCategory": "Insight", "recipientAccountId": "111122223333",
               "insightDetails": {"state": "Start", "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances",
                                  "insightType": "ApiCallRateInsight"}}
    assert derive_fields(insight)["display_name"] == "API Call Rate Insight Start: Run Instances"
    del insight["insightDetails"]["eventName"]
    assert derive_fields(insight)["display_name"] == "API Call Rate Insight Start"
    assert derive_fields({"eventType": "AwsServiceEvent"})["display_name"] == "Aws Service Event"
    assert derive_fields({"eventName": "  ", "eventVersion": "1.08"})["display_name"] == "CloudTrail Event"
    assert derive_fields({"eventName": "ListMFADevices"})["display_name"] == "List MFA Devices"


LOWER = {"eventversion": "1.08", "eventtime": "2024-03-04T05:06:07Z", "eventsource": "signin.amazonaws.com",
         "eventname": "ConsoleLogin", "awsregion": "us-east-1", "sourceipaddress": "198.51.100.7",
         "useridentity": {"type": "IAMUser", "principalid": "AIDAEXAMPLE", "arn": "arn:aws:iam::111122223333:user/bob",
                          "accountid": "111122223333", "username": "bob"},
         "responseelements": {"ConsoleLogin": "Failure"}, "additionaleventdata": {"MFAUsed": "No"},
         "eventid": "e-1", "eventtype": "AwsConsoleSignIn", "recipientaccountid": "111122223333"}


def test_lower_cased_records_are_cloudtrail_too():
    canonical = {"eventVersion": "1.08", "eventTime": "2024-03-04T05:06:07Z", "eventSource": "signin.amazonaws.com",
                 "eventName": "ConsoleLogin", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7",
                 "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
                                  "arn": "arn:aws:iam::111122223333:user/bob", "accountId": "111122223333",
                                  "userName": "bob"},
                 "responseElements": {"ConsoleLogin": "Failure"}, "additionalEventData": {"MFAUsed": "No"},
                 "eventID": "e-1", "eventType": "AwsConsoleSignIn", "recipientAccountId": "111122223333"}
    assert canonical_keys(LOWER) == canonical
    assert derive_fields(LOWER, ALL) == derive_fields(canonical, ALL)
    fields = derive_fields(LOWER, ALL)
    assert fields["display_name"] == "Console Login" and fields["category"] == "User Login Failure"
    assert orjson.loads(fields["ocsf"])["class_uid"] == 3002
    assert orjson.loads(fields["ecs"])["user"]["name"] == "bob"
    record = {"eventName": "GetObject", "eventTime": "t"}
    assert canonical_keys(record) is record  # a normal record is not copied
    both = {"eventname": "a", "eventName": "b"}
    assert canonical_keys(both) is both  # not a lower-cased export: untouched


@pytest.mark.parametrize("text", [
    "2024-02-29T23:59:59Z", "2024-02-30T00:00:00Z", "0000-01-01T00:00:00Z", "2024-13-01T00:00:00Z",
    "2024-01-01T24:00:00Z", "2024-01-01T23:59:60Z", "\uff12\uff10\uff12\uff14-01-01T00:00:00Z",
    "2024-W10-1T05:06:07Z", "1969-12-31T23:59:59Z", "2024-01-01T00:00:00.123+01:00", "2024-01-01",
])
def test_the_fast_time_path_agrees_with_the_general_parser(text):
    from datetime import timedelta  # noqa: PLC0415

    from pipeline.normalize.common import clear_caches, epoch_millis, es_timestamp, parse_iso8601  # noqa: PLC0415

    clear_caches()
    moment = parse_iso8601(text)
    if moment is None:
        assert es_timestamp(text) is None and epoch_millis(text) is None
    else:
        assert es_timestamp(text) == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        assert epoch_millis(text) == (moment - moment.replace(year=1970, month=1, day=1, hour=0, minute=0, second=0,
                                                              microsecond=0)) // timedelta(milliseconds=1)


def test_ecs_email_identities():
    """Issue 13 (Elastic's test-assume-role-email-session and test-copy-object expectations):
    an email address as role session name or user name is user.email; related.user gets the
    session name, a session email's local part, user.id and user.name."""
    identity = identity_role()
    identity["principalId"] = "AROAEXAMPLEROLE:first.last@example.com"
    identity["arn"] = "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123/first.last@example.com"
    identity["sessionContext"]["sessionIssuer"]["userName"] = "AWSReservedSSO_Admin_0123"
    doc = ecs(api_call("AssumeRole", "sts.amazonaws.com", userIdentity=identity,
                       requestParameters={"roleArn": "arn:aws:iam::111122223333:role/Other",
                                          "roleSessionName": "first.last@example.com"}))
    assert doc["user"]["email"] == "first.last@example.com"
    assert doc["user"]["name"] == "AWSReservedSSO_Admin_0123"
    assert doc["related"]["user"] == ["first.last@example.com", "first.last",
                                      "AROAEXAMPLEROLE:first.last@example.com", "AWSReservedSSO_Admin_0123"]
    # a console user (or Identity Center user) whose name is an email address
    sso = {"type": "IdentityCenterUser", "principalId": "p-1", "accountId": "111122223333",
           "userName": "jane@example.org"}
    doc = ecs(console_login("Success", userIdentity=sso))
    assert doc["user"]["email"] == "jane@example.org" and doc["user"]["name"] == "jane@example.org"
    assert doc["related"]["user"] == ["p-1", "jane@example.org"]  # user.id, user.name (aws 8.8.0)
    # an AWS service as caller: no user, no email
    service = {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}
    doc = ecs(api_call("AssumeRole", "sts.amazonaws.com", userIdentity=service, sourceIPAddress="ec2.amazonaws.com"))
    assert "user" not in doc and "related" not in doc
    assert doc["aws"]["cloudtrail"]["user_identity"] == {"type": "AWSService", "invoked_by": "ec2.amazonaws.com"}


@pytest.mark.parametrize("name, kind", [("StartSession", "start"), ("CreateControlChannel", "start"),
                                        ("OpenControlChannel", "start"), ("OpenDataChannel", "start"),
                                        ("TerminateSession", "end")])
def test_ecs_session_manager_channels(name, kind):
    doc = ecs(api_call(name, "ssm.amazonaws.com", userIdentity=identity_role()))
    assert doc["event"]["category"] == ["session"] and doc["event"]["type"] == [kind]


def test_prune_render_is_drop_empty_then_java_str():
    from pipeline.normalize.javaish import prune_render  # noqa: PLC0415

    values = [{"a": None, "b": "", "c": {"d": {}}, "e": [None, "", {"f": 1}], "g": 1.5, "h": True},
              {"k": [], "l": {"m": None}}, [None], "", None, 0, 1e22, {"x": [{"y": "z", "w": None}], "nan": float("nan")},
              {str(i): i for i in range(20)}, {1: "int key"}]
    for record in _edge_records() + [console_login("Success"), INSIGHT]:
        values += [v for v in record.values()]
    import json  # noqa: PLC0415

    checked = 0
    for value in values:
        try:
            expected = drop_empty(value)
        except RecursionError:
            continue  # deeper than Python recurses: derive_fields' fallback handles it
        kept, text = prune_render(value)
        if expected is None:
            assert text is None
        else:
            assert text == java_str(expected)
            assert json.dumps(kept) == json.dumps(expected)
            checked += 1
    assert checked > 30


def test_own_ecs_expectations_with_the_comparison_script():
    """ops/ecs_compare.py on tests/data/ecs_expected (records of our own for each rule of aws
    8.8.0's pipeline that issues 13 and 23 name): every named field agrees."""
    import sys  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
    import ecs_compare  # noqa: PLC0415

    diffs, fields, agree = ecs_compare.compare(Path(__file__).resolve().parent / "data" / "ecs_expected",
                                               only_expected=True)
    assert sum(fields.values()) > 110
    assert diffs == []


def test_ecs_drops_dash_and_none_like_null():
    """aws 7.x on: the first script drops "-" and "none" values as it drops null and ""."""
    record = api_call("GetObject", "s3.amazonaws.com", userAgent="-", vpcEndpointId="none",
                      requestParameters={"bucketName": "b", "x-amz-acl": "-"})
    doc = ecs(record)
    assert "user_agent" not in doc
    assert "vpc_endpoint_id" not in doc["aws"]["cloudtrail"]
    assert doc["aws"]["cloudtrail"]["request_parameters"] == "{bucketName=b}"


def test_ecs_version_recorded():
    from pipeline.normalize import ecs_tables  # noqa: PLC0415

    assert ecs_tables.ELASTIC_VERSION == "8.8.0"
    assert len(ecs_tables.ELASTIC_COMMIT) == 40


def test_derive_batch_equals_derive_fields_one_by_one():
    from pipeline.normalize import derive_batch  # noqa: PLC0415

    records = _edge_records() + [console_login("Success"), console_login("Failure"), INSIGHT, LOWER, {}, "not a dict"]
    rng = random.Random(7)
    records += list(_mutations(rng, console_login("Success"), 50))
    for formats in ((), ("ecs",), ("ocsf",), ALL):
        assert derive_batch(records, formats) == [derive_fields(r, formats) for r in records]


# --------------------------------------------------------------------------- issue 23: aws 8.8.0 rules


def test_ecs_digest_record():
    """Digest files: the digest fields under aws.cloudtrail.flattened.digest, @timestamp from
    digestEndTime, the previous digest's hash in related.hash only (8.8.0: no file.hash)."""
    digest = {"awsAccountId": "111122223333", "digestStartTime": "2024-03-04T04:00:00Z",
              "digestEndTime": "2024-03-04T05:00:00Z", "digestS3Bucket": "trail-bucket",
              "digestS3Object": "AWSLogs/111122223333/CloudTrail-Digest/x.json.gz",
              "digestPublicKeyFingerprint": "fp-1", "digestSignatureAlgorithm": "SHA256withRSA",
              "newestEventTime": "2024-03-04T04:59:59Z", "oldestEventTime": "2024-03-04T04:00:01Z",
              "previousDigestS3Bucket": "trail-bucket", "previousDigestS3Object": "prev.json.gz",
              "previousDigestHashValue": "abc123", "previousDigestHashAlgorithm": "SHA-256",
              "previousDigestSignature": "sig", "publicKeyFingerprint": "ignored", "logFiles": []}
    doc = ecs(digest)
    assert doc["@timestamp"] == "2024-03-04T05:00:00.000Z"
    assert doc["file"] == {"path": "AWSLogs/111122223333/CloudTrail-Digest/x.json.gz"}
    assert doc["related"] == {"hash": ["abc123"]}
    assert doc["cloud"] == {"account": {"id": "111122223333"}, "provider": "aws"}
    flat = doc["aws"]["cloudtrail"]["flattened"]["digest"]
    assert flat["public_key_fingerprint"] == "fp-1" and flat["previous_hash_value"] == "abc123"
    assert flat["end_time"] == "2024-03-04T05:00:00.000Z" and flat["previous_s3_object"] == "prev.json.gz"
    assert "log_files" not in flat  # an empty list is dropped like null
    # the stream's form keeps digest content: it is not a payload copy
    stream = orjson.loads(derive_fields(digest, ("ecs",))["ecs"])
    assert stream["aws"]["cloudtrail"]["flattened"]["digest"] == flat


def test_ecs_identity_center_and_rare_identity_fields():
    identity = {"type": "IdentityCenterUser", "accountId": "111122223333",
                "arn": "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_X/jane@example.org",
                "onBehalfOf": {"userId": "uid-1", "identityStoreArn": "arn:aws:identitystore::111122223333:identitystore/d-1"},
                "credentialId": "cred-1", "inScopeOf": {"issuerType": "AWS::Lambda::Function", "sourceArn": "arn:src"},
                "sessionContext": {"sourceIdentity": "ops", "assumedRoot": "true"}}
    doc = ecs(api_call("ListBuckets", "s3.amazonaws.com", userIdentity=identity, vpcEndpointAccountId="222233334444",
                       sharedEventID="shared-1", addendum={"reason": "DELIVERY_DELAY", "originalEventID": "o-1"}))
    uid = doc["aws"]["cloudtrail"]["user_identity"]
    assert doc["user"]["id"] == "uid-1"  # onBehalfOf.userId: no principalId
    assert doc["user"]["email"] == "jane@example.org"  # the session name is an email address
    assert doc["related"]["user"] == ["jane@example.org", "jane", "uid-1"]
    assert uid["on_behalf_of"] == {"user_id": "uid-1", "identity_store_arn": "arn:aws:identitystore::111122223333:identitystore/d-1"}
    assert uid["credential_id"] == "cred-1" and uid["in_scope_of"] == {"issuer_type": "AWS::Lambda::Function", "source_arn": "arn:src"}
    assert uid["session_context"] == {"source_identity": "ops", "assumed_root": "true"}
    trail = doc["aws"]["cloudtrail"]
    assert trail["vpc_endpoint_account_id"] == "222233334444" and trail["shared_event_id"] == "shared-1"
    assert trail["addendum"] == {"reason": "DELIVERY_DELAY", "original_event_id": "o-1"}


def test_ecs_related_hosts_and_ips():
    record = api_call("RunInstances", "ec2.amazonaws.com", sourceIPAddress="ci.example.net",
                      requestParameters={"instancesSet": {"items": [{"imageId": "ami-1"}]}, "computerName": "build-01"},
                      responseElements={"instancesSet": {"items": [{"instanceId": "i-0aaaaaaaaaaaaaaa1"}, {"instanceId": "i-short"}]}},
                      serviceEventDetails={"sourceIpAddress": "198.51.100.9"},
                      resources=[{"ARN": "arn:aws:ec2:us-east-1:111122223333:instance/i-0bbbbbbbbbbbbbbb2"}],
                      tlsDetails={"tlsVersion": "tlsVersion", "cipherSuite": "c"})
    doc = ecs(record)
    assert doc["related"]["hosts"] == ["ci.example.net", "build-01", "i-0bbbbbbbbbbbbbbb2", "i-0aaaaaaaaaaaaaaa1"]
    assert doc["related"]["ip"] == ["198.51.100.9"]  # the service event's address; the source is a name
    assert "tls" not in doc  # tlsVersion "tlsVersion": the pipeline removes tlsDetails whole


@pytest.mark.parametrize("address, ip", [("203.0.113.7", True), ("010.1.2.3", False), ("10.01.2.3", False),
                                         ("0.0.0.0", True), ("2001:db8::5", True), ("ec2.amazonaws.com", False)])
def test_ecs_source_ip_as_the_convert_processor(address, ip):
    """aws 8.8.0 sets source.ip with ``convert`` to ip (Elasticsearch's InetAddresses: no
    leading zeros), no longer with grok's %{IP}."""
    doc = ecs(api_call("GetObject", "s3.amazonaws.com", sourceIPAddress=address))
    assert ("ip" in doc["source"]) is ip
    assert ("ip" in doc.get("related", {})) is ip


def test_normalize_bench_compares_two_trees():
    """``normalize_bench.py --compare TREE``: both trees measured, each in its own process (here
    the same tree twice, few records: the figures are the bench's business, not a test's)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(repo / "ops" / "bench" / "normalize_bench.py"), "--compare", str(repo),
                           "--records", "20", "--repeat", "1", "--rounds", "1"],
                          capture_output=True, text=True, timeout=120, check=True)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ECS + OCSF part per record, 1 rounds of best of 1")
    assert lines[1].split()[:3] == ["this", "tree", "derive_batch"] and lines[2].split()[0] == str(repo)
    assert "this tree / other" in lines[3]


def test_ecs_session_credential_from_console_is_renamed():
    """aws 8.8.0 renames sessionCredentialFromConsole to aws.cloudtrail.session_credential_from_console
    (Elastic's test-tls-details-json at 8149d6c9 expects it); an empty value is dropped first."""
    record = api_call("ListBuckets", "s3.amazonaws.com", sessionCredentialFromConsole="true")
    assert ecs(record)["aws"]["cloudtrail"]["session_credential_from_console"] == "true"
    record = api_call("ListBuckets", "s3.amazonaws.com", sessionCredentialFromConsole="")
    assert "session_credential_from_console" not in ecs(record)["aws"]["cloudtrail"]


def test_ecs_compare_honours_a_tests_retain_config():
    """ops/ecs_compare.py reads ``_conf.retain`` from a test's ``-config.yml``, as Elastic's
    pipeline tests set it (test-copy-object-json-minimal)."""
    import sys  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
    import ecs_compare  # noqa: PLC0415

    log = Path(__file__).resolve().parent / "data" / "ecs_expected" / "test-retain-minimal.log"
    assert ecs_compare.retain_of(log) == "minimal"
    assert ecs_compare.retain_of(log.with_name("test-insight.log")) == "all"


def test_written_out_leave_out_equals_the_general_one():
    """The written-out paths of the common case (every CARRIED value there and equal) give the
    general path's document, key order included, and leave the input untouched."""
    import sys  # noqa: PLC0415

    from pipeline.normalize import _LEFT_OUT, CARRIED, _leave_out_carried  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
    import normalize_snapshot  # noqa: PLC0415

    taken = 0
    for _, record, _ in normalize_snapshot.load(SNAPSHOT):
        record = canonical_keys(copy.deepcopy(record)) if isinstance(record, dict) else {}
        fields = _entry_fields(record)
        for name, build in (("ecs", lambda r: ecs_document(r, "none")), ("ocsf", lambda r: ocsf_event(r, False))):
            document = build(record)
            before = orjson.dumps(document)
            fast = _LEFT_OUT[name](document, fields)
            if fast is not None:
                taken += 1
                assert orjson.dumps(fast) == orjson.dumps(_leave_out_carried(document, CARRIED[name], fields))
            assert orjson.dumps(document) == before
    assert taken > 3000
