"""``aws.compute: ec2``: the Auto Scaling group of container instances and its ECS capacity provider.

The group spans the task subnets, starts empty (``MinSize`` 0) and is sized by ECS managed scaling; its maximum
holds twice the autoscaling maximum (deployments run up to ``maximumPercent`` 200 %, a canary beside the stable
tasks). Spot (``aws.spot``) uses a mixed instances policy: ``spot.base`` on-demand instances, then ``spot.weight``
percent Spot. The capacity provider has managed scaling and managed termination protection, which "the Auto
Scaling group and each instance in the Auto Scaling group must have instance protection from scale-in actions on
as well" for (botocore ecs AutoScalingGroupProvider.managedTerminationProtection): hence
``NewInstancesProtectedFromScaleIn``. It is attached to the cluster beside FARGATE / FARGATE_SPOT, as the default
strategy. Reads ``known``: ``launch_template``, ``launch_template_version``, ``launch_template_changes``,
``subnet_ids``.

The group launches the template's ``$Latest``, so a new version (a newer AMI from the SSM parameter, another
instance type, new user data or security group) applies to new instances only: ``plan_refresh`` then starts an
instance refresh that replaces the running ones, one that ECS managed draining covers ("Auto Scaling group
instance refresh", ECS developer guide, "Safely stop Amazon ECS workloads running on EC2 instances").

Switching back to ``compute: fargate`` moves the service first; ``plan_cleanup`` (after the service) then deletes
the capacity provider, the group, the launch template and the instance role.
"""

from __future__ import annotations

import math
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, RetryOn, Step, is_unknown, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict
from mldeploy.aws.resources import cluster, instance_role, launch_template, security_groups
from mldeploy.aws.resources.instance_role import PROFILE_RETRY, ec2
from mldeploy.errors import AwsError

ASG_KIND, CP_KIND = "auto scaling group", "capacity provider"
MANAGED_SCALING = {"status": "ENABLED", "targetCapacity": 100, "minimumScalingStepSize": 1,
                   "maximumScalingStepSize": 10, "instanceWarmupPeriod": 300}
SPOT_ALLOCATION = "price-capacity-optimized"
"""The allocation strategy EC2 Auto Scaling recommends for Spot (botocore autoscaling
InstancesDistribution.SpotAllocationStrategy: "price-capacity-optimized (recommended)")."""
IN_USE_RETRY = (
    # a capacity provider still used by a service's tasks cannot leave the cluster (ECS PutClusterCapacityProviders:
    # "If a capacity provider is in use by a service, it can't be removed"): retried while the service's
    # deployment to Fargate drains the EC2 tasks
    RetryOn("ResourceInUseException"), RetryOn("UpdateInProgressException"))
PROPAGATION_S = 120.0


def asg_name(spec: StackSpec) -> str:
    """Auto Scaling group names: 1–255 characters, no colon (botocore autoscaling CreateAutoScalingGroupType)."""
    return f"{spec.names.base}-ecs"


def provider_name(spec: StackSpec) -> str:
    """Capacity provider names "can't be prefixed with "aws", "ecs", or "fargate"" (botocore ecs
    CreateCapacityProviderRequest.name), which an app called ``ecs-…`` would be: hence the ``mldeploy-`` prefix."""
    return f"mldeploy-{spec.names.base}"


def max_instances(spec: StackSpec) -> int:
    """Room for 2 × autoscaling max tasks at ``cost.instances.fit`` tasks per instance (CPU, memory, GPUs and
    network interfaces: an awsvpc task takes one of the instance's interfaces)."""
    from mldeploy.cost.instances import tasks_per_instance

    per = max(1, tasks_per_instance(spec.config.aws))
    return max(1, math.ceil(2 * spec.config.aws.autoscaling.max / per))


def density(spec: StackSpec) -> str:
    """The plan's line about tasks per instance: ``3 tasks per instance, bound by network interfaces: …``."""
    from mldeploy.cost.instances import fit

    got = fit(spec.config.aws)
    if got is None:
        return "tasks per instance unknown"
    return f"{got.tasks} task{'s' if got.tasks != 1 else ''} per instance, {got.reason()}"


def _distribution(spec: StackSpec) -> dict[str, Any]:
    spot = spec.config.aws.spot
    return {"OnDemandBaseCapacity": spot.base, "OnDemandPercentageAboveBaseCapacity": 100 - spot.weight,
            "SpotAllocationStrategy": SPOT_ALLOCATION}


def _lt(spec: StackSpec) -> dict[str, str]:
    return {"LaunchTemplateName": launch_template.name(spec), "Version": "$Latest"}


def asg_params(spec: StackSpec, known: Known) -> dict[str, Any]:
    """The group's settings (create_auto_scaling_group less name and tags, update_auto_scaling_group less name)."""
    aws = spec.config.aws
    params: dict[str, Any] = {"MinSize": 0, "MaxSize": max_instances(spec),
                              "VPCZoneIdentifier": ",".join(known["subnet_ids"]) if not is_unknown(
                                  known["subnet_ids"]) else known["subnet_ids"],
                              "NewInstancesProtectedFromScaleIn": True}
    if aws.spot.enabled:
        params["MixedInstancesPolicy"] = {
            "LaunchTemplate": {"LaunchTemplateSpecification": _lt(spec),
                               "Overrides": [{"InstanceType": aws.instance_type}]},
            "InstancesDistribution": _distribution(spec)}
    else:
        params["LaunchTemplate"] = _lt(spec)
    return params


def read_asg(spec: StackSpec, remote: Remote) -> dict[str, Any] | None:
    found = remote.get("autoscaling", "describe_auto_scaling_groups",
                       AutoScalingGroupNames=[asg_name(spec)])["AutoScalingGroups"]
    return next((g for g in found if not g.get("Status")), None)  # "Delete in progress" groups are on their way out


def _asg_changes(cur: dict[str, Any], want: dict[str, Any]) -> list[str]:
    out = []
    if (cur.get("MinSize"), cur.get("MaxSize")) != (want["MinSize"], want["MaxSize"]):
        out.append(f"instances {cur.get('MinSize')}–{cur.get('MaxSize')} → {want['MinSize']}–{want['MaxSize']}")
    if sorted(str(cur.get("VPCZoneIdentifier", "")).split(",")) != sorted(str(want["VPCZoneIdentifier"]).split(",")):
        out.append("subnets")
    if bool(cur.get("NewInstancesProtectedFromScaleIn")) is not True:
        out.append("scale-in protection of new instances on")
    spot_now = "MixedInstancesPolicy" in cur
    if spot_now != ("MixedInstancesPolicy" in want):
        out.append("Spot on" if not spot_now else "Spot off")
    elif spot_now:
        dist = cur["MixedInstancesPolicy"].get("InstancesDistribution") or {}
        want_dist = want["MixedInstancesPolicy"]["InstancesDistribution"]
        if any(dist.get(k) != v for k, v in want_dist.items()):
            out.append("Spot distribution")
        # an override's InstanceType replaces the launch template's (EC2 Auto Scaling LaunchTemplateOverrides):
        # a new aws.instance_type must reach the group too, or it keeps launching the old type
        types = [o.get("InstanceType") for o in (cur["MixedInstancesPolicy"].get("LaunchTemplate") or {}).get(
            "Overrides") or []]
        want_types = [o["InstanceType"] for o in want["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]]
        if types != want_types:
            out.append(f"instance types {', '.join(map(str, types)) or '(template)'} → {', '.join(want_types)}")
    return out


def plan_asg(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    if not ec2(spec):
        return []
    n, aws = asg_name(spec), spec.config.aws
    want = asg_params(spec, known)
    cur = read_asg(spec, remote)
    capacity = (f"Spot {aws.spot.weight}% above {aws.spot.base} on-demand" if aws.spot.enabled else "on-demand")
    if cur is None:
        known["asg_arn"] = n  # the ARN carries a UUID known only afterwards; ECS also takes the group's name
        tags = [{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in sorted(spec.tags.items())]
        return [Step(ASG_KIND, n, Action.create, [f"0–{want['MaxSize']} × {aws.instance_type}", density(spec),
                                                  capacity, "new instances protected from scale-in"], calls=[
            ApiCall("autoscaling", "create_auto_scaling_group", {"AutoScalingGroupName": n, **want, "Tags": tags},
                    retry=PROFILE_RETRY, retry_timeout_s=PROPAGATION_S)])]
    spec.check_owned("Auto Scaling group", n, tag_dict(cur.get("Tags")))
    known["asg_arn"] = cur["AutoScalingGroupARN"]
    diff = _asg_changes(cur, want)
    refresh = plan_refresh(spec, remote, known, cur)
    if not diff:
        return [noop(ASG_KIND, n), *refresh]
    if cur.get("MaxSize") != want["MaxSize"]:
        diff[0] += f" ({density(spec)})"
    update = dict(want)
    if "MixedInstancesPolicy" in cur and "MixedInstancesPolicy" not in want:
        update.pop("LaunchTemplate")  # EC2 Auto Scaling: a group has a launch template or a mixed instances policy
        update["MixedInstancesPolicy"] = {"LaunchTemplate": {"LaunchTemplateSpecification": _lt(spec)},
                                          "InstancesDistribution": {"OnDemandPercentageAboveBaseCapacity": 100,
                                                                    "OnDemandBaseCapacity": 0}}
    return [Step(ASG_KIND, n, Action.update, diff, calls=[
        ApiCall("autoscaling", "update_auto_scaling_group", {"AutoScalingGroupName": n, **update})]), *refresh]


# ------------------------------------------------------------------------------------------- instance refresh

REFRESH_KIND = "instance refresh"
REFRESH_PREFERENCES: dict[str, Any] = {
    # botocore autoscaling RefreshPreferences: MinHealthyPercentage "Value range is 0 to 100" (default 90);
    # MaxHealthyPercentage "Value range is 100 to 200 … you must also specify MinHealthyPercentage, and the
    # difference between them cannot be greater than 100": 100/200 launches each replacement before its
    # instance goes, so capacity never drops below the group's desired size
    "MinHealthyPercentage": 100, "MaxHealthyPercentage": 200,
    # SkipMatching: "skips replacing instances that have the same launch template and instance types that the
    # Auto Scaling group was using" (no desired configuration given): instances already on the new version stay
    "SkipMatching": True,
    # managed termination protection keeps every instance protected from scale-in; ScaleInProtectedInstances
    # "Wait (default)" would wait an hour and fail, "Refresh" "replaces instances that are protected from scale
    # in" (botocore) — ECS: "Make sure you select Replace for Scale-in protection when calling
    # StartInstanceRefresh if you're using managed termination protection" (managed instance draining); ECS then
    # drains each instance's tasks before it terminates (managedDraining ENABLED)
    "ScaleInProtectedInstances": "Refresh",
    # InstanceWarmup: "waits before moving on to replacing the next instance after a new instance enters the
    # InService state"; the group has no DefaultInstanceWarmup, so the capacity provider's warm-up
    "InstanceWarmup": MANAGED_SCALING["instanceWarmupPeriod"],
}
ACTIVE_REFRESH = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
"""InstanceRefreshStatus values (botocore autoscaling) of a refresh that has not finished: StartInstanceRefresh
answers InstanceRefreshInProgress ("an active instance refresh already exists") while one is."""
GONE = ("Terminating", "Terminating:Wait", "Terminating:Proceed", "Terminated")


def active_refresh(spec: StackSpec, remote: Remote) -> tuple[dict[str, Any] | None, str]:
    """(the group's unfinished instance refresh or None, ``""``) or (None, why DescribeInstanceRefreshes could not
    be read: an endpoint without it, such as the moto emulator, or a policy without autoscaling:Describe*)."""
    try:
        got = remote.get("autoscaling", "describe_instance_refreshes", AutoScalingGroupName=asg_name(spec))
    except AwsError as e:
        return None, e.message
    except Exception as e:  # noqa: BLE001 (an endpoint without the API: moto answers an HTML 500 botocore can't parse)
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    found = [r for r in (got or {}).get("InstanceRefreshes") or [] if r.get("Status") in ACTIVE_REFRESH]
    return (found[0] if found else None), ""


def outdated(cur: dict[str, Any], known: Known) -> list[dict[str, Any]]:
    """The group's instances that do not run the version the group launches now: every one when this plan
    creates a new template version, else those on an older version than the latest (left by an interrupted
    ``up``, or a refresh that failed). An instance's ``LaunchTemplate.Version`` is the number it launched with."""
    live = [i for i in cur.get("Instances") or [] if i.get("LifecycleState") not in GONE]
    if known.get("launch_template_changes"):
        return live
    latest = known.get("launch_template_version")
    if latest is None or is_unknown(latest):
        return []
    return [i for i in live if str((i.get("LaunchTemplate") or {}).get("Version", latest)) != str(latest)]


def plan_refresh(spec: StackSpec, remote: Remote, known: Known, cur: dict[str, Any]) -> list[Step]:
    """``StartInstanceRefresh`` after the new launch template version (the group's ``$Latest``) when instances run
    an older one; none while a refresh is unfinished (``preflight`` says so in the plan's notes)."""
    old = outdated(cur, known)
    if not old:
        return []
    running, unreadable = active_refresh(spec, remote)
    if running is not None:
        return []
    n = asg_name(spec)
    versions = sorted({str((i.get("LaunchTemplate") or {}).get("Version", "?")) for i in old})
    latest = known.get("launch_template_version")
    target = "the new version" if known.get("launch_template_changes") else f"version {latest}"
    changes = [f"replace {len(old)} instance{'s' if len(old) != 1 else ''} on launch template version "
               f"{', '.join(versions)} with {target}",
               "launch before terminate (healthy 100–200%), ECS drains each replaced instance"]
    note = f"in-progress refreshes not readable: {unreadable}" if unreadable else ""
    # a refresh that started between this plan and apply makes AWS answer InstanceRefreshInProgress: that refresh
    # launches $Latest too, so the call is skipped (a later plan sees what it left on the old version)
    return [Step(REFRESH_KIND, n, Action.create, changes, note=note, calls=[
        ApiCall("autoscaling", "start_instance_refresh", {"AutoScalingGroupName": n, "Strategy": "Rolling",
                                                          "Preferences": dict(REFRESH_PREFERENCES)},
                missing=("InstanceRefreshInProgress",))])]


def refresh_notes(spec: StackSpec, remote: Remote) -> list[str]:
    """The plan's note about an unfinished instance refresh of the group (compute ec2; no note otherwise)."""
    if not ec2(spec):
        return []
    try:
        cur = read_asg(spec, remote)
    except AwsError:
        return []
    if cur is None:
        return []
    running, _ = active_refresh(spec, remote)
    if running is None:
        return []
    done = running.get("PercentageComplete")
    return [f"instance refresh {running.get('InstanceRefreshId')} of {asg_name(spec)} is {running.get('Status')}"
            + (f" ({done}% done)" if done is not None else "") + ": mldeploy starts no other one now; instances it "
            "leaves on an older launch template version are refreshed by a later `mldeploy up`"]


def read_provider(spec: StackSpec, remote: Remote) -> dict[str, Any] | None:
    found = remote.get("ecs", "describe_capacity_providers", capacityProviders=[provider_name(spec)],
                       include=["TAGS"])
    return next((p for p in found.get("capacityProviders", []) if p.get("status") == "ACTIVE"), None)


def _provider(spec: StackSpec) -> dict[str, Any]:
    return {"managedScaling": dict(MANAGED_SCALING), "managedTerminationProtection": "ENABLED",
            "managedDraining": "ENABLED"}


def strategy(spec: StackSpec) -> list[dict[str, Any]]:
    """The service's (and the cluster's default) capacity provider strategy on EC2."""
    return [{"capacityProvider": provider_name(spec), "weight": 1, "base": 0}]


def plan_provider(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    if not ec2(spec):
        return []
    n = provider_name(spec)
    steps: list[Step] = []
    cur = read_provider(spec, remote)
    if cur is None:
        steps.append(Step(CP_KIND, n, Action.create, [f"group {asg_name(spec)}", "managed scaling (target 100%)",
                                                      "managed termination protection", "managed draining"],
                          calls=[ApiCall("ecs", "create_capacity_provider", {
                              "name": n, "autoScalingGroupProvider": {"autoScalingGroupArn": known["asg_arn"],
                                                                      **_provider(spec)},
                              "tags": spec.tag_list("key", "value")})]))
    else:
        spec.check_owned("capacity provider", n, tag_dict(cur.get("tags")))
        have = cur.get("autoScalingGroupProvider") or {}
        want = _provider(spec)
        scaling = have.get("managedScaling") or {}
        drift = [k for k in ("managedTerminationProtection", "managedDraining")
                 if have.get(k) is not None and have.get(k) != want[k]]
        if any(scaling.get(k) is not None and scaling.get(k) != v for k, v in MANAGED_SCALING.items()):
            drift.append("managedScaling")
        if drift:
            steps.append(Step(CP_KIND, n, Action.update, drift, calls=[
                ApiCall("ecs", "update_capacity_provider", {"name": n, "autoScalingGroupProvider": want})]))
        else:
            steps.append(noop(CP_KIND, n))
    attached = (cluster.read(spec, remote) or {}).get("capacityProviders") or []
    if n not in attached:
        steps.append(Step(CP_KIND, f"{n} on cluster {spec.names.cluster}", Action.create,
                          ["attached beside FARGATE, FARGATE_SPOT", "default strategy"], calls=[
            ApiCall("ecs", "put_cluster_capacity_providers", {
                "cluster": spec.names.cluster, "capacityProviders": [*cluster.PROVIDERS, n],
                "defaultCapacityProviderStrategy": strategy(spec)},
                retry=IN_USE_RETRY, retry_timeout_s=PROPAGATION_S)]))
    return steps


def delete_provider(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Detach from the cluster (back to the Fargate default), then delete (ECS DeleteCapacityProvider: "you must
    first disassociate it from the cluster": botocore ecs service-2.json)."""
    n = provider_name(spec)
    cur = read_provider(spec, remote)
    if cur is None or not spec.owns(tag_dict(cur.get("tags"))):
        return []
    calls: list[ApiCall] = []
    found = cluster.read(spec, remote)
    if found and n in (found.get("capacityProviders") or []):
        calls.append(ApiCall("ecs", "put_cluster_capacity_providers", {
            "cluster": spec.names.cluster, "capacityProviders": cluster.PROVIDERS,
            "defaultCapacityProviderStrategy": cluster.DEFAULT_STRATEGY}, retry=IN_USE_RETRY,
            retry_timeout_s=float(spec.config.release.stability_timeout_s)))
    # no ``missing``: ECS answers ClientException both for an unknown provider and for one still in use; the
    # provider was just described ACTIVE, so "in use" (the service's tasks still draining) is what is retried
    calls.append(ApiCall("ecs", "delete_capacity_provider", {"capacityProvider": n},
                         retry=(*IN_USE_RETRY, RetryOn("ClientException", "in use")),
                         retry_timeout_s=float(spec.config.release.stability_timeout_s)))
    return [Step(CP_KIND, n, Action.delete, calls=calls)]


def delete_asg(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """``ForceDelete``: "Specifies that the group is to be deleted along with all instances associated with the
    group, without waiting for all instances to be terminated" (botocore autoscaling DeleteAutoScalingGroupType);
    the cluster's delete retries while those instances deregister (``cluster.DELETE_RETRY``)."""
    cur = read_asg(spec, remote)
    if cur is None or not spec.owns(tag_dict(cur.get("Tags"))):
        return []
    return [Step(ASG_KIND, asg_name(spec), Action.delete, ["and its instances"], calls=[
        ApiCall("autoscaling", "delete_auto_scaling_group", {"AutoScalingGroupName": asg_name(spec),
                                                             "ForceDelete": True},
                missing=("ValidationError",))])]


def plan_cleanup(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """``compute: fargate`` after ``ec2``: the EC2 capacity goes once the service runs on Fargate (this family
    comes after the service)."""
    if ec2(spec):
        return []
    return [*delete_provider(spec, remote, known), *delete_asg(spec, remote, known),
            *launch_template.delete(spec, remote, known), *security_groups.delete_instance_group(spec, remote, known),
            *instance_role.delete(spec, remote, known)]


def _nothing(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    return []


cleanup_delete = _nothing
"""``down`` deletes the EC2 families through their own ``delete``."""
