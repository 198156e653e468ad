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
from mldeploy.errors import AwsError, ExitCode, MldeployError, NotReadyError, RolledBackError, RolloutTimeoutError
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


def _counts(svc: dict[str, Any]) -> tuple[int, int, int, int]:
    """Running, pending and desired tasks of the primary (newest) deployment, and tasks of older deployments still
    running. botocore ecs: ``Deployment.runningCount`` "tasks in the deployment that are in the RUNNING status",
    ``Service.runningCount`` "tasks in the cluster that are in the RUNNING state" (every deployment's)."""
    dep = primary(svc)
    running = int(dep.get("runningCount", svc.get("runningCount", 0)) or 0)
    pending = int(dep.get("pendingCount", svc.get("pendingCount", 0)) or 0)
    desired = int(dep.get("desiredCount", svc.get("desiredCount", 0)) or 0)
    older = max(0, int(svc.get("runningCount", 0) or 0) - running) if "runningCount" in dep else 0
    return running, pending, desired, older


def progress_line(svc: dict[str, Any], health: dict[str, int], deployment: dict[str, Any] | None = None) -> str:
    """``rollout IN_PROGRESS: 1/2 running, 1 pending, 2 of the previous deployment running, targets 1 healthy``."""
    dep = primary(svc)
    state = deployment.get("status") if deployment else dep.get("rolloutState", "?")
    running, pending, desired, older = _counts(svc)
    return (f"rollout {state}: {running}/{desired} running, {pending} pending"
            + (f", {older} of the previous deployment running" if older else "")
            + (", targets " + ", ".join(f"{v} {k}" for k, v in sorted(health.items())) if health else ""))


def is_stable(svc: dict[str, Any], task_definition: str | None, succeeded: bool | None = None) -> bool:
    """Every task running ``task_definition``: the service deployment SUCCESSFUL (``succeeded``, from the
    service-deployments API) or, without it, the primary deployment COMPLETED."""
    dep = primary(svc)
    done = succeeded or dep.get("rolloutState") == "COMPLETED" or (
        "rolloutState" not in dep and len(svc.get("deployments", [])) == 1)
    return bool(done and svc.get("runningCount", 0) == svc.get("desiredCount", 0)
                and (task_definition is None or dep.get("taskDefinition") == task_definition))


EVENTS_KEPT = 5
"""Service events a timeout or interrupt report repeats (ECS keeps the newest 100 per service)."""


def _older(a: Any, b: Any) -> bool:
    """``a`` before ``b`` when both are datetimes (boto3 parses ``createdAt``); otherwise unknown: False."""
    from datetime import datetime

    return isinstance(a, datetime) and isinstance(b, datetime) and a < b


def _clock_time(value: Any) -> str:
    from datetime import datetime

    return value.strftime("%H:%M:%S") + " " if isinstance(value, datetime) else ""


class RolloutWatch:
    """What a rollout wait knows about its service: the state line, and the ECS service events (DescribeServices
    ``events``, newest first) not shown yet. Events older than the deployment being watched are not news; ECS repeats
    some messages verbatim (``unable to place a task…``) every few minutes: each text is shown once."""

    def __init__(self, service: str, cluster: str) -> None:
        self.service, self.cluster = service, cluster
        self.svc: dict[str, Any] | None = None
        self.deployment: dict[str, Any] | None = None
        self.line = "rollout: not read yet"
        self.recent: list[str] = []
        self._seen: set[str] = set()
        self._texts: set[str] = set()

    def observe(self, svc: dict[str, Any], health: dict[str, int],
                deployment: dict[str, Any] | None = None) -> list[str]:
        """Take a new describe of the service; returns the messages of events not shown before, oldest first."""
        first = self.svc is None
        self.svc, self.deployment = svc, deployment
        self.line = progress_line(svc, health, deployment)
        # botocore ecs Service.events: "A maximum of 100 of the latest events are displayed" (ServiceEvent: id,
        # createdAt, message); ECS lists them newest first, sorted here by createdAt to be sure
        events = sorted(svc.get("events") or [], key=lambda e: str(e.get("createdAt", "")), reverse=True)
        # Deployment.createdAt: "the time when the service deployment was created"
        cutoff = primary(svc).get("createdAt") if first else None
        if first and cutoff is None:  # no deployment time to compare with: the newest few give the context
            self._seen.update(self._key(e) for e in events[3:])
        new = []
        for event in reversed(events):
            key = self._key(event)
            if key in self._seen:
                continue
            self._seen.add(key)
            text = str(event.get("message", "")).strip()
            if not text or text in self._texts or _older(event.get("createdAt"), cutoff):
                continue
            self._texts.add(text)
            new.append(text)
            self.recent = (self.recent + [_clock_time(event.get("createdAt")) + text])[-EVENTS_KEPT:]
        return new

    @staticmethod
    def _key(event: dict[str, Any]) -> str:
        return str(event.get("id") or f"{event.get('createdAt')}|{event.get('message')}")

    def state(self, *, where: bool = True) -> str:
        """``service app (cluster app): deployment ecs-svc/1 IN_PROGRESS, task definition app:3, 0/2 running, …``
        (without ``where``: from ``deployment``)."""
        head = f"service {self.service} (cluster {self.cluster}): " if where else ""
        if self.svc is None:
            return f"{head}not read yet"
        dep = primary(self.svc)
        deployment = self.deployment or {}
        name = deployment.get("serviceDeploymentArn", "").rsplit("/", 1)[-1] or dep.get("id") or "?"
        state = deployment.get("status") or dep.get("rolloutState") or "?"
        td = str(dep.get("taskDefinition") or "?").rsplit("/", 1)[-1]
        running, pending, desired, older = _counts(self.svc)
        return (f"{head}deployment {name} {state}, task definition {td}, {running}/{desired} running, "
                f"{pending} pending" + (f", {older} of the previous deployment still running" if older else ""))

    def events_text(self) -> str:
        if not self.recent:
            return "\n  no service events since the deployment began"
        return "\n  last service events:\n    " + "\n    ".join(self.recent)


TIMEOUT_HINT = ("the rollout continues on AWS (the previous tasks keep serving until the new ones are healthy): "
                "follow it with `mldeploy status` and `mldeploy logs -f`; `mldeploy up` again waits for it (it "
                "converges on what exists); `mldeploy rollback` undoes it; raise aws.deploy_timeout_s for slower "
                "rollouts")
INTERRUPT_HINT = ("nothing is lost: ECS carries on with the rollout without mldeploy; follow it with `mldeploy status` "
                  "and `mldeploy logs -f`, or run the same command again (it continues from what exists; `mldeploy "
                  "up` converges and waits again)")


def deploy_timeout_s(config: Any) -> int:
    """How long a rollout wait lasts: ``aws.deploy_timeout_s``, else ``release.stability_timeout_s`` (900)."""
    return int(config.aws.deploy_timeout_s or config.release.stability_timeout_s)


def wait_stable(clients: Clients, ui: Ui, *, timeout: float, cluster: str, service: str,
                task_definition: str | None = None, tg_arn: str | None = None,
                clock: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None,
                ) -> dict[str, Any] | None:
    """Poll until ``service`` runs ``task_definition`` (when given) with every task; returns the service.

    Shows live progress (``Ui.progress``: state, counts, new service events). Past ``timeout``:
    ``RolloutTimeoutError`` (exit 8) with the deployment's state and the last events; Ctrl-C: exit 130 saying what
    still runs on AWS. ``clock``/``sleep``: test seams (a fake clock)."""
    if skip_health_wait():
        ui.info(f"[dim]{SKIP_WAIT_ENV}=1: not waiting for {service} to become stable (emulator)[/dim]")
        return None
    watch = RolloutWatch(service, cluster)
    deployments = ServiceDeployments(clients, cluster, service)
    with ui.progress(f"waiting for the rollout of {service} (up to {timeout:.0f}s)…", clock=clock) as view:
        def check() -> dict[str, Any] | None:
            svc = describe_service(clients, cluster, service)
            if svc is None:
                raise NotReadyError(f"service {service} disappeared while waiting")
            dep = deployments.latest()
            succeeded = check_deployment(svc, dep, task_definition, deployments)
            ours = dep if dep and task_definition in (None, dep.get("taskDefinition")) else None
            for text in watch.observe(svc, target_health(clients, tg_arn), ours):
                view.event(text)
            view.update(watch.line)
            check_rollback(svc, task_definition)
            return svc if is_stable(svc, task_definition, succeeded) else None

        try:
            return poll_until(check, timeout=timeout, interval=poll_interval(), what=f"service {service}",
                              clock=clock, sleep=sleep)
        except PollTimeout as e:
            raise RolloutTimeoutError(
                f"service {service} (cluster {cluster}) not stable after {timeout:.0f}s (aws.deploy_timeout_s): "
                f"{watch.state(where=False)}"
                + watch.events_text(), hint=TIMEOUT_HINT) from e
        except KeyboardInterrupt as e:
            raise MldeployError(
                f"interrupted after {view.elapsed:.0f}s waiting for the rollout of {service}; still running on AWS: "
                f"{watch.state()}" + (watch.events_text() if watch.recent else ""),
                hint=INTERRUPT_HINT, exit_code=ExitCode.INTERRUPTED) from e


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
