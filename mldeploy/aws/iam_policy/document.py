"""The documents: the deploy policy (:func:`policy_for`) and the suggested permissions boundary."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mldeploy.aws.iam_policy.arns import INSTANCE_ROLE, TASK_ROLE
from mldeploy.aws.iam_policy.grants import GRANTS, MERGED_SIDS
from mldeploy.aws.iam_policy.roles import role_grants
from mldeploy.aws.iam_policy.scope import ANY, Scope, fill

if TYPE_CHECKING:
    from mldeploy.config import Project


def scope_for(project: Project | None, *, region: str | None = None, account: str | None = None,
              partition: str = "aws") -> Scope:
    region = region or (project.config.aws.region if project is not None else None)
    return Scope(project, region=region or ANY, account=account or ANY, partition=partition)


def policy_for(project: Project | None, *, region: str | None = None, account: str | None = None,
               partition: str = "aws") -> dict[str, Any]:
    """The deploy policy document (JSON-able) for ``project`` (every mldeploy app when None)."""
    scope = scope_for(project, region=region, account=account, partition=partition)
    statements: list[dict[str, Any]] = []
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for grants in GRANTS.values():
        for grant in grants:
            stmt = grant.statement(scope)
            if stmt is None:
                continue
            if grant.merge is None:
                statements.append(stmt)
                continue
            key = (grant.merge, json.dumps(stmt.get("Condition"), sort_keys=True))
            if key not in merged:
                sid = MERGED_SIDS[grant.merge]
                taken = sum(1 for k in merged if k[0] == grant.merge)
                merged[key] = {**stmt, "Sid": f"{sid}{taken + 1}" if taken else sid, "Action": [], "Resource": []}
                statements.append(merged[key])
            group = merged[key]
            group["Action"] = sorted({*group["Action"], *stmt["Action"]})
            group["Resource"] = sorted({*group["Resource"], *stmt["Resource"]})
    statements += role_grants(scope)
    return {"Version": "2012-10-17", "Statement": statements}


def boundary_name(project: Project | None) -> str:
    """The suggested name of the boundary policy (``iam-policy --boundary``), ≤ 128 characters."""
    return f"mldeploy-boundary-{project.names.base}"[:128] if project is not None else "mldeploy-boundary"


def boundary_policy(project: Project, *, region: str | None = None, account: str | None = None,
                    partition: str = "aws") -> dict[str, Any]:
    """The permissions boundary suggested for the app's roles: the execution role's needs (the image, the log
    group, the configured secrets) and, for the task role and the EC2 instance role only (``aws:PrincipalArn``),
    anything but IAM/STS/Organizations — their managed policies (``aws.task_role_policy_arns``; AWS's ECS instance
    policy) decide the rest. A role the deploy
    identity widens (an inline policy, another attachment) never gets more than this."""
    from mldeploy.aws.engine.spec import StackSpec
    from mldeploy.aws.resources.iam import execution_policy

    scope = scope_for(project, region=region, account=account, partition=partition)
    spec = StackSpec(project=project, region=scope.region, account=scope.account, partition=partition)
    statements = []
    for st in execution_policy(spec)["Statement"]:
        statements.append({**st, "Sid": f"Execution{st['Sid']}"})
    statements.append({
        "Sid": "TaskRole", "Effect": "Allow", "NotAction": ["iam:*", "sts:*", "organizations:*", "account:*"],
        "Resource": "*", "Condition": {"ArnLike": {"aws:PrincipalArn": [
            fill(TASK_ROLE, scope.values()), *([fill(INSTANCE_ROLE, scope.values())] if scope.uses_ec2 else [])]}}})
    return {"Version": "2012-10-17", "Statement": statements}
