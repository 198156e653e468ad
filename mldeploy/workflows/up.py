"""``mldeploy up --target aws``: build + push, plan, apply, wait; returns the result (the CLI renders it)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mldeploy.aws.clients import COUNTER
from mldeploy.aws.context import DeployContext
from mldeploy.aws.plan import Action
from mldeploy.errors import AwsError

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.ui import Ui


def build_image(ctx: DeployContext) -> str:
    """Build and push the image (ensuring the ECR repository first); returns the image reference."""
    from mldeploy.aws.executor import apply
    from mldeploy.aws.plan import Plan
    from mldeploy.aws.resources import ecr

    if ctx.uses_ecr:
        apply(Plan(ecr.plan(ctx)), ctx)
    try:
        from mldeploy.image.api import build_and_push
    except ImportError as e:
        raise AwsError("image build/push is not available in this installation",
                       hint="push an image yourself and run `mldeploy up --image URI`") from e
    pushed = build_and_push(ctx.project)
    return pushed.ref  # repository@sha256:… — a task definition names immutable content


def up_aws(project: Project, aws: Clients, ui: Ui, *, wait: bool = True, image: str | None = None,
           force_unlock: bool = False) -> dict[str, Any]:
    """Build + push (unless ``image``), plan, apply, wait for stability; prints the URL.

    A plan with changes is applied under the app/env deployment lock (the one ``canary``/``promote`` take),
    re-planned once the lock is held; a no-op ``up`` takes no lock and makes no mutating call.
    """
    from mldeploy.aws import executor, planner, waiters
    from mldeploy.aws.resources import alb
    t0 = time.monotonic()
    ctx = DeployContext(project=project, aws=aws, image=image)
    with ui.group("image"):
        if image is None:
            ctx.image = build_image(ctx)
        ui.info(f"image: {ctx.image}")
    with ui.group("plan"):
        plan = planner.make_plan(ctx)
        plan.render()
    applied: list[Any] = []
    if plan.changes:
        from mldeploy.release import current
        from mldeploy.release.context import ReleaseContext
        from mldeploy.release.lock import DeployLock, sigterm_as_interrupt

        with sigterm_as_interrupt(), DeployLock(ReleaseContext(project, _clients=ctx.aws), "up",
                                                force_unlock=force_unlock):
            plan = planner.make_plan(ctx)  # the state may have moved while we waited for the lock
            with ui.group("apply"):
                applied = executor.apply(plan, ctx)
            current.sync(project)  # record the deployment in the durable history
    if not applied:
        ui.success("nothing to change")
    url = alb.url(ctx)
    svc_changed = any(s.kind in ("ecs service", "task definition") and s.action is not Action.noop
                      for s in plan.steps)
    if wait:
        with ui.group("rollout"):
            waiters.wait_stable(ctx, task_definition=ctx.outputs.get("task_definition_arn"))
            ui.success("service is stable")
    elif svc_changed:
        ui.info("not waiting for the rollout (--no-wait); follow it with `mldeploy status`")
    result = {"url": url, "image": ctx.outputs.get("image"), "task_definition": ctx.outputs.get("task_definition_arn"),
              "changes": len(plan.changes), "applied": applied, "seconds": round(time.monotonic() - t0, 2),
              "api_calls": COUNTER.total, "mutating_api_calls": COUNTER.mutating}
    ui.success(f"deployed [bold]{project.names.base}[/]: {url}")
    return result
