"""AWS as a ``ReleaseTarget``: a second ECS service (``<base>-canary``) behind a second target group, weighted in
on the ALB listener's forward action. Refs are task-definition ARNs.

Reads go through a ``Remote`` (``aws_read.read_fleet``); every change is a list of ``Step``s (``aws_plans``) run
by the engine's ``Executor``, and each ``plan_*`` method returns those steps without applying them (for
``--plan``). A run killed after any call converges when re-run: every plan is computed from what exists.

Trade-off (decided): the canary's *task definition is a copy of the one the stable service runs*, with only the
image and model version replaced (``aws_plans.task_definition``), as before the engine; its target group, service
and alarms come from the resource modules' canary role, placed in the stable service's network (``aws_plans.seed``).
A canary compares two models: a CPU, memory, environment or secret difference would be measured by its alarms as
if the model caused it, and refusing on any stable drift instead would refuse every canary (the version bump a
canary needs is itself a task-definition change). Configuration changes go through ``mldeploy up`` (``plan`` shows
them). Switching to config-derived canaries is one call: ``task_definition.plan(spec.as_role("canary", image=…,
version=…), remote, known)`` in ``plan_prepare``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mldeploy.aws.engine.model import Step, Wait
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec
from mldeploy.aws.resources import alarms, ecr, listener, service, target_group
from mldeploy.errors import AwsError, ExitCode, MldeployError
from mldeploy.release.history import Record, revision_of
from mldeploy.release.state import TransitionError
from mldeploy.release.targets import aws_plans as plans
from mldeploy.release.targets.aws_read import Fleet, read_fleet, td_image, td_version
from mldeploy.release.targets.base import Deployable, Snapshot

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.ui import Ui

TD_KEY = "canary.task_definition_arn"


class AwsTarget:
    """Release operations on the app/env's ECS services, target groups, listener weights and canary alarms."""

    observable = True
    shift_records = False
    earlier: str

    def __init__(self, project: Project, clients: Clients, ui: Ui, *, remote: Any = None,
                 executor: Any = None) -> None:
        self.project = project
        self.clients = clients
        self.ui = ui
        self.remote = remote if remote is not None else Remote(clients)
        self.spec = StackSpec.of(project, self.remote)
        self.canary_spec = self.spec.as_role("canary")
        self.names = project.names
        self.stable_name = self.names.service
        self.canary_name = self.names.canary_service
        self.earlier = f"version of {self.names.base}"
        self._executor = executor  # tests: a fake that records applied steps

    # ------------------------------------------------------------------------------------------- reading

    def fleet(self) -> Fleet:
        return read_fleet(self.names, self.remote)

    def snapshot(self) -> Snapshot:
        self.remote.forget()
        fleet = self.fleet()
        return Snapshot(
            label=f"{self.names.base} (cluster {fleet.cluster})", stable=fleet.stable_td, canary=fleet.canary_td,
            stable_image=td_image(self.remote, fleet, fleet.stable_td) if fleet.stable_td else None,
            canary_image=td_image(self.remote, fleet, fleet.canary_td) if fleet.canary_td else None,
            canary_percent=fleet.canary_percent,
            canary_count=int(fleet.canary.get("desiredCount", 0)) if fleet.canary else None,
            weights=fleet.weights(), detail=fleet)

    def ref_of(self, record: Record) -> str | None:
        return record.task_definition

    def record_fields(self, ref: str | None) -> dict[str, Any]:
        return {"task_definition": ref, "revision": revision_of(ref)}

    def describe(self, ref: str) -> Deployable:
        fleet = self.fleet()
        return Deployable(version=td_version(self.remote, fleet, ref), image=td_image(self.remote, fleet, ref))

    def what(self, ref: str | None) -> str:
        return f"task definition revision {revision_of(ref)}"

    def resolve(self, to: str) -> Record | None:
        return None

    def unknown(self, to: str, records: list[Record]) -> TransitionError:
        known = sorted({f"{r.version} (rev {r.revision})" for r in records if r.task_definition})
        return TransitionError(f"no deployment of {self.names.base} with version or revision {to!r} in the history",
                               hint="known: " + (", ".join(known) or "none") + " — see `mldeploy history`")

    def alarm_names(self) -> list[str]:
        return alarms.canary_alarm_names(self.spec)

    def firing(self, names: list[str]) -> list[tuple[str, str]]:
        return alarms.firing(self.remote, names)

    # ------------------------------------------------------------------------------------------ planning

    def _require_listener(self, fleet: Fleet) -> None:
        if fleet.stable_tg is None or not fleet.listeners:
            raise AwsError(f"load balancer {self.names.load_balancer!r} has no listener forwarding to target group "
                           f"{self.names.target_group!r}, so traffic cannot be split",
                           hint="run `mldeploy up` to repair the deployment, then start the canary again")

    def plan_prepare(self, snap: Snapshot, image: str, version: str, known: Known) -> list[Step]:
        """The canary's task definition (reused when a killed run registered it already)."""
        fleet: Fleet = snap.detail
        self._require_listener(fleet)
        spec = self.canary_spec.as_role("canary", image=image, version=version)
        # the canary's image gets its keep- tag too, so the ECR lifecycle policy can never expire it
        return ecr.keep(spec, self.remote, known, image) + plans.task_definition(spec, fleet, self.remote, known)

    def plan_start(self, snap: Snapshot, percent: int, known: Known) -> list[Step]:
        """Canary TG → weights 0 (attach it before ECS uses it) → service → alarms (fresh) → wait.

        The weights N follow once the canary is healthy (``plan_weights``, planned from the weights 0 state).
        """
        fleet: Fleet = snap.detail
        known.update({k: v for k, v in plans.seed(fleet).items() if k not in known})
        spec = self.canary_spec.as_role("canary", desired_count=fleet.canary_count(percent))
        steps = target_group.plan(spec, self.remote, known)
        steps += listener.plan_weights(spec, self.remote, known, 0)
        steps += service.plan(spec, self.remote, known)
        steps += alarms.plan(spec, self.remote, known)
        return steps + [plans.waiting(spec, service.wait_stable(spec, known))]

    def plan_weights(self, percent: int | None) -> list[Step]:
        """The listener's split as it stands now → ``percent`` (None: the stable only)."""
        self.remote.forget()
        known = plans.seed(self.fleet())
        return listener.plan_weights(self.canary_spec, self.remote, known, percent)

    def plan_canary(self, snap: Snapshot, image: str, version: str, percent: int) -> list[Step]:
        """Every step of starting a canary (``canary --plan``)."""
        known: Known = {}
        steps = self.plan_prepare(snap, image, version, known) + self.plan_start(snap, percent, known)
        return steps + listener.plan_weights(self.canary_spec, self.remote, known, percent)

    def plan_shift(self, snap: Snapshot, percent: int) -> list[Step]:
        """Scale the canary, make sure its alarms exist (they drive auto-rollback), wait when it grows, weights."""
        fleet: Fleet = snap.detail
        assert fleet.canary is not None
        known = plans.seed(fleet)
        spec = self.canary_spec.as_role("canary", desired_count=fleet.canary_count(percent))
        steps = service.plan(spec, self.remote, known)
        steps += alarms.plan(spec, self.remote, known)
        if fleet.canary_count(percent) > int(fleet.canary.get("desiredCount", 0)):
            steps.append(plans.waiting(spec, service.wait_stable(spec, known)))
        return steps + listener.plan_weights(spec, self.remote, known, percent)

    def plan_remove(self, snap: Snapshot) -> list[Step]:
        """Weights back to the stable only → canary alarms → canary service (scale 0, delete, wait inactive).

        Alarms before the service: a run dying in between leaves a canary service (a re-run sees it and finishes
        the removal), never alarms without a canary (a re-run would find nothing to remove).
        """
        fleet: Fleet = snap.detail
        known = plans.seed(fleet)
        steps = listener.plan_weights(self.canary_spec, self.remote, known, None) \
            if fleet.listeners and fleet.stable_tg else []
        steps += alarms.delete(self.canary_spec, self.remote, known)
        return steps + service.delete(self.canary_spec, self.remote, known)

    def plan_swap(self, snap: Snapshot, ref: str) -> list[Step]:
        """The stable service onto ``ref`` (the stable service plan with that task definition), then wait."""
        known = {**plans.seed(snap.detail), "task_definition_arn": ref}
        return service.plan(self.spec, self.remote, known) + [
            plans.waiting(self.spec, service.wait_stable(self.spec, known))]

    # ------------------------------------------------------------------------------------------ applying

    def apply(self, steps: list[Step]) -> dict[str, Any]:
        """Run ``steps``; waits run unwrapped so their NotReadyError/RolledBackError reach the operation as is.
        Returns the values the calls produced."""
        executor = self._executor
        if executor is None:
            from mldeploy.aws.engine.executor import Executor

            executor = Executor(self.clients, self.ui)
        try:
            for step in steps:
                if step.calls and all(isinstance(c, Wait) for c in step.calls):
                    self._wait(executor, step)
                else:
                    executor.apply([step])
        finally:
            self.remote.forget()
        return dict(executor.values)

    @staticmethod
    def _wait(executor: Any, step: Step) -> None:
        try:
            for wait in step.calls:
                executor.run_wait(wait)
        except KeyboardInterrupt as e:  # like Executor.run_step: say where we stopped, exit 130
            raise MldeployError(f"interrupted while waiting: {step.message}",
                                hint="the deployment continues in AWS; run the same command again to pick it up",
                                exit_code=ExitCode.INTERRUPTED) from e

    def prepare_canary(self, snap: Snapshot, image: str, version: str) -> str:
        known: Known = {}
        values = self.apply(self.plan_prepare(snap, image, version, known))
        ref = values.get(TD_KEY, known[TD_KEY])
        return str(ref)

    def start_canary(self, snap: Snapshot, ref: str, percent: int) -> str:
        self.apply(self.plan_start(snap, percent, {TD_KEY: ref}))
        self.apply(self.plan_weights(percent))
        return f"{self.names.canary_service}, {snap.detail.canary_count(percent)} task(s)"

    def shift_canary(self, snap: Snapshot, percent: int) -> str:
        self.apply(self.plan_shift(snap, percent))
        return f"{self.names.canary_service}, {snap.detail.canary_count(percent)} task(s)"

    def remove_canary(self, snap: Snapshot) -> None:
        self.apply(self.plan_remove(snap))

    def swap_stable(self, snap: Snapshot, ref: str) -> None:
        self.apply(self.plan_swap(snap, ref))

    def summary(self, snap: Snapshot, record: Record | None) -> dict[str, Any]:
        fleet: Fleet = snap.detail
        names = self.names
        return {
            "app": names.app, "env": names.env,
            "stable": {"service": names.service, "task_definition": fleet.stable_td,
                       "revision": revision_of(fleet.stable_td)},
            "canary": None if fleet.canary is None else {
                "service": names.canary_service, "task_definition": fleet.canary_td,
                "revision": revision_of(fleet.canary_td), "percent": fleet.canary_percent,
                "desired_count": fleet.canary.get("desiredCount")},
            "weights": fleet.weights(),
            "record": record.to_json() if record else None,
        }

