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

Shadow evaluation (``canary --shadow``, docs/release-gates.md): the *stable* service moves to a revision of its task
definition that also names the candidate's artifact in the S3 model store (``aws_plans.shadow_task_definition``,
tagged with the revision it was copied from); its tasks evaluate the candidate in process. ``snapshot().stable``
is that base revision, so the history's stable lineage is unchanged by a shadow; a canary taking traffic, a
promotion, a rollback or a removal puts the stable service back on a revision without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mldeploy.aws.engine.model import Step, Wait
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec
from mldeploy.aws.resources import alarms, ecr, listener, model_store, service, target_group
from mldeploy.errors import AwsError, ExitCode, MldeployError, RolloutTimeoutError
from mldeploy.release.history import Outcome, Record, revision_of
from mldeploy.release.state import TransitionError
from mldeploy.release.targets import aws_plans as plans
from mldeploy.release.targets.aws_read import Fleet, read_fleet, td_image, td_version
from mldeploy.release.targets.base import Deployable, Snapshot

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.release.history import HistoryStore
    from mldeploy.ui import Ui

TD_KEY = "canary.task_definition_arn"
SHADOW_TD_KEY = "shadow.task_definition_arn"


class AwsTarget:
    """Release operations on the app/env's ECS services, target groups, listener weights and canary alarms."""

    observable = True
    shift_records = False
    earlier: str

    def __init__(self, project: Project, clients: Clients, ui: Ui, *, remote: Any = None,
                 executor: Any = None, wait: bool = True) -> None:
        self.project = project
        self.wait = wait  # False (--no-wait): apply the changes, skip the steps that only wait (rollouts)
        self.skipped: list[str] = []  # the rollout waits --no-wait skipped (services whose rollout is not verified)
        self.draining: list[str] = []  # services deleted under --no-wait: deletion requested, the drain not waited for
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
        self.history: HistoryStore | None = None  # set by workflows.release: shadow phases are recorded here
        self.memory_verdict: tuple[str, str] | None = None  # the last plan_shadow's (aws_plans.memory_check)

    # ------------------------------------------------------------------------------------------- reading

    def fleet(self) -> Fleet:
        return read_fleet(self.names, self.remote)

    def snapshot(self) -> Snapshot:
        self.remote.forget()
        fleet = self.fleet()
        # a shadow revision stands for the revision it was copied from (same model, image and settings)
        stable = plans.shadow_base(self.remote, fleet) or fleet.stable_td
        return Snapshot(
            label=f"{self.names.base} (cluster {fleet.cluster})", stable=stable, canary=fleet.canary_td,
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
        # model.store: s3: the canary's version prefix (uploaded by the release workflow), readable by the task role
        grant = model_store.plan_grant(self.spec, self.remote, known, spec.key("model_location"))
        # the canary's image gets its keep- tag too, so the ECR lifecycle policy can never expire it
        return grant + ecr.keep(spec, self.remote, known, image) + plans.task_definition(spec, fleet, self.remote,
                                                                                          known)

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

    def plan_shadow(self, snap: Snapshot, version: str, sample: float, known: Known) -> list[Step]:
        """Grant the task role the candidate's prefix → the stable task definition's shadow revision → the stable
        service onto it (a rolling deployment) → wait. ``self.memory_verdict``: can the tasks hold both models?"""
        fleet: Fleet = snap.detail
        if not model_store.enabled(self.spec):
            raise MldeployError("canary --shadow on --target aws needs model.store: s3 in mldeploy.yaml: the stable "
                                "tasks download the candidate's artifact from the S3 model store",
                                hint="set model.store: s3 and run `mldeploy up` (or shadow locally: "
                                     "`mldeploy canary --shadow --target local`)", exit_code=ExitCode.USAGE)
        if fleet.stable_td is None or fleet.stable is None:
            raise TransitionError(f"nothing is deployed for {self.names.base}: no stable service to shadow",
                                  hint="run `mldeploy up` first")
        from mldeploy.aws.model_upload import ModelLocation

        grant = model_store.plan_grant(self.spec, self.remote, known, "shadow.model_location")
        loc = known["shadow.model_location"]
        if not isinstance(loc, ModelLocation):
            raise MldeployError("the candidate model is not packaged: `mldeploy package` (canary --shadow uploads it)")
        steps, self.memory_verdict = plans.shadow_task_definition(self.spec, fleet, self.remote, known,
                                                                  version=version, sample=sample, location=loc)
        swap = {**plans.seed(fleet), "task_definition_arn": known[SHADOW_TD_KEY]}
        return grant + steps + service.plan(self.spec, self.remote, swap) + [
            plans.waiting(self.spec, service.wait_stable(self.spec, swap))]

    def plan_unshadow(self, snap: Snapshot) -> list[Step]:
        """The stable service back onto the revision the shadow was copied from, then wait ([] without a shadow)."""
        base = plans.shadow_base(self.remote, snap.detail)
        return [] if base is None else self.plan_swap(snap, base)

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
                    if self.wait:
                        self._wait(executor, step)
                    else:
                        self._skip(step)
                elif not self.wait and any(isinstance(c, Wait) for c in step.calls):
                    self._apply_without_waits(executor, step)
                else:
                    executor.apply([step])
        finally:
            self.remote.forget()
        return dict(executor.values)

    def _apply_without_waits(self, executor: Any, step: Step) -> None:
        """``--no-wait`` on a step that calls and then waits (a service deletion: scale to 0, delete, wait until
        INACTIVE): the calls are made, the waits are not; a deleted service is remembered as draining."""
        calls = tuple(c for c in step.calls if not isinstance(c, Wait))
        executor.apply([Step(step.kind, step.name, step.action, step.changes, step.note, calls)])
        for wait in step.calls:
            if isinstance(wait, Wait) and wait.what == "services_inactive":
                self.draining += [str(s) for s in wait.params.get("services") or []]
            elif isinstance(wait, Wait) and wait.what == "service_stable":
                self.skipped.append(str(wait.params.get("service")))
        self.ui.info(f"not waiting (--no-wait): {step.message} requested; its tasks drain on AWS")

    def _skip(self, step: Step) -> None:
        """``--no-wait``: name the wait not done (a rollout's service is remembered: its result is unverified)."""
        for wait in step.calls:
            assert isinstance(wait, Wait)
            if wait.what == "service_stable":
                self.skipped.append(str(wait.params.get("service")))
        self.ui.info(f"not waiting (--no-wait): {step.message}")

    def _wait(self, executor: Any, step: Step) -> None:
        try:
            for wait in step.calls:
                executor.run_wait(wait)
        except RolloutTimeoutError as e:
            if any(isinstance(w, Wait) and w.params.get("service") == self.canary_name for w in step.calls):
                # a canary that is not healthy in time is removed by ops (exit 6): it does not "continue on AWS"
                e.hint = ("the canary's tasks were not healthy within aws.deploy_timeout_s: see `mldeploy logs "
                          "--since 30m` (crash on start, /ready failing); raise aws.deploy_timeout_s when image "
                          "pulls or model warm-up take longer")
            raise
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
        if percent > 0:  # a real canary ends a shadow phase
            self.remove_shadow("the candidate moved to a canary taking traffic")
        return f"{self.names.canary_service}, {snap.detail.canary_count(percent)} task(s)"

    def shift_canary(self, snap: Snapshot, percent: int) -> str:
        self.apply(self.plan_shift(snap, percent))
        if percent > 0:
            self.remove_shadow(f"the canary moved to {percent}% of traffic")
        return f"{self.names.canary_service}, {snap.detail.canary_count(percent)} task(s)"

    def remove_canary(self, snap: Snapshot) -> None:
        self.apply(self.plan_remove(snap))
        self.remove_shadow("the canary was removed", Outcome.rolled_back)

    def swap_stable(self, snap: Snapshot, ref: str) -> None:
        self.apply(self.plan_swap(snap, ref))  # ref is never a shadow revision: the shadow ends with it
        self._close_shadows("the stable service moved to " + self.what(ref), Outcome.succeeded)

    # -------------------------------------------------------------------------------------------- shadow

    def shadow(self) -> dict[str, Any] | None:
        """The running shadow phase (``aws_plans.shadow_of``), None when the stable tasks shadow nothing."""
        self.remote.forget()
        return plans.shadow_of(self.remote, self.fleet())

    def set_shadow(self, version: str, sample: float) -> str:
        """The stable tasks evaluate ``version`` on ``sample`` of their requests; recorded in the history
        (action ``shadow``). Refuses (exit 3) when the task memory cannot hold both artifacts."""
        snap = self.snapshot()
        known: Known = {}
        steps = self.plan_shadow(snap, version, sample, known)
        plans.enforce_memory(self.memory_verdict, self.ui)  # exit 3 before any change (the same rule as `plan`)
        record = None
        if self.history is not None:
            record = self.history.add(Record(
                action="shadow", version=version, percent=0, from_revision=revision_of(snap.stable),
                reason=f"shadow evaluation in the stable tasks, {sample:.0%} of their requests"), self.history.list())
        try:
            values = self.apply(steps)
        except MldeployError as e:
            if record is not None and self.history is not None:
                self.history.update(record, outcome=Outcome.failed, reason=e.message)
            raise
        ref = str(values.get(SHADOW_TD_KEY, known[SHADOW_TD_KEY]))
        if record is not None and self.history is not None:
            self.history.update(record, outcome=Outcome.active, task_definition=ref, revision=revision_of(ref))
        return ref

    def remove_shadow(self, reason: str, outcome: str = Outcome.succeeded) -> bool:
        """The stable service back on the revision without the shadow (False: there was none)."""
        self.remote.forget()
        snap = self.snapshot()
        steps = self.plan_unshadow(snap)
        if steps:
            self.ui.info(f"ending the shadow phase: {reason}")
            self.apply(steps)
        self._close_shadows(reason, outcome)
        return bool(steps)

    def follow_shadow(self, by: str) -> None:
        """After ``up`` (``release.shadow_up``): the open shadow record names the shadow revision the stable
        service runs now; a shadow that ``up`` ended (it deployed the candidate) is closed as succeeded."""
        if self.history is None:
            return
        shadow = self.shadow()
        for record in self.history.list():
            if record.action != "shadow" or record.outcome not in (Outcome.active, Outcome.in_progress):
                continue
            if shadow is not None and shadow["version"] == record.version:
                ref = str(shadow["task_definition"])
                if record.task_definition != ref:  # the note replaces an earlier one: a record stays small
                    first = str(record.reason or "").split(f"; {by} moved it to ", 1)[0]
                    self.history.update(record, task_definition=ref, revision=revision_of(ref),
                                        reason=f"{first}; {by} moved it to {self.what(ref)} (the new stable "
                                               f"{self.what(shadow['base_task_definition'])} with the shadow)")
        self._close_shadows(f"{by} deployed a stable revision without it", Outcome.succeeded)

    def _close_shadows(self, reason: str, outcome: str) -> None:
        """Close the history's open shadow records whose revision the stable service no longer runs."""
        if self.history is None:
            return
        self.remote.forget()
        running = self.fleet().stable_td
        for record in self.history.list():
            if record.action == "shadow" and record.outcome in (Outcome.active, Outcome.in_progress) \
                    and record.task_definition != running:
                self.history.update(record, outcome=outcome, reason=f"{record.reason}; ended: {reason}")

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
            "shadow": plans.shadow_of(self.remote, fleet),
            "record": record.to_json() if record else None,
        }

