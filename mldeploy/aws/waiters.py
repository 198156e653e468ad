"""The waits a plan's ``Wait`` instructions name (``WAITERS``), on ``mldeploy.polling``.

``service_stable``: until the primary deployment is COMPLETED with every task running, with live progress; an ECS
circuit-breaker rollback raises ``RolledBackError``. ``services_inactive``: until deleted services leave DRAINING
(ECS keeps a deleted service DRAINING while its tasks stop — ``DeleteService`` in the ECS API reference), so the
target group and load balancer they used can be deleted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mldeploy.aws.clients import call
from mldeploy.errors import AwsError, NotReadyError, RolledBackError
from mldeploy.polling import PollTimeout, poll_interval, poll_until

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.ui import Ui

SKIP_WAIT_ENV = "MLDEPLOY_SKIP_HEALTH_WAIT"
"""``1`` skips waiting for healthy targets / service stability. For emulators (moto runs no tasks, so
runningCount stays 0 and targets never register); never set it against real AWS."""


def skip_health_wait() -> bool:
    return os.environ.get(SKIP_WAIT_ENV, "").lower() in ("1", "true", "yes")


def describe_service(clients: Clients, cluster: str, service: str) -> dict | None:
    """The service unless it is missing or INACTIVE."""
    found = call(clients.ecs.describe_services, cluster=cluster, services=[service], include=["TAGS"],
                 missing=("ClusterNotFoundException",))
    if not found:
        return None
    return next((s for s in found["services"] if s["status"] != "INACTIVE"), None)


def target_health(clients: Clients, tg_arn: str | None) -> dict[str, int]:
    """State → count of the targets registered in the target group."""
    if not tg_arn:
        return {}
    found = call(clients.elbv2.describe_target_health, TargetGroupArn=tg_arn, missing=("TargetGroupNotFound",))
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


def progress_line(svc: dict[str, Any], health: dict[str, int]) -> str:
    dep = primary(svc)
    return (f"rollout {dep.get('rolloutState', '?')}: {svc.get('runningCount', 0)}/{svc.get('desiredCount', 0)}"
            f" running, {svc.get('pendingCount', 0)} pending"
            + (", targets " + ", ".join(f"{v} {k}" for k, v in sorted(health.items())) if health else ""))


def is_stable(svc: dict[str, Any], task_definition: str | None) -> bool:
    dep = primary(svc)
    done = dep.get("rolloutState") == "COMPLETED" or (
        "rolloutState" not in dep and len(svc.get("deployments", [])) == 1)
    return bool(done and svc.get("runningCount", 0) == svc.get("desiredCount", 0)
                and (task_definition is None or dep.get("taskDefinition") == task_definition))


def wait_stable(clients: Clients, ui: Ui, *, timeout: float, cluster: str, service: str,
                task_definition: str | None = None, tg_arn: str | None = None) -> dict[str, Any] | None:
    """Poll until ``service`` runs ``task_definition`` (when given) with every task; returns the service."""
    if skip_health_wait():
        ui.info(f"[dim]{SKIP_WAIT_ENV}=1: not waiting for {service} to become stable (emulator)[/dim]")
        return None
    t0 = time.monotonic()
    last = {"line": "", "svc": None}
    with ui.status(f"waiting for {service} to become stable…") as status:
        def check() -> dict[str, Any] | None:
            svc = describe_service(clients, cluster, service)
            if svc is None:
                raise NotReadyError(f"service {service} disappeared while waiting")
            check_rollback(svc, task_definition)
            line = progress_line(svc, target_health(clients, tg_arn))
            if line != last["line"]:
                ui.print(f"  [dim]{time.monotonic() - t0:5.0f}s[/] {line}")
                last["line"] = line
            status.update(line)
            return svc if is_stable(svc, task_definition) else None

        try:
            return poll_until(check, timeout=timeout, interval=poll_interval(), what=f"service {service}")
        except PollTimeout as e:
            raise NotReadyError(
                f"service {service} not stable after {timeout:.0f}s: {last['line']}",
                hint="the deployment continues in AWS; follow it with `mldeploy status` and `mldeploy logs -f`, "
                     "or raise release.stability_timeout_s") from e


def wait_inactive(clients: Clients, ui: Ui, *, timeout: float, cluster: str, services: list[str]) -> None:
    """Poll until every service in ``services`` is gone or INACTIVE (deleted services drain first)."""
    def check() -> bool:
        return all(describe_service(clients, cluster, s) is None for s in services)

    try:
        poll_until(check, timeout=timeout, interval=poll_interval(), what="services draining")
    except PollTimeout as e:
        raise AwsError(f"services {', '.join(services)} still draining after {timeout:.0f}s",
                       hint="run `mldeploy down` again later") from e


WAITERS: dict[str, Callable[..., Any]] = {"service_stable": wait_stable, "services_inactive": wait_inactive}
