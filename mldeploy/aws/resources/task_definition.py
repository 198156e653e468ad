"""Fargate task definition: size, platform, container health check, awslogs, environment, secrets, stopTimeout."""

from __future__ import annotations

from typing import Any

from mldeploy.aws.clients import aws_errors, call
from mldeploy.aws.context import CONTAINER_NAME, DeployContext
from mldeploy.aws.plan import Action, Pending, Step, is_pending
from mldeploy.errors import AwsError

ARCH = {"linux/amd64": "X86_64", "linux/arm64": "ARM64"}
TMP_VOLUME = "tmp"


def current(ctx: DeployContext, family: str | None = None) -> dict | None:
    """The latest ACTIVE revision of the family (None when there is none)."""
    found = call(ctx.aws.ecs.describe_task_definition, taskDefinition=family or ctx.names.task_family,
                 include=["TAGS"], missing=("ClientException",))
    return found["taskDefinition"] if found else None


def container(ctx: DeployContext, image: str) -> dict[str, Any]:
    cfg = ctx.config
    port = cfg.runtime.port
    hc = cfg.aws.health_check
    probe = (f"python -c \"import urllib.request;urllib.request.urlopen('http://127.0.0.1:{port}{hc.path}',"
             f"timeout={max(1, hc.timeout_s - 1)})\" || exit 1")
    env = {"MLDEPLOY_APP": ctx.names.app, "MLDEPLOY_ENV": ctx.names.env, "MLDEPLOY_MODEL_VERSION": cfg.model.version,
           **cfg.aws.environment}
    return {
        "name": CONTAINER_NAME,
        "image": image,
        "essential": True,
        "portMappings": [{"containerPort": port, "hostPort": port, "protocol": "tcp"}],
        "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(cfg.aws.secrets.items())],
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": ctx.names.log_group, "awslogs-region": ctx.aws.region,
            "awslogs-stream-prefix": ctx.names.app, "mode": "non-blocking", "max-buffer-size": "4m"}},
        "healthCheck": {"command": ["CMD-SHELL", probe], "interval": hc.interval_s, "timeout": hc.timeout_s,
                        "retries": hc.unhealthy_threshold, "startPeriod": min(300, hc.grace_period_s)},
        # ECS sends SIGTERM, waits stopTimeout, then SIGKILL: give the runtime's drain a margin
        "stopTimeout": min(120, cfg.runtime.drain_timeout_s + 5),
        "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
        # the image's code and model cannot be modified at run time; uploads/temp files go to the /tmp volume
        "readonlyRootFilesystem": cfg.aws.read_only_root_filesystem,
        "mountPoints": [{"sourceVolume": TMP_VOLUME, "containerPath": "/tmp", "readOnly": False}],
    }


def desired(ctx: DeployContext, image: str, family: str | None = None) -> dict[str, Any]:
    """register_task_definition arguments for ``image``."""
    aws = ctx.config.aws
    args: dict[str, Any] = {
        "family": family or ctx.names.task_family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(aws.cpu),
        "memory": str(aws.memory),
        "runtimePlatform": {"cpuArchitecture": ARCH[ctx.config.image.platform], "operatingSystemFamily": "LINUX"},
        "executionRoleArn": ctx.outputs["exec_role_arn"],
        "containerDefinitions": [container(ctx, image)],
        "volumes": [{"name": TMP_VOLUME}],  # Fargate task storage (ephemeral), writable even with a read-only root
        "tags": ctx.tag_list("key", "value"),
    }
    if ctx.outputs.get("task_role_arn"):
        args["taskRoleArn"] = ctx.outputs["task_role_arn"]
    return args


def register(ctx: DeployContext, image: str, family: str | None = None) -> str:
    """Register a new revision for ``image``; returns its ARN (reused by the release commands)."""
    td = call(ctx.aws.ecs.register_task_definition, **desired(ctx, image, family))["taskDefinition"]
    return td["taskDefinitionArn"]


def _norm_container(c: dict[str, Any]) -> dict[str, Any]:
    out = {k: c.get(k) for k in ("name", "image", "essential", "stopTimeout")}
    out["ports"] = sorted(p["containerPort"] for p in c.get("portMappings", []))
    out["environment"] = sorted((e["name"], e["value"]) for e in c.get("environment") or [])
    out["secrets"] = sorted((e["name"], e["valueFrom"]) for e in c.get("secrets") or [])
    out["logConfiguration"] = c.get("logConfiguration")
    hc = c.get("healthCheck") or {}
    out["healthCheck"] = {k: hc.get(k) for k in ("command", "interval", "timeout", "retries", "startPeriod")}
    out["ulimits"] = sorted((u["name"], u["softLimit"], u["hardLimit"]) for u in c.get("ulimits") or [])
    out["readonlyRootFilesystem"] = bool(c.get("readonlyRootFilesystem"))
    out["mountPoints"] = sorted((m["sourceVolume"], m["containerPath"], bool(m.get("readOnly")))
                                for m in c.get("mountPoints") or [])
    return out


def diff(cur: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Human-readable differences between the current revision and the desired arguments."""
    changes = []
    for key in ("cpu", "memory", "executionRoleArn", "taskRoleArn"):
        if cur.get(key) != want.get(key):
            if is_pending(want.get(key)) or key.endswith("Arn"):
                changes.append(key.removesuffix("Arn").replace("Role", " role"))
            else:
                changes.append(f"{key} {cur.get(key)} → {want.get(key)}")
    if (cur.get("runtimePlatform") or {}).get("cpuArchitecture") != want["runtimePlatform"]["cpuArchitecture"]:
        changes.append(f"platform → {want['runtimePlatform']['cpuArchitecture']}")
    containers = cur.get("containerDefinitions") or [{}]
    a, b = _norm_container(containers[0]), _norm_container(want["containerDefinitions"][0])
    for key in b:
        if a.get(key) != b[key]:
            if key == "image":
                changes.append(f"image {a.get('image')} → {b['image']}")
            elif key == "environment":
                keys = {k for k, _ in set(a[key]) ^ set(b[key])}
                changes.append(f"environment {', '.join(sorted(keys))}")
            else:
                changes.append(key)
    return changes


def plan(ctx: DeployContext) -> list[Step]:
    family = ctx.names.task_family
    cur = current(ctx)
    image = ctx.image or (cur["containerDefinitions"][0]["image"] if cur else None)
    if cur is not None:
        ctx.outputs["task_definition_arn"] = cur["taskDefinitionArn"]
    if image is None:
        image = Pending("image built and pushed by `mldeploy up`")
    ctx.outputs["image"] = image
    want = desired(ctx, image)

    def apply(c: DeployContext) -> None:
        if is_pending(c.outputs["image"]):
            raise AwsError("no image to deploy", hint="run `mldeploy up` (it builds and pushes) or pass --image URI")
        c.outputs["task_definition_arn"] = register(c, c.outputs["image"])

    if cur is None:
        ctx.outputs["task_definition_arn"] = Pending("task definition revision")
        size = f"{ctx.config.aws.cpu} CPU units, {ctx.config.aws.memory} MiB, {ctx.config.image.platform}"
        return [Step("task definition", family, Action.create, [size, f"image {image}"], apply=apply)]
    changes = diff(cur, want)
    if not changes:
        return [Step("task definition", f"{family}:{cur['revision']}", Action.noop)]
    ctx.outputs["task_definition_arn"] = Pending("new task definition revision")
    return [Step("task definition", family, Action.update, changes, note=f"new revision after {cur['revision']}",
                 apply=apply)]


def deregister_all(ctx: DeployContext, family: str | None = None) -> int:
    """Deregister (and delete, where the API allows) every revision of the family; returns how many."""
    ecs = ctx.aws.ecs
    family = family or ctx.names.task_family
    arns: list[str] = []
    with aws_errors():
        for status in ("ACTIVE", "INACTIVE"):
            for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status=status):
                # familyPrefix also matches "demo-canary" etc.: keep this family only
                arns += [a for a in page["taskDefinitionArns"] if a.rsplit("/", 1)[1].rsplit(":", 1)[0] == family]
    for arn in arns:
        call(ecs.deregister_task_definition, taskDefinition=arn, missing=("ClientException",))
    for i in range(0, len(arns), 10):
        call(ecs.delete_task_definitions, taskDefinitions=arns[i:i + 10], missing=("ClientException",))
    return len(arns)
