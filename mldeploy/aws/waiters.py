"""Wait for an ECS service to become stable, with live progress; detect circuit-breaker rollbacks."""

from __future__ import annotations

import os
import time
from typing import Any

from mldeploy import console
from mldeploy.aws.clients import call
from mldeploy.aws.context import DeployContext
from mldeploy.errors import NotReadyError, RolledBackError


def poll_interval() -> float:
    return float(os.environ.get("MLDEPLOY_POLL_S") or 10)


def target_health(ctx: DeployContext, tg_arn: str | None) -> dict[str, int]:
    """State → count of the targets registered in the target group."""
    if not tg_arn or str(tg_arn).startswith("(known"):
        return {}
    found = call(ctx.aws.elbv2.describe_target_health, TargetGroupArn=tg_arn, missing=("TargetGroupNotFound",))
    counts: dict[str, int] = {}
    for t in (found or {}).get("TargetHealthDescriptions", []):
        state = t.get("TargetHealth", {}).get("State", "unknown")
        counts[state] = counts.get(state, 0) + 1
    return counts


def primary(svc: dict[str, Any]) -> dict[str, Any]:
    return next((d for d in svc.get("deployments", []) if d.get("status") == "PRIMARY"), {})


def check_rollback(svc: dict[str, Any], task_definition: str | None) -> None:
    """Raise RolledBackError when the circuit breaker failed or rolled back our deployment."""
    dep = primary(svc)
    failed = [d for d in svc.get("deployments", []) if d.get("rolloutState") == "FAILED"]
    rolled_back = task_definition and dep.get("taskDefinition") and dep["taskDefinition"] != task_definition \
        and any(d.get("taskDefinition") == task_definition for d in failed)
    if dep.get("rolloutState") == "FAILED" or rolled_back or (failed and not dep):
        reason = (failed[0] if failed else dep).get("rolloutStateReason") or "deployment failed"
        events = [e.get("message", "") for e in svc.get("events", [])[:3]]
        raise RolledBackError(
            f"the deployment of {svc.get('serviceName')} failed and was rolled back by the ECS circuit breaker: "
            f"{reason}" + ("\n  recent events:\n    " + "\n    ".join(events) if events else ""),
            hint="check `mldeploy logs --since 30m` for container errors (crash on start, /ready failing, "
                 "out of memory); the previous version keeps serving")


def wait_stable(ctx: DeployContext, service_name: str | None = None, timeout: float | None = None,
                task_definition: str | None = None, tg_arn: str | None = None) -> dict[str, Any]:
    """Poll until the primary deployment is COMPLETED and running == desired; returns the service."""
    from mldeploy.aws.resources import service as service_mod

    timeout = timeout or ctx.config.release.stability_timeout_s
    deadline = time.monotonic() + timeout
    last = ""
    t0 = time.monotonic()
    with console.console.status("waiting for the service to become stable…") as status:
        while True:
            svc = service_mod.describe(ctx, service_name)
            if svc is None:
                raise NotReadyError(f"service {service_name or ctx.names.service} disappeared while waiting")
            check_rollback(svc, task_definition)
            dep = primary(svc)
            health = target_health(ctx, tg_arn or ctx.outputs.get("tg_arn"))
            line = (f"rollout {dep.get('rolloutState', '?')}: {svc.get('runningCount', 0)}/{svc.get('desiredCount', 0)}"
                    f" running, {svc.get('pendingCount', 0)} pending"
                    + (", targets " + ", ".join(f"{v} {k}" for k, v in sorted(health.items())) if health else ""))
            if line != last:
                console.console.print(f"  [dim]{time.monotonic() - t0:5.0f}s[/] {line}")
                last = line
            status.update(line)
            done = dep.get("rolloutState") == "COMPLETED" or (
                "rolloutState" not in dep and len(svc.get("deployments", [])) == 1)
            if done and svc.get("runningCount", 0) == svc.get("desiredCount", 0) and \
                    (task_definition is None or dep.get("taskDefinition") == task_definition):
                return svc
            if time.monotonic() > deadline:
                raise NotReadyError(
                    f"service {svc.get('serviceName')} not stable after {timeout:.0f}s: {line}",
                    hint="the deployment continues in AWS; follow it with `mldeploy status` and `mldeploy logs -f`, "
                         "or raise release.stability_timeout_s")
            time.sleep(poll_interval())
