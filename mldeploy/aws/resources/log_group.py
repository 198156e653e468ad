"""CloudWatch Logs group for the containers, with retention."""

from __future__ import annotations

from mldeploy.aws.clients import call
from mldeploy.aws.context import DeployContext
from mldeploy.aws.plan import Action, Step


def describe(ctx: DeployContext) -> dict | None:
    name = ctx.names.log_group
    groups = call(ctx.aws.logs.describe_log_groups, logGroupNamePrefix=name)["logGroups"]
    return next((g for g in groups if g["logGroupName"] == name), None)


def plan(ctx: DeployContext) -> list[Step]:
    name = ctx.names.log_group
    days = ctx.config.aws.log_retention_days
    group = describe(ctx)

    def retention(c: DeployContext) -> None:
        call(c.aws.logs.put_retention_policy, logGroupName=name, retentionInDays=days)

    if group is None:
        def create(c: DeployContext) -> None:
            call(c.aws.logs.create_log_group, logGroupName=name, tags=c.tags)
            retention(c)

        return [Step("log group", name, Action.create, [f"retention {days} days"], apply=create)]
    tags = call(ctx.aws.logs.list_tags_for_resource, resourceArn=group["arn"].removesuffix(":*"))["tags"]
    ctx.check_owned("log group", name, tags)
    if group.get("retentionInDays") == days:
        return [Step("log group", name, Action.noop)]
    return [Step("log group", name, Action.update, [f"retention {group.get('retentionInDays')} → {days} days"],
                 apply=retention)]


def delete(ctx: DeployContext) -> bool:
    return call(ctx.aws.logs.delete_log_group, logGroupName=ctx.names.log_group,
                missing=("ResourceNotFoundException",)) is not None
