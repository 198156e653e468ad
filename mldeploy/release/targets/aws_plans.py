"""What the release commands add to the ``aws/resources`` planners: ``known`` seeded from what runs, the canary's
task definition copied from the stable one, and waits as steps.

The target group, service, listener weights and alarms come from the role-aware resource modules
(``target_group``, ``service``, ``listener.plan_weights``, ``alarms``), fed with ``seed(fleet)``: the values ``up``
would have put in ``known`` (VPC, subnets, task security group, load balancer, target groups), read from the
running stable service instead of re-planning the whole stack. The task definition is the one deliberate
exception (``task_definition`` below; see ``targets.aws`` for the trade-off).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from mldeploy.aws.engine.model import Action, ApiCall, Ref, Step, Wait, after, noop
from mldeploy.aws.resources import model_store
from mldeploy.release.targets.aws_read import Fleet, describe_task_definition, main_container

if TYPE_CHECKING:
    from mldeploy.aws.engine.remote import Remote
    from mldeploy.aws.engine.spec import Known, StackSpec

TD_KEYS = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
           "placementConstraints", "requiresCompatibilities", "cpu", "memory", "pidMode", "ipcMode",
           "proxyConfiguration", "inferenceAccelerators", "ephemeralStorage", "runtimePlatform")


# ------------------------------------------------------------------------------------------- task definition


def _td_signature(args: dict[str, Any]) -> str:
    """Comparable form of register_task_definition arguments (environment order does not matter)."""
    norm = {k: args[k] for k in TD_KEYS if args.get(k) not in (None, [], {})}
    norm["containerDefinitions"] = [{**c, "environment": sorted((e["name"], e["value"]) for e in
                                                                 c.get("environment") or [])}
                                    for c in norm.get("containerDefinitions", [])]
    return json.dumps(norm, sort_keys=True, default=str)


SHADOW_OF_TAG = "mldeploy:shadow-of"
"""A shadow revision of the stable task definition names the revision it was copied from (its ARN: ECS tag values
are "a maximum length of 256" characters, botocore ecs Tag.value; an ARN is far below)."""
SHADOW_ENV = ("MLDEPLOY_SHADOW_S3_PREFIX", "MLDEPLOY_SHADOW_INDEX_SHA256", "MLDEPLOY_SHADOW_VERSION",
              "MLDEPLOY_SHADOW_SAMPLE", "MLDEPLOY_SHADOW_BYTES", "MLDEPLOY_SHADOW_QUEUE", "MLDEPLOY_SHADOW_QUEUE_BYTES")
"""The candidate a shadow revision's tasks download and evaluate, and the shadow queue's bounds
(``runtime.model_fetch``; not secrets: the bucket policy and the task role's per-prefix grant guard the objects)."""


def queue_env(spec: StackSpec) -> dict[str, str]:
    """``MLDEPLOY_SHADOW_QUEUE`` / ``MLDEPLOY_SHADOW_QUEUE_BYTES`` from the config (``ReleaseSection.shadow_queue``:
    ``release.gates.queue`` / ``queue_bytes``, else the runtime's defaults)."""
    count, size = spec.config.release.shadow_queue()
    return {"MLDEPLOY_SHADOW_QUEUE": str(count), "MLDEPLOY_SHADOW_QUEUE_BYTES": str(size)}


def _copy_args(remote: Remote, source_td: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(register_task_definition arguments copied from ``source_td``, the task definition)."""
    td, _ = describe_task_definition(remote, source_td)
    return json.loads(json.dumps({k: td[k] for k in TD_KEYS if td.get(k) not in (None, [], {})})), td


def _set_env(container: dict[str, Any], env: dict[str, Any], drop: tuple[str, ...] = ()) -> None:
    kept = [e for e in container.get("environment", []) if e["name"] not in env and e["name"] not in drop]
    container["environment"] = [*kept, *({"name": k, "value": v} for k, v in env.items())]


def _register(fleet: Fleet, remote: Remote, known: Known, key: str, args: dict[str, Any], source: dict[str, Any],
              tags: dict[str, str], changes: list[str], note: str) -> list[Step]:
    """Register ``args`` as a revision of the family, unless the family's latest revision (not the running one)
    is exactly that already (a run that died after registering it: no leaked revision per retry)."""
    family = source["family"]
    latest = remote.get("ecs", "describe_task_definition", taskDefinition=family)["taskDefinition"]
    if latest["taskDefinitionArn"] != fleet.stable_td and _td_signature(latest) == _td_signature(args):
        known[key] = latest["taskDefinitionArn"]
        return [noop("task definition", f"{family}:{latest['revision']}")]
    known[key] = Ref(key)
    return [Step("task definition", family, Action.create, changes, note=note, calls=[
        ApiCall("ecs", "register_task_definition",
                {**args, "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())]},
                outputs=((key, "taskDefinition.taskDefinitionArn"),))])]


def task_definition(spec: StackSpec, fleet: Fleet, remote: Remote, known: Known) -> list[Step]:
    """A revision of the stable task definition that differs only in ``spec.image`` and ``spec.version``.

    Copied from the stable revision without a shadow (``shadow_base``: a shadow's candidate variables never reach
    a canary). ``aws/resources/task_definition.plan`` derives the canary from the config instead; this copy is
    the seeded-canary trade-off (``targets.aws``).
    """
    assert fleet.stable_td is not None and spec.version is not None
    args, td = _copy_args(remote, shadow_base(remote, fleet) or fleet.stable_td)
    container = main_container(args, fleet.container_name)
    container["image"] = spec.image
    model_env = {"MLDEPLOY_MODEL_VERSION": spec.version, **model_store.environment(spec, {
        "model_location": known.get(spec.key("model_location"))})}  # model.store: s3: the version's prefix
    _set_env(container, model_env, drop=SHADOW_ENV)
    if gib := model_store.ephemeral_storage_gib(spec, {"model_location": known.get(spec.key("model_location"))}):
        args["ephemeralStorage"] = {"sizeInGiB": gib}
    tags = {**spec.names.tags(spec.config.aws.tags), "mldeploy:version": spec.version}
    return _register(fleet, remote, known, spec.key("task_definition_arn"), args, td, tags,
                     [f"image {spec.image}", f"version {spec.version}"], f"copy of revision {td['revision']}")


# ------------------------------------------------------------------------------------------------- shadow


def td_environment(remote: Remote, fleet: Fleet, arn: str) -> dict[str, str]:
    td, _ = describe_task_definition(remote, arn)
    return {e["name"]: e["value"] for e in main_container(td, fleet.container_name).get("environment", [])}


def shadow_base(remote: Remote, fleet: Fleet) -> str | None:
    """The revision a running shadow revision was copied from (None: the stable service runs no shadow)."""
    if not fleet.stable_td:
        return None
    _, tags = describe_task_definition(remote, fleet.stable_td)
    return tags.get(SHADOW_OF_TAG)


def shadow_of(remote: Remote, fleet: Fleet) -> dict[str, Any] | None:
    """The running shadow: candidate version, sample, its revision and the base it replaces (None: none)."""
    base = shadow_base(remote, fleet)
    if base is None:
        return None
    env = td_environment(remote, fleet, str(fleet.stable_td))
    return {"version": env.get("MLDEPLOY_SHADOW_VERSION"), "sample": float(env.get("MLDEPLOY_SHADOW_SAMPLE") or 0),
            "task_definition": fleet.stable_td, "base_task_definition": base,
            "prefix": env.get("MLDEPLOY_SHADOW_S3_PREFIX")}


MEMORY_OVERHEAD_MIB = 512
"""Rough rule for ``memory_check``: the runtime (Python, the web server, the libraries) before any model …"""
MEMORY_FACTOR = 2
"""… and each artifact takes about twice its size on disk once loaded (deserialised weights next to the buffers
they were read from, the warm-up's arrays)."""


def memory_check(task_memory_mib: int, stable_bytes: int | None, candidate_bytes: int) -> tuple[str, str]:
    """(``"ok"`` | ``"warn"`` | ``"refuse"``, why): can a task of ``task_memory_mib`` hold both artifacts?

    Rule: ``512 MiB + 2 × (stable + candidate artifact bytes)``; refuse above the task's memory, warn above 80 %
    of it or when the stable artifact's size is unknown (a task definition without MLDEPLOY_MODEL_BYTES)."""
    mib = 2 ** 20
    known = stable_bytes if stable_bytes is not None else candidate_bytes
    need = MEMORY_OVERHEAD_MIB + MEMORY_FACTOR * (known + candidate_bytes) / mib

    def size(v: float) -> str:  # whole MiB, small artifacts with two significant digits (never "0 + 0")
        return f"{v:.0f}" if v >= 10 or v == 0 else f"{v:.2g}"

    # rounded up: a need just above the task's memory never reads as equal to it
    why = (f"both artifacts need about {math.ceil(need)} MiB ({MEMORY_OVERHEAD_MIB} MiB + {MEMORY_FACTOR} × "
           f"({size(known / mib)} + {size(candidate_bytes / mib)}) MiB"
           + ("" if stable_bytes is not None else ", the stable's size taken as the candidate's")
           + f") of the task's {task_memory_mib} MiB")
    if need > task_memory_mib:
        return "refuse", why
    if need > 0.8 * task_memory_mib or stable_bytes is None:
        return "warn", why
    return "ok", why


def enforce_memory(verdict: tuple[str, str] | None, ui: Any = None) -> None:
    """The ``memory_check`` verdict applied: ``"refuse"`` raises ConfigError (exit 3, naming ``aws.memory``),
    ``"warn"`` warns on ``ui``. Used by ``canary --shadow`` (``AwsTarget.set_shadow``), the ``--auto`` shadow phase,
    and by ``plan`` / ``up`` when the shadow revision is registered again (``release.shadow_up``)."""
    from mldeploy.errors import ConfigError

    level, why = verdict or ("ok", "")
    if level == "refuse":
        raise ConfigError(f"aws.memory: the stable tasks cannot hold the stable and the shadow model: {why}",
                          hint="raise aws.memory (and aws.cpu), or shadow locally")
    if level == "warn" and ui is not None:
        ui.warn(f"shadow memory: {why} (rough rule: 512 MiB + 2 × the artifact sizes)")


def with_shadow(spec: StackSpec, args: dict[str, Any], container: dict[str, Any], shadow_env: dict[str, str]
                ) -> tuple[str, str]:
    """Add ``shadow_env`` (the ``SHADOW_ENV`` variables) to ``container`` of the task-definition ``args``, size
    the task storage for both artifacts; returns the memory verdict (``memory_check``) for the task's memory."""
    have = {e["name"]: e["value"] for e in container.get("environment", [])}
    _set_env(container, shadow_env, drop=SHADOW_ENV)
    stable_bytes = int(have["MLDEPLOY_MODEL_BYTES"]) if str(have.get("MLDEPLOY_MODEL_BYTES", "")).isdigit() else None
    size = str(shadow_env.get("MLDEPLOY_SHADOW_BYTES", ""))
    candidate_bytes = int(size) if size.isdigit() else None
    if candidate_bytes is None:  # a shadow revision written before MLDEPLOY_SHADOW_BYTES existed
        return "warn", "the shadow artifact's size is unknown (no MLDEPLOY_SHADOW_BYTES): memory not checked"
    gib = model_store.ephemeral_gib((stable_bytes or candidate_bytes) + candidate_bytes)
    if gib and spec.config.aws.compute == "fargate":  # both artifacts in the task's storage
        args["ephemeralStorage"] = {"sizeInGiB": max(gib, (args.get("ephemeralStorage") or {}).get("sizeInGiB", 0))}
    memory = int(args.get("memory") or container.get("memory") or 0)
    return memory_check(memory, stable_bytes, candidate_bytes) if memory else ("warn", "task memory unknown")


def shadow_task_definition(spec: StackSpec, fleet: Fleet, remote: Remote, known: Known, *, version: str,
                           sample: float, location: Any) -> tuple[list[Step], tuple[str, str]]:
    """A revision of the stable task definition (the one without a shadow) whose tasks also download the
    candidate's artifact (``location``: its ``ModelLocation``) and shadow ``sample`` of their requests with it.
    Returns the steps (``known["shadow.task_definition_arn"]``) and the memory verdict (``memory_check``)."""
    assert fleet.stable_td is not None
    base = shadow_base(remote, fleet) or fleet.stable_td
    args, td = _copy_args(remote, base)
    container = main_container(args, fleet.container_name)
    verdict = with_shadow(spec, args, container, {
        "MLDEPLOY_SHADOW_S3_PREFIX": location.prefix, "MLDEPLOY_SHADOW_INDEX_SHA256": location.index_sha256,
        "MLDEPLOY_SHADOW_VERSION": version, "MLDEPLOY_SHADOW_SAMPLE": f"{sample:g}",
        "MLDEPLOY_SHADOW_BYTES": str(location.total_bytes), **queue_env(spec)})
    _, base_tags = describe_task_definition(remote, base)
    tags = {**base_tags, **spec.names.tags(spec.config.aws.tags), SHADOW_OF_TAG: base}
    steps = _register(fleet, remote, known, "shadow.task_definition_arn", args, td, tags,
                      [f"shadow {version} on {sample:.0%} of the requests", f"candidate {location.prefix}"],
                      f"copy of revision {td['revision']}")
    return steps, verdict


# --------------------------------------------------------------------------------------------------- known


def seed(fleet: Fleet) -> Known:
    """The ``known`` values the resource planners read, from what runs (both roles where they exist)."""
    known: Known = {}
    if fleet.load_balancer:
        arn = fleet.load_balancer["LoadBalancerArn"]
        known["alb_arn"], known["alb_full_name"] = arn, after(arn, ":loadbalancer/")
    if fleet.stable_tg:
        known["tg_arn"], known["vpc_id"] = fleet.stable_tg["TargetGroupArn"], fleet.stable_tg.get("VpcId")
    if fleet.stable:
        vpc = (fleet.stable.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
        known["subnet_ids"] = list(vpc.get("subnets") or [])
        known["task_sg_id"] = (vpc.get("securityGroups") or [None])[0]
        known["task_definition_arn"], known["service_arn"] = fleet.stable_td, fleet.stable.get("serviceArn")
    if fleet.canary_tg:
        known["canary.tg_arn"] = fleet.canary_tg["TargetGroupArn"]
    if fleet.canary:
        known["canary.task_definition_arn"] = fleet.canary_td
        known["canary.service_arn"] = fleet.canary.get("serviceArn")
    return known


def waiting(spec: StackSpec, wait: Wait) -> Step:
    """A ``Wait`` (``service.wait_stable``) as a step of its own."""
    return Step("ecs service", spec.service_name, Action.update, ["wait until stable"], calls=[wait])
