"""IAM roles: the task execution role (ECR pull + logs + the configured secrets only) and the optional task role."""

from __future__ import annotations

import json
from typing import Any

from mldeploy.aws.clients import call
from mldeploy.aws.context import DeployContext, tag_dict
from mldeploy.aws.plan import Action, Step

TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
EXEC_POLICY_NAME = "mldeploy-execution"


def execution_policy(ctx: DeployContext) -> dict[str, Any]:
    """Least privilege for pulling the image, writing logs and reading the configured secrets."""
    log_arn = ctx.arn("logs", f"log-group:{ctx.names.log_group}")
    statements: list[dict[str, Any]] = [
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [log_arn, f"{log_arn}:*"]},
    ]
    if ctx.uses_ecr:
        statements += [
            {"Sid": "EcrAuth", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "EcrPull", "Effect": "Allow",
             "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
             "Resource": ctx.arn("ecr", f"repository/{ctx.ecr_repository}")},
        ]
    ssm = sorted({a for a in ctx.config.aws.secrets.values() if ":ssm:" in a})
    sm = sorted({a for a in ctx.config.aws.secrets.values() if ":secretsmanager:" in a})
    if ssm:
        statements.append({"Sid": "SsmSecrets", "Effect": "Allow", "Action": "ssm:GetParameters", "Resource": ssm})
    if sm:
        statements.append({"Sid": "SecretsManager", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                           "Resource": sm})
    return {"Version": "2012-10-17", "Statement": statements}


def _get_role(ctx: DeployContext, name: str) -> dict | None:
    got = call(ctx.aws.iam.get_role, RoleName=name, missing=("NoSuchEntity",))
    if got is None:
        return None
    role = got["Role"]
    ctx.check_owned("IAM role", name, tag_dict(role.get("Tags")))
    return role


def _create_role(ctx: DeployContext, name: str, description: str) -> str:
    role = call(ctx.aws.iam.create_role, RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST),
                Description=description, Tags=ctx.tag_list(), MaxSessionDuration=3600)["Role"]
    return role["Arn"]


def plan_execution_role(ctx: DeployContext) -> list[Step]:
    name = ctx.names.execution_role
    role = _get_role(ctx, name)
    desired = execution_policy(ctx)

    def put_policy(c: DeployContext) -> None:
        call(c.aws.iam.put_role_policy, RoleName=name, PolicyName=EXEC_POLICY_NAME,
             PolicyDocument=json.dumps(execution_policy(c)))

    if role is None:
        ctx.outputs["exec_role_arn"] = ctx.arn("iam", f"role/{name}", region=False)

        def create(c: DeployContext) -> None:
            c.outputs["exec_role_arn"] = _create_role(c, name, "mldeploy task execution role (ECR pull, logs)")
            put_policy(c)

        return [Step("iam role", name, Action.create, ["execution role: ECR pull + logs" +
                                                        (" + secrets" if ctx.config.aws.secrets else "")],
                     apply=create)]
    ctx.outputs["exec_role_arn"] = role["Arn"]
    got = call(ctx.aws.iam.get_role_policy, RoleName=name, PolicyName=EXEC_POLICY_NAME, missing=("NoSuchEntity",))
    current = got["PolicyDocument"] if got else None
    if isinstance(current, str):
        current = json.loads(current)
    if current == desired:
        return [Step("iam role", name, Action.noop)]
    return [Step("iam role", name, Action.update, ["execution policy"], apply=put_policy)]


def plan_task_role(ctx: DeployContext) -> list[Step]:
    name = ctx.names.task_role
    wanted = sorted(ctx.config.aws.task_role_policy_arns)
    role = _get_role(ctx, name)
    iam = ctx.aws.iam
    if not wanted:
        ctx.outputs["task_role_arn"] = None
        if role is None:
            return []
        return [Step("iam role", name, Action.delete, ["no task_role_policy_arns configured"],
                     apply=lambda c: delete_role(c, name))]
    if role is None:
        ctx.outputs["task_role_arn"] = ctx.arn("iam", f"role/{name}", region=False)

        def create(c: DeployContext) -> None:
            c.outputs["task_role_arn"] = _create_role(c, name, "mldeploy task role (the model's own AWS access)")
            for arn in wanted:
                call(c.aws.iam.attach_role_policy, RoleName=name, PolicyArn=arn)

        return [Step("iam role", name, Action.create, [f"task role with {', '.join(wanted)}"], apply=create)]
    ctx.outputs["task_role_arn"] = role["Arn"]
    current = sorted(p["PolicyArn"] for p in call(iam.list_attached_role_policies, RoleName=name)["AttachedPolicies"])
    add, remove = sorted(set(wanted) - set(current)), sorted(set(current) - set(wanted))
    if not add and not remove:
        return [Step("iam role", name, Action.noop)]

    def update(c: DeployContext) -> None:
        for arn in add:
            call(c.aws.iam.attach_role_policy, RoleName=name, PolicyArn=arn)
        for arn in remove:
            call(c.aws.iam.detach_role_policy, RoleName=name, PolicyArn=arn)

    return [Step("iam role", name, Action.update, [f"attach {a}" for a in add] + [f"detach {r}" for r in remove],
                 apply=update)]


def delete_role(ctx: DeployContext, name: str) -> bool:
    """Detach/delete its policies, then the role. False when it does not exist."""
    iam = ctx.aws.iam
    if call(iam.get_role, RoleName=name, missing=("NoSuchEntity",)) is None:
        return False
    for p in call(iam.list_attached_role_policies, RoleName=name)["AttachedPolicies"]:
        call(iam.detach_role_policy, RoleName=name, PolicyArn=p["PolicyArn"])
    for pname in call(iam.list_role_policies, RoleName=name)["PolicyNames"]:
        call(iam.delete_role_policy, RoleName=name, PolicyName=pname)
    call(iam.delete_role, RoleName=name, missing=("NoSuchEntity",))
    return True
