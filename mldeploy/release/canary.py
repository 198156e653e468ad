"""``mldeploy canary --percent N`` on AWS: a second ECS service behind a second target group, weighted in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mldeploy import console
from mldeploy.errors import AwsError, NotReadyError, RolledBackError
from mldeploy.release import fleet as fl
from mldeploy.release.current import Current, load
from mldeploy.release.history import Outcome, Record, digest_of, revision_of
from mldeploy.release.transitions import CanaryMove, plan_canary

if TYPE_CHECKING:
    from mldeploy.release.context import ReleaseContext


def build_image(ctx: ReleaseContext) -> tuple[str, str | None]:
    """Build and push the current model (``mldeploy.image.api``); returns (image reference, digest)."""
    from mldeploy.image.api import build_and_push

    console.info("no --image given: building and pushing the current model")
    pushed = build_and_push(ctx.project)
    return pushed.ref, pushed.digest


def canary(ctx: ReleaseContext, percent: int, image: str | None = None, cur: Current | None = None) -> dict[str, Any]:
    """Start a canary at ``percent`` % or move the weights of the running one."""
    cur = cur or load(ctx)
    move = plan_canary(cur.state, image, percent)  # percent, "nothing deployed", "another canary active"
    if move is CanaryMove.start:
        digest = digest_of(image)
        if image is None:
            image, digest = build_image(ctx)
            plan_canary(cur.state, image, percent)  # the build may equal the stable image
        return _start(ctx, cur, image, digest, percent)
    return _shift(ctx, cur, percent)


def _start(ctx: ReleaseContext, cur: Current, image: str, digest: str | None, percent: int) -> dict[str, Any]:
    fleet = cur.fleet
    if fleet.stable_tg is None or not fleet.listeners:
        raise AwsError(f"load balancer {ctx.names.load_balancer!r} has no listener forwarding to target group "
                       f"{ctx.names.target_group!r}, so traffic cannot be split",
                       hint="run `mldeploy up` to repair the deployment, then start the canary again")
    version = ctx.config.model.version
    td = fl.register_variant(ctx, fleet, image, version)
    record = cur.history.add(Record(action="canary", version=version, image=image, digest=digest, task_definition=td,
                                    revision=revision_of(td), percent=percent,
                                    from_revision=revision_of(fleet.stable_td)), cur.records)
    console.info(f"canary {version} ({image}) as task definition revision {record.revision}")
    fl.ensure_canary_target_group(ctx, fleet)
    fl.set_weights(ctx, fleet, 0)  # attach the target group to the load balancer before ECS uses it
    desired = fl.canary_desired_count(fleet, percent)
    try:
        fl.create_canary_service(ctx, fleet, td, desired)
        fl.put_canary_alarms(ctx, fleet)
        fl.wait_canary_ready(ctx, fleet)
    except (NotReadyError, RolledBackError) as e:
        remove(ctx, fleet)
        cur.history.update(record, outcome=Outcome.failed, reason=e.message)
        raise RolledBackError(f"the canary never became healthy and was removed: {e.message}", hint=e.hint) from e
    fl.set_weights(ctx, fleet, percent)
    cur.history.update(record, outcome=Outcome.active, percent=percent)
    console.success(f"canary {version} takes {percent}% of traffic ({ctx.names.canary_service}, "
                    f"{desired} task(s)); next: `mldeploy canary --percent N`, `mldeploy promote` or "
                    "`mldeploy rollback`")
    return summary(ctx, fleet, record)


def _shift(ctx: ReleaseContext, cur: Current, percent: int) -> dict[str, Any]:
    fleet = cur.fleet
    record = cur.active_canary()
    desired = fl.canary_desired_count(fleet, percent)
    grow = fleet.canary is not None and desired > int(fleet.canary.get("desiredCount", 0))
    fl.scale_canary(ctx, fleet, desired)
    fl.ensure_canary_alarms(ctx, fleet)  # they drive the auto-rollback: never shift weight without them
    if grow:
        fl.wait_canary_ready(ctx, fleet)
    before = fleet.canary_percent
    fl.set_weights(ctx, fleet, percent)
    if record is not None:
        cur.history.update(record, percent=percent)
    console.success(f"canary weight {before}% → {percent}% ({ctx.names.canary_service}, {desired} task(s))")
    return summary(ctx, fleet, record)


def remove(ctx: ReleaseContext, fleet: fl.Fleet) -> None:
    """Weights back to 100/0 (stable only), then the canary service and its alarms go."""
    if fleet.listeners:
        fl.set_weights(ctx, fleet, None)
    # alarms first: a run dying in between leaves a canary service (a re-run sees it and finishes the removal),
    # never alarms without a canary (a re-run finds nothing to remove and they would stay forever)
    fl.delete_canary_alarms(ctx)
    fl.delete_canary_service(ctx, fleet)


def summary(ctx: ReleaseContext, fleet: fl.Fleet, record: Record | None) -> dict[str, Any]:
    """What runs now (for ``--json`` and GitHub outputs)."""
    return {
        "app": ctx.names.app, "env": ctx.names.env,
        "stable": {"service": ctx.names.service, "task_definition": fleet.stable_td,
                   "revision": revision_of(fleet.stable_td)},
        "canary": None if fleet.canary is None else {
            "service": ctx.names.canary_service, "task_definition": fleet.canary_td,
            "revision": revision_of(fleet.canary_td), "percent": fleet.canary_percent,
            "desired_count": fleet.canary.get("desiredCount")},
        "weights": fleet.weights(),
        "record": record.to_json() if record else None,
    }
