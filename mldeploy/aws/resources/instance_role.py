"""``aws.compute: ec2``: the container instances' IAM role and instance profile (the ECS instance policy only).

The role carries exactly one policy, AWS's managed ``AmazonEC2ContainerServiceforEC2Role``: "This policy grants
permissions to Amazon ECS container instances that are hosted on Amazon EC2 to make calls to AWS on your behalf"
(ECS developer guide, "Amazon ECS container instance IAM role" / AWS managed policies for Amazon ECS). Image pulls
and logs of the tasks still go through the task execution role. Writes ``known["instance_profile"]``.
"""

from __future__ import annotations

import json
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, RetryOn, Step, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict
from mldeploy.aws.resources.iam import delete_role_calls, read_role

KIND, PROFILE_KIND = "iam role", "instance profile"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
POLICY = "policy/service-role/AmazonEC2ContainerServiceforEC2Role"


def policy_arn(spec: StackSpec) -> str:
    return f"arn:{spec.partition}:iam::aws:{POLICY}"


def name(spec: StackSpec) -> str:
    """One name for the role and its instance profile (IAM role names: at most 64 characters; the app name is at
    most 28 and the env short, see config/names.py)."""
    return f"{spec.names.base}-instance"


def ec2(spec: StackSpec) -> bool:
    return spec.config.aws.compute == "ec2"


def read_profile(spec: StackSpec, remote: Remote) -> dict | None:
    got = remote.get("iam", "get_instance_profile", InstanceProfileName=name(spec), missing=("NoSuchEntity",))
    return got["InstanceProfile"] if got else None


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    if not ec2(spec):
        return []  # left over from compute ec2: removed after the service moved (capacity.plan_cleanup)
    n = name(spec)
    known["instance_profile"] = n
    steps: list[Step] = []
    role = read_role(spec, remote, n)
    boundary = spec.config.aws.permissions_boundary
    if role is None:
        create: dict[str, Any] = {"RoleName": n, "AssumeRolePolicyDocument": json.dumps(TRUST),
                                  "Description": "mldeploy ECS container instances", "Tags": spec.tag_list(),
                                  "MaxSessionDuration": 3600}
        if boundary:  # the deploy policy (mldeploy iam-policy) allows CreateRole only with it
            create["PermissionsBoundary"] = boundary
        steps.append(Step(KIND, n, Action.create, ["EC2 container instances: AmazonEC2ContainerServiceforEC2Role"],
                          calls=[ApiCall("iam", "create_role", create),
                                 ApiCall("iam", "attach_role_policy", {"RoleName": n, "PolicyArn": policy_arn(spec)})]))
    else:
        spec.check_owned("IAM role", n, tag_dict(role.get("Tags")))
        attached = {p["PolicyArn"] for p in
                    remote.get("iam", "list_attached_role_policies", RoleName=n)["AttachedPolicies"]}
        extra = sorted(attached - {policy_arn(spec)})
        current = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        changes: list[str] = []
        calls: list[ApiCall] = []
        if boundary and current != boundary:
            # the boundary first: the deploy policy lets AttachRolePolicy through only once the role carries it
            changes.append(f"permissions boundary {current or '(none)'} → {boundary}")
            calls.append(ApiCall("iam", "put_role_permissions_boundary", {"RoleName": n,
                                                                           "PermissionsBoundary": boundary}))
        if policy_arn(spec) not in attached or extra:
            changes.append("ECS instance policy only")
        calls += [ApiCall("iam", "attach_role_policy", {"RoleName": n, "PolicyArn": policy_arn(spec)})] \
            if policy_arn(spec) not in attached else []
        calls += [ApiCall("iam", "detach_role_policy", {"RoleName": n, "PolicyArn": a}) for a in extra]
        if calls:
            steps.append(Step(KIND, n, Action.update, changes, calls=calls))
        else:
            steps.append(noop(KIND, n))
    profile = read_profile(spec, remote)
    if profile is None:
        steps.append(Step(PROFILE_KIND, n, Action.create, [f"role {n}"], calls=[
            ApiCall("iam", "create_instance_profile", {"InstanceProfileName": n, "Tags": spec.tag_list()}),
            ApiCall("iam", "add_role_to_instance_profile", {"InstanceProfileName": n, "RoleName": n})]))
    elif [r["RoleName"] for r in profile.get("Roles", [])] != [n]:
        # "an instance profile can contain only one IAM role" (IAM user guide, "Use instance profiles")
        calls = [ApiCall("iam", "remove_role_from_instance_profile",
                         {"InstanceProfileName": n, "RoleName": r["RoleName"]}) for r in profile.get("Roles", [])]
        steps.append(Step(PROFILE_KIND, n, Action.update, [f"role {n}"], calls=[
            *calls, ApiCall("iam", "add_role_to_instance_profile", {"InstanceProfileName": n, "RoleName": n})]))
    else:
        steps.append(noop(PROFILE_KIND, n))
    return steps


PROFILE_RETRY = (
    # an instance profile is usable by EC2 only after IAM propagated it: Terraform's aws_launch_template and
    # aws_autoscaling_group retry "Invalid IamInstanceProfile" (terraform-provider-aws
    # internal/service/autoscaling/group.go, propagationTimeout)
    RetryOn("ValidationError", "Invalid IamInstanceProfile"),
    RetryOn("InvalidParameterValue", "Invalid IAM Instance Profile"),
)


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Remove the role from the profile, delete the profile, then the role (IAM refuses to delete a role that is
    in an instance profile: DeleteConflict)."""
    n = name(spec)
    role, profile = read_role(spec, remote, n), read_profile(spec, remote)
    steps: list[Step] = []
    if profile is not None and (role is None or spec.owns(tag_dict(role.get("Tags")))):
        calls = [ApiCall("iam", "remove_role_from_instance_profile",
                         {"InstanceProfileName": n, "RoleName": r["RoleName"]}, missing=("NoSuchEntity",))
                 for r in profile.get("Roles", [])]
        steps.append(Step(PROFILE_KIND, n, Action.delete, calls=[
            *calls, ApiCall("iam", "delete_instance_profile", {"InstanceProfileName": n}, missing=("NoSuchEntity",))]))
    if role is not None and spec.owns(tag_dict(role.get("Tags"))):
        steps.append(Step(KIND, n, Action.delete, calls=delete_role_calls(remote, n)))
    return steps
