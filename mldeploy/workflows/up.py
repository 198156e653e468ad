"""``mldeploy up --target aws``: build + push, plan, apply under the deployment lock, wait for the rollout."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mldeploy.aws.engine.executor import Executor
from mldeploy.aws.engine.model import Action
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.render import plan_lines
from mldeploy.aws.engine.spec import StackSpec
from mldeploy.aws.resources import ecr, load_balancer
from mldeploy.cost.budget import enforce
from mldeploy.errors import AwsError
from mldeploy.workflows.plan import enforce_shadow_memory, plan_aws

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.ui import Ui


def build_image(project: Project, aws: Clients, ui: Ui, remote: Remote) -> str:
    """Ensure the ECR repository, then build and push; returns ``repository@sha256:…`` (immutable content)."""
    spec = StackSpec.of(project, remote)
    if spec.uses_ecr:
        Executor(aws, ui).apply(ecr.plan(spec, remote, {}))
        remote.forget()
    try:
        from mldeploy.image.api import build_and_push
    except ImportError as e:
        raise AwsError("image build/push is not available in this installation",
                       hint="push an image yourself and run `mldeploy up --image URI`") from e
    return build_and_push(project, aws=aws, ui=ui).ref


def up_aws(project: Project, aws: Clients, ui: Ui, *, wait: bool = True, image: str | None = None,
           force_unlock: bool = False, ignore_budget: bool = False) -> dict[str, Any]:
    """Build + push (unless ``image``), plan, apply, wait for stability; returns what was deployed.

    A plan with changes is applied under the app/env deployment lock (the one ``canary``/``promote`` take),
    re-planned once the lock is held; a no-op ``up`` takes no lock and makes no mutating call.
    """
    t0 = time.monotonic()
    remote = Remote(aws)
    with ui.group("image"):
        if image is None:
            image = build_image(project, aws, ui, remote)
        ui.info(f"image: {image}")
    uploaded = None
    if project.config.model.store == "s3":  # the artifact goes to S3 before the task definition points at it
        from mldeploy.aws.model_upload import publish

        with ui.group("model artifact"):
            uploaded = publish(project, aws, ui, remote)
    with ui.group("plan"):
        planned = plan_aws(project, aws, image=image, remote=remote)
        for line in plan_lines(planned.plan):
            ui.print(line)
    enforce_shadow_memory(planned, ui)  # a shadow revision registered again: exit 3 as `canary --shadow`
    enforce((planned.plan.estimate or {}).get("budget"), ignore=ignore_budget)  # cost.budget_monthly: exit 9
    executor = Executor(aws, ui)
    applied: list[dict[str, Any]] = []
    if planned.plan.changes:
        from mldeploy.release.lock import DeployLock, sigterm_as_interrupt
        from mldeploy.workflows.release import record_up

        with sigterm_as_interrupt(), DeployLock.for_project(project, aws, "up", force_unlock=force_unlock):
            remote.forget()  # the state may have moved while we waited for the lock
            planned = plan_aws(project, aws, image=image, remote=remote)
            enforce_shadow_memory(planned)
            enforce((planned.plan.estimate or {}).get("budget"), ignore=ignore_budget)
            with ui.group("apply"):
                applied = executor.apply(planned.plan)
            record_up(project, aws, ui)  # the deployment goes into the durable history
    if not applied:
        ui.success("nothing to change")
    known = {k: executor.resolve(v) for k, v in planned.known.items()}
    url = load_balancer.url(planned.spec, known)
    service_changed = any(s.kind in ("ecs service", "task definition") and s.action is not Action.noop
                          for s in planned.plan.steps)
    if wait:
        from mldeploy.aws.waiters import deploy_timeout_s, wait_stable

        with ui.group("rollout"):  # live progress; past aws.deploy_timeout_s exit 8, Ctrl-C 130: both say what runs
            wait_stable(aws, ui, timeout=deploy_timeout_s(project.config), cluster=project.names.cluster,
                        service=project.names.service, task_definition=known.get("task_definition_arn"),
                        tg_arn=known.get("tg_arn"))
            ui.success("service is stable")
    elif service_changed:
        ui.info("not waiting for the rollout (--no-wait); follow it with `mldeploy status`")
    plain = "" if planned.spec.https else " [yellow](plain HTTP: set aws.domain for HTTPS)[/]"
    ui.success(f"deployed [bold]{project.names.base}[/]: {url}{plain}")
    return {"url": url, "image": image, "task_definition": known.get("task_definition_arn"),
            "changes": len(planned.plan.changes), "applied": applied,
            "model_upload": uploaded.to_dict() if uploaded else None, "seconds": round(time.monotonic() - t0, 2),
            "api_calls": aws.counter.total, "mutating_api_calls": aws.counter.mutating}
