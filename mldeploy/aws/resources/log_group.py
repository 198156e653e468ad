"""CloudWatch Logs group for the containers, with retention."""

from __future__ import annotations

from mldeploy.aws.engine.model import Action, ApiCall, Step, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec

KIND = "log group"


def read(spec: StackSpec, remote: Remote) -> dict | None:
    name = spec.names.log_group
    groups = remote.get("logs", "describe_log_groups", logGroupNamePrefix=name)["logGroups"]
    return next((g for g in groups if g["logGroupName"] == name), None)


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    name = spec.names.log_group
    days = spec.config.aws.log_retention_days
    group = read(spec, remote)
    retention = ApiCall("logs", "put_retention_policy", {"logGroupName": name, "retentionInDays": days})
    if group is None:
        return [Step(KIND, name, Action.create, [f"retention {days} days"], calls=[
            ApiCall("logs", "create_log_group", {"logGroupName": name, "tags": spec.tags}), retention])]
    tags = remote.get("logs", "list_tags_for_resource", resourceArn=group["arn"].removesuffix(":*"))["tags"]
    spec.check_owned("log group", name, tags)
    if group.get("retentionInDays") == days:
        return [noop(KIND, name)]
    return [Step(KIND, name, Action.update, [f"retention {group.get('retentionInDays')} → {days} days"],
                 calls=[retention])]


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    if read(spec, remote) is None:
        return []
    return [Step(KIND, spec.names.log_group, Action.delete, calls=[
        ApiCall("logs", "delete_log_group", {"logGroupName": spec.names.log_group},
                missing=("ResourceNotFoundException",))])]
