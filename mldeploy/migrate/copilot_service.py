"""One Copilot Load Balanced Web Service manifest (environment overrides already merged) → mldeploy fields.

The fields are those of Copilot's manifest reference (aws/copilot-cli site/content/docs/manifest/lb-web-service.en.md
and the site/content/docs/include/ pages it includes). A leaf no section handles gets an "unsupported" row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mldeploy.migrate.copilot_model import (
    COPILOT_COUNT,
    COPILOT_CPU,
    COPILOT_MEMORY,
    ENV_VAR,
    LBWS,
    MAPPED,
    MODEL_PLACEHOLDER,
    NEEDS_INPUT,
    NOT_NEEDED,
    UNSUPPORTED,
    Mapper,
    MigrationError,
    Row,
    count_range,
    leaves,
    predefined,
    seconds,
    show,
    whole,
)


def map_service(m: Mapping[str, Any], *, name: str | None, model_path: str | None, env: str | None = None,
                 app: str | None, account: str | None, region: str | None) -> Mapper:
    subs = {"COPILOT_APPLICATION_NAME": app} if app else {}
    m = predefined(m, {**subs, **({"COPILOT_ENVIRONMENT_NAME": env} if env else {})})
    out = Mapper()
    out.skip("type", NOT_NEEDED, f"{LBWS}: what mldeploy deploys (one ECS Fargate service behind an ALB)")
    _name(out, m, name)
    if model_path:
        out.config["model"] = {"path": model_path}
        out.comments[("model", "path")] = "--model: the model mldeploy builds the image from"
    else:
        out.config["model"] = {"path": MODEL_PLACEHOLDER}
        out.comments[("model", "path")] = ("TODO: the trained model file or folder; Copilot's image has no model "
                                           "path (rerun with --model PATH)")
    _image(out, m)
    _task_size(out, m)
    _platform(out, m)
    _count(out, m)
    _http(out, m)
    _variables(out, m)
    _secrets(out, m, account, region)
    _simple(out, m)
    _network(out, m)
    for path in leaves(m):
        if not out.covered(path):
            out.skip(path, UNSUPPORTED, "no mldeploy equivalent")
    return out


def _name(out: Mapper, m: Mapping[str, Any], name: str | None) -> None:
    raw = m.get("name")
    if name:
        out.config["name"] = name
        out.comments[("name",)] = "--name" + (f" (Copilot service {raw!r})" if raw else "")
        out.rows.append(Row("name", "name", MAPPED, f"{name} (--name)"))
        out.done.add("name")
    elif not raw:
        raise MigrationError("name", "the manifest has no service name (pass --name)")
    else:
        app = re.sub(r"[^a-z0-9-]+", "-", str(raw).lower()).strip("-")
        app = app if app[:1].isalpha() else f"m-{app}"
        out.put("name", app[:28].rstrip("-"), "name", "" if app == raw else f"from {raw!r}")


def _image(out: Mapper, m: Mapping[str, Any]) -> None:
    image = m.get("image")
    if not isinstance(image, Mapping):
        return
    why = {
        "build": "mldeploy builds its own image from model.path (`mldeploy build`); the Dockerfile is not used",
        "location": "mldeploy builds and pushes its own image from model.path; `mldeploy up --image` deploys a "
                    "prebuilt mldeploy image",
        "port": "the mldeploy server listens on its own port; the load balancer and health check follow it",
        "healthcheck": "the container health check is mldeploy's (/ready, from aws.health_check)",
        "context": "mldeploy builds its own image", "args": "mldeploy builds its own image",
        "credentials": "mldeploy pushes to its own ECR repository (registry:)",
    }
    for key in image:
        if key in why:
            out.skip(f"image.{key}", NOT_NEEDED, why[key])


def _task_size(out: Mapper, m: Mapping[str, Any]) -> None:
    cpu = whole(m.get("cpu", COPILOT_CPU), "cpu")
    memory = whole(m.get("memory", COPILOT_MEMORY), "memory")
    from mldeploy.config.schema.fargate import FARGATE_SIZES, fargate_memory_rule

    if cpu not in FARGATE_SIZES:  # the schema's own table (aws.cpu / aws.memory validators)
        raise MigrationError("cpu", f"{cpu} is not a Fargate CPU size; choose one of "
                             f"{', '.join(map(str, FARGATE_SIZES))}")
    if memory not in FARGATE_SIZES[cpu]:
        raise MigrationError("memory", f"{memory} MiB is not valid with cpu {cpu} on Fargate: cpu {cpu} takes "
                             f"{fargate_memory_rule(cpu)} (Fargate task size table, ECS developer guide)")
    out.put("aws.cpu", cpu, "cpu", "" if "cpu" in m else "Copilot's default 256")
    out.put("aws.memory", memory, "memory", "" if "memory" in m else "Copilot's default 512")


def _platform(out: Mapper, m: Mapping[str, Any]) -> None:
    p = m.get("platform")
    if p is None:
        return
    if isinstance(p, Mapping):
        os_family, arch, where = str(p.get("osfamily", "")).lower(), str(p.get("architecture", "")), "platform"
    else:
        os_family, _, arch = str(p).partition("/")
        where = "platform"
    if os_family != "linux":
        out.skip(where, UNSUPPORTED, f"{p!r}: mldeploy images are Linux (linux/amd64 or linux/arm64)")
        return
    wanted = {"arm64": "linux/arm64", "x86_64": "linux/amd64", "amd64": "linux/amd64"}.get(arch.lower())
    if wanted is None:
        raise MigrationError(where, f"{p!r}: architecture {arch!r} is not arm64 or x86_64")
    out.put("image.platform", wanted, where)


def _count(out: Mapper, m: Mapping[str, Any]) -> None:
    count = m.get("count", COPILOT_COUNT)
    if not isinstance(count, Mapping):
        n = whole(count, "count")
        note = "" if "count" in m else "Copilot's default 1"
        out.put("aws.desired_count", n, "count", note)
        # Copilot does not autoscale a plain count: pin mldeploy's autoscaling (always on) to it
        out.put("aws.autoscaling.min", n, "count", "fixed count: autoscaling pinned")
        out.put("aws.autoscaling.max", max(n, 1), "count", "fixed count: autoscaling pinned")
        return
    if "range" in count:
        low, high, spot_from = count_range(count["range"], "count.range")
        out.put("aws.autoscaling.min", low, "count.range")
        out.put("aws.autoscaling.max", high, "count.range")
        out.put("aws.desired_count", low, "count.range", "Copilot starts at the range's minimum")
        if spot_from is not None:
            # Copilot: "spot_from: the desired count at which Fargate Spot is used"; mldeploy's spot.base tasks
            # always stay on FARGATE, the rest go to FARGATE_SPOT
            out.put("aws.spot.enabled", True, "count.range.spot_from")
            out.put("aws.spot.base", max(spot_from - 1, 0), "count.range.spot_from",
                    f"tasks below {spot_from} on FARGATE, the rest on FARGATE_SPOT")
            out.put("aws.spot.weight", 100, "count.range.spot_from")
    elif "spot" in count:
        n = whole(count["spot"], "count.spot")
        out.put("aws.desired_count", n, "count.spot", "all tasks on Fargate Spot")
        out.put("aws.autoscaling.min", n, "count.spot", "fixed count: autoscaling pinned")
        out.put("aws.autoscaling.max", max(n, 1), "count.spot", "fixed count: autoscaling pinned")
        out.put("aws.spot.enabled", True, "count.spot")
        out.put("aws.spot.base", 0, "count.spot")
        out.put("aws.spot.weight", 100, "count.spot")
    else:
        raise MigrationError("count", "a count map needs range (e.g. 1-10) or spot")
    cooldown = count.get("cooldown") or {}
    if "in" in cooldown:
        out.put("aws.autoscaling.scale_in_cooldown_s", seconds(cooldown["in"], "count.cooldown.in"),
                "count.cooldown.in")
    if "out" in cooldown:
        out.put("aws.autoscaling.scale_out_cooldown_s", seconds(cooldown["out"], "count.cooldown.out"),
                "count.cooldown.out")
    for key, target in (("cpu_percentage", "aws.autoscaling.cpu_target"),
                        ("requests", "aws.autoscaling.requests_per_target")):
        if key not in count:
            continue
        value = count[key]
        if isinstance(value, Mapping):
            if "cooldown" in value:
                out.skip(f"count.{key}.cooldown", UNSUPPORTED, "mldeploy has one cooldown pair for every metric "
                         "(aws.autoscaling.scale_in/out_cooldown_s, from count.cooldown)")
            value, source = value.get("value"), f"count.{key}.value"
        else:
            source = f"count.{key}"
        out.put(target, whole(value, source), source)
    if "range" in count and "cpu_percentage" not in count:
        out.rows.append(Row("count (no cpu_percentage)", "aws.autoscaling.cpu_target", MAPPED,
                            "not set in Copilot: mldeploy always tracks CPU, at its default 60%"))
    for key, why in (("memory_percentage", "mldeploy scales on CPU and ALB requests per target only"),
                     ("response_time", "mldeploy scales on CPU and ALB requests per target only")):
        if key in count:
            out.skip(f"count.{key}", UNSUPPORTED, why)


_HC_FIELDS = {"healthy_threshold": "healthy_threshold", "unhealthy_threshold": "unhealthy_threshold"}
_HC_DURATIONS = {"interval": "interval_s", "timeout": "timeout_s", "grace_period": "grace_period_s"}
MLDEPLOY_PROBES = ("/ready", "/health")  # runtime/http/routes.py: readiness and liveness


def _http(out: Mapper, m: Mapping[str, Any]) -> None:
    http = m.get("http", {})
    if http is False:
        raise MigrationError("http", "false: the service has no Application Load Balancer (Network Load Balancer "
                             "only); mldeploy serves behind an ALB")
    if not isinstance(http, Mapping):
        return
    path = http.get("path")
    if path is not None:
        if str(path).strip("/") == "":
            out.skip("http.path", NOT_NEEDED, "mldeploy's load balancer forwards every path to the service")
        else:
            out.skip("http.path", UNSUPPORTED, f"{path!r}: mldeploy's load balancer is the service's own and "
                     "forwards every path (/predict, /ready, …); it does not share an ALB by path")
    hc = http.get("healthcheck")
    if isinstance(hc, str):
        hc = {"path": hc}
        _hc_path(out, hc["path"], "http.healthcheck")
    elif isinstance(hc, Mapping):
        if "path" in hc:
            _hc_path(out, hc["path"], "http.healthcheck.path")
        for key, target in _HC_FIELDS.items():
            if key in hc:
                where = f"http.healthcheck.{key}"
                out.put(f"aws.health_check.{target}", whole(hc[key], where), where)
        for key, target in _HC_DURATIONS.items():
            if key in hc:
                where = f"http.healthcheck.{key}"
                out.put(f"aws.health_check.{target}", seconds(hc[key], where), where)
        if "port" in hc:
            out.skip("http.healthcheck.port", NOT_NEEDED, "the health check goes to the mldeploy server's port")
        if "success_codes" in hc:
            out.skip("http.healthcheck.success_codes", NOT_NEEDED, "the mldeploy server answers 200 when ready")
    if "deregistration_delay" in http:
        out.put("aws.health_check.deregistration_delay_s",
                seconds(http["deregistration_delay"], "http.deregistration_delay"), "http.deregistration_delay")
    if "allowed_source_ips" in http:
        out.put("aws.allowed_cidrs", [str(c) for c in http["allowed_source_ips"]], "http.allowed_source_ips")
    _alias(out, http)
    redirect = http.get("redirect_to_https")
    if redirect is not None:
        out.skip("http.redirect_to_https", NOT_NEEDED if redirect else UNSUPPORTED,
                 "mldeploy redirects HTTP to HTTPS whenever aws.domain is set" if redirect else
                 "false: mldeploy always redirects HTTP to HTTPS when it serves a domain")
    why = {"target_container": "mldeploy runs one container (no sidecars)",
           "target_port": "the load balancer forwards to the mldeploy server's port",
           "stickiness": "mldeploy's model servers are stateless: no sticky sessions",
           "version": "mldeploy's target group speaks HTTP/1.1",
           "additional_rules": "mldeploy's load balancer has one rule: forward everything to the service",
           "alb": "mldeploy creates its own load balancer; it does not import an existing ALB"}
    for key, text in why.items():
        if key in http:
            out.skip(f"http.{key}", UNSUPPORTED, text)


def _hc_path(out: Mapper, path: Any, where: str) -> None:
    if path in MLDEPLOY_PROBES:
        out.put("aws.health_check.path", path, where)
    else:
        out.skip(where, NOT_NEEDED, f"{path!r} was your app's; the mldeploy server answers /ready (ready once the "
                 "model is loaded), which the health check uses")


def _alias(out: Mapper, http: Mapping[str, Any]) -> None:
    alias = http.get("alias")
    if alias is None:
        if "hosted_zone" in http:
            out.skip("http.hosted_zone", NOT_NEEDED, "only used with http.alias")
        return
    entries: list[tuple[str, str | None, str]] = []  # (domain, hosted zone, source)
    if isinstance(alias, str):
        entries.append((alias, None, "http.alias"))
    elif isinstance(alias, list):
        for i, a in enumerate(alias):
            if isinstance(a, Mapping):
                entries.append((str(a.get("name")), a.get("hosted_zone"), f"http.alias[{i}]"))
            else:
                entries.append((str(a), None, f"http.alias[{i}]"))
    if not entries:
        raise MigrationError("http.alias", f"{alias!r} is not a domain name or a list of them")
    domain, zone, source = entries[0]
    out.put("aws.domain", domain, source if isinstance(alias, str) else "http.alias")
    zone = zone or http.get("hosted_zone")
    if zone:
        out.put("aws.hosted_zone_id", str(zone), "http.hosted_zone" if "hosted_zone" in http else source)
    for other, _, where in entries[1:]:
        out.rows.append(Row(where, None, UNSUPPORTED, f"{other}: mldeploy serves one domain (aws.domain); point "
                            "this name at the mldeploy load balancer yourself (certificate SAN + Route 53 alias)"))
    out.done.add("http.alias")


_PER_ENV = (f"names {ENV_VAR}: carried into each environments.<env> overlay with the environment's name; the top "
            "level (no Copilot environment) has no value")


def _looks_secret(name: str) -> bool:
    from mldeploy.config.schema.aws_secrets import SECRET_ENV_HINTS  # what `validate` warns about in aws.environment

    return any(h in name.upper() for h in SECRET_ENV_HINTS)


def _variables(out: Mapper, m: Mapping[str, Any]) -> None:
    variables = m.get("variables") or {}
    for key, value in variables.items():
        where = f"variables.{key}"
        if isinstance(value, Mapping):
            out.skip(where, UNSUPPORTED, "from_cfn: mldeploy does not read CloudFormation exports; write the value")
        elif ENV_VAR in str(value):
            out.skip(where, NEEDS_INPUT, _PER_ENV)
        elif _looks_secret(str(key)):
            out.skip(where, NEEDS_INPUT, "looks like a secret, so it is not written in plain text (ECS shows task "
                     "definition environment values to anyone with ecs:DescribeTaskDefinition): store it as an SSM "
                     f"SecureString and add aws.secrets.{key}: <its ARN>")
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            out.put(f"aws.environment.{key}", text, where)


def _secret_arn(value: Any, where: str, account: str | None, region: str | None) -> str:
    acct = account or "${AWS_ACCOUNT_ID:?set AWS_ACCOUNT_ID or write the full ARN}"
    reg = region or "${AWS_REGION:?set AWS_REGION or write the full ARN}"
    if isinstance(value, Mapping):
        if "secretsmanager" in value:
            name = str(value["secretsmanager"])
            if name.startswith("arn:"):
                return name
            # Copilot completes a name the same way (internal/pkg/template/workload.go secretsManagerName: ValueFrom
            # "secret:NAME" under !Sub arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:…)
            return f"arn:aws:secretsmanager:{reg}:{acct}:secret:{name}"
        raise MigrationError(where, f"{dict(value)!r}: only SSM parameter names/ARNs and secretsmanager are carried")
    text = str(value)
    if text.startswith("arn:"):
        return text
    # Copilot passes a plain name to ECS (lb-svc.yml: "the value is the name of the SSM parameter"; ECS guide,
    # secrets-envvar-ssm-paramstore: "If the parameter exists in the same Region … you can use either the full ARN
    # or name"); mldeploy grants its execution role the parameter by ARN, whose resource is "parameter/" + the name
    # without its leading "/"
    return f"arn:aws:ssm:{reg}:{acct}:parameter/{text.lstrip('/')}"


def _secrets(out: Mapper, m: Mapping[str, Any], account: str | None, region: str | None) -> None:
    for key, value in (m.get("secrets") or {}).items():
        where = f"secrets.{key}"
        if isinstance(value, Mapping) and "from_cfn" in value:
            out.skip(where, UNSUPPORTED, "from_cfn: mldeploy does not read CloudFormation exports; write the ARN")
            continue
        if ENV_VAR in str(value):
            out.skip(where, NEEDS_INPUT, _PER_ENV)
            continue
        arn = _secret_arn(value, where, account, region)
        note = "" if str(value).startswith("arn:") else f"from the name {show(value)}"
        out.put(f"aws.secrets.{key}", arn, where, note)


def _simple(out: Mapper, m: Mapping[str, Any]) -> None:
    """exec, logging, storage, deployment, tags and the sections with no mldeploy counterpart."""
    if "exec" in m:
        out.skip("exec", UNSUPPORTED if m["exec"] else NOT_NEEDED, "mldeploy does not turn on ECS Exec (read-only, "
                 "non-root container); use `mldeploy logs` and `mldeploy status`" if m["exec"] else "false")
    logging = m.get("logging") or {}
    if "retention" in logging:
        out.put("aws.log_retention_days", whole(logging["retention"], "logging.retention"), "logging.retention")
    for key in logging:
        if key != "retention":
            out.skip(f"logging.{key}", UNSUPPORTED, "mldeploy logs to CloudWatch Logs (awslogs); no FireLens")
    storage = m.get("storage") or {}
    if "readonly_fs" in storage:
        out.put("aws.read_only_root_filesystem", bool(storage["readonly_fs"]), "storage.readonly_fs")
    if "ephemeral" in storage:
        out.skip("storage.ephemeral", UNSUPPORTED, "mldeploy tasks get Fargate's default 20 GiB ephemeral storage")
    if "volumes" in storage:
        out.skip("storage.volumes", UNSUPPORTED, "mldeploy mounts no volumes (EFS or bind); the model is in the "
                 "image or downloaded from S3 (model.store)")
    deployment = m.get("deployment") or {}
    if "rolling" in deployment:
        out.skip("deployment.rolling", NOT_NEEDED, "mldeploy rolls out with ECS rolling updates and the circuit "
                 "breaker; `mldeploy canary`/`promote` stage a new model")
    if "rollback_alarms" in deployment:
        out.skip("deployment.rollback_alarms", UNSUPPORTED, "mldeploy creates its own alarms (aws.alarms: error "
                 "rate, p99 latency) and watches them during canary; existing alarms are not attached")
    if isinstance(m.get("tags"), Mapping):
        for key, value in m["tags"].items():
            out.put(f"aws.tags.{key}", str(value), f"tags.{key}")
    sections = {"sidecars": "mldeploy runs one container per task",
             "nlb": "mldeploy serves behind an Application Load Balancer only",
             "publish": "mldeploy creates no SNS topics", "taskdef_overrides": "mldeploy writes its own task "
             "definition", "command": "the mldeploy image runs its own server", "entrypoint": "the mldeploy image "
             "runs its own server", "observability": "mldeploy emits CloudWatch metrics and logs (no X-Ray)"}
    for key, why in sections.items():
        if key in m:
            out.skip(key, UNSUPPORTED, why)


def _network(out: Mapper, m: Mapping[str, Any]) -> None:
    network = m.get("network") or {}
    if "connect" in network:
        out.skip("network.connect", NOT_NEEDED, "Service Connect is for service-to-service calls; clients reach "
                 "mldeploy through its load balancer")
    vpc = network.get("vpc") or {}
    if "security_groups" in vpc:
        out.skip("network.vpc.security_groups", UNSUPPORTED, "mldeploy creates the task and load balancer security "
                 "groups (aws.allowed_cidrs controls ingress)")
    placement = vpc.get("placement")
    if placement is None:
        return
    if isinstance(placement, Mapping):
        subnets = placement.get("subnets")
        if isinstance(subnets, list):
            out.put("aws.subnet_ids", [str(s) for s in subnets], "network.vpc.placement.subnets")
            out.rows.append(Row("network.vpc.placement.subnets", "aws.vpc_id", NEEDS_INPUT,
                                "set aws.vpc_id to the subnets' VPC (mldeploy needs it with subnet_ids)"))
        else:
            out.skip("network.vpc.placement.subnets", UNSUPPORTED, "from_tags: list the subnet ids in aws.subnet_ids")
        return
    if placement == "public":
        out.skip("network.vpc.placement", NOT_NEEDED, "public: mldeploy's default (public IP, aws.assign_public_ip)")
    elif placement == "private":
        # completed by the environment manifest's private subnets (_map_environment); alone it needs input
        out.skip("network.vpc.placement", NEEDS_INPUT, "private: set aws.vpc_id, aws.subnet_ids (private subnets "
                 "with a NAT gateway or VPC endpoints), aws.alb_subnet_ids (public) and aws.assign_public_ip: false")
    else:
        raise MigrationError("network.vpc.placement", f"{placement!r} is not public or private")
