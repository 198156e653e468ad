"""``up`` and ``plan`` while the stable tasks shadow a candidate (``canary --shadow``, docs/release-gates.md).

``up`` keeps a running canary (it only resizes it, ``stack.plan_canary_size``); it keeps a running shadow the same
way: the shadow goes on running against the new stable revision. ``task_definition.plan`` compares the config with
the revision the stable service runs — the shadow revision, whose ``MLDEPLOY_SHADOW_*`` variables the config does
not have — so left alone it would register a revision without them and end the shadow while the history still
records it active. ``keep_shadow`` rewrites the stable task-definition and service steps of an ``up`` plan:

* the config equals the shadow's base revision: nothing to register; the service stays on the shadow revision;
* the config changed: the new base revision is registered as planned, then a shadow revision of it (the same
  ``MLDEPLOY_SHADOW_*`` variables, but the queue's bounds taken from the config's ``release.gates.queue`` /
  ``queue_bytes``; tagged ``mldeploy:shadow-of`` = the new base), and the service moves onto that.
  Its memory is checked by the rule ``canary --shadow`` applies (``aws_plans.memory_check``; over it, ``plan`` and
  ``up`` exit 3 naming ``aws.memory``: ``aws_plans.enforce_memory``);
* the config deploys the shadow's candidate version itself, or no longer uses ``model.store: s3``: the shadow ends
  (the plan says so), as planned.

``workflows.release.record_up`` then points the history's active shadow record at the new shadow revision (or
closes it when the shadow ended).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mldeploy.aws.engine.model import Action, ApiCall, Ref, Step, is_unknown, noop
from mldeploy.aws.resources import model_store, service, stack_outputs, task_definition
from mldeploy.release.targets.aws_plans import SHADOW_ENV, SHADOW_OF_TAG, queue_env, with_shadow

if TYPE_CHECKING:
    from mldeploy.aws.engine.model import Plan
    from mldeploy.aws.engine.remote import Remote
    from mldeploy.aws.engine.spec import Known, StackSpec

SHADOW_KEY = "shadow.task_definition_arn"


@dataclass(frozen=True)
class ShadowKept:
    """What ``keep_shadow`` did to an ``up`` plan."""

    version: str  # the shadow's candidate
    running: str  # the shadow revision the stable service runs now
    outcome: str  # "kept" (no new revision), "re-registered" (a shadow revision of the new base), "ended"
    memory: tuple[str, str] | None = None  # the memory verdict of a re-registered shadow revision

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "running": self.running, "outcome": self.outcome,
                "memory": None if self.memory is None else {"level": self.memory[0], "detail": self.memory[1]}}

    @property
    def note(self) -> str:
        if self.outcome == "ended":
            return (f"shadow evaluation of {self.version} ends: this deploys {self.version} as the stable version "
                    "(the history records the shadow as ended)")
        if self.outcome == "kept":
            return f"the stable tasks keep shadowing {self.version} (their shadow revision is unchanged)"
        return (f"the stable tasks keep shadowing {self.version}: a shadow revision of the new stable revision is "
                "registered, and the stable service moves onto it")


def _env(td: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in (td.get("containerDefinitions") or [{}])[0].get("environment") or []}


def _index(plan: Plan, kind: str, name: str | None = None) -> int | None:
    found = [i for i, s in enumerate(plan.steps) if s.kind == kind and (name is None or s.name == name)]
    return found[-1] if found else None


def _replan(spec: StackSpec, remote: Remote, known: Known, plan: Plan, base: Any, shadow: Any) -> None:
    """The stable service's step planned again onto the ``shadow`` revision, the outputs' ``task-definition``
    with the ``base`` one (the stable revision, as during a shadow phase ``canary --shadow`` started); ``known``
    then names the shadow revision (the one ``up`` waits for)."""
    key = spec.key("task_definition_arn")
    known[key] = base
    i = _index(plan, stack_outputs.KIND)
    if i is not None:
        plan.steps[i:i + 1] = stack_outputs.plan(spec, remote, known)
    known[key] = shadow
    i = _index(plan, service.KIND, spec.service_name)
    if i is not None:
        plan.steps[i:i + 1] = service.plan(spec, remote, known)


def _earlier_run(spec: StackSpec, remote: Remote, want: dict[str, Any], shadow_env: dict[str, str]
                 ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(base, shadow) revisions a killed ``up`` registered already: the family's latest is a shadow revision
    with these variables whose base equals ``want`` (no leaked revisions per retry)."""
    latest = task_definition.describe(spec, remote, task_definition.family(spec))
    if latest is None or SHADOW_OF_TAG not in latest[1]:
        return None
    if {k: v for k, v in _env(latest[0]).items() if k in SHADOW_ENV} != shadow_env:
        return None
    base = task_definition.describe(spec, remote, latest[1][SHADOW_OF_TAG])
    if base is None or task_definition.diff(base[0], want):
        return None
    return base[0], latest[0]


def keep_shadow(spec: StackSpec, remote: Remote, known: Known, plan: Plan) -> ShadowKept | None:
    """Rewrite ``plan`` (``stack.plan_up``'s, with its ``known``) so that a running shadow survives ``up``; None
    when the stable service runs no shadow revision (the plan is unchanged)."""
    running = task_definition.running(spec, remote)
    if running is None or SHADOW_OF_TAG not in running[1]:
        return None
    shadow_td, tags = running
    shadow_arn = shadow_td["taskDefinitionArn"]
    shadow_env = {k: v for k, v in _env(shadow_td).items() if k in SHADOW_ENV}
    shadow_env.update(queue_env(spec))  # a re-registered shadow takes the config's queue bounds (release.gates)
    version = shadow_env.get("MLDEPLOY_SHADOW_VERSION", "?")
    key = spec.key("task_definition_arn")
    want = task_definition.desired(spec, known, known[spec.key("image")])
    i = _index(plan, task_definition.KIND)
    if i is None:
        return None
    if _env(want).get("MLDEPLOY_MODEL_VERSION") == version:  # the candidate becomes the stable: the shadow ends
        kept = ShadowKept(version, shadow_arn, "ended")
        plan.notes.append(kept.note)
        return kept
    if not model_store.enabled(spec):  # the stable tasks download the candidate from the S3 model store only
        kept = ShadowKept(version, shadow_arn, "ended")
        plan.notes.append(f"shadow evaluation of {version} ends: model.store is no longer s3, and the stable tasks "
                          "download the shadow's artifact from the S3 model store")
        return kept
    base = task_definition.describe(spec, remote, tags[SHADOW_OF_TAG])
    fam = task_definition.family(spec)
    if base is not None and not task_definition.diff(base[0], want):  # the config is the shadow's base: keep it
        plan.steps[i] = Step(task_definition.KIND, f"{fam}:{base[0]['revision']}", Action.noop,
                             note=f"shadow revision {fam}:{shadow_td['revision']} of {version} kept")
        _replan(spec, remote, known, plan, base[0]["taskDefinitionArn"], shadow_arn)
        kept = ShadowKept(version, shadow_arn, "kept")
        plan.notes.append(kept.note)
        return kept
    earlier = None if is_unknown(want) else _earlier_run(spec, remote, want, shadow_env)
    if earlier is not None:
        new_base, new_shadow = earlier
        plan.steps[i] = Step(task_definition.KIND, f"{fam}:{new_base['revision']}", Action.noop,
                             note="registered by an earlier run")
        plan.steps.insert(i + 1, noop(task_definition.KIND, f"{fam}:{new_shadow['revision']}"))
        _replan(spec, remote, known, plan, new_base["taskDefinitionArn"], new_shadow["taskDefinitionArn"])
        kept = ShadowKept(version, shadow_arn, "re-registered")
        plan.notes.append(kept.note)
        return kept
    args = {k: v for k, v in want.items() if k != "tags"}
    args["containerDefinitions"] = [dict(c) for c in want["containerDefinitions"]]
    container = args["containerDefinitions"][0]
    container["environment"] = list(container.get("environment") or [])
    verdict = with_shadow(spec, args, container, shadow_env)
    base_ref = known[key]  # the new base revision: registered by the step before (a Ref) or an earlier one
    shadow_tags = [t for t in want.get("tags") or [] if t["key"] != SHADOW_OF_TAG] + [
        {"key": SHADOW_OF_TAG, "value": base_ref}]
    sample = float(shadow_env.get("MLDEPLOY_SHADOW_SAMPLE") or 0)
    plan.steps.insert(i + 1, Step(
        task_definition.KIND, f"{fam} (shadow of {version})", Action.create,
        [f"shadow {version} on {sample:.0%} of the requests kept", "copy of the new stable revision"],
        note=f"replaces shadow revision {fam}:{shadow_td['revision']}",
        calls=[ApiCall("ecs", "register_task_definition", {**args, "tags": shadow_tags},
                       outputs=((SHADOW_KEY, "taskDefinition.taskDefinitionArn"),))]))
    _replan(spec, remote, known, plan, base_ref, Ref(SHADOW_KEY))
    kept = ShadowKept(version, shadow_arn, "re-registered", verdict)
    plan.notes.append(kept.note + f"; shadow memory: {verdict[1]}")
    return kept
