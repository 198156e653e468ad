"""Strict AWS rules for the tests: reject on top of moto what AWS documents as invalid (``MLDEPLOY_STRICT_AWS=1``).

``before_call`` is a botocore ``before-call.*.*`` handler (``mldeploy.aws.clients.test_hooks`` registers it). It
decodes the serialized request back into the caller's parameters, runs the rules for that operation and raises a
``ClientError`` with the code AWS returns, so the CLI behaves as it would against a real account.

Sources, cited per rule: ``botocore`` = the AWS API reference text in botocore 1.43's service model
(``botocore/data/<service>/<version>/service-2.json[.gz]``, shape.member); ``ECS guide`` / ``ALB guide`` = the
AWS developer guides; ``terraform`` = hashicorp/terraform-provider-aws. Messages paraphrase AWS's; codes are AWS's.
Rules that need AWS state (subnet AZs, target-group associations) read it through a plain boto3 client with no
hooks, against the same endpoint.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Params = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One API request as the rules see it."""

    service: str
    op: str
    model: Any
    params: Params
    endpoint: str | None
    region: str | None

    def client(self, service: str) -> Any:
        """A plain boto3 client (no mldeploy hooks) on the request's endpoint, for the rules' describe calls."""
        return _plain_client(service, self.endpoint, self.region)


Rule = Callable[[Call], None]
RULES: dict[tuple[str, str], list[Rule]] = {}


def rule(service: str, *ops: str) -> Callable[[Rule], Rule]:
    """Register ``fn`` for ``service`` operations ``ops`` (botocore operation names, e.g. ``CreateLoadBalancer``)."""
    def register(fn: Rule) -> Rule:
        for op in ops:
            RULES.setdefault((service, op), []).append(fn)
        return fn
    return register


class Rejected(Exception):
    """A rule's verdict: AWS error ``code`` and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def reject(code: str, message: str) -> None:
    raise Rejected(code, message)


def before_call(model: Any, params: Any, context: Any = None, request_signer: Any = None, **_: Any) -> None:
    """botocore ``before-call`` handler: raise ``ClientError`` when a rule rejects the request."""
    service, op = model.service_model.service_name, model.name
    rules = [*RULES.get((service, op), ()), _model_limits]
    decoded = request_params(model, params)
    endpoint = None
    if isinstance(params, dict) and params.get("url"):
        url = urlsplit(params["url"])
        endpoint = f"{url.scheme}://{url.netloc}"
    region = (context or {}).get("client_region") or getattr(request_signer, "region_name", None)
    call = Call(service, op, model, decoded, endpoint, region)
    for check in rules:
        try:
            check(call)
        except Rejected as e:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": e.code, "Message": e.message, "Type": "Sender"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, op) from None


HOOKS: list[tuple[str, Any]] = [("before-call.*.*", before_call)]
"""Every (event, handler) this layer needs; register all of them on each client."""


# ------------------------------------------------------------------------------------------- request decoding


def request_params(model: Any, request: Any) -> Params:
    """The caller's parameters, decoded from botocore's serialized request dict (json, cbor, query, ec2)."""
    body = request.get("body") if isinstance(request, dict) else None
    protocol = model.service_model.resolved_protocol if hasattr(model.service_model, "resolved_protocol") \
        else model.service_model.protocol
    if protocol == "rest-xml" and model.service_model.service_name == "s3" and isinstance(request, dict):
        return _s3_params(request)
    if isinstance(body, dict):  # query / ec2: the flattened form
        if model.input_shape is None:
            return {}
        return _unflatten(model.input_shape, body, "", protocol == "ec2", set(body)) or {}
    if not body:
        return {}
    if isinstance(body, str):
        body = body.encode()
    if protocol in ("rest-xml", "rest-json") or body.lstrip()[:1] == b"<":
        return {}  # Route 53 (XML) and REST bodies: no rule reads them (the URI carries their ids)
    if protocol == "smithy-rpc-v2-cbor" or body[:1] not in (b"{", b"["):
        from botocore.parsers import RpcV2CBORParser

        return RpcV2CBORParser().parse_data_item(io.BufferedReader(io.BytesIO(body)))  # type: ignore[no-any-return]
    return json.loads(body)  # type: ignore[no-any-return]


def _s3_params(request: dict[str, Any]) -> Params:
    """S3 (REST-XML): the bucket from the request path (path-style addressing, as against a local endpoint) and the
    CreateBucket LocationConstraint from the XML body: what the S3 rules read."""
    from urllib.parse import unquote

    out: Params = {}
    # botocore's endpoint rules render the bucket into "url"; "auth_path" keeps it as "/<bucket>/<key>"
    path = str(request.get("auth_path") or urlsplit(str(request.get("url") or "")).path)
    bucket = unquote(path.lstrip("/").split("/", 1)[0].split("?", 1)[0])
    if bucket:
        out["Bucket"] = bucket
    body = request.get("body") or b""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    if m := re.search(r"<LocationConstraint>([^<]*)</LocationConstraint>", text):
        out["CreateBucketConfiguration"] = {"LocationConstraint": m.group(1)}
    return out


def _has(keys: set[str], prefix: str) -> bool:
    return prefix in keys or any(k.startswith(prefix + ".") for k in keys)


def _unflatten(shape: Any, flat: dict[str, Any], prefix: str, ec2: bool, keys: set[str]) -> Any:
    """Invert botocore's Query/EC2 serializers for ``shape`` at ``prefix`` (None when absent)."""
    kind = shape.type_name
    if prefix and not _has(keys, prefix):
        return None
    if kind == "structure":
        out: Params = {}
        for name, member in shape.members.items():
            if ec2:
                key = member.serialization.get("queryName") or (member.serialization.get("name") or name)
                key = key[0].upper() + key[1:]
            else:
                key = member.serialization.get("name", name)
            value = _unflatten(member, flat, f"{prefix}.{key}" if prefix else key, ec2, keys)
            if value is not None:
                out[name] = value
        return out
    if kind == "list":
        if flat.get(prefix) == "":
            return []
        if ec2:
            base = prefix
        elif shape.serialization.get("flattened"):
            base = prefix
            if shape.member.serialization.get("name"):
                base = ".".join([*prefix.split(".")[:-1], shape.member.serialization["name"]])
        else:
            base = f"{prefix}.{shape.member.serialization.get('name', 'member')}"
        items, i = [], 1
        while (item := _unflatten(shape.member, flat, f"{base}.{i}", ec2, keys)) is not None:
            items.append(item)
            i += 1
        return items
    if kind == "map":
        entry = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
        kname, vname = shape.key.serialization.get("name", "key"), shape.value.serialization.get("name", "value")
        out, i = {}, 1
        while f"{entry}.{i}.{kname}" in flat:
            out[flat[f"{entry}.{i}.{kname}"]] = _unflatten(shape.value, flat, f"{entry}.{i}.{vname}", ec2, keys)
            i += 1
        return out
    value = flat.get(prefix)
    if isinstance(value, str) and kind in ("integer", "long"):
        return int(value)
    if isinstance(value, str) and kind == "boolean":
        return value == "true"
    return value


_PLAIN: dict[tuple[str, str | None, str | None], Any] = {}


def _plain_client(service: str, endpoint: str | None, region: str | None) -> Any:
    key = (service, endpoint, region)
    if key not in _PLAIN:
        import boto3

        _PLAIN[key] = boto3.session.Session().client(service, endpoint_url=endpoint, region_name=region)
    return _PLAIN[key]


# --------------------------------------------------------------------------------------------- shared checks

# The error code AWS's request validation returns for a model constraint, per service (query services answer
# "ValidationError", JSON ones the exception their model declares for bad parameters).
VALIDATION_CODE = {"elbv2": "ValidationError", "iam": "ValidationError", "sns": "InvalidParameter",
                   "cloudwatch": "ValidationError", "ec2": "InvalidParameterValue", "ecs": "InvalidParameterException",
                   "logs": "InvalidParameterException", "ecr": "InvalidParameterException",
                   "ssm": "ValidationException", "application-autoscaling": "ValidationException"}


def _code(call: Call) -> str:
    return VALIDATION_CODE.get(call.service, "ValidationException")


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _model_limits(call: Call) -> None:
    # botocore validates only the *minimum* of each length/range client-side (botocore/validate.py); AWS also
    # enforces every "max" of the service model, e.g. iam CreateRoleRequest.RoleName max 64, Description max 1000,
    # ecs *.tags max 50, ecs Tag.key max 128 / Tag.value max 256, logs CreateLogGroupRequest.logGroupName max 512,
    # ssm PutParameterRequest.Description max 1024. AWS's message: "1 validation error detected: Value 'x' at
    # 'roleName' failed to satisfy constraint: Member must have length less than or equal to 64".
    if call.model.input_shape is not None:
        _walk_limits(call, call.model.input_shape, call.params, "")


def _walk_limits(call: Call, shape: Any, value: Any, path: str) -> None:
    high = shape.metadata.get("max")
    kind = shape.type_name
    if high is not None:
        if kind in ("string", "list", "map") and hasattr(value, "__len__") and len(value) > high:
            shown = value if kind == "string" else f"[{len(value)} items]"
            reject(_code(call), f"1 validation error detected: Value '{shown}' at '{path}' failed to satisfy "
                                f"constraint: Member must have length less than or equal to {high}")
        if kind in ("integer", "long") and isinstance(value, int) and value > high:
            reject(_code(call), f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy "
                                f"constraint: Member must have value less than or equal to {high}")
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _walk_limits(call, member, value[name], f"{path}.{_camel(name)}" if path else _camel(name))
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value, 1):
            _walk_limits(call, shape.member, item, f"{path}.{i}.member")
    elif kind == "map" and isinstance(value, dict):
        for k, v in value.items():
            _walk_limits(call, shape.key, k, f"{path}.{k}.key")
            _walk_limits(call, shape.value, v, f"{path}.{k}.value")


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _range(code: str, name: str, value: Any, low: int, high: int) -> None:
    if value is not None and not low <= int(value) <= high:
        reject(code, f"{name} must be between {low} and {high}; got {value}")


# ------------------------------------------------------------------------------------------------------ ELBv2

_ELB_NAME = re.compile(r"[A-Za-z0-9-]{1,32}")


def _elb_name(kind: str, name: str) -> None:
    if len(name) > 32:
        reject("ValidationError", f"{kind} name cannot be longer than '32' characters: {name!r}")
    if not _ELB_NAME.fullmatch(name):
        reject("ValidationError", f"{kind} name {name!r} can only contain characters that are alphanumeric "
                                  "characters or hyphens(-)")
    if name.startswith("-") or name.endswith("-"):
        reject("ValidationError", f"{kind} name {name!r} cannot begin or end with '-' character")


@rule("elbv2", "CreateLoadBalancer")
def lb_name(call: Call) -> None:
    # botocore elbv2 CreateLoadBalancerInput.Name: "can have a maximum of 32 characters, must contain only
    # alphanumeric characters or hyphens, must not begin or end with a hyphen, and must not begin with "internal-"".
    name = call.params.get("Name", "")
    _elb_name("LoadBalancer", name)
    if name.startswith("internal-"):
        reject("ValidationError", f"LoadBalancer name {name!r} cannot begin with 'internal-'")


@rule("elbv2", "CreateTargetGroup")
def tg_name(call: Call) -> None:
    # botocore elbv2 CreateTargetGroupInput.Name: "can have a maximum of 32 characters, must contain only
    # alphanumeric characters or hyphens, and must not begin or end with a hyphen".
    _elb_name("Target group", call.params.get("Name", ""))


@rule("elbv2", "CreateLoadBalancer", "SetSubnets")
def lb_subnets(call: Call) -> None:
    # botocore elbv2 CreateLoadBalancerInput.Subnets / SubnetMappings and SetSubnetsInput.Subnets: "You can specify
    # only one subnet per Availability Zone." "[Application Load Balancers] You must specify subnets from at least
    # two Availability Zones." ALB guide (application-load-balancers.html, "Subnets for your load balancer"): "You
    # must select at least two Availability Zone subnets ... Each subnet must be from a different Availability Zone".
    p = call.params
    if p.get("Type", "application") != "application" and call.op == "CreateLoadBalancer":
        return
    subnets = list(p.get("Subnets") or []) + [m["SubnetId"] for m in p.get("SubnetMappings") or [] if "SubnetId" in m]
    if call.op == "SetSubnets":
        lbs = call.client("elbv2").describe_load_balancers(LoadBalancerArns=[p["LoadBalancerArn"]])["LoadBalancers"]
        if lbs and lbs[0].get("Type") != "application":
            return
    if not subnets:
        return
    found = call.client("ec2").describe_subnets(SubnetIds=subnets)["Subnets"]
    zones = [s["AvailabilityZone"] for s in found]
    if len(set(zones)) < len(zones):
        reject("InvalidConfigurationRequest",
               "A load balancer cannot be attached to multiple subnets in the same Availability Zone")
    if len(set(zones)) < 2:
        reject("ValidationError", "At least two subnets in two different Availability Zones must be specified")


@rule("elbv2", "CreateTargetGroup", "ModifyTargetGroup")
def tg_health_check(call: Call) -> None:
    # botocore elbv2 CreateTargetGroupInput: HealthCheckIntervalSeconds "The range is 5-300",
    # HealthCheckTimeoutSeconds "The range is 2–120 seconds", HealthyThresholdCount / UnhealthyThresholdCount
    # "The range is 2-10". Interval vs timeout: AWS answers "ValidationError: Health check interval must be greater
    # than the timeout." (hashicorp/terraform-provider-aws#48071, aws/aws-cdk#29075 quoting the API error).
    p = call.params
    _range("ValidationError", "HealthCheckIntervalSeconds", p.get("HealthCheckIntervalSeconds"), 5, 300)
    _range("ValidationError", "HealthCheckTimeoutSeconds", p.get("HealthCheckTimeoutSeconds"), 2, 120)
    _range("ValidationError", "HealthyThresholdCount", p.get("HealthyThresholdCount"), 2, 10)
    _range("ValidationError", "UnhealthyThresholdCount", p.get("UnhealthyThresholdCount"), 2, 10)
    interval, timeout = _int(p.get("HealthCheckIntervalSeconds")), _int(p.get("HealthCheckTimeoutSeconds"))
    if call.op == "ModifyTargetGroup" and (interval is None) != (timeout is None):
        tg = call.client("elbv2").describe_target_groups(TargetGroupArns=[p["TargetGroupArn"]])["TargetGroups"][0]
        interval = interval if interval is not None else tg.get("HealthCheckIntervalSeconds")
        timeout = timeout if timeout is not None else tg.get("HealthCheckTimeoutSeconds")
    if interval is not None and timeout is not None and interval <= timeout:
        reject("ValidationError", "Health check interval must be greater than the timeout.")


@rule("elbv2", "CreateTargetGroup")
def tg_matcher(call: Call) -> None:
    # botocore elbv2 Matcher.HttpCode: "For Application Load Balancers, you can specify values between 200 and 499".
    code = (call.params.get("Matcher") or {}).get("HttpCode")
    if code and call.params.get("Protocol", "HTTP") in ("HTTP", "HTTPS"):
        for part in re.split(r"[,-]", code):
            if not part.isdigit() or not 200 <= int(part) <= 499:
                reject("ValidationError", f"Health check matcher HTTP code '{code}' must be within '200-499'")


@rule("elbv2", "CreateListener", "ModifyListener", "CreateRule", "ModifyRule")
def forward_actions(call: Call) -> None:
    # botocore elbv2 TargetGroupTuple.Weight: "The weight. The range is 0 to 999." Terraform
    # internal/service/elbv2/listener.go: forward.target_group MinItems 1, MaxItems 5, weight IntBetween(0, 999).
    # botocore elbv2 Action.ForwardConfig: "If you specify both ForwardConfig and TargetGroupArn, you can specify
    # only one target group using ForwardConfig and it must be the same target group specified in TargetGroupArn."
    for action in call.params.get("DefaultActions") or call.params.get("Actions") or []:
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
        if groups is None:
            continue
        if not 1 <= len(groups) <= 5:
            reject("ValidationError", f"A forward action can have 1 to 5 target groups; got {len(groups)}")
        for g in groups:
            if g.get("Weight") is not None and not 0 <= int(g["Weight"]) <= 999:
                reject("ValidationError", f"Target group weight must be between 0 and 999; got {g['Weight']}")
        arn = action.get("TargetGroupArn")
        if arn and (len(groups) != 1 or groups[0].get("TargetGroupArn") != arn):
            reject("ValidationError", "You cannot specify both TargetGroupArn and a different or multiple target "
                                      "groups in ForwardConfig")


@rule("elbv2", "CreateLoadBalancer", "CreateTargetGroup", "CreateListener", "CreateRule", "AddTags")
def elb_tags(call: Call) -> None:
    # ALB guide (load-balancer-tags.html / target-group-tags.html, "Tag restrictions"): "Maximum number of tags per
    # resource—50"; botocore elbv2 Tag.Key max 128 / Tag.Value max 256 (checked by the model limits).
    tags = call.params.get("Tags") or []
    if len(tags) > 50:
        reject("TooManyTags", f"The quota for the number of tags that can be assigned to a resource is 50; "
                              f"got {len(tags)}")
    keys = [t.get("Key") for t in tags]
    if len(set(keys)) < len(keys):
        # botocore elbv2 CreateLoadBalancer error shapes: DuplicateTagKeysException "A tag key was specified more
        # than once."
        reject("DuplicateTagKeys", "A tag key was specified more than once.")


# -------------------------------------------------------------------------------------------------------- ECS

_ECS_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")


def _ecs_name(code: str, what: str, name: Any) -> None:
    if name is not None and not _ECS_NAME.fullmatch(str(name)):
        reject(code, f"{what} {name!r}: up to 255 letters (uppercase and lowercase), numbers, underscores, and "
                     "hyphens are allowed")


@rule("ecs", "CreateCluster")
def cluster_name(call: Call) -> None:
    # botocore ecs CreateClusterRequest.clusterName: "Up to 255 letters (uppercase and lowercase), numbers,
    # underscores, and hyphens are allowed."
    _ecs_name("InvalidParameterException", "Cluster name", call.params.get("clusterName"))


@rule("ecs", "CreateService")
def service_name(call: Call) -> None:
    # botocore ecs CreateServiceRequest.serviceName: "Up to 255 letters (uppercase and lowercase), numbers,
    # underscores, and hyphens are allowed."
    _ecs_name("InvalidParameterException", "Service name", call.params.get("serviceName"))


@rule("ecs", "RegisterTaskDefinition")
def task_family_and_containers(call: Call) -> None:
    # botocore ecs RegisterTaskDefinitionRequest.family and ContainerDefinition.name: "Up to 255 letters (uppercase
    # and lowercase), numbers, underscores, and hyphens are allowed."
    _ecs_name("ClientException", "Family", call.params.get("family"))
    for c in call.params.get("containerDefinitions") or []:
        _ecs_name("ClientException", "Container name", c.get("name"))


@rule("ecs", "RegisterTaskDefinition")
def container_health_check(call: Call) -> None:
    # botocore ecs HealthCheck: interval "You may specify between 5 and 300 seconds", timeout "between 2 and 60
    # seconds", retries "between 1 and 10 retries", startPeriod "between 0 and 300 seconds".
    for c in call.params.get("containerDefinitions") or []:
        hc = c.get("healthCheck") or {}
        _range("ClientException", "healthCheck.interval", hc.get("interval"), 5, 300)
        _range("ClientException", "healthCheck.timeout", hc.get("timeout"), 2, 60)
        _range("ClientException", "healthCheck.retries", hc.get("retries"), 1, 10)
        _range("ClientException", "healthCheck.startPeriod", hc.get("startPeriod"), 0, 300)


def _fargate_memory(cpu: int) -> set[int]:
    # botocore ecs RegisterTaskDefinitionRequest.memory (and ECS guide "Task size"): the Fargate cpu → memory table.
    gb = 1024
    table = {256: {512, 1024, 2048}, 512: {1024, 2048, 3072, 4096}, 1024: set(range(2048, 8192 + 1, 1024)),
             2048: set(range(4096, 16384 + 1, gb)), 4096: set(range(8192, 30720 + 1, gb)),
             8192: set(range(16 * gb, 60 * gb + 1, 4 * gb)), 16384: set(range(32 * gb, 120 * gb + 1, 8 * gb))}
    return table.get(cpu, set())


def _units(value: Any, unit: str) -> int | None:
    """ECS accepts "1024", "1 vCPU" / "1 GB"; returns CPU units / MiB."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if m := re.fullmatch(rf"([\d.]+)\s*{unit}", text):
        return int(float(m.group(1)) * 1024)
    return int(text) if text.isdigit() else None


@rule("ecs", "RegisterTaskDefinition")
def fargate_task(call: Call) -> None:
    # botocore ecs RegisterTaskDefinitionRequest.memory: "If using the Fargate launch type, this field is required
    # and you must use one of the following values" (cpu/memory table); .networkMode: "For Amazon ECS tasks on
    # Fargate, the awsvpc network mode is required"; ContainerDefinition.stopTimeout: "For tasks that use the
    # Fargate launch type, the max stop timeout value is 120 seconds". AWS's answer for a bad pair:
    # "ClientException: No Fargate configuration exists for given values".
    p = call.params
    if "FARGATE" not in (p.get("requiresCompatibilities") or []):
        return
    cpu, memory = _units(p.get("cpu"), "vcpu"), _units(p.get("memory"), "gb")
    if cpu is None or memory is None:
        reject("ClientException", "Fargate requires task definition to have cpu and memory values set")
    assert cpu is not None and memory is not None
    if memory not in _fargate_memory(cpu):
        reject("ClientException", f"No Fargate configuration exists for given values: {p.get('cpu')} CPU, "
                                  f"{p.get('memory')} memory. See the Amazon ECS documentation for the valid values.")
    if p.get("networkMode", "bridge") != "awsvpc":
        reject("ClientException", "Fargate only supports network mode 'awsvpc'.")
    for c in p.get("containerDefinitions") or []:
        _range("ClientException", "stopTimeout", c.get("stopTimeout"), 0, 120)


@rule("ecs", "CreateCluster", "CreateService", "RegisterTaskDefinition", "TagResource")
def ecs_tags(call: Call) -> None:
    # botocore ecs CreateClusterRequest.tags (same text on CreateService/RegisterTaskDefinition/TagResource):
    # "Maximum number of tags per resource - 50", "each tag key must be unique", "Do not use aws:, AWS:, or any upper
    # or lowercase combination of such as a prefix for either keys or values as it is reserved for AWS use."
    tags = call.params.get("tags") or []
    keys = [str(t.get("key", "")) for t in tags]
    if len(tags) > 50:
        reject("InvalidParameterException", f"Maximum number of tags per resource is 50; got {len(tags)}")
    if len(set(keys)) < len(keys):
        reject("InvalidParameterException", "Each tag key must be unique")
    for t in tags:
        for v in (str(t.get("key", "")), str(t.get("value", ""))):
            if v.lower().startswith("aws:"):
                reject("InvalidParameterException", f"Tag {v!r}: the aws: prefix is reserved for AWS use")


@rule("ecs", "CreateService", "UpdateService")
def service_target_group_attached(call: Call) -> None:
    # Ordering. ECS guide (register-multiple-targetgroups / service load balancing) and AWS's CreateService error
    # "InvalidParameterException: The target group with targetGroupArn ... does not have an associated load
    # balancer." which Terraform retries in internal/service/ecs/service.go (resourceServiceCreate): the listener
    # must forward to the target group before the service references it.
    arns = [lb["targetGroupArn"] for lb in call.params.get("loadBalancers") or [] if lb.get("targetGroupArn")]
    if not arns:
        return
    elbv2 = call.client("elbv2")
    for tg in elbv2.describe_target_groups(TargetGroupArns=arns)["TargetGroups"]:
        if not tg.get("LoadBalancerArns") and tg["TargetGroupArn"] not in _forwarded_target_groups(elbv2):
            reject("InvalidParameterException", f"The target group with targetGroupArn {tg['TargetGroupArn']} "
                                                "does not have an associated load balancer.")


def _forwarded_target_groups(elbv2: Any) -> set[str]:
    """Target groups a listener's default actions or rules forward to (AWS counts a weight-0 entry of a
    ForwardConfig as an association; moto fills ``LoadBalancerArns`` only for a plain forward)."""
    found: set[str] = set()

    def collect(actions: list[dict[str, Any]]) -> None:
        for action in actions or []:
            if action.get("TargetGroupArn"):
                found.add(action["TargetGroupArn"])
            found.update(g["TargetGroupArn"] for g in (action.get("ForwardConfig") or {}).get("TargetGroups", []))

    for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
        for listener in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            collect(listener.get("DefaultActions"))
            for rule in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
                collect(rule.get("Actions"))
    return found


# -------------------------------------------------------------------------------------------------------- IAM

_IAM_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)


@rule("iam", "CreateRole", "PutRolePolicy", "AttachRolePolicy", "TagRole", "UpdateRole")
def iam_names(call: Call) -> None:
    # botocore iam CreateRoleRequest.RoleName (max 64) and PutRolePolicyRequest.PolicyName (max 128):
    # pattern [\w+=,.@-]+ "upper and lowercase alphanumeric characters with no spaces ... _+=,.@-".
    # CreateRoleRequest.Description: max 1000, pattern [\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*.
    for member, field in (("RoleName", "roleName"), ("PolicyName", "policyName")):
        value = call.params.get(member)
        if value is not None and not _IAM_NAME.fullmatch(value):
            reject("ValidationError", f"1 validation error detected: Value '{value}' at '{field}' failed to "
                                      "satisfy constraint: Member must satisfy regular expression pattern: "
                                      r"[\w+=,.@-]+")
    desc = call.params.get("Description")
    if desc is not None and not re.fullmatch(r"[\t\n\r\u0020-\u007E\u00A1-\u00FF]*", desc):
        reject("ValidationError", f"1 validation error detected: Value '{desc}' at 'description' failed to satisfy "
                                  "constraint: Member must satisfy regular expression pattern")


# -------------------------------------------------------------------------------------------------------- SSM

_SSM_NAME = re.compile(r"[a-zA-Z0-9_.\-/]+")


@rule("ssm", "PutParameter")
def ssm_parameter(call: Call) -> None:
    # botocore ssm PutParameterRequest.Name: "can't be prefixed with "aws" or "ssm" (case-insensitive)", "can include
    # only the following symbols and letters: a-zA-Z0-9_.-" plus "/" for hierarchies, "can't contain spaces",
    # "Parameter hierarchies are limited to a maximum depth of fifteen levels". PutParameterRequest.Value / Tier:
    # "Standard parameters have a value limit of 4 KB. Advanced parameters have a value limit of 8 KB."
    p = call.params
    name, value = str(p.get("Name", "")), str(p.get("Value", ""))
    if not _SSM_NAME.fullmatch(name):
        reject("ValidationException", f"Parameter name {name!r}: only a-zA-Z0-9_.- and / are allowed")
    if name.lstrip("/").lower().startswith(("aws", "ssm")):
        reject("ValidationException", f"Parameter name {name!r}: can't be prefixed with \"aws\" or \"ssm\" "
                                      "(case-insensitive)")
    if name.startswith("/") and name.count("/") > 15:
        reject("HierarchyLevelLimitExceededException", "Parameter hierarchies are limited to a maximum depth of "
                                                       f"fifteen levels: {name!r}")
    limit = 8192 if p.get("Tier") == "Advanced" else 4096
    if len(value.encode()) > limit:
        reject("ValidationException", f"1 validation error detected: Value at 'value' failed to satisfy constraint: "
                                      f"Member must have length less than or equal to {limit}")


# ------------------------------------------------------------------------------------------------- CloudWatch

_SINGLE_METRIC = ("Namespace", "MetricName", "Dimensions", "Period", "Unit", "Statistic", "ExtendedStatistic")


@rule("cloudwatch", "PutMetricAlarm")
def metric_alarm(call: Call) -> None:
    # botocore cloudwatch PutMetricAlarmInput.Metrics: "If you use the Metrics parameter, you cannot include the
    # Namespace, MetricName, Dimensions, Period, Unit, Statistic, or ExtendedStatistic parameters"; MetricName: "you
    # must specify either MetricName, a Metrics array, or an EvaluationCriteria"; DatapointsToAlarm is the M of an
    # "M out of N" alarm whose N is EvaluationPeriods; Period: "Valid values are 10, 20, 30, and any multiple of
    # 60", "Period multiplied by EvaluationPeriods can't be more than 604,800 seconds. For alarms with a period of
    # less than one hour (3,600 seconds), the total evaluation period can't be longer than one day"; Tags: "as many
    # as 50 tags".
    p = call.params
    if p.get("Metrics") and any(p.get(k) is not None for k in _SINGLE_METRIC):
        reject("InvalidParameterCombination", "Metrics cannot be combined with " +
               ", ".join(k for k in _SINGLE_METRIC if p.get(k) is not None))
    if not (p.get("Metrics") or p.get("MetricName") or p.get("EvaluationCriteria")):
        reject("ValidationError", "One of MetricName, Metrics or EvaluationCriteria must be specified")
    n, m = _int(p.get("EvaluationPeriods")), _int(p.get("DatapointsToAlarm"))
    if n is not None and m is not None and m > n:
        reject("ValidationError", f"DatapointsToAlarm ({m}) must be less than or equal to EvaluationPeriods ({n})")
    periods = [_int(p.get("Period"))] + [_int((q.get("MetricStat") or {}).get("Period") or q.get("Period"))
                                         for q in p.get("Metrics") or []]
    for period in (x for x in periods if x is not None):
        if period not in (10, 20, 30) and period % 60:
            reject("ValidationError", f"Period ({period}) must be 10, 20, 30 or a multiple of 60")
        if n is not None and period * n > (604800 if period >= 3600 else 86400):
            reject("ValidationError", f"Period ({period}) x EvaluationPeriods ({n}) exceeds the maximum evaluation "
                                      "range")
    if len(p.get("Tags") or []) > 50:
        reject("LimitExceeded", "The maximum number of tags for an alarm is 50")


# ------------------------------------------------------------------------------------------------------- Logs

_LOG_GROUP = re.compile(r"[\.\-_/#A-Za-z0-9]+")
_RETENTION = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}


@rule("logs", "CreateLogGroup", "PutRetentionPolicy")
def log_group(call: Call) -> None:
    # botocore logs CreateLogGroupRequest.logGroupName: min 1, max 512, pattern [\.\-_/#A-Za-z0-9]+;
    # PutRetentionPolicyRequest.retentionInDays: "Possible values are: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180,
    # 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, and 3653."
    name = call.params.get("logGroupName")
    if name is not None and not _LOG_GROUP.fullmatch(name):
        reject("InvalidParameterException", f"1 validation error detected: Value '{name}' at 'logGroupName' failed "
                                            r"to satisfy constraint: Member must satisfy regular expression pattern: "
                                            r"[\.\-_/#A-Za-z0-9]+")
    days = call.params.get("retentionInDays")
    if days is not None and int(days) not in _RETENTION:
        reject("InvalidParameterException", f"1 validation error detected: Value '{days}' at 'retentionInDays' "
                                            "failed to satisfy constraint: Member must satisfy enum value set")


# -------------------------------------------------------------------------------------------------------- EC2

_SG_TEXT = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}")


@rule("ec2", "CreateSecurityGroup")
def security_group(call: Call) -> None:
    # botocore ec2 CreateSecurityGroupRequest.GroupName: "Up to 255 characters in length. Can't start with sg-.
    # Valid characters: a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*"; .Description: "Up to 255 characters in
    # length" with the same characters. EC2 tagging guide ("Tag restrictions"): "Maximum number of tags per
    # resource – 50".
    p = call.params
    name, desc = str(p.get("GroupName", "")), str(p.get("Description", ""))
    if name.lower().startswith("sg-"):
        reject("InvalidParameterValue", f"Value ({name}) for parameter GroupName is invalid. Group names may not "
                                        "be in the format sg-*.")
    for field, value in (("GroupName", name), ("GroupDescription", desc)):
        if not _SG_TEXT.fullmatch(value):
            reject("InvalidParameterValue", f"Value ({value}) for parameter {field} is invalid: up to 255 characters "
                                            "of a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*")
    for spec in p.get("TagSpecifications") or []:
        if len(spec.get("Tags") or []) > 50:
            reject("TagLimitExceeded", "The maximum number of tags per resource is 50")


# --------------------------------------------------------------------------------------------------- ECR, SNS

_ECR_REPO = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")


@rule("ecr", "CreateRepository")
def ecr_repository(call: Call) -> None:
    # botocore ecr CreateRepositoryRequest.repositoryName: min 2, max 256, pattern
    # [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*.
    name = str(call.params.get("repositoryName", ""))
    if not _ECR_REPO.fullmatch(name):
        reject("InvalidParameterException", f"Invalid parameter at 'repositoryName' failed to satisfy constraint: "
                                            f"'must satisfy regular expression '{_ECR_REPO.pattern}'' ({name!r})")


@rule("sns", "CreateTopic")
def sns_topic(call: Call) -> None:
    # botocore sns CreateTopicInput.Name: "Topic names must be made up of only uppercase and lowercase ASCII letters,
    # numbers, underscores, and hyphens, and must be between 1 and 256 characters long. For a FIFO topic, the name
    # must end with the .fifo suffix."
    name = str(call.params.get("Name", ""))
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}(\.fifo)?", name) or len(name) > 256:
        reject("InvalidParameter", "Invalid parameter: Topic Name")


# --------------------------------------------------------------------------------------------------------- S3


@rule("s3", "CreateBucket")
def s3_bucket_name(call: Call) -> None:
    # S3 user guide, "General purpose bucket naming rules" (linked from botocore s3 CreateBucketRequest.Bucket):
    # 3–63 characters; lowercase letters, numbers, dots and hyphens; begin and end with a letter or number; no two
    # adjacent periods; not an IP address; no prefix xn--, sthree-, amzn-s3-demo-; no suffix -s3alias, --ol-s3,
    # .mrap, --x-s3. AWS answers "InvalidBucketName: The specified bucket is not valid."
    name = str(call.params.get("Bucket", ""))
    if (not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name) or ".." in name
            or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name) or name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
            or name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3"))):
        reject("InvalidBucketName", f"The specified bucket is not valid. ({name!r})")


@rule("s3", "CreateBucket")
def s3_location_constraint(call: Call) -> None:
    # botocore s3 CreateBucketConfiguration.LocationConstraint: "If you don't specify a Region, the bucket is created
    # in the US East (N. Virginia) Region (us-east-1) by default". AWS's answers, quoted in velero-io/velero#284 and
    # aws/aws-parallelcluster#1190: another region's endpoint without it, "IllegalLocationConstraintException: The
    # unspecified location constraint is incompatible for the region specific endpoint this request was sent to";
    # naming us-east-1, "InvalidLocationConstraint: The specified location-constraint is not valid".
    wanted = ((call.params.get("CreateBucketConfiguration") or {}).get("LocationConstraint")) or None
    region = call.region or "us-east-1"
    if wanted == "us-east-1":
        reject("InvalidLocationConstraint", "The specified location-constraint is not valid")
    if (wanted or "us-east-1") != region:
        reject("IllegalLocationConstraintException", f"The {wanted or 'unspecified'} location constraint is "
                                                     f"incompatible for the region specific endpoint this request "
                                                     f"was sent to ({region}).")


# ------------------------------------------------------------------------ ECS on EC2 (aws.compute: ec2), schedules


@rule("ecs", "CreateCapacityProvider")
def capacity_provider(call: Call) -> None:
    # botocore ecs CreateCapacityProviderRequest.name: "Up to 255 characters are allowed. They include letters (both
    # upper and lowercase letters), numbers, underscores (_), and hyphens (-). The name can't be prefixed with
    # "aws", "ecs", or "fargate"."; AutoScalingGroupProvider.managedTerminationProtection: "When using managed
    # termination protection, managed scaling must also be used otherwise managed termination protection doesn't
    # work" and "The Auto Scaling group and each instance in the Auto Scaling group must have instance protection
    # from scale-in actions on as well"; ManagedScaling.targetCapacity "greater than 0 and less than or equal to 100".
    p = call.params
    name = str(p.get("name", ""))
    _ecs_name("ClientException", "Capacity provider name", name)
    if name.lower().startswith(("aws", "ecs", "fargate")):
        reject("ClientException", f"The capacity provider name {name!r} can't be prefixed with aws, ecs or fargate")
    asg = p.get("autoScalingGroupProvider") or {}
    scaling = asg.get("managedScaling") or {}
    _range("ClientException", "managedScaling.targetCapacity", scaling.get("targetCapacity"), 1, 100)
    if asg.get("managedTerminationProtection") == "ENABLED":
        if scaling.get("status") != "ENABLED":
            reject("ClientException", "Managed termination protection requires managed scaling to be enabled")
        ref = str(asg.get("autoScalingGroupArn", ""))
        group_name = ref.split("autoScalingGroupName/", 1)[-1]
        groups = call.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
        if not groups:
            reject("ClientException", f"The specified Auto Scaling group {ref!r} does not exist")
        if not groups[0].get("NewInstancesProtectedFromScaleIn"):
            reject("ClientException", "The managed termination protection setting for the capacity provider is "
                                      "invalid. To enable managed termination protection for a capacity provider, "
                                      "the Auto Scaling group must have instance protection from scale in enabled.")


@rule("ecs", "PutClusterCapacityProviders")
def cluster_capacity_providers(call: Call) -> None:
    # botocore ecs PutClusterCapacityProvidersRequest.capacityProviders: "If specifying a capacity provider that
    # uses an Auto Scaling group, the capacity provider must already be created"; CapacityProviderStrategyItem:
    # "Only capacity providers that are already associated with a cluster and have an ACTIVE or UPDATING status can
    # be used in a capacity provider strategy".
    p = call.params
    names = list(p.get("capacityProviders") or [])
    custom = [n for n in names if n not in ("FARGATE", "FARGATE_SPOT")]
    if custom:
        found = call.client("ecs").describe_capacity_providers(capacityProviders=custom)["capacityProviders"]
        missing = sorted(set(custom) - {c["name"] for c in found if c.get("status") == "ACTIVE"})
        if missing:
            reject("InvalidParameterException", f"The specified capacity provider {missing[0]} does not exist")
    for item in p.get("defaultCapacityProviderStrategy") or []:
        if item.get("capacityProvider") not in names:
            reject("InvalidParameterException", f"The default capacity provider strategy names "
                                                f"{item.get('capacityProvider')}, which is not associated with the "
                                                "cluster")


@rule("ecs", "CreateService", "UpdateService")
def service_capacity(call: Call) -> None:
    # botocore ecs CreateServiceRequest.capacityProviderStrategy: "If a capacityProviderStrategy is specified, the
    # launchType parameter must be omitted"; CapacityProviderStrategyItem: "Only capacity providers that are already
    # associated with a cluster … can be used"; CreateServiceRequest.platformVersion: "A platform version is
    # specified only for tasks using the Fargate launch type"; ECS on EC2 tasks get no public IP (ECS guide, "Amazon
    # ECS task networking options for EC2": "the awsvpc network mode doesn't provide task ENIs with public IP
    # addresses").
    p = call.params
    strategy = [s.get("capacityProvider") for s in p.get("capacityProviderStrategy") or []]
    if strategy and p.get("launchType"):
        reject("InvalidParameterException", "Specifying both a launch type and capacity provider strategy is not "
                                            "supported.")
    ec2 = [s for s in strategy if s not in ("FARGATE", "FARGATE_SPOT")]
    if not ec2:
        return
    found = call.client("ecs").describe_clusters(clusters=[p.get("cluster", "default")])["clusters"]
    attached = set((found[0].get("capacityProviders") or []) if found else [])
    if missing := [s for s in ec2 if s not in attached]:
        reject("InvalidParameterException", f"The specified capacity provider strategy cannot contain a capacity "
                                            f"provider that is not associated with the cluster ({missing[0]})")
    vpc = ((p.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {})
    if vpc.get("assignPublicIp") == "ENABLED":
        reject("InvalidParameterException", "Assign public IP is not supported for this launch type.")
    if p.get("platformVersion"):
        reject("InvalidParameterException", "The platform version must be null when specifying an EC2 launch type.")


@rule("ecs", "RegisterTaskDefinition")
def gpu_requirements(call: Call) -> None:
    # botocore ecs ResourceRequirement.value: for GPU "the number of physical GPUs the Amazon ECS container agent
    # reserves for the container" (or ALL); ECS guide, "Amazon ECS task definition differences for the Fargate
    # launch type": "The following task definition parameters are not valid in Fargate tasks: … gpu".
    p = call.params
    for c in p.get("containerDefinitions") or []:
        for r in c.get("resourceRequirements") or []:
            if r.get("type") != "GPU":
                continue
            if "FARGATE" in (p.get("requiresCompatibilities") or []):
                reject("ClientException", "GPU resource requirements are not supported on Fargate")
            if str(r.get("value")) != "ALL" and (not str(r.get("value", "")).isdigit() or int(r["value"]) < 1):
                reject("ClientException", f"GPU value {r.get('value')!r} must be a positive whole number")


_LAUNCH_TEMPLATE_NAME = re.compile(r"[a-zA-Z0-9().\-/_]{3,128}")


@rule("ec2", "CreateLaunchTemplate", "CreateLaunchTemplateVersion")
def launch_template(call: Call) -> None:
    # botocore ec2 LaunchTemplateName: min 3, max 128, pattern [a-zA-Z0-9\(\)\.\-/_]+; RequestLaunchTemplateData
    # .UserData: "The user data must be base64-encoded" and "limited to 16 KB" (EC2 user guide, "Run commands
    # when you launch an EC2 instance with user data input").
    import base64
    import binascii

    p = call.params
    name = p.get("LaunchTemplateName")
    if name is not None and not _LAUNCH_TEMPLATE_NAME.fullmatch(str(name)):
        reject("InvalidLaunchTemplateName.MalformedException",
               f"A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and "
               f"the following characters: - ( ) . / _; got {name!r}")
    data = p.get("LaunchTemplateData") or {}
    if "UserData" in data:
        try:
            raw = base64.b64decode(str(data["UserData"]), validate=True)
        except binascii.Error:
            reject("InvalidUserData.Malformed", "Invalid BASE64 encoding of user data.")
        if len(raw) > 16 * 1024:
            reject("InvalidParameterValue", "User data is limited to 16384 bytes")


@rule("autoscaling", "CreateAutoScalingGroup", "UpdateAutoScalingGroup")
def auto_scaling_group(call: Call) -> None:
    # botocore autoscaling CreateAutoScalingGroupType.AutoScalingGroupName: "You cannot use a colon (:) in the
    # name"; MinSize ≤ MaxSize (the API answers ValidationError "Max bound, …, must be greater than or equal to min
    # bound"); a group has "LaunchConfigurationName, LaunchTemplate, InstanceId or MixedInstancesPolicy" — only one.
    p = call.params
    if ":" in str(p.get("AutoScalingGroupName", "")):
        reject("ValidationError", "You cannot use a colon (:) in the Auto Scaling group name")
    lo, hi = _int(p.get("MinSize")), _int(p.get("MaxSize"))
    if lo is not None and hi is not None and hi < lo:
        reject("ValidationError", f"Max bound, {hi}, must be greater than or equal to min bound, {lo}")
    if p.get("LaunchTemplate") and p.get("MixedInstancesPolicy"):
        reject("ValidationError", "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, "
                                  "InstanceId or MixedInstancesPolicy parameter.")
    dist = (p.get("MixedInstancesPolicy") or {}).get("InstancesDistribution") or {}
    _range("ValidationError", "OnDemandPercentageAboveBaseCapacity", dist.get("OnDemandPercentageAboveBaseCapacity"),
           0, 100)


_CRON_CALL = re.compile(r"cron\((\S+ ){5}\S+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\)|at\(\S+\)")


@rule("application-autoscaling", "PutScheduledAction")
def scheduled_action(call: Call) -> None:
    # botocore application-autoscaling PutScheduledActionRequest.Schedule: "At expressions - "at(yyyy-mm-ddThh:mm:ss)"
    # Rate expressions - "rate(value unit)" Cron expressions - "cron(fields)" … The cron format consists of six
    # fields"; user guide: one of day-of-month / day-of-week must be "?"; ScalableTargetAction MinCapacity ≤
    # MaxCapacity ("ValidationException: Minimum capacity cannot be greater than maximum capacity").
    p = call.params
    schedule = str(p.get("Schedule", ""))
    if not _CRON_CALL.fullmatch(schedule):
        reject("ValidationException", f"Schedule {schedule!r} is not a valid at(), rate() or six-field cron() "
                                      "expression")
    if schedule.startswith("cron("):
        fields = schedule[5:-1].split()
        if (fields[2] == "?") == (fields[4] == "?"):
            reject("ValidationException", "Cron expression: one of day-of-month and day-of-week must be '?'")
    action = p.get("ScalableTargetAction") or {}
    lo, hi = _int(action.get("MinCapacity")), _int(action.get("MaxCapacity"))
    if lo is not None and hi is not None and lo > hi:
        reject("ValidationException", "Minimum capacity cannot be greater than maximum capacity")
