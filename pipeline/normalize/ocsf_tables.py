"""Data for the OCSF 1.1.0 output (``pipeline.normalize.ocsf``).

Classes: Authentication (3002) for sign-in events (``signin.amazonaws.com``,
ConsoleLogin) and role assumption (``AssumeRole*``, ``AssumeRoot``); Account Change
(3001) for IAM changes to a user or role (``ACCOUNT_CHANGE_ACTIVITIES``); API Activity
(6003) for everything else.  Field choices follow the OCSF project's CloudTrail mapping
examples (ocsf/examples, mappings/markdown/AWS/v1.1.0/CloudTrail), which Amazon Security
Lake also follows: ``actor.user.uid`` is the ARN, ``uid_alt`` the principal id.
"""
from __future__ import annotations

OCSF_VERSION = "1.1.0"
PRODUCT = {"name": "CloudTrail", "vendor_name": "AWS"}
PROFILES = ("cloud",)

AUTHENTICATION = 3002
ACCOUNT_CHANGE = 3001
API_ACTIVITY = 6003

# class_uid -> (class_name, category_uid, category_name)
CLASSES: dict[int, tuple[str, int, str]] = {
    ACCOUNT_CHANGE: ("Account Change", 3, "Identity & Access Management"),
    AUTHENTICATION: ("Authentication", 3, "Identity & Access Management"),
    API_ACTIVITY: ("API Activity", 6, "Application Activity"),
}

# class_uid -> activity_id -> activity_name (99 "Other" is replaced by the eventName)
ACTIVITY_NAMES: dict[int, dict[int, str]] = {
    API_ACTIVITY: {0: "Unknown", 1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"},
    ACCOUNT_CHANGE: {
        0: "Unknown", 1: "Create", 2: "Enable", 3: "Password Change", 4: "Password Reset",
        5: "Disable", 6: "Delete", 7: "Attach Policy", 8: "Detach Policy", 9: "Lock",
        10: "MFA Factor Enable", 11: "MFA Factor Disable", 99: "Other",
    },
    AUTHENTICATION: {
        0: "Unknown", 1: "Logon", 2: "Logoff", 3: "Authentication Ticket",
        4: "Service Ticket Request", 5: "Service Ticket Renew", 99: "Other",
    },
}

# API Activity: the eventName's first CamelCase word -> activity_id (else 99 Other).
# A leading "Batch" is skipped ("BatchGetSecretValue" reads).
API_VERBS: dict[str, int] = {
    **dict.fromkeys(("Create", "Run", "Generate"), 1),
    **dict.fromkeys(("Get", "List", "Describe", "Search", "Lookup"), 2),
    **dict.fromkeys((
        "Update", "Put", "Modify", "Add", "Remove", "Start", "Stop", "Attach", "Detach",
        "Tag", "Untag", "Enable", "Disable",
    ), 3),
    **dict.fromkeys(("Delete", "Terminate"), 4),
}

# Authentication: which events, and their activity.  Every signin.amazonaws.com event is
# Authentication; those not listed get 99 Other.
SIGNIN_SOURCE = "signin.amazonaws.com"
AUTH_ACTIVITIES: dict[str, int] = {
    "ConsoleLogin": 1,  # Logon
    "SwitchRole": 1,
    "RenewRole": 1,
    "ExitRole": 2,  # Logoff
    "AssumeRole": 1,  # a new (role) session is requested
    "AssumeRoleWithSAML": 1,
    "AssumeRoleWithWebIdentity": 1,
    "AssumeRoot": 1,
}
AUTH_PREFIX = "AssumeRole"  # AssumeRole* not listed above are Authentication too (Logon)
# eventName -> (auth_protocol_id, auth_protocol)
AUTH_PROTOCOLS: dict[str, tuple[int, str]] = {
    "AssumeRoleWithSAML": (5, "SAML"),
    "AssumeRoleWithWebIdentity": (4, "OpenID"),
}

# Account Change (IAM only): eventName -> activity_id, or (requestParameters key,
# {value: activity_id}, default) when the request decides.  Changes not bound to a user or
# role (managed-policy versions, virtual MFA devices, ...) stay API Activity: Account
# Change requires the target ``user``.
IAM_SOURCE = "iam.amazonaws.com"
ACCOUNT_CHANGE_ACTIVITIES: dict[str, int | tuple[str, dict[str, int], int]] = {
    "CreateUser": 1,
    "CreateRole": 1,
    "CreateServiceLinkedRole": 1,
    "DeleteUser": 6,
    "DeleteRole": 6,
    "DeleteServiceLinkedRole": 6,
    "CreateLoginProfile": 2,  # console access enabled (with a password)
    "DeleteLoginProfile": 5,  # console access disabled
    "ChangePassword": 3,  # the user changes their own password
    "UpdateLoginProfile": 4,  # an administrator sets another user's password
    "UpdateAccessKey": ("status", {"Active": 2, "Inactive": 5}, 99),
    "CreateAccessKey": 99,
    "DeleteAccessKey": 99,
    "UpdateUser": 99,
    "UpdateRole": 99,
    "UpdateRoleDescription": 99,
    "UpdateAssumeRolePolicy": 99,
    "TagUser": 99,
    "UntagUser": 99,
    "TagRole": 99,
    "UntagRole": 99,
    "AddUserToGroup": 99,
    "RemoveUserFromGroup": 99,
    "AttachUserPolicy": 7,
    "AttachRolePolicy": 7,
    "PutUserPolicy": 7,
    "PutRolePolicy": 7,
    "PutUserPermissionsBoundary": 7,
    "PutRolePermissionsBoundary": 7,
    "DetachUserPolicy": 8,
    "DetachRolePolicy": 8,
    "DeleteUserPolicy": 8,
    "DeleteRolePolicy": 8,
    "DeleteUserPermissionsBoundary": 8,
    "DeleteRolePermissionsBoundary": 8,
    "EnableMFADevice": 10,
    "DeactivateMFADevice": 11,
}

# userIdentity.type -> OCSF user.type_id (0 Unknown, 1 User, 2 Admin, 3 System, 99 Other)
USER_TYPE_IDS: dict[str, int] = {
    "IAMUser": 1,
    "IdentityCenterUser": 1,
    "FederatedUser": 1,
    "SAMLUser": 1,
    "WebIdentityUser": 1,
    "Directory": 1,
    "Root": 2,
    "AWSService": 3,
    "AssumedRole": 99,
    "Role": 99,
    "AWSAccount": 99,
    "Unknown": 0,
}

STATUS_SUCCESS = (1, "Success")
STATUS_FAILURE = (2, "Failure")
SEVERITY = (1, "Informational")

# What the mapping consumes; the rest of the record goes to ``unmapped`` (same names).
MAPPED_TOP_LEVEL = frozenset({
    "eventVersion", "eventTime", "eventSource", "eventName", "awsRegion", "sourceIPAddress",
    "userAgent", "errorCode", "errorMessage", "requestParameters", "responseElements",
    "requestID", "eventID", "eventType", "apiVersion", "recipientAccountId", "vpcEndpointId",
    "eventCategory", "resources",
})
MAPPED_USER_IDENTITY = (
    "type", "principalId", "arn", "accountId", "accessKeyId", "userName", "invokedBy",
    "identityProvider",
    "sessionContext.attributes.creationDate",
    "sessionContext.attributes.mfaAuthenticated",
    "sessionContext.sessionIssuer.arn",
    "sessionContext.sessionIssuer.userName",
    "sessionContext.webIdFederationData.federatedProvider",
)
# additionalEventData keys an Authentication event consumes
MAPPED_AUTH_EXTRA = ("MFAUsed", "LoginTo")
