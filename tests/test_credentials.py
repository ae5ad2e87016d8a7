"""Credentials by auth.method, against real servers: the moto server (S3 and STS), a local
IMDSv2 server, and a moto server enforcing IAM for the minimal policy in ops/."""
from __future__ import annotations

import datetime
import json
import logging
import random

import boto3
import botocore.credentials
import pytest
from conftest import REPO, TEST_KEY_ID, TEST_SECRET, config_dict, source_dict, stream_events
from support.imds import IMDSServer
from support.moto_iam import ACCOUNT_ID, IamEnforcingMoto

from pipeline.config import parse_config
from pipeline.credentials import CredentialsUnavailable, make_session, refresh_margins
from pipeline.demo_data import make_log_file
from pipeline.discovery import discover
from pipeline.errors import ConfigError
from pipeline.ingest import ingest_object
from pipeline.redis_server import free_port
from pipeline.runtime import Runtime
from pipeline.s3 import make_client, make_sts_client

KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/03/c.json.gz"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/trail-reader"


@pytest.fixture(autouse=True)
def no_ambient_aws_credentials(monkeypatch, tmp_path):
    """Nothing from the machine's environment or ~/.aws may stand in for the credentials under test."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_DISABLED", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_EC2_METADATA_SERVICE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    # Nothing answers here: a test that needs an instance role starts its own IMDS.
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{free_port()}/")


@pytest.fixture
def imds(monkeypatch):
    server = IMDSServer().start()
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url)
    yield server
    server.stop()


@pytest.fixture
def object_key(s3, bucket):
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"credentials")
    return KEY


def signed_with(client) -> list[tuple[str, str | None]]:
    """(access key id, session token) of every request the client sends."""
    seen = []

    def record(request, **_):
        def header(name):
            value = request.headers.get(name)
            return value.decode() if isinstance(value, bytes) else value

        credential = header("Authorization").split("Credential=", 1)[1].split("/", 1)[0]
        seen.append((credential, header("X-Amz-Security-Token")))

    client.meta.events.register("before-send.s3", record)
    return seen


def fetch(client, bucket) -> bytes:
    return client.get_object(Bucket=bucket, Key=KEY)["Body"].read()


def fast_forward(credentials, to_before_expiry: datetime.timedelta) -> None:
    """Move the credentials' own clock to ``to_before_expiry`` before they expire (nothing else changes)."""
    shift = credentials._expiry_time - botocore.credentials._local_now() - to_before_expiry
    credentials._time_fetcher = lambda: botocore.credentials._local_now() + shift


def signing_credentials(client):
    return client._request_signer._credentials


# --- access_key ---------------------------------------------------------------------------------------


def test_access_key_secret_from_a_file(make_runtime, bucket, object_key, tmp_path):
    secret_file = tmp_path / "s3-secret"
    secret_file.write_text(f"  {TEST_SECRET}\n")
    runtime = make_runtime(bucket, auth={"method": "access_key", "access_key_id": TEST_KEY_ID,
                                         "secret_access_key_file": str(secret_file)})
    client = make_client(runtime.source("test-src"))
    seen = signed_with(client)
    assert fetch(client, bucket) == b"credentials"
    assert seen == [(TEST_KEY_ID, None)]
    assert signing_credentials(client).get_frozen_credentials().secret_key == TEST_SECRET  # stripped

    secret_file.write_text("\n")
    with pytest.raises(CredentialsUnavailable, match=r"secret_access_key_file '.*s3-secret' is empty"):
        make_client(runtime.source("test-src"))


def test_access_key_secret_rules(moto_endpoint, tmp_path, monkeypatch):
    def problems(auth):
        with pytest.raises(ConfigError) as info:
            parse_config(config_dict("redis://127.0.0.1:1/0", [source_dict("trail-bucket", moto_endpoint, auth=auth)]))
        return info.value.problems

    (tmp_path / "s").write_text("x")
    both = problems({"method": "access_key", "access_key_id": "AKIA", "secret_access_key": "x",
                     "secret_access_key_file": str(tmp_path / "s")})
    assert both == ["source 'test-src' field 'auth.secret_access_key': give only one of secret_access_key "
                    "and secret_access_key_file"]
    missing = problems({"method": "access_key", "access_key_id": "AKIA", "secret_access_key_file": "/no/such/file"})
    assert missing == ["source 'test-src' field 'auth.secret_access_key_file': is not a file"]
    monkeypatch.setenv("TP_TEST_S3_SECRET", "from-the-environment")
    config = parse_config(config_dict("redis://127.0.0.1:1/0", [source_dict(
        "trail-bucket", moto_endpoint,
        auth={"method": "access_key", "access_key_id": "AKIA", "secret_access_key": "${TP_TEST_S3_SECRET}"})]))
    assert config.sources[0].auth.secret_access_key.get_secret_value() == "from-the-environment"


# --- instance_role ------------------------------------------------------------------------------------


def test_instance_role_through_imdsv2_with_refresh(make_runtime, bucket, object_key, imds):
    runtime = make_runtime(bucket, auth={"method": "instance_role"})
    client = make_client(runtime.source("test-src"))
    seen = signed_with(client)
    assert fetch(client, bucket) == b"credentials"
    assert seen == [("ASIAIMDS000000000001", "imds-session-token-1")]
    assert imds.requests == [  # IMDSv2: a session token first, then the role, then its credentials
        ("PUT", "/latest/api/token"), ("GET", "/latest/meta-data/iam/security-credentials/"),
        ("GET", "/latest/meta-data/iam/security-credentials/trailpipe-reader")]

    credentials = signing_credentials(client)
    fast_forward(credentials, datetime.timedelta(minutes=5))  # inside botocore's 10-minute mandatory window
    assert fetch(client, bucket) == b"credentials"
    assert imds.credential_fetches == 2
    assert seen[-1] == ("ASIAIMDS000000000002", "imds-session-token-2")  # S3 goes on with the new keys
    assert imds.requests.count(("PUT", "/latest/api/token")) == 2

    credentials._time_fetcher = botocore.credentials._local_now  # back to real time: no more fetches
    assert fetch(client, bucket) == b"credentials" and imds.credential_fetches == 2


def test_instance_role_without_metadata_service_is_a_clear_error(make_runtime, bucket):
    runtime = make_runtime(bucket, auth={"method": "instance_role"})
    with pytest.raises(CredentialsUnavailable, match="source 'test-src': no EC2 instance role credentials"):
        make_client(runtime.source("test-src"))


# --- default_chain ------------------------------------------------------------------------------------


def test_default_chain_environment_then_instance_role(make_runtime, bucket, object_key, imds, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    runtime = make_runtime(bucket, auth={"method": "default_chain"})
    client = make_client(runtime.source("test-src"))
    seen = signed_with(client)
    assert fetch(client, bucket) == b"credentials"
    assert seen == [("AKIAFROMENVIRONMENT0", None)] and imds.credential_fetches == 0

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    client = make_client(runtime.source("test-src"))
    seen = signed_with(client)
    assert fetch(client, bucket) == b"credentials"
    assert seen == [("ASIAIMDS000000000001", "imds-session-token-1")]


# --- assume_role --------------------------------------------------------------------------------------


def assume_role_auth(moto_endpoint, base, **extra) -> dict:
    return {"method": "assume_role", "role_arn": ROLE_ARN, "external_id": "trailpipe-ext-42",
            "sts_endpoint_url": moto_endpoint, "base": base, **extra}


def test_assume_role_with_access_key_base_and_refresh(make_runtime, bucket, object_key, moto_endpoint, caplog):
    base = {"method": "access_key", "access_key_id": TEST_KEY_ID, "secret_access_key": TEST_SECRET}
    runtime = make_runtime(bucket, auth=assume_role_auth(moto_endpoint, base, duration_seconds=900))
    source = runtime.source("test-src")
    with caplog.at_level(logging.DEBUG):
        client = make_client(source)
        seen = signed_with(client)
        assert fetch(client, bucket) == b"credentials"
    first_key, token = seen[0]
    assert first_key.startswith("ASIA") and token  # temporary credentials of the role, not the base key
    # botocore's DEBUG logging prints the AssumeRole response and the signed headers: redacted.
    temporary = signing_credentials(client).get_frozen_credentials()
    assert "<SecretAccessKey>***</SecretAccessKey>" in caplog.text and "Sending http request" in caplog.text
    assert temporary.secret_key not in caplog.text and temporary.token not in caplog.text

    identity = make_session(source, lambda creds: make_sts_client(source, creds, True)).client(
        "sts", endpoint_url=moto_endpoint).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/trail-reader/trailpipe"

    credentials = signing_credentials(client)
    assert (credentials._advisory_refresh_timeout, credentials._mandatory_refresh_timeout) == refresh_margins(900) == (300, 150)
    assert fetch(client, bucket) == b"credentials" and seen[-1][0] == first_key  # still valid: no new AssumeRole
    fast_forward(credentials, datetime.timedelta(minutes=2))
    assert fetch(client, bucket) == b"credentials"
    assert seen[-1][0] != first_key and seen[-1][0].startswith("ASIA")  # assumed again before expiry


def test_assume_role_with_instance_role_base(make_runtime, bucket, object_key, moto_endpoint, imds):
    runtime = make_runtime(bucket, auth=assume_role_auth(moto_endpoint, {"method": "instance_role"},
                                                         session_name="tp-on-ec2"))
    source = runtime.source("test-src")
    client = make_client(source)
    seen = signed_with(client)
    assert fetch(client, bucket) == b"credentials"
    assert imds.credential_fetches == 1 and seen[0][0].startswith("ASIA") and not seen[0][0].startswith("ASIAIMDS")
    identity = make_session(source, lambda creds: make_sts_client(source, creds, True)).client(
        "sts", endpoint_url=moto_endpoint).get_caller_identity()
    assert identity["Arn"].endswith(":assumed-role/trail-reader/tp-on-ec2")


def test_assume_role_config_rules(moto_endpoint):
    with pytest.raises(ConfigError) as info:
        parse_config(config_dict("redis://127.0.0.1:1/0", [source_dict("trail-bucket", moto_endpoint, auth={
            "method": "assume_role", "role_arn": "trail-reader", "duration_seconds": 60,
            "base": {"method": "access_key", "access_key_id": "AKIA"}})]))
    problems = " | ".join(info.value.problems)
    assert "field 'auth.role_arn': is not an IAM role ARN such as arn:aws:iam::123456789012:role/NAME" in problems
    assert "duration_seconds': must be at least 900" in problems
    assert "base.secret_access_key': is required" in problems


# --- the minimal IAM policy, enforced --------------------------------------------------------------------


@pytest.fixture(scope="module")
def iam_moto(tmp_path_factory):
    server = IamEnforcingMoto(tmp_path_factory.mktemp("moto-iam") / "moto.log").start()
    yield server
    server.stop()


def policy_from_ops(name: str, **placeholders) -> str:
    text = (REPO / "ops" / name).read_text()
    for placeholder, value in placeholders.items():
        text = text.replace(placeholder, value)
    return text


def test_minimal_iam_policy_is_enough_and_get_object_is_needed(iam_moto, redis_server, redis_client, tmp_path):
    root = dict(endpoint_url=iam_moto.url, region_name="us-east-1",
                aws_access_key_id="AKIAROOTSETUP0000000", aws_secret_access_key="setup")
    s3, iam = boto3.client("s3", **root), boto3.client("iam", **root)
    bucket = "trail-iam-enforced"
    s3.create_bucket(Bucket=bucket)
    files = [make_log_file(random.Random(seed), "111122223333", "us-east-1",
                           datetime.datetime(2024, 6, 1, seed, tzinfo=datetime.UTC), 4) for seed in (1, 2)]
    for log_file in files:
        s3.put_object(Bucket=bucket, Key=log_file.key, Body=log_file.body)

    def user_with(name: str, policy_document: str) -> tuple[str, str]:
        arn = iam.create_policy(PolicyName=f"{name}-policy", PolicyDocument=policy_document)["Policy"]["Arn"]
        iam.create_user(UserName=name)
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    reader_policy = policy_from_ops("iam-policy.json", **{"CLOUDTRAIL-BUCKET": bucket})
    assert {s["Action"] for s in json.loads(reader_policy)["Statement"]} == {"s3:ListBucket", "s3:GetObject"}
    reader = user_with("trailpipe-reader", reader_policy)
    list_only = json.loads(reader_policy)
    list_only["Statement"] = [s for s in list_only["Statement"] if s["Action"] != "s3:GetObject"]
    lister = user_with("trailpipe-lister", json.dumps(list_only))
    # assume_role: a user allowed only sts:AssumeRole, into a role holding the S3 policy.
    role_arn = iam.create_role(RoleName="trailpipe-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:user/trailpipe-assumer"}}]}),
    )["Role"]["Arn"]
    role_policy = iam.create_policy(PolicyName="trailpipe-role-s3", PolicyDocument=reader_policy)["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="trailpipe-role", PolicyArn=role_policy)
    assumer = user_with("trailpipe-assumer", policy_from_ops(
        "iam-policy-assume-role.json", **{"ROLE-ACCOUNT-ID": ACCOUNT_ID, "TRAILPIPE-ROLE-NAME": "trailpipe-role"}))
    iam_moto.enforce()

    def runtime_for(identifier: str, auth: dict) -> Runtime:
        return Runtime(parse_config(config_dict(redis_server.url, [source_dict(
            bucket, iam_moto.url, identifier=identifier, auth=auth)])))

    def ingest_all(runtime: Runtime, identifier: str) -> list[str]:
        source = runtime.source(identifier)
        queued = []
        discover(source, runtime.state, runtime.s3(source), lambda sid, key: queued.append(key))
        return [ingest_object(source, key, runtime.state, runtime.s3(source)).outcome for key in queued]

    secret_file = tmp_path / "reader-secret"
    secret_file.write_text(reader[1] + "\n")
    reader_runtime = runtime_for("reader", {"method": "access_key", "access_key_id": reader[0],
                                            "secret_access_key_file": str(secret_file)})
    assert ingest_all(reader_runtime, "reader") == ["done", "done"]
    assert len([e for e in stream_events(redis_client) if e["source"] == b"reader"]) == 8
    # The policy is minimal: the same user may not write.
    with pytest.raises(Exception, match="AccessDenied"):
        reader_runtime.s3(reader_runtime.source("reader")).put_object(Bucket=bucket, Key="x", Body=b"x")
    # A wrong secret is refused too: moto checks the signature.
    wrong = runtime_for("wrong", {"method": "access_key", "access_key_id": reader[0], "secret_access_key": "nope"})
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        wrong.s3(wrong.source("wrong")).list_objects_v2(Bucket=bucket)

    lister_runtime = runtime_for("lister", {"method": "access_key", "access_key_id": lister[0],
                                            "secret_access_key": lister[1]})
    assert ingest_all(lister_runtime, "lister") == ["failed", "failed"]
    dead = [e for e in stream_events(redis_client, "trailpipe:deadletter") if e["source"] == b"lister"]
    assert sorted(e["object"].decode() for e in dead) == sorted(f.key for f in files)
    assert {e["error_class"] for e in dead} == {b"AccessDenied"}
    assert all(b"S3 GetObject failed: AccessDenied: Access Denied" in e["message"] for e in dead), dead

    assumer_runtime = runtime_for("assumer", {
        "method": "assume_role", "role_arn": role_arn, "sts_endpoint_url": iam_moto.url,
        "base": {"method": "access_key", "access_key_id": assumer[0], "secret_access_key": assumer[1]}})
    assert ingest_all(assumer_runtime, "assumer") == ["done", "done"]
    # Without the role, the assumer's own key reads nothing.
    direct = runtime_for("direct", {"method": "access_key", "access_key_id": assumer[0],
                                    "secret_access_key": assumer[1]})
    with pytest.raises(Exception, match="AccessDenied"):
        direct.s3(direct.source("direct")).list_objects_v2(Bucket=bucket)
    for runtime in (reader_runtime, wrong, lister_runtime, assumer_runtime, direct):
        runtime.redis.close()
