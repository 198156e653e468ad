"""``aws.compute: ec2`` as data, the parts a real account shows first: tasks per instance bound by network
interfaces (awsvpc), the instance refresh after a new launch template version, and the container instances' own
security group.

moto has no instance refreshes (DescribeInstanceRefreshes / StartInstanceRefresh answer HTTP 500,
NotImplementedError), so the refresh's answers are canned here and tests/test_aws_ec2.py asserts the request.
"""

from __future__ import annotations

import math
from typing import Any

from mldeploy.aws import preflight
from mldeploy.aws.engine.model import Action, ApiCall, Fn, Ref, Step, noop
from mldeploy.aws.resources import capacity, launch_template, security_groups
from mldeploy.cost import instances
from mldeploy.cost.model import estimate
from mldeploy.errors import AwsError
from tests.unit.aws.test_ec2_plan import GPU, empty_remote, known
from tests.unit.fakes import BASE_CONFIG, FakeRemote, owned_tags, project, spec

SMALL_ON_G5 = BASE_CONFIG + """aws:
  region: us-east-1
  compute: ec2
  instance_type: g5.xlarge
  cpu: 512
  memory: 2048
  desired_count: 6
  autoscaling: {min: 6, max: 12}
"""
"""6 tasks per g5.xlarge by CPU (8) and memory (7), but 4 network interfaces − 1 primary = 3."""


# ------------------------------------------------------------------------------------------- tasks per instance


def test_network_interfaces_bound_tasks_per_instance_everywhere() -> None:
    cfg = project(SMALL_ON_G5).config
    got = instances.fit(cfg.aws)
    assert got is not None and got.by == {"cpu": 8, "memory": 7, "enis": 3}
    assert (got.tasks, got.bounds, got.eni_bound) == (3, ["enis"], True)
    assert instances.tasks_per_instance(cfg.aws) == 3
    # the Auto Scaling group's maximum: room for 2 × 12 tasks at 3 per instance (8, not the 4 CPU/memory suggest)
    s = spec(project(SMALL_ON_G5))
    assert capacity.max_instances(s) == math.ceil(2 * 12 / 3) == 8
    (step,) = capacity.plan_asg(s, empty_remote(), known())
    assert step.calls[0].params["MaxSize"] == 8
    assert step.changes[:2] == ("0–8 × g5.xlarge", "3 tasks per instance, bound by network interfaces: 4 ENIs − 1 "
                                                   "primary; CPU 8, memory 7 would fit")
    # cost: ⌈6 tasks ÷ 3⌉ = 2 instances, not 1
    ec2 = estimate(cfg, None).component("ec2")
    assert ec2.quantity == 2 and "÷ 3 per g5.xlarge" in ec2.formula


def test_validate_explains_the_eni_bound_and_names_trunking() -> None:
    (warning,) = instances.fit_warnings(project(SMALL_ON_G5).config)
    assert warning.startswith("aws.instance_type g5.xlarge: 3 tasks per instance, bound by network interfaces")
    assert "autoscaling max 12 needs up to 4 instances (2 by CPU/memory alone)" in warning
    assert "awsvpcTrunking" in warning and '"Elastic network interface trunking"' in warning
    # CPU (or memory, GPUs) the bound: nothing to explain
    assert instances.fit_warnings(project(GPU).config) == []
    assert instances.fit_warnings(project(BASE_CONFIG).config) == []  # Fargate
    from mldeploy.cli.commands.config import compute_summary

    assert compute_summary(project(SMALL_ON_G5).config.aws) == \
        "EC2 g5.xlarge (3 tasks per instance, bound by network interfaces)"
    assert compute_summary(project(GPU).config.aws) == "EC2 g5.xlarge (1 GPU, 1 task per instance)"


def test_bundled_network_interface_counts_are_the_documented_ones() -> None:
    # transcribed from the EC2 user guide's network-interface table and cross-checked on 2026-12-02 against
    # aws/amazon-vpc-cni-k8s pkg/vpc/vpc_ip_resource_limit.go (generated from EC2 DescribeInstanceTypes
    # NetworkInfo.MaximumNetworkInterfaces): .large 3, .xlarge/.2xlarge 4, .4xlarge 8 for the 7th-generation
    # families; g4dn 3/3/3/8; g5 4/4/8/15; g6 4/4/8/8
    want = {"large": 3, "xlarge": 4, "2xlarge": 4, "4xlarge": 8}
    table = instances.table()
    for fam in ("c7i", "m7i", "r7i", "c7g", "m7g", "r7g"):
        assert {size: table[f"{fam}.{size}"].max_enis for size in want} == want, fam
    gpu = {"g4dn": (3, 3, 3, 8), "g5": (4, 4, 8, 15), "g6": (4, 4, 8, 8)}
    for fam, counts in gpu.items():
        assert tuple(table[f"{fam}.{s}"].max_enis for s in ("xlarge", "2xlarge", "4xlarge", "12xlarge")) == counts


# ------------------------------------------------------------------------------------------- instance refresh


def _instance(iid: str, version: str, state: str = "InService") -> dict[str, Any]:
    return {"InstanceId": iid, "LifecycleState": state, "ProtectedFromScaleIn": True,
            "LaunchTemplate": {"LaunchTemplateName": "demo-ecs", "Version": version}}


def _existing(s: Any, *, template_ami: str = "ami-0gpu", latest: int = 1, group_instances: list | None = None,
              refreshes: Any = None) -> FakeRemote:
    """The app's launch template (version ``latest`` with ``template_ami``) and its group with ``group_instances``."""
    k = known()
    want = launch_template.data(s, k, "ami-0gpu")
    group = {"AutoScalingGroupName": "demo-ecs", "AutoScalingGroupARN": "arn:asg", "Tags": owned_tags(),
             **capacity.asg_params(s, k), "Instances": group_instances or []}
    remote = empty_remote()
    remote.answer("ec2", "describe_launch_templates", {"LaunchTemplates": [
        {"LaunchTemplateName": "demo-ecs", "LatestVersionNumber": latest, "Tags": owned_tags()}]})
    remote.answer("ec2", "describe_launch_template_versions", {"LaunchTemplateVersions": [
        {"LaunchTemplateData": {**want, "ImageId": template_ami}}]})
    remote.answer("autoscaling", "describe_auto_scaling_groups", {"AutoScalingGroups": [group]})
    remote.answer("autoscaling", "describe_instance_refreshes",
                  refreshes if refreshes is not None else {"InstanceRefreshes": []})
    return remote


def _plan(s: Any, remote: FakeRemote) -> list[Step]:
    k = known()
    return [*launch_template.plan(s, remote, k), *capacity.plan_asg(s, remote, k)]


REFRESH = ApiCall("autoscaling", "start_instance_refresh", {
    "AutoScalingGroupName": "demo-ecs", "Strategy": "Rolling", "Preferences": {
        "MinHealthyPercentage": 100, "MaxHealthyPercentage": 200, "SkipMatching": True,
        "ScaleInProtectedInstances": "Refresh", "InstanceWarmup": 300}},
    missing=("InstanceRefreshInProgress",))


def test_a_new_ami_is_a_new_template_version_then_an_instance_refresh() -> None:
    s = spec(project(GPU))
    remote = _existing(s, template_ami="ami-old", group_instances=[_instance("i-1", "1"), _instance("i-2", "1"),
                                                                    _instance("i-3", "1", "Terminating")])
    template, group, refresh = _plan(s, remote)
    assert (template.action, template.changes) == (Action.update, ("AMI ami-old → ami-0gpu",))
    new_version, default = template.calls
    assert new_version.outputs == (("lt_version", "LaunchTemplateVersion.VersionNumber"),)
    # ModifyLaunchTemplate's DefaultVersion is a version number (botocore), the one the new version got
    assert default.params == {"LaunchTemplateName": "demo-ecs",
                              "DefaultVersion": Fn("format", ("{v}",), (("v", Ref("lt_version")),))}
    assert group == noop("auto scaling group", "demo-ecs")
    assert refresh == Step("instance refresh", "demo-ecs", Action.create, [
        "replace 2 instances on launch template version 1 with the new version",
        "launch before terminate (healthy 100–200%), ECS drains each replaced instance"], calls=[REFRESH])
    # the refresh reads whether one is unfinished, once
    assert [c[1] for c in remote.calls].count("describe_instance_refreshes") == 1


def test_no_refresh_without_instances_or_when_they_run_the_latest_version() -> None:
    s = spec(project(GPU))
    template, group = _plan(s, _existing(s, template_ami="ami-old"))  # a new version, but no instance yet
    assert template.action is Action.update and group == noop("auto scaling group", "demo-ecs")
    in_sync = _existing(s, latest=3, group_instances=[_instance("i-1", "3")])
    assert _plan(s, in_sync) == [noop("launch template", "demo-ecs"), noop("auto scaling group", "demo-ecs")]
    assert "describe_instance_refreshes" not in [c[1] for c in in_sync.calls]


def test_instances_left_on_an_older_version_are_refreshed_by_the_next_up() -> None:
    # an earlier up created version 2 and failed before (or while) refreshing: the template is in sync now
    s = spec(project(GPU))
    remote = _existing(s, latest=2, group_instances=[_instance("i-1", "1"), _instance("i-2", "2")])
    template, group, refresh = _plan(s, remote)
    assert template == noop("launch template", "demo-ecs") and group.action is Action.noop
    assert refresh.changes[0] == "replace 1 instance on launch template version 1 with version 2"
    assert refresh.calls == (REFRESH,)


def test_no_second_refresh_while_one_is_unfinished_and_the_plan_says_so() -> None:
    s = spec(project(GPU))
    running = {"InstanceRefreshes": [{"InstanceRefreshId": "r-1", "Status": "Successful"},
                                     {"InstanceRefreshId": "r-2", "Status": "InProgress", "PercentageComplete": 50}]}
    remote = _existing(s, template_ami="ami-old", group_instances=[_instance("i-1", "1")], refreshes=running)
    assert [st.kind for st in _plan(s, remote)] == ["launch template", "auto scaling group"]
    notes = capacity.refresh_notes(s, remote)
    assert notes == ["instance refresh r-2 of demo-ecs is InProgress (50% done): mldeploy starts no other one now; "
                     "instances it leaves on an older launch template version are refreshed by a later "
                     "`mldeploy up`"]
    remote.answer("service-quotas", "get_service_quota", {"Quota": {"Value": 1000.0}})
    assert preflight.notes(s, remote)[-1] == notes[0]
    done = _existing(s, refreshes={"InstanceRefreshes": [{"InstanceRefreshId": "r-1", "Status": "Cancelled"}]})
    assert capacity.refresh_notes(s, done) == []


def test_unreadable_refreshes_still_plan_one_and_say_why() -> None:
    def unimplemented(**_: Any) -> None:  # what the moto emulator answers (HTTP 500)
        raise AwsError("autoscaling:DescribeInstanceRefreshes failed: the response was not valid XML")

    s = spec(project(GPU))
    remote = _existing(s, template_ami="ami-old", group_instances=[_instance("i-1", "1")])
    remote.answer("autoscaling", "describe_instance_refreshes", unimplemented)
    *_, refresh = _plan(s, remote)
    assert refresh.calls == (REFRESH,)
    assert refresh.note == ("in-progress refreshes not readable: autoscaling:DescribeInstanceRefreshes failed: "
                            "the response was not valid XML")
    assert capacity.refresh_notes(s, remote) == []


def test_refresh_preferences_are_within_the_documented_ranges() -> None:
    p = capacity.REFRESH_PREFERENCES
    # botocore autoscaling RefreshPreferences: Min 0–100, Max 100–200, Max − Min ≤ 100
    assert 0 <= p["MinHealthyPercentage"] <= 100 <= p["MaxHealthyPercentage"] <= 200
    assert p["MaxHealthyPercentage"] - p["MinHealthyPercentage"] <= 100
    assert p["ScaleInProtectedInstances"] in ("Refresh", "Ignore", "Wait")


def test_the_deploy_policy_allows_the_refresh_for_the_app_only() -> None:
    from mldeploy.aws import iam_policy
    from tests.unit.aws.test_iam_policy import ACCOUNT, World, _calls, check, denied_mutations

    calls = _calls([REFRESH])
    assert check(iam_policy.policy_for(project(GPU), account=ACCOUNT), calls, World()) == []
    other = iam_policy.policy_for(project(GPU.replace("name: demo", "name: other")), account=ACCOUNT)
    assert denied_mutations(other, calls, World()) == []


# --------------------------------------------------------------------------------- the instances' security group

VPC = "vpc-1"


def _groups(found: dict[str, dict]) -> FakeRemote:
    def describe(Filters: list[dict]) -> dict:  # noqa: N803 (AWS's parameter name)
        name = next(f["Values"][0] for f in Filters if f["Name"] == "group-name")
        return {"SecurityGroups": [found[name]] if name in found else []}

    return FakeRemote({("ec2", "describe_security_groups"): describe})


def test_container_instances_get_a_group_of_their_own_without_inbound() -> None:
    k: dict[str, Any] = {"vpc_id": VPC}
    steps = security_groups.plan(spec(project(GPU)), _groups({}), k)
    assert [st.name for st in steps] == ["demo-alb", "demo-tasks", "demo-instances"]
    instances_group = steps[2]
    assert instances_group.changes == ("no ingress",)
    (create,) = instances_group.calls  # no authorize call: nothing may reach the instances
    assert create.op == "create_security_group" and create.params["GroupName"] == "demo-instances"
    assert k["instance_sg_id"] == Ref("instance_sg_id")
    # the launch template puts it on the instances' interface; the service keeps the tasks' group
    data = launch_template.data(spec(project(GPU)), {**known(), "instance_sg_id": k["instance_sg_id"]}, "ami-1")
    assert data["NetworkInterfaces"][0]["Groups"] == [Ref("instance_sg_id")]
    # Fargate: no instances' group
    assert [st.name for st in security_groups.plan(spec(), _groups({}), {"vpc_id": VPC})] == ["demo-alb",
                                                                                            "demo-tasks"]


def test_an_inbound_rule_added_to_the_instances_group_is_revoked() -> None:
    ours = {"GroupName": "demo-instances", "GroupId": "sg-i", "VpcId": VPC, "Tags": owned_tags(),
            "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                               "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}
    steps = security_groups.plan(spec(project(GPU)), _groups({"demo-instances": ours}), {"vpc_id": VPC})
    assert steps[-1] == Step("security group", "demo-instances", Action.update, ["revoke 22 from 0.0.0.0/0"], calls=[
        ApiCall("ec2", "revoke_security_group_ingress", {"GroupId": "sg-i", "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})])


def test_down_and_the_switch_to_fargate_delete_the_instances_group_after_the_group_of_instances() -> None:
    found = {n: {"GroupName": n, "GroupId": f"sg-{n}", "VpcId": VPC, "Tags": owned_tags(), "IpPermissions": []}
             for n in ("demo-alb", "demo-tasks", "demo-instances")}
    down = security_groups.delete(spec(project(GPU)), _groups(found), {"vpc_id": VPC})
    assert [st.name for st in down] == ["demo-instances", "demo-tasks", "demo-alb"]
    assert down[0].calls[0].retry[0].code == "DependencyViolation"  # terminating instances still hold it
    # compute ec2 → fargate: after the Auto Scaling group and the launch template that reference it
    left = _groups(found)
    left.answer("ecs", "describe_capacity_providers", {"capacityProviders": []})
    left.answer("autoscaling", "describe_auto_scaling_groups", {"AutoScalingGroups": [
        {"AutoScalingGroupName": "demo-ecs", "Tags": owned_tags()}]})
    left.answer("ec2", "describe_launch_templates", {"LaunchTemplates": [
        {"LaunchTemplateName": "demo-ecs", "Tags": owned_tags()}]})
    left.answer("iam", "get_role", None).answer("iam", "get_instance_profile", None)
    steps = capacity.plan_cleanup(spec(), left, {"vpc_id": VPC})
    assert [(st.kind, st.name) for st in steps] == [
        ("auto scaling group", "demo-ecs"), ("launch template", "demo-ecs"), ("security group", "demo-instances")]


def test_a_new_instance_type_reaches_the_spot_groups_override_too() -> None:
    # an override's InstanceType wins over the launch template's: without the update the group keeps the old type
    from tests.unit.aws.test_ec2_plan import CPU_SPOT

    old = spec(project(CPU_SPOT))
    group = {"AutoScalingGroupName": "demo-ecs", "AutoScalingGroupARN": "arn:asg", "Tags": owned_tags(),
             **capacity.asg_params(old, known())}
    remote = empty_remote().answer("autoscaling", "describe_auto_scaling_groups", {"AutoScalingGroups": [group]})
    assert capacity.plan_asg(old, remote, known()) == [noop("auto scaling group", "demo-ecs")]
    (step,) = capacity.plan_asg(spec(project(CPU_SPOT.replace("c7i.xlarge", "m7i.xlarge"))), remote, known())
    assert step.changes == ("instance types c7i.xlarge → m7i.xlarge",)
    overrides = step.calls[0].params["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]
    assert overrides == [{"InstanceType": "m7i.xlarge"}]
