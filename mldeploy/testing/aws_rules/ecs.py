"""Amazon ECS rules: cluster / service / task definition names, health checks, Fargate sizes, tags, target-group
ordering, capacity providers (aws.compute: ec2) and GPUs."""

from __future__ import annotations

import re
from typing import Any

from mldeploy.testing.aws_rules.core import Call, in_range, reject, rule

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
        in_range("ClientException", "healthCheck.interval", hc.get("interval"), 5, 300)
        in_range("ClientException", "healthCheck.timeout", hc.get("timeout"), 2, 60)
        in_range("ClientException", "healthCheck.retries", hc.get("retries"), 1, 10)
        in_range("ClientException", "healthCheck.startPeriod", hc.get("startPeriod"), 0, 300)


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
        in_range("ClientException", "stopTimeout", c.get("stopTimeout"), 0, 120)


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
            for listener_rule in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
                collect(listener_rule.get("Actions"))
    return found


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
    in_range("ClientException", "managedScaling.targetCapacity", scaling.get("targetCapacity"), 1, 100)
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
