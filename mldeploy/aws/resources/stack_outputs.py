"""Deployment outputs (URL, image, task definition) kept durably in SSM Parameter Store under ``names.ssm_prefix``.

CI runners are ephemeral, so ``status``/``canary``/``rollback`` read these instead of a local cache.
"""

from __future__ import annotations

from mldeploy.aws.clients import aws_errors, call
from mldeploy.aws.context import DeployContext
from mldeploy.aws.plan import Action, Step, is_pending
from mldeploy.aws.resources import alb

KEYS = ("url", "image", "task-definition", "alb-dns")


def values(ctx: DeployContext) -> dict[str, str]:
    o = ctx.outputs
    return {"url": alb.url(ctx), "image": o.get("image"), "task-definition": o.get("task_definition_arn"),
            "alb-dns": o.get("alb_dns")}


def read(ctx: DeployContext) -> dict[str, str]:
    """Current outputs from SSM (key → value)."""
    prefix = ctx.names.ssm_prefix.rstrip("/") + "/"
    found = call(ctx.aws.ssm.get_parameters, Names=[prefix + k for k in KEYS])["Parameters"]
    return {p["Name"].removeprefix(prefix): p["Value"] for p in found}


def plan(ctx: DeployContext) -> list[Step]:
    current = read(ctx)
    want = values(ctx)
    changed = [k for k in KEYS if want.get(k) is None or is_pending(want[k]) or "known after apply" in str(want[k])
               or current.get(k) != want[k]]
    changed = [k for k in changed if not (want.get(k) is None and k not in current)]
    name = ctx.names.ssm_prefix
    if not changed:
        return [Step("outputs (ssm)", name, Action.noop)]

    def apply(c: DeployContext) -> None:
        now = read(c)
        for key, value in values(c).items():
            if value is None or now.get(key) == value:
                continue
            full = f"{c.names.ssm_prefix}/{key}"
            if key in now:
                call(c.aws.ssm.put_parameter, Name=full, Value=str(value), Type="String", Overwrite=True)
            else:
                call(c.aws.ssm.put_parameter, Name=full, Value=str(value), Type="String", Tags=c.tag_list())

    return [Step("outputs (ssm)", name, Action.create if not current else Action.update, changed, apply=apply)]


def delete(ctx: DeployContext) -> list[str]:
    names: list[str] = []
    with aws_errors():  # everything under the prefix: outputs, and the release history/lock kept there
        for page in ctx.aws.ssm.get_paginator("get_parameters_by_path").paginate(Path=ctx.names.ssm_prefix,
                                                                                 Recursive=True):
            names += [p["Name"] for p in page["Parameters"]]
    for i in range(0, len(names), 10):
        call(ctx.aws.ssm.delete_parameters, Names=names[i:i + 10])
    return names
