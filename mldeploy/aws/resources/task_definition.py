"""Fargate task definition: size, platform, container health check, awslogs, environment, secrets, stopTimeout.

One family (``names.task_family``) holds both roles' revisions: ``up`` registers the stable ones, ``canary`` one
per model version (tagged ``mldeploy:version``), so ``promote`` points the stable service at the canary's revision.
Writes ``known[spec.key("task_definition_arn")]`` (concrete when a revision equal to the desired one exists,
else a ``Ref`` to ``register_task_definition``'s output) and ``known[spec.key("image")]``.
"""

from __future__ import annotations

from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Ref, Step, is_unknown
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import CONTAINER_NAME, Known, StackSpec, tag_dict
from mldeploy.aws.resources import ecr, load_balancer, model_store, service

KIND = "task definition"
ARCH = {"linux/amd64": "X86_64", "linux/arm64": "ARM64"}
TMP_VOLUME = "tmp"
VERSION_TAG = "mldeploy:version"
BATCH = 10
"""ECS DeleteTaskDefinitions: "You can specify up to 10 task definitions" (service-2.json)."""

Revision = tuple[dict[str, Any], dict[str, str]]
"""(taskDefinition, tags) as describe_task_definition answers them."""


def family(spec: StackSpec) -> str:
    return spec.names.task_family


def describe(spec: StackSpec, remote: Remote, ref: str) -> Revision | None:
    """A revision by ARN or ``family:revision``, or the family's latest ACTIVE one when ``ref`` is the family
    (ECS DescribeTaskDefinition: "The family for the latest ACTIVE revision")."""
    found = remote.get("ecs", "describe_task_definition", taskDefinition=ref, include=["TAGS"],
                       missing=("ClientException",))
    return (found["taskDefinition"], tag_dict(found.get("tags"))) if found else None


def running(spec: StackSpec, remote: Remote) -> Revision | None:
    """The revision the role's ECS service runs (not the family's latest: during a canary that is the canary's)."""
    svc = service.read(spec, remote)
    return describe(spec, remote, svc["taskDefinition"]) if svc and svc.get("taskDefinition") else None


def version(spec: StackSpec) -> str:
    """The model version the role's containers carry (``spec.version`` for a canary, the config's otherwise)."""
    return spec.version if spec.canary and spec.version else spec.config.model.version


def runtime_environment(spec: StackSpec, known: Known) -> dict[str, str]:
    """What the runtime needs to know about its task: the memory its row limits derive from (the cgroup inside a
    Fargate container may read ``max``) and the proxies whose ``X-Forwarded-For`` it may trust (the ALB lives in
    the VPC: its CIDR; without it every client behind the ALB would share one rate-limit bucket)."""
    env = {"MLDEPLOY_MEMORY_MIB": str(spec.config.aws.memory)}
    if known.get("vpc_cidr") and not spec.config.runtime.trusted_proxies:
        env["MLDEPLOY_TRUSTED_PROXIES"] = str(known["vpc_cidr"])
    env.update(model_store.environment(spec, known))  # model.store: s3: where the task downloads its artifact
    if keep := keep_alive_s(spec):
        env["MLDEPLOY_KEEP_ALIVE_S"] = str(keep)
    return env


KEEP_ALIVE_MARGIN_S = 5


def keep_alive_s(spec: StackSpec) -> int | None:
    """The runtime's keep-alive when the ALB idle timeout (``load_balancer.idle_timeout``, raised for a long
    ``runtime.request_timeout_s``) reaches the runtime's default: idle + 5 s, else None (the default is above it).

    "We recommend that you configure the idle timeout of your application to be larger than the idle timeout
    configured for the load balancer" (ALB guide, "Connection idle timeout"): a server that closes an idle
    connection first races the ALB reusing it, and the ALB answers that request 502.
    """
    from runtime.settings import Settings

    idle = load_balancer.idle_timeout(spec) or load_balancer.DEFAULT_IDLE_TIMEOUT_S
    default = int(Settings.model_fields["keep_alive_s"].default)
    return idle + KEEP_ALIVE_MARGIN_S if idle + KEEP_ALIVE_MARGIN_S > default else None


def container(spec: StackSpec, image: Any, known: Known | None = None) -> dict[str, Any]:
    cfg = spec.config
    port = cfg.runtime.port
    hc = cfg.aws.health_check
    probe = (f"python -c \"import urllib.request;urllib.request.urlopen('http://127.0.0.1:{port}{hc.path}',"
             f"timeout={max(1, hc.timeout_s - 1)})\" || exit 1")
    env = {"MLDEPLOY_APP": spec.names.app, "MLDEPLOY_ENV": spec.names.env, "MLDEPLOY_MODEL_VERSION": version(spec),
           **runtime_environment(spec, known or {}), **cfg.aws.environment}
    return {
        "name": CONTAINER_NAME,
        "image": image,
        "essential": True,
        "portMappings": [{"containerPort": port, "hostPort": port, "protocol": "tcp"}],
        "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(cfg.aws.secrets.items())],
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": spec.names.log_group, "awslogs-region": spec.region,
            "awslogs-stream-prefix": spec.names.app, "mode": "non-blocking", "max-buffer-size": "4m"}},
        "healthCheck": {"command": ["CMD-SHELL", probe], "interval": hc.interval_s, "timeout": hc.timeout_s,
                        "retries": hc.unhealthy_threshold, "startPeriod": min(300, hc.grace_period_s)},
        # ECS sends SIGTERM, waits stopTimeout, then SIGKILL: give the runtime's drain a margin
        "stopTimeout": min(120, cfg.runtime.drain_timeout_s + 5),
        "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
        # the image's code and model cannot be modified at run time; uploads/temp files go to the /tmp volume
        "readonlyRootFilesystem": cfg.aws.read_only_root_filesystem,
        "mountPoints": [{"sourceVolume": TMP_VOLUME, "containerPath": "/tmp", "readOnly": False}],
        **repository_credentials(spec),
        **gpu_requirements(spec),
    }


def gpu_requirements(spec: StackSpec) -> dict[str, Any]:
    """``resourceRequirements`` GPU for ``aws.gpus``: "The number of physical GPUs the Amazon ECS container agent
    reserves for the container" (botocore ecs ResourceRequirement.value; EC2 capacity only)."""
    n = spec.config.aws.gpus
    return {"resourceRequirements": [{"type": "GPU", "value": str(n)}]} if n else {}


def repository_credentials(spec: StackSpec) -> dict[str, Any]:
    """``repositoryCredentials`` for a private non-ECR registry (``registry.credentials_secret``): Fargate pulls
    with that Secrets Manager secret, read by the execution role ("Private registry authentication for tasks",
    ECS developer guide; ``iam.registry_credentials_statements`` grants it)."""
    arn = spec.config.registry.credentials_secret
    return {"repositoryCredentials": {"credentialsParameter": arn}} if arn and not spec.uses_ecr else {}


def tags(spec: StackSpec) -> list[dict[str, str]]:
    """The app/env tags, plus ``mldeploy:version`` on a canary's revision. No ``mldeploy:role``: ``promote``
    makes the canary's revision the stable one."""
    out = spec.as_role("stable").tags
    if spec.canary:
        out = {**out, VERSION_TAG: version(spec)}
    return [{"key": k, "value": v} for k, v in sorted(out.items())]


def desired(spec: StackSpec, known: Known, image: Any) -> dict[str, Any]:
    """register_task_definition arguments for ``image`` (a URI or a ``Ref``)."""
    aws = spec.config.aws
    args: dict[str, Any] = {
        "family": family(spec),
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["EC2" if aws.compute == "ec2" else "FARGATE"],
        "cpu": str(aws.cpu),
        "memory": str(aws.memory),
        "runtimePlatform": {"cpuArchitecture": ARCH[spec.config.image.platform], "operatingSystemFamily": "LINUX"},
        "executionRoleArn": known["execution_role_arn"],
        "containerDefinitions": [container(spec, image, known)],
        "volumes": [{"name": TMP_VOLUME}],  # Fargate task storage (ephemeral), writable even with a read-only root
        "tags": tags(spec),
    }
    if known.get("task_role_arn"):
        args["taskRoleArn"] = known["task_role_arn"]
    if gib := model_store.ephemeral_storage_gib(spec, known):
        args["ephemeralStorage"] = {"sizeInGiB": gib}  # the downloaded artifact + the image beyond 20 GiB
    return args


HEALTH_CHECK_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3, "startPeriod": 0}
"""botocore ecs HealthCheck: interval "The default value is 30 seconds", timeout "The default value is 5", retries
"The default value is 3", startPeriod "By default, the startPeriod is off" (0)."""


def _norm_port(p: dict[str, Any]) -> tuple[Any, Any, str]:
    """botocore ecs PortMapping: with ``awsvpc`` "the hostPort is set to the same value as the containerPort";
    protocol "The default is tcp"."""
    return p["containerPort"], p.get("hostPort") or p["containerPort"], p.get("protocol") or "tcp"


def _norm_container(c: dict[str, Any]) -> dict[str, Any]:
    """The container fields we set, with the defaults DescribeTaskDefinition fills in (``secretOptions: []``,
    ``hostPort``/``protocol``, health-check timings, ``readOnly: false``) made equal to leaving them out; fields we
    never send (container ``cpu``, ``volumesFrom``, ``systemControls``, …) are not compared."""
    out = {k: c.get(k) for k in ("name", "image", "stopTimeout")}
    # "If this parameter is omitted, a container is assumed to be essential" (botocore ecs ContainerDefinition)
    out["essential"] = c.get("essential", True) is not False
    out["ports"] = sorted(_norm_port(p) for p in c.get("portMappings") or [])
    out["environment"] = sorted((e["name"], e["value"]) for e in c.get("environment") or [])
    out["secrets"] = sorted((e["name"], e["valueFrom"]) for e in c.get("secrets") or [])
    log = c.get("logConfiguration") or {}
    out["logConfiguration"] = {"logDriver": log.get("logDriver"), "options": log.get("options") or {},
                               "secretOptions": sorted((o["name"], o["valueFrom"])
                                                       for o in log.get("secretOptions") or [])}
    hc = c.get("healthCheck") or {}
    out["healthCheck"] = {"command": hc.get("command"),
                          **{k: d if hc.get(k) is None else hc[k] for k, d in HEALTH_CHECK_DEFAULTS.items()}}
    out["ulimits"] = sorted((u["name"], u["softLimit"], u["hardLimit"]) for u in c.get("ulimits") or [])
    out["readonlyRootFilesystem"] = bool(c.get("readonlyRootFilesystem"))
    out["repositoryCredentials"] = (c.get("repositoryCredentials") or {}).get("credentialsParameter")
    out["resourceRequirements"] = sorted((r["type"], str(r["value"])) for r in c.get("resourceRequirements") or [])
    # MountPoint.readOnly: "The default value is false"
    out["mountPoints"] = sorted((m["sourceVolume"], m["containerPath"], bool(m.get("readOnly")))
                                for m in c.get("mountPoints") or [])
    return out


DEFAULT_EPHEMERAL_GIB = 20
"""Fargate's task storage without ``ephemeralStorage`` (ECS developer guide, "Fargate task ephemeral storage":
20 GiB); botocore ecs EphemeralStorage.sizeInGiB: "The minimum supported value is 21 GiB"."""


def _str(v: Any) -> Any:
    """Task ``cpu``/``memory`` are strings in the API (botocore ecs TaskDefinition.cpu: String), ints in configs."""
    return None if v is None else str(v)


def diff(cur: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Human-readable differences between a revision and the desired arguments (empty: identical)."""
    changes = []
    for key in ("cpu", "memory", "executionRoleArn", "taskRoleArn"):
        have, wanted = cur.get(key), want.get(key)
        if key in ("cpu", "memory"):
            have, wanted = _str(have), _str(wanted)
        if is_unknown(wanted) or have != wanted:
            if key.endswith("Arn"):
                changes.append(key.removesuffix("Arn").replace("Role", " role"))
            else:
                changes.append(f"{key} {cur.get(key)} → {want.get(key)}")
    if sorted(cur.get("requiresCompatibilities") or []) != want["requiresCompatibilities"]:
        changes.append(f"compatibility → {', '.join(want['requiresCompatibilities'])}")
    have_gib, want_gib = ((td.get("ephemeralStorage") or {}).get("sizeInGiB") or DEFAULT_EPHEMERAL_GIB
                          for td in (cur, want))
    if have_gib != want_gib:
        changes.append(f"ephemeral storage {have_gib} → {want_gib} GiB")
    if (cur.get("runtimePlatform") or {}).get("cpuArchitecture") != want["runtimePlatform"]["cpuArchitecture"]:
        changes.append(f"platform → {want['runtimePlatform']['cpuArchitecture']}")
    containers = cur.get("containerDefinitions") or [{}]
    a, b = _norm_container(containers[0]), _norm_container(want["containerDefinitions"][0])
    for key in b:
        if is_unknown(b[key]) or a.get(key) != b[key]:
            if key == "image":
                changes.append(f"image {a.get('image')} → {b['image']}")
            elif key == "environment":
                names = {k for k, _ in set(a[key]) ^ set(b[key])}
                changes.append(f"environment {', '.join(sorted(names))}")
            else:
                changes.append(key)
    return changes


def _reusable(spec: StackSpec, remote: Remote, want: dict[str, Any]) -> Revision | None:
    """The family's latest ACTIVE revision when it equals ``want``: a run that died after registering it must not
    leak one more revision per retry. The stable role never reuses a canary's revision (tagged with a version);
    the canary never reuses the revision the stable service runs (it must be a revision of its own)."""
    latest = describe(spec, remote, family(spec))
    if latest is None or diff(latest[0], want):
        return None
    if spec.canary:
        stable = service.read(spec.as_role("stable"), remote)
        if stable and stable.get("taskDefinition") == latest[0]["taskDefinitionArn"]:
            return None
    elif VERSION_TAG in latest[1]:
        return None
    return latest


def _name(td: dict[str, Any]) -> str:
    return f"{td['family']}:{td['revision']}"


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    key = spec.key("task_definition_arn")
    current = running(spec, remote)
    image = spec.image
    if image is None and current is not None:
        image = current[0]["containerDefinitions"][0]["image"]  # keep what the service runs
    if image is None:
        image = Ref("image")  # supplied by `up` once it has built and pushed
    known[spec.key("image")] = image
    keep = ecr.keep(spec, remote, known, image)  # the deployed image never expires (before the TD names it)
    want = desired(spec, known, image)
    if current is not None and not diff(current[0], want):
        known[key] = current[0]["taskDefinitionArn"]
        return [*keep, Step(KIND, _name(current[0]), Action.noop)]
    reuse = None if is_unknown(want) else _reusable(spec, remote, want)
    if reuse is not None:
        known[key] = reuse[0]["taskDefinitionArn"]
        return [*keep, Step(KIND, _name(reuse[0]), Action.noop, note="registered by an earlier run")]
    known[key] = Ref(key)
    register = ApiCall("ecs", "register_task_definition", want, outputs=((key, "taskDefinition.taskDefinitionArn"),))
    role = " (canary)" if spec.canary else ""
    base = current or describe(spec, remote, family(spec))
    if base is None:
        size = f"{spec.config.aws.cpu} CPU units, {spec.config.aws.memory} MiB, {spec.config.image.platform}"
        return [*keep, Step(KIND, family(spec) + role, Action.create, [size, f"image {image}"], calls=[register])]
    return [*keep, Step(KIND, family(spec) + role, Action.update, diff(base[0], want),
                        note=f"new revision after {base[0]['revision']}", calls=[register])]


def revisions(spec: StackSpec, remote: Remote, status: str) -> list[str]:
    """ARNs of the family's revisions in ``status``. ``familyPrefix`` also matches longer names ("demo-canary",
    "demo-prod" for app "demo"): keep this family only."""
    arns = remote.pages("ecs", "list_task_definitions", "taskDefinitionArns", familyPrefix=family(spec),
                        status=status)
    return [a for a in arns if a.rsplit("/", 1)[1].rsplit(":", 1)[0] == family(spec)]


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Deregister every ACTIVE revision, then delete them all (ECS: "You must deregister a task definition
    revision before you delete it"), in batches of ``BATCH``. One family holds both roles: stable role only."""
    if spec.canary:
        return []
    active = revisions(spec, remote, "ACTIVE")
    every = active + [a for a in revisions(spec, remote, "INACTIVE") if a not in active]
    if not every:
        return []
    calls = [ApiCall("ecs", "deregister_task_definition", {"taskDefinition": a}, missing=("ClientException",))
             for a in active]
    calls += [ApiCall("ecs", "delete_task_definitions", {"taskDefinitions": every[i:i + BATCH]},
                      missing=("ClientException",)) for i in range(0, len(every), BATCH)]
    return [Step(KIND, family(spec), Action.delete, [f"{len(every)} revisions"], calls=calls)]
