"""The waits a plan's ``Wait`` instructions name (``WAITERS``), on ``mldeploy.polling``.

``service_stable``: until the primary deployment is COMPLETED with every task running, with live progress; an ECS
circuit-breaker or deployment-alarm rollback raises ``RolledBackError``. The rollout's status comes from the ECS
service-deployments API (``ListServiceDeployments``: ``SUCCESSFUL``, ``ROLLBACK_SUCCESSFUL``…, authoritative even
after the failed deployment left ``deployments[]``) where it answers, else from ``deployments[]`` (emulators).
``services_inactive``: until deleted services leave DRAINING
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


ROLLBACK_HINT = ("check `mldeploy logs --since 30m` for container errors (crash on start, /ready failing, out of "
                 "memory) and the alarms in `mldeploy status`; the previous version keeps serving")


def _failed(svc: dict[str, Any], reason: str, first: bool) -> RolledBackError:
    events = [e.get("message", "") for e in svc.get("events", [])[:3]]
    what = ("failed (ECS circuit breaker or deployment alarm; a first deployment, so there is nothing to roll back "
            "to)") if first else "failed and was rolled back by ECS (circuit breaker or deployment alarm)"
    return RolledBackError(
        f"the deployment of {svc.get('serviceName')} {what}: {reason}"
        + ("\n  recent events:\n    " + "\n    ".join(events) if events else ""),
        hint=ROLLBACK_HINT if not first else ROLLBACK_HINT.replace("the previous version keeps serving",
                                                                   "no earlier version serves traffic"))


def check_rollback(svc: dict[str, Any], task_definition: str | None) -> None:
    """Raise RolledBackError when the circuit breaker failed or rolled back our deployment (``deployments[]``)."""
    dep = primary(svc)
    failed = [d for d in svc.get("deployments", []) if d.get("rolloutState") == "FAILED"]
    rolled_back = task_definition and dep.get("taskDefinition") and dep["taskDefinition"] != task_definition \
        and any(d.get("taskDefinition") == task_definition for d in failed)
    if dep.get("rolloutState") == "FAILED" or rolled_back or (failed and not dep):
        reason = (failed[0] if failed else dep).get("rolloutStateReason") or "deployment failed"
        raise _failed(svc, reason, first=len(svc.get("deployments", [])) == 1 and not rolled_back)


# ECS ServiceDeploymentStatus values that mean our deployment failed (botocore ecs service-2.json)
FAILED_STATES = ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")


class ServiceDeployments:
    """The newest ECS service deployment of a service and the task definition it rolls out
    (``ListServiceDeployments`` + ``DescribeServiceRevisions``), or None where the API does not answer (the moto
    emulator answers HTTP 500, an older endpoint, a policy without ``ecs:ListServiceDeployments``): the caller then
    reads ``deployments[]``. Best effort by design: after ``GIVE_UP`` failed reads in a row it stops asking."""

    GIVE_UP = 2

    def __init__(self, clients: Clients, cluster: str, service: str) -> None:
        self.clients, self.cluster, self.service = clients, cluster, service
        self.failures = 0
        self._client: Any = None
        self._revisions: dict[str, str | None] = {}

    @property
    def available(self) -> bool:
        return self.failures < self.GIVE_UP

    def client(self) -> Any:
        """An ECS client with one retry only (an emulator's 500 would otherwise cost botocore's full backoff on
        every poll), carrying the same hooks as ``clients``' own; ``clients.ecs`` where there is no session."""
        if self._client is None:
            session = getattr(self.clients, "session", None)
            if session is None:
                self._client = self.clients.get("ecs")
            else:
                import functools

                from botocore.config import Config

                from mldeploy.aws.clients import _api_hook

                client = session.client("ecs", region_name=self.clients.region, config=Config(
                    retries={"mode": "standard", "max_attempts": 2}, connect_timeout=10, read_timeout=30,
                    user_agent_extra="mldeploy"))
                client.meta.events.register("before-call.*.*",
                                            functools.partial(_api_hook, counter=self.clients.counter))
                for event, handler in getattr(self.clients, "hooks", ()):
                    client.meta.events.register(event, handler)
                self._client = client
        return self._client

    def latest(self) -> dict[str, Any] | None:
        """The newest ServiceDeploymentBrief plus ``taskDefinition`` (its target revision's), or None."""
        if not self.available:
            return None
        try:
            ecs = self.client()
            found = call(ecs.list_service_deployments, cluster=self.cluster, service=self.service)
            briefs = (found or {}).get("serviceDeployments") or []
            if not briefs:
                self.failures = 0
                return None
            newest = max(briefs, key=lambda b: str(b.get("createdAt", "")))
            arn = newest.get("targetServiceRevisionArn")
            if arn and arn not in self._revisions:
                got = call(ecs.describe_service_revisions, serviceRevisionArns=[arn])
                revs = (got or {}).get("serviceRevisions") or [{}]
                self._revisions[arn] = revs[0].get("taskDefinition")
        except Exception:  # noqa: BLE001 (unimplemented, denied, throttled: deployments[] answers instead)
            self.failures += 1
            return None
        self.failures = 0
        return {**newest, "taskDefinition": self._revisions.get(arn) if arn else None}

    def reason(self, brief: dict[str, Any]) -> tuple[str, bool]:
        """Why the deployment failed (triggered alarms, circuit breaker, ECS's reason) and whether it was a first
        deployment (no source revision to roll back to)."""
        parts, first = [], False
        try:
            got = call(self.client().describe_service_deployments,
                       serviceDeploymentArns=[brief["serviceDeploymentArn"]])
            full = ((got or {}).get("serviceDeployments") or [{}])[0]
        except Exception:  # noqa: BLE001 (the reason is best effort; the failure itself is known)
            full = {}
        triggered = (full.get("alarms") or {}).get("triggeredAlarmNames") or []
        if triggered:
            parts.append("alarm " + ", ".join(triggered) + " went into ALARM")
        breaker = full.get("deploymentCircuitBreaker") or {}
        if breaker.get("status") == "TRIGGERED":
            parts.append(f"circuit breaker: {breaker.get('failureCount')} of {breaker.get('threshold')} tasks failed")
        text = (full.get("rollback") or {}).get("reason") or full.get("statusReason") or brief.get("statusReason")
        if text:
            parts.append(str(text))
        if full:
            first = not full.get("sourceServiceRevisions")
        return "; ".join(parts) or str(brief.get("status")), first


def check_deployment(svc: dict[str, Any], dep: dict[str, Any] | None, task_definition: str | None,
                     deployments: ServiceDeployments) -> bool | None:
    """From the service-deployments API: raise RolledBackError when our deployment failed; True when it
    SUCCEEDED; None when the API says nothing about our task definition (use ``deployments[]``)."""
    if dep is None or (task_definition is not None and dep.get("taskDefinition") != task_definition):
        return None
    status = dep.get("status")
    if status in FAILED_STATES:
        reason, first = deployments.reason(dep)
        raise _failed(svc, f"{status}: {reason}", first=first)
    return True if status == "SUCCESSFUL" else None


def progress_line(svc: dict[str, Any], health: dict[str, int], deployment: dict[str, Any] | None = None) -> str:
    dep = primary(svc)
    state = deployment.get("status") if deployment else dep.get("rolloutState", "?")
    return (f"rollout {state}: {svc.get('runningCount', 0)}/{svc.get('desiredCount', 0)}"
            f" running, {svc.get('pendingCount', 0)} pending"
            + (", targets " + ", ".join(f"{v} {k}" for k, v in sorted(health.items())) if health else ""))


def is_stable(svc: dict[str, Any], task_definition: str | None, succeeded: bool | None = None) -> bool:
    """Every task running ``task_definition``: the service deployment SUCCESSFUL (``succeeded``, from the
    service-deployments API) or, without it, the primary deployment COMPLETED."""
    dep = primary(svc)
    done = succeeded or dep.get("rolloutState") == "COMPLETED" or (
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
    deployments = ServiceDeployments(clients, cluster, service)
    with ui.status(f"waiting for {service} to become stable…") as status:
        def check() -> dict[str, Any] | None:
            svc = describe_service(clients, cluster, service)
            if svc is None:
                raise NotReadyError(f"service {service} disappeared while waiting")
            dep = deployments.latest()
            succeeded = check_deployment(svc, dep, task_definition, deployments)
            check_rollback(svc, task_definition)
            ours = dep if dep and task_definition in (None, dep.get("taskDefinition")) else None
            line = progress_line(svc, target_health(clients, tg_arn), ours)
            if line != last["line"]:
                ui.print(f"  [dim]{time.monotonic() - t0:5.0f}s[/] {line}")
                last["line"] = line
            status.update(line)
            return svc if is_stable(svc, task_definition, succeeded) else None

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


# ------------------------------------------------------------------------------------------ ACM certificates


def _certificate(clients: Clients, arn: str) -> dict[str, Any]:
    return call(clients.acm.describe_certificate, CertificateArn=arn)["Certificate"]


def wait_certificate_record(clients: Clients, ui: Ui, *, timeout: float, certificate_arn: str) -> None:
    """Until ACM publishes the DNS-validation CNAME of a certificate just requested (DescribeCertificate answers
    ``DomainValidationOptions[].ResourceRecord`` a few seconds after RequestCertificate)."""
    def check() -> bool:
        options = _certificate(clients, certificate_arn).get("DomainValidationOptions") or []
        return bool(options) and all(o.get("ResourceRecord") for o in options)

    try:
        poll_until(check, timeout=timeout, interval=poll_interval(), what="the certificate's validation record")
    except PollTimeout as e:
        raise NotReadyError(f"ACM published no DNS validation record for {certificate_arn} within {timeout:.0f}s",
                            hint="run the command again: it continues with the same certificate") from e


def wait_certificate_issued(clients: Clients, ui: Ui, *, timeout: float, certificate_arn: str) -> None:
    """Until ACM issued the certificate (status ISSUED); a failed or timed-out validation raises."""
    t0 = time.monotonic()
    with ui.status("waiting for ACM to validate the certificate (DNS)…") as status:
        def check() -> bool:
            cert = _certificate(clients, certificate_arn)
            state = cert.get("Status")
            if state in ("FAILED", "VALIDATION_TIMED_OUT", "REVOKED", "EXPIRED", "INACTIVE"):
                raise AwsError(f"ACM certificate {certificate_arn} is {state}"
                               + (f": {cert['FailureReason']}" if cert.get("FailureReason") else ""),
                               hint="check the validation CNAME in the hosted zone (is the zone delegated to "
                                    "Route 53?); `mldeploy down` then `up` requests a new certificate")
            status.update(f"certificate {state} ({time.monotonic() - t0:.0f}s)")
            return state == "ISSUED"

        try:
            poll_until(check, timeout=timeout, interval=poll_interval(), what="certificate validation")
        except PollTimeout as e:
            raise NotReadyError(
                f"ACM certificate {certificate_arn} not issued after {timeout:.0f}s (DNS validation pending)",
                hint="ACM keeps validating for up to 72 hours: check that the domain's name servers are Route 53's, "
                     "then run `mldeploy up` again (it waits for the same certificate)") from e


WAITERS["certificate_validation_record"] = wait_certificate_record
WAITERS["certificate_issued"] = wait_certificate_issued
