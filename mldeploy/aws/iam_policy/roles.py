"""The statements on the app's IAM roles: create only with the boundary, pass to ECS (or EC2) only."""

from __future__ import annotations

from typing import Any

from mldeploy.aws.iam_policy.arns import ECS_INSTANCE_POLICY, INSTANCE_PROFILE, INSTANCE_ROLE, ROLES, TASK_ROLE
from mldeploy.aws.iam_policy.scope import Scope, _a, fill


def role_grants(scope: Scope) -> list[dict[str, Any]]:
    """The app's two roles: read, delete, trust and tag them; create them and widen their permissions only with
    the configured permissions boundary (``aws.permissions_boundary``), attach only the configured managed
    policies (``aws.task_role_policy_arns``), pass them to ECS tasks only."""
    values = scope.values()
    roles = fill(list(ROLES), values)
    instance = [fill(INSTANCE_ROLE, values)] if scope.uses_ec2 else []
    boundary = scope.boundary
    with_boundary = {"StringEquals": {"iam:PermissionsBoundary": boundary}} if boundary else {}
    out: list[dict[str, Any]] = [
        {"Sid": "MldeployRoles", "Effect": "Allow", "Action": sorted(_a(
            "iam", "GetRole", "ListRolePolicies", "ListAttachedRolePolicies", "GetRolePolicy", "TagRole",
            "DeleteRole", "DeleteRolePolicy", "DetachRolePolicy", "UpdateAssumeRolePolicy")), "Resource": roles},
        # IAM user guide, "Permissions boundaries for IAM entities" (delegating role creation): CreateRole,
        # PutRolePolicy, AttachRolePolicy and PutRolePermissionsBoundary support iam:PermissionsBoundary
        {"Sid": "MldeployRolesCreate", "Effect": "Allow",
         "Action": sorted(_a("iam", "CreateRole", *(("PutRolePermissionsBoundary",) if boundary else ()))),
         "Resource": [*roles, *instance], **({"Condition": with_boundary} if boundary else {})},
        # the inline policies: the execution role's (resources/iam.py execution_policy), the task role's model
        # artifacts (resources/model_store.py task_role_policy)
        {"Sid": "MldeployInlinePolicies", "Effect": "Allow", "Action": "iam:PutRolePolicy",
         "Resource": roles, **({"Condition": with_boundary} if boundary else {})},
    ]
    arns = sorted(scope.project.config.aws.task_role_policy_arns) if scope.project is not None else None
    if arns is None or arns:
        # SAR IAM: AttachRolePolicy supports iam:PolicyARN (which managed policy) and iam:PermissionsBoundary
        cond: dict[str, Any] = {"ArnEquals": {"iam:PolicyARN": arns}} if arns else {}
        if boundary:
            cond["StringEquals"] = {"iam:PermissionsBoundary": boundary}
        out.append({"Sid": "MldeployTaskRolePolicies", "Effect": "Allow", "Action": "iam:AttachRolePolicy",
                    "Resource": fill(TASK_ROLE, values), **({"Condition": cond} if cond else {})})
    if instance:
        out += instance_role_grants(scope, boundary)
    out += [
        {"Sid": "MldeployPassRoles", "Effect": "Allow", "Action": "iam:PassRole", "Resource": roles,
         "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
        # SAR IAM: CreateServiceLinkedRole with iam:AWSServiceName; the roles live under role/aws-service-role/
        # (EC2 Auto Scaling creates AWSServiceRoleForAutoScaling with the caller's permission on the first group:
        # "Amazon EC2 Auto Scaling API permissions")
        {"Sid": "MldeployServiceLinkedRoles", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
         "Resource": fill("arn:{partition}:iam::{account}:role/aws-service-role/*", values),
         "Condition": {"StringEquals": {"iam:AWSServiceName": [
             "ecs.amazonaws.com", "elasticloadbalancing.amazonaws.com", "ecs.application-autoscaling.amazonaws.com",
             *(["autoscaling.amazonaws.com"] if instance else [])]}}},
    ]
    if boundary:
        # Deny wins over any other policy of the caller: the boundary itself and its removal stay out of reach.
        out += [
            # the boundary stays on the roles and stays as it is (each action takes its own resource type)
            {"Sid": "MldeployBoundaryIsFixed", "Effect": "Deny", "Action": sorted(_a(
                "iam", "DeleteRolePermissionsBoundary", "CreatePolicyVersion", "DeletePolicy", "DeletePolicyVersion",
                "SetDefaultPolicyVersion")), "Resource": [*roles, *instance, boundary]},
            {"Sid": "MldeployOnlyThisBoundary", "Effect": "Deny", "Action": sorted(_a(
                "iam", "CreateRole", "PutRolePermissionsBoundary", "PutRolePolicy", "AttachRolePolicy")),
             "Resource": [*roles, *instance], "Condition": {"StringNotEquals": {"iam:PermissionsBoundary": boundary}}},
        ]
    return out


def instance_role_grants(scope: Scope, boundary: str | None) -> list[dict[str, Any]]:
    """``aws.compute: ec2``: the container instances' role and instance profile (resources/instance_role.py):
    created with the boundary (MldeployRolesCreate), AWS's ECS instance policy as its only attachment, passed to
    EC2 only. SAR IAM: role actions take "role", instance profile actions "instance-profile"; AttachRolePolicy
    supports iam:PolicyARN; PassRole iam:PassedToService."""
    values = scope.values()
    role, profile = fill(INSTANCE_ROLE, values), fill(INSTANCE_PROFILE, values)
    attach: dict[str, Any] = {"ArnEquals": {"iam:PolicyARN": fill(ECS_INSTANCE_POLICY, values)}}
    if boundary:
        attach["StringEquals"] = {"iam:PermissionsBoundary": boundary}
    return [
        {"Sid": "MldeployInstanceRole", "Effect": "Allow", "Action": sorted(_a(
            "iam", "GetRole", "GetInstanceProfile", "DeleteRole", "TagRole", "ListAttachedRolePolicies",
            "ListRolePolicies", "DetachRolePolicy", "DeleteRolePolicy", "CreateInstanceProfile",
            "DeleteInstanceProfile", "AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile",
            "TagInstanceProfile")),
         "Resource": [role, profile]},
        {"Sid": "MldeployInstanceRolePolicy", "Effect": "Allow", "Action": "iam:AttachRolePolicy", "Resource": role,
         "Condition": attach},
        # the launch template's instance profile: RunInstances (through Auto Scaling) checks iam:PassRole with
        # iam:PassedToService ec2.amazonaws.com; AddRoleToInstanceProfile checks PassRole too ("The caller of this
        # operation must be granted the PassRole permission on the IAM role": botocore iam
        # AddRoleToInstanceProfile), where no service is named: hence IfExists
        {"Sid": "MldeployPassInstanceRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": role,
         "Condition": {"StringEqualsIfExists": {"iam:PassedToService": "ec2.amazonaws.com"}}},
    ]
