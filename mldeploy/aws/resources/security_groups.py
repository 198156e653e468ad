"""Security groups: the ALB's (80/443 from the configured CIDRs), the tasks' (container port from the ALB only) and,
with ``aws.compute: ec2``, the container instances' (no inbound at all).

The instances get a group of their own because an awsvpc task does not use the instance's network interface:
"Amazon ECS creates the ENI and attaches it to the host Amazon EC2 instance with the specified security group"
(ECS developer guide, "Allocate a network interface for an Amazon ECS task"), i.e. the service's groups. The
instance's primary interface carries only the instance's own traffic (the agent's connection to ECS, image pulls
from ECR and S3, log uploads, secrets: all outbound), so nothing needs to reach it; sharing the tasks' group would
let the ALB reach every instance on the container port. Its egress stays EC2's default (all outbound, as the
tasks' group): registries in ``registry`` may listen on other ports than 443.

Rule changes are computed at plan time (describe once, diff, then authorize/revoke exactly that), so ``apply``
makes the calls ``plan --json`` printed. ``known`` values: ``alb_sg_id``, ``task_sg_id``, ``instance_sg_id`` (compute
ec2; a ``Ref`` to ``create_security_group``'s ``GroupId`` when this plan creates the group); all read
``known["vpc_id"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Ref, RetryOn, Step, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict

KIND = "security group"

Rule = tuple[int, str, Any]
"""(port, source kind, source): kind ``cidr`` (an IPv4 range), ``group`` (a security group id, or a ``Ref`` to one
this plan creates), or ``other`` (anything we never create: IPv6/prefix-list sources, other protocols, port
ranges; always revoked)."""

# DeleteSecurityGroup fails with DependencyViolation while a network interface still uses the group (EC2 API
# reference, DeleteSecurityGroup). A deleted ALB's and stopped tasks' ENIs take minutes to disappear, so the delete
# is retried like Terraform's aws_security_group does (terraform-provider-aws internal/service/ec2/
# vpc_security_group.go, resourceSecurityGroupDelete: retries while DependencyViolation, up to the delete timeout).
DELETE_TIMEOUT_S = 600.0


def read(spec: StackSpec, remote: Remote, known: Known, name: str) -> dict | None:
    """The group called ``name`` in ``known["vpc_id"]`` (None when absent or the VPC is unknown)."""
    vpc = known.get("vpc_id")
    if not vpc:
        return None
    found = remote.get("ec2", "describe_security_groups", Filters=[
        {"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc]}])
    return found["SecurityGroups"][0] if found["SecurityGroups"] else None


def _key(rule: Rule) -> tuple[int, str, str]:
    return rule[0], rule[1], str(rule[2])


def current_rules(group: dict) -> dict[Rule, dict[str, Any]]:
    """Every ingress rule of ``group`` → the ``IpPermissions`` entry that revokes exactly it."""
    out: dict[Rule, dict[str, Any]] = {}
    for p in group.get("IpPermissions", []):
        base = {k: p[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in p}
        simple = p.get("IpProtocol") == "tcp" and p.get("FromPort") == p.get("ToPort")
        for r in p.get("IpRanges", []):
            rule = (p["FromPort"], "cidr", r["CidrIp"]) if simple else (-1, "other", f"{_label(p)} {r['CidrIp']}")
            out[rule] = {**base, "IpRanges": [{"CidrIp": r["CidrIp"]}]}
        for g in p.get("UserIdGroupPairs", []):
            rule = (p["FromPort"], "group", g["GroupId"]) if simple else (-1, "other", f"{_label(p)} {g['GroupId']}")
            out[rule] = {**base, "UserIdGroupPairs": [{"GroupId": g["GroupId"]}]}
        for r in p.get("Ipv6Ranges", []):
            out[(-1, "other", f"{_label(p)} {r['CidrIpv6']}")] = {**base, "Ipv6Ranges": [{"CidrIpv6": r["CidrIpv6"]}]}
        for pl in p.get("PrefixListIds", []):
            out[(-1, "other", f"{_label(p)} {pl['PrefixListId']}")] = {
                **base, "PrefixListIds": [{"PrefixListId": pl["PrefixListId"]}]}
    return out


def _label(p: dict) -> str:
    if p.get("IpProtocol") == "-1":
        return "all traffic from"
    return f"{p.get('IpProtocol')} {p.get('FromPort')}-{p.get('ToPort')} from"


def permission(rule: Rule, description: str) -> dict[str, Any]:
    """An ``IpPermissions`` entry allowing ``rule`` (a security group source may be a ``Ref``)."""
    port, kind, source = rule
    perm: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
    if kind == "group":
        perm["UserIdGroupPairs"] = [{"GroupId": source, "Description": description}]
    else:
        perm["IpRanges"] = [{"CidrIp": source, "Description": description}]
    return perm


def alb_rules(spec: StackSpec, known: Known) -> set[Rule]:
    ports = [80, 443] if spec.https else [80]  # 443 also when aws.domain gets its certificate from ACM
    return {(p, "cidr", cidr) for p in ports for cidr in spec.config.aws.allowed_cidrs}


def task_rules(spec: StackSpec, known: Known) -> set[Rule]:
    return {(spec.config.runtime.port, "group", known["alb_sg_id"])}


def instance_group(spec: StackSpec) -> str:
    """The container instances' group (compute ec2): ``<base>-instances``, beside ``-alb`` and ``-tasks``
    (security group names: up to 255 characters, botocore ec2 CreateSecurityGroupRequest.GroupName)."""
    return f"{spec.names.base}-instances"


def instance_rules(spec: StackSpec, known: Known) -> set[Rule]:
    return set()  # no inbound: the tasks' traffic goes to their own interfaces


def _text(rule: Rule) -> str:
    port, kind, source = rule
    return str(source) if kind == "other" else f"{port} from {source}"


def _plan_group(spec: StackSpec, remote: Remote, known: Known, name: str, key: str, description: str,
                desired_fn: Callable[[StackSpec, Known], set[Rule]]) -> list[Step]:
    group = read(spec, remote, known, name)
    if group is None:
        known[key] = gid = Ref(key)
        desired = sorted(desired_fn(spec, known), key=_key)
        calls = [ApiCall("ec2", "create_security_group", {
            "GroupName": name, "Description": description, "VpcId": known["vpc_id"],
            "TagSpecifications": [{"ResourceType": "security-group",
                                   "Tags": [*spec.tag_list(), {"Key": "Name", "Value": name}]}]},
            outputs=((key, "GroupId"),))]
        if desired:
            calls.append(ApiCall("ec2", "authorize_security_group_ingress", {
                "GroupId": gid, "IpPermissions": [permission(r, description) for r in desired]}))
        what = f"ingress {', '.join(_text(r) for r in desired)}" if desired else "no ingress"
        return [Step(KIND, name, Action.create, [what], calls=calls)]
    spec.check_owned("security group", name, tag_dict(group.get("Tags")))
    known[key] = group["GroupId"]
    desired_set = desired_fn(spec, known)
    current = current_rules(group)
    add = sorted((r for r in desired_set if r not in current), key=_key)
    remove = sorted((r for r in current if r not in desired_set), key=_key)
    if not add and not remove:
        return [noop(KIND, name)]
    calls = []
    if add:
        calls.append(ApiCall("ec2", "authorize_security_group_ingress", {
            "GroupId": group["GroupId"], "IpPermissions": [permission(r, description) for r in add]}))
    # one rule per call: revoking with rule properties must match the existing rule exactly (EC2 API reference,
    # RevokeSecurityGroupIngress); the description need not be given
    calls += [ApiCall("ec2", "revoke_security_group_ingress",
                      {"GroupId": group["GroupId"], "IpPermissions": [current[r]]}) for r in remove]
    changes = [f"allow {_text(r)}" for r in add] + [f"revoke {_text(r)}" for r in remove]
    return [Step(KIND, name, Action.update, changes, calls=calls)]


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Both groups; sets ``known["alb_sg_id"]`` and ``known["task_sg_id"]`` (needs ``known["vpc_id"]``)."""
    n = spec.names
    steps = _plan_group(spec, remote, known, n.alb_security_group, "alb_sg_id", f"mldeploy {n.base} load balancer",
                        alb_rules)
    steps += _plan_group(spec, remote, known, n.task_security_group, "task_sg_id",
                         f"mldeploy {n.base} tasks (from the ALB only)", task_rules)
    if spec.config.aws.compute == "ec2":
        steps += _plan_group(spec, remote, known, instance_group(spec), "instance_sg_id",
                             f"mldeploy {n.base} ECS container instances (no inbound)", instance_rules)
    return steps


def _delete_group(spec: StackSpec, remote: Remote, known: Known, name: str) -> list[Step]:
    group = read(spec, remote, known, name)
    if group is None or not spec.owns(tag_dict(group.get("Tags"))):
        return []
    return [Step(KIND, name, Action.delete, calls=[
        ApiCall("ec2", "delete_security_group", {"GroupId": group["GroupId"]}, missing=("InvalidGroup.NotFound",),
                retry=(RetryOn("DependencyViolation"),), retry_timeout_s=DELETE_TIMEOUT_S)])]


def delete_instance_group(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """The instances' group, once the Auto Scaling group is gone (its terminating instances' interfaces hold it:
    DependencyViolation is retried)."""
    return _delete_group(spec, remote, known, instance_group(spec))


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """The instances' group (compute ec2; ``down`` deletes the Auto Scaling group before this family), the tasks'
    group, then the ALB's (which the tasks' rule references); only groups tagged ours.

    No steps when ``known["vpc_id"]`` is None (the VPC is gone, and its groups with it).
    """
    steps: list[Step] = []
    for name in (instance_group(spec), spec.names.task_security_group, spec.names.alb_security_group):
        steps += _delete_group(spec, remote, known, name)
    return steps
