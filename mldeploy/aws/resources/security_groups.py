"""Security groups: the ALB's (80/443 from the configured CIDRs) and the tasks' (container port from the ALB only)."""

from __future__ import annotations

from typing import Any

from mldeploy.aws.clients import call
from mldeploy.aws.context import DeployContext, tag_dict
from mldeploy.aws.plan import Action, Pending, Step, is_pending

Rule = tuple[int, str]  # (port, source: CIDR or sg-id)


def describe(ctx: DeployContext, name: str) -> dict | None:
    vpc = ctx.outputs["vpc_id"]
    found = call(ctx.aws.ec2.describe_security_groups,
                 Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc]}])
    return found["SecurityGroups"][0] if found["SecurityGroups"] else None


def _rules(group: dict) -> set[Rule]:
    out: set[Rule] = set()
    for p in group.get("IpPermissions", []):
        if p.get("IpProtocol") != "tcp" or p.get("FromPort") != p.get("ToPort"):
            out.add((-1, f"{p.get('IpProtocol')}:{p.get('FromPort')}-{p.get('ToPort')}"))
            continue
        for r in p.get("IpRanges", []):
            out.add((p["FromPort"], r["CidrIp"]))
        for g in p.get("UserIdGroupPairs", []):
            out.add((p["FromPort"], g["GroupId"]))
    return out


def _permission(rule: Rule, description: str) -> dict[str, Any]:
    port, source = rule
    perm: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
    if source.startswith("sg-"):
        perm["UserIdGroupPairs"] = [{"GroupId": source, "Description": description}]
    else:
        perm["IpRanges"] = [{"CidrIp": source, "Description": description}]
    return perm


def alb_rules(ctx: DeployContext) -> set[Rule]:
    ports = [80, 443] if ctx.config.aws.certificate_arn else [80]
    return {(p, cidr) for p in ports for cidr in ctx.config.aws.allowed_cidrs}


def task_rules(ctx: DeployContext) -> set[Rule]:
    return {(ctx.config.runtime.port, ctx.outputs["alb_sg_id"])}


def _plan_group(ctx: DeployContext, name: str, key: str, description: str, desired_fn) -> list[Step]:
    group = describe(ctx, name)
    if group is None:
        ctx.outputs[key] = Pending(f"security group {name}")

        def create(c: DeployContext) -> None:
            gid = call(c.aws.ec2.create_security_group, GroupName=name, Description=description,
                       VpcId=c.outputs["vpc_id"],
                       TagSpecifications=[{"ResourceType": "security-group",
                                           "Tags": c.tag_list() + [{"Key": "Name", "Value": name}]}])["GroupId"]
            c.outputs[key] = gid
            perms = [_permission(r, description) for r in sorted(desired_fn(c))]
            if perms:
                call(c.aws.ec2.authorize_security_group_ingress, GroupId=gid, IpPermissions=perms)

        rules = desired_fn(ctx)
        return [Step("security group", name, Action.create,
                     [f"ingress {', '.join(f'{p} from {s}' for p, s in sorted(rules))}"], apply=create)]
    ctx.check_owned("security group", name, tag_dict(group.get("Tags")))
    ctx.outputs[key] = group["GroupId"]
    desired = desired_fn(ctx)
    current = _rules(group)
    pending = any(is_pending(s) for _, s in desired)
    add = sorted(desired - current) if not pending else sorted(desired)
    remove = sorted(r for r in current - desired if not pending or not r[1].startswith("sg-"))
    if not add and not remove:
        return [Step("security group", name, Action.noop)]

    def update(c: DeployContext) -> None:
        gid = c.outputs[key]
        fresh = desired_fn(c)
        now = _rules(describe(c, name) or {})
        to_add = [_permission(r, description) for r in sorted(fresh - now)]
        to_remove = [_permission(r, description) for r in sorted(now - fresh) if r[0] != -1]
        if to_add:
            call(c.aws.ec2.authorize_security_group_ingress, GroupId=gid, IpPermissions=to_add)
        for perm in to_remove:
            for pair in perm.get("UserIdGroupPairs", []) + perm.get("IpRanges", []):
                pair.pop("Description", None)
            call(c.aws.ec2.revoke_security_group_ingress, GroupId=gid, IpPermissions=[perm])

    changes = [f"allow {p} from {s}" for p, s in add] + [f"revoke {p} from {s}" for p, s in remove]
    return [Step("security group", name, Action.update, changes, apply=update)]


def plan(ctx: DeployContext) -> list[Step]:
    n = ctx.names
    steps = _plan_group(ctx, n.alb_security_group, "alb_sg_id", f"mldeploy {n.base} load balancer", alb_rules)
    steps += _plan_group(ctx, n.task_security_group, "task_sg_id", f"mldeploy {n.base} tasks (from the ALB only)",
                         task_rules)
    return steps


def delete(ctx: DeployContext, name: str) -> bool:
    group = describe(ctx, name)
    if group is None:
        return False
    tags = tag_dict(group.get("Tags"))
    if tags.get("mldeploy:app") != ctx.names.app or tags.get("mldeploy:env") != ctx.names.env:
        return False
    call(ctx.aws.ec2.delete_security_group, GroupId=group["GroupId"], missing=("InvalidGroup.NotFound",))
    return True
