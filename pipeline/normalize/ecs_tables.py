"""Data for the ECS output: what Elastic's ``aws.cloudtrail`` ingest pipeline does.

Version followed: ``ELASTIC_VERSION`` below, the newest release of the ``aws`` package
(``packages/aws/changelog.yml``: 8.8.0, elastic/integrations pull 21170); its CloudTrail
pipeline (``packages/aws/data_stream/cloudtrail/elasticsearch/ingest_pipeline/default.yml``)
read at ``ELASTIC_COMMIT``, whose changelog's top entry, 9.0.0, links the placeholder
``pull/1`` (not released): its two changes are left out (``user.id`` set to the IAM ARN with
``aws.cloudtrail.user_identity.principal_id``; ``host.target.id``, out of scope).  Also read:
3ab428122032078a49f7d46b08c4586907546c2c (a branch: 9.0.0's ``host.target.id`` plus an
AWSService-actor script, released in neither) and the 2.2x pipeline followed before
(bf3be6b2ca0eb305677128e9db73c75536000433).  The processors are replayed in order by
``pipeline.normalize.ecs``; the next update is a diff of default.yml between
``ELASTIC_COMMIT`` and the new commit.  Elastic's pipeline tests that expect these rules were
read at 8149d6c9dbd768b663bb43d7acdd6b2880337174 (that branch keeps 8.8.0's ``user.id``); the
figures, and the disagreements with the 9.0.0 tests of ``ELASTIC_COMMIT``, are in
``tests/data/ecs_expected/README.md``.
"""
from __future__ import annotations

ELASTIC_PACKAGE = "aws"
ELASTIC_VERSION = "8.8.0"
ELASTIC_COMMIT = "7d5030ab6c5a43e9fae5d59681c727cc15a5d703"  # 9.0.0 (pull/1) changes left out
ELASTIC_PIPELINE = "packages/aws/data_stream/cloudtrail/elasticsearch/ingest_pipeline/default.yml"

ECS_VERSION = "8.11.0"

# The userIdentity renames beyond type/userName/principalId/arn/accountId/accessKeyId and the
# sessionContext ones written out in ``ecs``: (path under userIdentity, path under
# aws.cloudtrail.user_identity), in pipeline order.
IDENTITY_RENAMES = (
    (("invokedBy",), ("invoked_by",)),
    (("invokedByDelegate", "accountId"), ("invoked_by_delegate", "account_id")),
    (("credentialId",), ("credential_id",)),
    (("identityProvider",), ("identity_provider",)),
    (("inScopeOf", "issuerType"), ("in_scope_of", "issuer_type")),
    (("inScopeOf", "credentialsIssuedTo"), ("in_scope_of", "credentials_issued_to")),
    (("inScopeOf", "sourceArn"), ("in_scope_of", "source_arn")),
    (("inScopeOf", "sourceAccount"), ("in_scope_of", "source_account")),
)
SESSION_CONTEXT_RENAMES = (
    (("ec2RoleDelivery",), ("ec2_role_delivery",)),
    (("sourceIdentity",), ("source_identity",)),
    (("webIdFederationData", "federatedProvider"), ("web_id_federation_data", "federated_provider")),
    (("webIdFederationData", "attributes"), ("web_id_federation_data", "attributes")),
    (("assumedRoot",), ("assumed_root",)),
    (("signInSessionArn",), ("sign_in_session_arn",)),
)
# The identity types whose sessionIssuer.userName replaces user.name, and whose ARN's last
# part (the session name) goes to related.user.
ROLE_SESSION_TYPES = frozenset(("AssumedRole", "FederatedUser"))
SESSION_NAME_TYPES = frozenset(("AssumedRole", "FederatedUser", "IdentityCenterUser"))

# The payload script keeps objects twice: as Java toString() text, and (when that text is
# shorter than Lucene's 32766 term limit) as the object under aws.cloudtrail.flattened.
FLATTENED_MAX_CHARS = 32766

# ``retain: minimal``: the flattened fields Elastic's detection rules require (the pipeline's
# required_flattened_fields), as (payload object, key), and what is kept whole.
MINIMAL_FLATTENED = (
    ("additional_eventdata", "SSEApplied"),
    ("request_parameters", "cidrIp"),
    ("request_parameters", "dryRun"),
    ("request_parameters", "fromPort"),
    ("request_parameters", "includeDeprecated"),
    ("request_parameters", "policyArn"),
    ("request_parameters", "serialNumber"),
    ("request_parameters", "withDecryption"),
    ("request_parameters", "x-amz-server-side-encryption-customer-algorithm"),
)
MINIMAL_PRESERVED = ("digest", "insight_details")

# Top-level renames after the payload script, into aws.cloudtrail (eventID -> event.id and
# recipientAccountId are written out in ``ecs``).
ADDENDUM_RENAMES = (
    ("reason", "reason"),
    ("updatedFields", "updated_fields"),
    ("originalRequestID", "original_request_id"),
    ("originalEventID", "original_event_id"),
)

RELATED_USER_FROM_REQUEST = ("userName", "newUserName")

# The "Add ECS categorization" script's params: eventName -> (event.category, event.type).
# Actions not listed keep event.type ["info"] and no event.category.
CATEGORIZATION: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "AddUserToGroup": (("iam",), ("group", "change")),
    "AssumeRole": (("authentication",), ("info",)),
    "AttachGroupPolicy": (("iam",), ("group", "change")),
    "AttachUserPolicy": (("iam",), ("user", "change")),
    "ChangePassword": (("iam",), ("user", "change")),
    "ConsoleLogin": (("authentication",), ("info",)),
    "CreateAccessKey": (("iam",), ("user", "change")),
    "CreateBucket": (("file",), ("creation",)),
    "CreateGroup": (("iam",), ("group", "creation")),
    "CreateKeyPair": (("iam",), ("admin", "creation")),
    "CreateUser": (("iam",), ("user", "creation")),
    "CreateVirtualMFADevice": (("iam",), ("user", "change")),
    "DeactivateMFADevice": (("iam",), ("user", "change")),
    "DeleteAccessKey": (("iam",), ("user", "change")),
    "DeleteBucket": (("file",), ("deletion",)),
    "DeleteGroup": (("iam",), ("group", "deletion")),
    "DeleteGroupPolicy": (("iam",), ("group", "change")),
    "DeleteSSHPublicKey": (("iam",), ("user", "change")),
    "DeleteUser": (("iam",), ("user", "deletion")),
    "DeleteUserPermissionsBoundary": (("iam",), ("user", "change")),
    "DeleteUserPolicy": (("iam",), ("user", "change")),
    "DeleteVirtualMFADevice": (("iam",), ("user", "change")),
    "DetachGroupPolicy": (("iam",), ("group", "change")),
    "DetachUserPolicy": (("iam",), ("user", "change")),
    "EnableMFADevice": (("iam",), ("user", "change")),
    "GetGroup": (("iam",), ("group", "info")),
    "GetGroupPolicy": (("iam",), ("group", "info")),
    "GetUser": (("iam",), ("user", "info")),
    "GetUserPolicy": (("iam",), ("user", "info")),
    "ListAttachedGroupPolicies": (("iam",), ("group", "info")),
    "ListAttachedUserPolicies": (("iam",), ("user", "info")),
    "ListGroupPolicies": (("iam",), ("group", "info")),
    "ListGroups": (("iam",), ("group", "info")),
    "ListGroupsForUser": (("iam",), ("user", "info")),
    "ListUserPolicies": (("iam",), ("user", "info")),
    "ListUsers": (("iam",), ("user", "info")),
    "ListUserTags": (("iam",), ("user", "info")),
    "PutGroupPolicy": (("iam",), ("group", "change")),
    "PutUserPermissionsBoundary": (("iam",), ("user", "change")),
    "PutUserPolicy": (("iam",), ("user", "change")),
    "RemoveUserFromGroup": (("iam",), ("group", "change")),
    "SetDefaultPolicyVersion": (("iam",), ("admin", "change")),
    "SetSecurityTokenServicePreferences": (("iam",), ("admin", "change")),
    "TagUser": (("iam",), ("user", "change")),
    "UntagUser": (("iam",), ("user", "change")),
    "UpdateAccessKey": (("iam",), ("user", "change")),
    "UpdateAccountPasswordPolicy": (("iam",), ("admin", "change")),
    "UpdateGroup": (("iam",), ("group", "change")),
    "UpdateLoginProfile": (("iam",), ("user", "change")),
    "UpdateRole": (("iam",), ("admin", "change")),
    "UpdateSSHPublicKey": (("iam",), ("user", "change")),
    "UpdateUser": (("iam",), ("user", "change")),
    # added by aws 7.x-8.x (the "longer table"), in the pipeline's order
    "GetCallerIdentity": (("authentication",), ("info",)),
    "DescribeInstances": (("host",), ("info",)),
    "DescribeSecurityGroups": (("network",), ("info",)),
    "ListBuckets": (("file",), ("info",)),
    "DescribeNetworkInterfaces": (("network",), ("info",)),
    "DescribeRegions": (("api",), ("info",)),
    "ListRoles": (("iam",), ("info",)),
    "DescribeVpcs": (("network",), ("info",)),
    "DescribeNetworkAcls": (("network",), ("info",)),
    "DescribeLoadBalancers": (("network",), ("info",)),
    "DescribeVolumes": (("host",), ("info",)),
    "DescribeTrails": (("configuration",), ("info",)),
    "ListFunctions": (("package",), ("info",)),
    "ListTables": (("database",), ("info",)),
    "ListInstanceAssociations": (("host",), ("info",)),
    "DescribeDBInstances": (("database",), ("info",)),
    "AuthorizeSecurityGroupIngress": (("network",), ("access",)),
    "CreateTopic": (("configuration",), ("creation",)),
    "Subscribe": (("configuration",), ("change",)),
    "Publish": (("api",), ("info",)),
    "SendCommand": (("process",), ("start",)),
    "GetPolicy": (("iam",), ("info",)),
    "CreatePolicy": (("iam",), ("creation",)),
    "ListAttachedRolePolicies": (("iam",), ("info",)),
    "AttachRolePolicy": (("iam",), ("change",)),
    "Converse": (("api",), ("info",)),
    "CreateDocument": (("file",), ("creation",)),
    "StartSession": (("session",), ("start",)),
    "CreateControlChannel": (("session",), ("start",)),
    "OpenControlChannel": (("session",), ("start",)),
    "CreateDataChannel": (("session",), ("start",)),
    "OpenDataChannel": (("session",), ("start",)),
    "TerminateSession": (("session",), ("end",)),
    "ListObjects": (("file",), ("info",)),
    "HeadObject": (("file",), ("info",)),
    "GetObject": (("file",), ("info",)),
    "PutObject": (("file",), ("change",)),
    "DeleteTrail": (("configuration",), ("deletion",)),
    "DeleteObject": (("file",), ("deletion",)),
}

# Digest-file fields (the same pipeline also ingests digest files), in pipeline order:
# (record key, aws.cloudtrail.digest key, kind) with kind "date" for the date processors.
DIGEST_FIELDS = (
    ("previousDigestS3Object", "previous_s3_object", ""),
    ("previousDigestSignature", "previous_signature", ""),
    ("previousDigestHashValue", "previous_hash_value", ""),
    ("logFiles", "log_files", ""),
    ("digestStartTime", "start_time", "date"),
    ("digestEndTime", "end_time", "date"),
    ("digestS3Bucket", "s3_bucket", ""),
    ("newestEventTime", "newest_event_time", "date"),
    ("oldestEventTime", "oldest_event_time", "date"),
    ("previousDigestS3Bucket", "previous_s3_bucket", ""),
    ("previousDigestHashAlgorithm", "previous_hash_algorithm", ""),
    ("digestPublicKeyFingerprint", "public_key_fingerprint", ""),
    ("publicKeyFingerprint", "public_key_fingerprint", ""),  # only when the former is absent
    ("digestSignatureAlgorithm", "signature_algorithm", ""),
)

# The record keys the digest processors read (event records seldom have any).
DIGEST_KEYS = frozenset([src for src, _, _ in DIGEST_FIELDS] + ["awsAccountId", "digestS3Object"])

# The instance-id script of related.hosts: keys read in requestParameters/responseElements.
HOST_SCALAR_KEYS = ("instanceId", "target", "resourceId")
