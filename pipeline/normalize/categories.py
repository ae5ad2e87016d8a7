"""Data: CloudTrail events -> QRadar-style low-level event categories.

Names are QRadar low-level category names (Authentication 3000 / Access 4000 / Audit).
``pipeline.normalize.category`` applies the tables in this order:

1. ``OUTCOME_CATEGORIES``: sign-in and credential events, success or failure;
2. ``ACCESS_DENIED_ERRORS``: a call refused for lack of permission -> ``ACCESS_DENIED``;
3. ``EVENT_CATEGORIES``: exact eventName (IAM account, group, credential and policy changes);
4. ``PATTERN_CATEGORIES``: eventName regexes, first match wins (policy changes of any service);
5. read-only calls (``readOnly`` true, or a ``READ_VERBS`` verb) -> ``READ_ACTIVITY``;
6. ``DEFAULT``.
"""
from __future__ import annotations

DEFAULT = "General Audit Event"
READ_ACTIVITY = "Read Activity"
ACCESS_DENIED = "Access Denied"

LOGIN_SUCCESS = "User Login Success"
LOGIN_FAILURE = "User Login Failure"
AUTH_SERVER_SUCCESS = "Auth Server Login Succeeded"
AUTH_SERVER_FAILURE = "Auth Server Login Failed"

USER_ADDED = "User Account Added"
USER_CHANGED = "User Account Changed"
USER_REMOVED = "User Account Removed"
GROUP_ADDED = "Group Added"
GROUP_CHANGED = "Group Changed"
GROUP_REMOVED = "Group Removed"
GROUP_MEMBER_ADDED = "Group Member Added"
GROUP_MEMBER_REMOVED = "Group Member Removed"
PASSWORD_CHANGE = "Password Change"
POLICY_CHANGE = "Policy Change"

# eventName -> (category on success, category on failure)
OUTCOME_CATEGORIES: dict[str, tuple[str, str]] = {
    "ConsoleLogin": (LOGIN_SUCCESS, LOGIN_FAILURE),
    "AssumeRole": (AUTH_SERVER_SUCCESS, AUTH_SERVER_FAILURE),
    "AssumeRoleWithSAML": (AUTH_SERVER_SUCCESS, AUTH_SERVER_FAILURE),
    "AssumeRoleWithWebIdentity": (AUTH_SERVER_SUCCESS, AUTH_SERVER_FAILURE),
    "AssumeRoot": (AUTH_SERVER_SUCCESS, AUTH_SERVER_FAILURE),
    "GetSessionToken": (AUTH_SERVER_SUCCESS, AUTH_SERVER_FAILURE),
    "GetFederationToken": (AUTH_SERVER_SUCCESS, AUTH_SERVER_FAILURE),
}

ACCESS_DENIED_ERRORS = frozenset({
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "Client.UnauthorizedOperation",
    "UnauthorizedAccess",
    "UnauthorizedException",
    "AuthorizationError",
    "AuthorizationErrorException",
    "Forbidden",
    "ForbiddenException",
})

EVENT_CATEGORIES: dict[str, str] = {
    # users and roles
    "CreateUser": USER_ADDED,
    "CreateRole": USER_ADDED,
    "CreateServiceLinkedRole": USER_ADDED,
    "DeleteUser": USER_REMOVED,
    "DeleteRole": USER_REMOVED,
    "DeleteServiceLinkedRole": USER_REMOVED,
    "UpdateUser": USER_CHANGED,
    "UpdateRole": USER_CHANGED,
    "UpdateRoleDescription": USER_CHANGED,
    "TagUser": USER_CHANGED,
    "UntagUser": USER_CHANGED,
    "TagRole": USER_CHANGED,
    "UntagRole": USER_CHANGED,
    # credentials of a user
    "CreateAccessKey": USER_CHANGED,
    "UpdateAccessKey": USER_CHANGED,
    "DeleteAccessKey": USER_CHANGED,
    "UploadSSHPublicKey": USER_CHANGED,
    "UpdateSSHPublicKey": USER_CHANGED,
    "DeleteSSHPublicKey": USER_CHANGED,
    "UploadSigningCertificate": USER_CHANGED,
    "UpdateSigningCertificate": USER_CHANGED,
    "DeleteSigningCertificate": USER_CHANGED,
    "CreateServiceSpecificCredential": USER_CHANGED,
    "ResetServiceSpecificCredential": USER_CHANGED,
    "UpdateServiceSpecificCredential": USER_CHANGED,
    "DeleteServiceSpecificCredential": USER_CHANGED,
    "EnableMFADevice": USER_CHANGED,
    "DeactivateMFADevice": USER_CHANGED,
    "ResyncMFADevice": USER_CHANGED,
    "CreateVirtualMFADevice": USER_CHANGED,
    "DeleteVirtualMFADevice": USER_CHANGED,
    # passwords (console access)
    "ChangePassword": PASSWORD_CHANGE,
    "CreateLoginProfile": PASSWORD_CHANGE,
    "UpdateLoginProfile": PASSWORD_CHANGE,
    "DeleteLoginProfile": PASSWORD_CHANGE,
    "PasswordUpdated": PASSWORD_CHANGE,
    # groups
    "CreateGroup": GROUP_ADDED,
    "UpdateGroup": GROUP_CHANGED,
    "DeleteGroup": GROUP_REMOVED,
    "AddUserToGroup": GROUP_MEMBER_ADDED,
    "RemoveUserFromGroup": GROUP_MEMBER_REMOVED,
    # account-wide policies
    "UpdateAccountPasswordPolicy": POLICY_CHANGE,
    "DeleteAccountPasswordPolicy": POLICY_CHANGE,
    "UpdateAssumeRolePolicy": POLICY_CHANGE,
    "SetSecurityTokenServicePreferences": POLICY_CHANGE,
}

# (regex matched against the whole eventName, category); first match wins.
PATTERN_CATEGORIES: tuple[tuple[str, str], ...] = (
    # IAM inline/managed policies on users, roles and groups, permission boundaries
    (r"(?:Attach|Detach|Put|Delete)(?:User|Role|Group)Policy", POLICY_CHANGE),
    (r"(?:Put|Delete)(?:User|Role)PermissionsBoundary", POLICY_CHANGE),
    (r"(?:Create|Delete)Policy(?:Version)?|SetDefaultPolicyVersion", POLICY_CHANGE),
    # resource policies of any service (S3 PutBucketPolicy, KMS PutKeyPolicy, ...)
    (r"(?:Put|Set|Delete|Update|Attach|Detach)\w*Polic(?:y|ies)", POLICY_CHANGE),
    (r"(?:Put|Delete)Bucket(?:Acl|PublicAccessBlock)|PutObjectAcl", POLICY_CHANGE),
)

# First CamelCase word of a read-only call.
READ_VERBS = frozenset({
    "Get", "List", "Describe", "Head", "Lookup", "Search", "Scan", "Query", "Select",
    "View", "Preview", "Check", "Estimate",
})
