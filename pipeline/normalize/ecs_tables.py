"""Data for the ECS output: what Elastic's ``aws.cloudtrail`` ingest pipeline does.

Version followed: elastic/integrations, packages/aws/data_stream/cloudtrail/elasticsearch/
ingest_pipeline/default.yml as stored at commits 0046748f8cfe9a89cf2f8f7a55be5528ad4b3695
(aws package 2.25.0 preview: adds only the ``entity`` sub-pipeline, not reproduced) and
bf3be6b2ca0eb305677128e9db73c75536000433 (2.2x): the same processors, replayed in order by
``pipeline.normalize.ecs``; paths are relative to the CloudTrail record (the pipeline's
``json`` object) or to the output document.

Newer than those (issue 13), read from Elastic's published pipeline test expectations
because the newer default.yml was not available: ``user.email`` of an email-shaped session
or user name, ``related.user`` with the role session name, ``user.id``, ``user.name`` and a
session email's local part (test-assume-role-email-session, test-converse,
test-copy-object; test-create-control-channel, at another commit, has only ``user.name``),
and the Session Manager categorization (test-create-control-channel:
``CreateControlChannel`` -> session/start; StartSession, ResumeSession, CreateDataChannel,
TerminateSession inferred).  The expectation files come from different commits and disagree
in places (orders of ``related.user``, which calls get ``event.category``), so these rules
are the majority reading, not Elastic's processors.
Not followed yet (no source read): the ``api``/``file`` categories (test-converse has
``api`` and no ``event.type`` for Bedrock Converse; test-copy-object has no category for
S3 CopyObject), the empty ``event.type`` without a verb, ``cloud.provider``/``cloud.service.name``,
``related.ip``, ``service.name`` of AWSService callers.
"""
from __future__ import annotations

ECS_VERSION = "8.11.0"

# Elasticsearch ``rename`` processors (ignore_failure: a missing source or an already
# present target leaves the document unchanged), in pipeline order, up to the
# user-agent processor.  ``user.name`` is renamed twice: the sessionIssuer's userName only
# lands when userIdentity.userName was absent.
RENAMES_IDENTITY = (
    ("eventVersion", "aws.cloudtrail.event_version"),
    ("userIdentity.type", "aws.cloudtrail.user_identity.type"),
    # (related.user gets userIdentity.userName here)
    ("userIdentity.userName", "user.name"),
    ("userIdentity.principalId", "user.id"),
    ("userIdentity.arn", "aws.cloudtrail.user_identity.arn"),
    ("userIdentity.accountId", "cloud.account.id"),
    ("userIdentity.accessKeyId", "aws.cloudtrail.user_identity.access_key_id"),
    ("userIdentity.sessionContext.attributes.mfaAuthenticated",
     "aws.cloudtrail.user_identity.session_context.mfa_authenticated"),
    # (date: sessionContext.attributes.creationDate -> ...session_context.creation_date)
    ("userIdentity.sessionContext.sessionIssuer.type",
     "aws.cloudtrail.user_identity.session_context.session_issuer.type"),
    ("userIdentity.sessionContext.sessionIssuer.userName", "user.name"),
    ("userIdentity.sessionContext.sessionIssuer.principalId",
     "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id"),
    ("userIdentity.sessionContext.sessionIssuer.arn",
     "aws.cloudtrail.user_identity.session_context.session_issuer.arn"),
    ("userIdentity.sessionContext.sessionIssuer.accountId",
     "aws.cloudtrail.user_identity.session_context.session_issuer.account_id"),
    ("userIdentity.invokedBy", "aws.cloudtrail.user_identity.invoked_by"),
    ("eventSource", "event.provider"),
)
# (then: event.action = '{{eventName}}', eventCategory rename, cloud.region copy)
RENAME_EVENT_CATEGORY = ("eventCategory", "aws.cloudtrail.event_category")
RENAME_SOURCE = ("sourceIPAddress", "source.address")
RENAMES_ERROR = (
    ("errorCode", "aws.cloudtrail.error_code"),
    ("errorMessage", "aws.cloudtrail.error_message"),
)

# The script that keeps objects twice: as Java toString() text, and (when that text is
# shorter than Lucene's 32766 term limit) as the object under aws.cloudtrail.flattened.
FLATTENED = (
    ("requestParameters", "request_parameters"),
    ("responseElements", "response_elements"),
    ("additionalEventData", "additional_eventdata"),
    ("serviceEventDetails", "service_event_details"),
)
FLATTENED_MAX_CHARS = 32766

RENAMES_EVENT = (
    ("requestID", "aws.cloudtrail.request_id"),
    ("eventID", "event.id"),
    ("eventType", "aws.cloudtrail.event_type"),
    ("apiVersion", "aws.cloudtrail.api_version"),
    ("managementEvent", "aws.cloudtrail.management_event"),
    ("readOnly", "aws.cloudtrail.read_only"),
)
# (then: the resources de-duplication script and rename to aws.cloudtrail.resources)
RENAMES_ACCOUNT = (
    ("recipientAccountId", "aws.cloudtrail.recipient_account_id"),
    # sic: CloudTrail writes "sharedEventID", so Elastic never fills shared_event_id from
    # real records; reproduced as is (likewise "publicKeyFingerprint" below, which digest
    # files call "digestPublicKeyFingerprint").
    ("sharedEventId", "aws.cloudtrail.shared_event_id"),
    ("vpcEndpointId", "aws.cloudtrail.vpc_endpoint_id"),
)

RELATED_USER_FROM_REQUEST = ("userName", "newUserName")

# ConsoleLogin additionalEventData -> aws.cloudtrail.console_login.additional_eventdata.*
# ("No" -> false, anything else -> true for the flags).
CONSOLE_LOGIN_FLAGS = (("MobileVersion", "mobile_version"), ("MFAUsed", "mfa_used"))
CONSOLE_LOGIN_COPY = (("LoginTo", "login_to"),)

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
    # Session Manager channels (issue 13; Elastic's CreateControlChannel test expects
    # session/start; the other names are inferred from it, see docs in pipeline/normalize)
    "StartSession": (("session",), ("start",)),
    "ResumeSession": (("session",), ("start",)),
    "CreateControlChannel": (("session",), ("start",)),
    "CreateDataChannel": (("session",), ("start",)),
    "TerminateSession": (("session",), ("end",)),
}

# Digest-file fields (the same pipeline also ingests digest files).
RENAMES_DIGEST = (
    ("awsAccountId", "cloud.account.id"),
    ("digestS3Object", "file.path"),
)
DIGEST_DATES = (
    ("digestStartTime", "aws.cloudtrail.digest.start_time"),
    ("digestEndTime", "@timestamp"),
    ("digestEndTime", "aws.cloudtrail.digest.end_time"),
)
RENAMES_DIGEST_2 = (("digestS3Bucket", "aws.cloudtrail.digest.s3_bucket"),)
DIGEST_DATES_2 = (
    ("newestEventTime", "aws.cloudtrail.digest.newest_event_time"),
    ("oldestEventTime", "aws.cloudtrail.digest.oldest_event_time"),
)
RENAMES_DIGEST_3 = (
    ("previousDigestS3Bucket", "aws.cloudtrail.digest.previous_s3_bucket"),
    ("previousDigestHashAlgorithm", "aws.cloudtrail.digest.previous_hash_algorithm"),
    ("publicKeyFingerprint", "aws.cloudtrail.digest.public_key_fingerprint"),
    ("digestSignatureAlgorithm", "aws.cloudtrail.digest.signature_algorithm"),
    ("insightDetails", "aws.cloudtrail.insight_details"),
)

# The record keys the digest processors read (event records seldom have any).
DIGEST_KEYS = frozenset(
    [src for src, _ in RENAMES_DIGEST + RENAMES_DIGEST_2 + RENAMES_DIGEST_3 + DIGEST_DATES + DIGEST_DATES_2]
    + ["previousDigestSignature", "logFiles"]
)

# ``set`` processors with mustache values (ignore_empty_value), from the flattened objects.
TEMPLATE_SETS = (
    ("group.id", "aws.cloudtrail.flattened.response_elements.group.groupId"),
    ("user.target.id", "aws.cloudtrail.flattened.response_elements.user.userId"),
    ("user.changes.name", "aws.cloudtrail.flattened.request_parameters.newUserName"),
    ("group.name", "aws.cloudtrail.flattened.request_parameters.groupName"),
    ("user.target.name", "aws.cloudtrail.flattened.request_parameters.userName"),
)
LATE_MOVES = (
    ("aws.cloudtrail.digest", "aws.cloudtrail.flattened.digest"),
    ("aws.cloudtrail.insight_details", "aws.cloudtrail.flattened.insight_details"),
)

# tlsDetails (dissect "%{tls.version_protocol}v%{tls.version}", then lowercase the protocol)
TLS_RENAMES = (
    ("tlsDetails.cipherSuite", "tls.cipher"),
    ("tlsDetails.clientProvidedHostHeader", "tls.client.server_name"),
)
