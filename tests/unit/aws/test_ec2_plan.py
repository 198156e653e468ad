"""``aws.compute: ec2`` plans as data: instance role, launch template, Auto Scaling group, capacity provider, the
service and task definition on EC2, the cleanup back to Fargate, and ``down``'s order.

What these (and the moto e2e in tests/test_aws_ec2.py) cannot show: instances booting from the AMI, the agent
joining the cluster with the user data, GPUs being assigned to containers, managed scaling launching instances.
"""

from __future__ import annotations

import base64

import pytest

from mldeploy.aws.engine import stack
from mldeploy.aws.engine.model import Action, ApiCall, Step
from mldeploy.aws.resources import capacity, cluster, instance_role, launch_template, service, task_definition
from mldeploy.errors import ConfigError
from tests.unit.fakes import BASE_CONFIG, FakeRemote, owned_tags, project, spec

GPU = BASE_CONFIG + """aws:
  compute: ec2
  instance_type: g5.xlarge
  gpus: 1
  cpu: 4096
  memory: 15360
"""
CPU_SPOT = BASE_CONFIG + """aws:
  compute: ec2
  instance_type: c7i.xlarge
  cpu: 1024
  memory: 2048
  spot: {enabled: true, weight: 70, base: 1}
  autoscaling: {min: 1, max: 6}
"""
AMI = {"gpu": "ami-0gpu", "x86": "ami-0x86", "arm": "ami-0arm"}


def ssm_answer(Name: str) -> dict:  # noqa: N803 - boto3's parameter name
    kind = "gpu" if "/gpu/" in Name else "arm" if "/arm64/" in Name else "x86"
    return {"Parameter": {"Name": Name, "Value": AMI[kind]}}


def known() -> dict:
    return {"instance_profile": "demo-instance", "task_sg_id": "sg-tasks", "instance_sg_id": "sg-instances",
            "subnet_ids": ["subnet-a", "subnet-b"]}


def empty_remote() -> FakeRemote:
    return FakeRemote({
        ("ssm", "get_parameter"): ssm_answer,
        ("ec2", "describe_launch_templates"): None,
        ("autoscaling", "describe_auto_scaling_groups"): {"AutoScalingGroups": []},
        ("ecs", "describe_capacity_providers"): {"capacityProviders": []},
        ("ecs", "describe_clusters"): {"clusters": []},
        ("iam", "get_role"): None, ("iam", "get_instance_profile"): None,
    })


def user_data(step: Step) -> str:
    return base64.b64decode(step.calls[0].params["LaunchTemplateData"]["UserData"]).decode()


def test_gpu_launch_template_reads_the_gpu_ami_and_enables_gpus() -> None:
    s = spec(project(GPU))
    remote = empty_remote()
    (step,) = launch_template.plan(s, remote, known())
    assert remote.calls[0][2]["Name"] == "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
    data = step.calls[0].params["LaunchTemplateData"]
    assert (step.action, data["ImageId"], data["InstanceType"]) == (Action.create, "ami-0gpu", "g5.xlarge")
    assert data["IamInstanceProfile"] == {"Name": "demo-instance"}
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["NetworkInterfaces"][0]["Groups"] == ["sg-instances"]  # the instances' own group, not the tasks'
    text = user_data(step)
    assert "ECS_CLUSTER=demo\n" in text and "ECS_ENABLE_GPU_SUPPORT=true" in text
    assert "ECS_RESERVED_MEMORY=256" in text


def test_cpu_and_graviton_templates_use_their_amis_without_gpu_support() -> None:
    (step,) = launch_template.plan(spec(project(CPU_SPOT)), empty_remote(), known())
    assert step.calls[0].params["LaunchTemplateData"]["ImageId"] == "ami-0x86"
    assert "ECS_ENABLE_GPU_SUPPORT" not in user_data(step)
    arm = project(CPU_SPOT.replace("c7i.xlarge", "c7g.xlarge") + "image:\n  platform: linux/arm64\n")
    (step,) = launch_template.plan(spec(arm), empty_remote(), known())
    assert step.calls[0].params["LaunchTemplateData"]["ImageId"] == "ami-0arm"


def test_launch_template_in_sync_is_a_noop_and_a_new_ami_a_new_version() -> None:
    s = spec(project(GPU))
    want = launch_template.data(s, known(), "ami-0gpu")
    remote = empty_remote().answer("ec2", "describe_launch_templates", {"LaunchTemplates": [
        {"LaunchTemplateName": "demo-ecs", "LatestVersionNumber": 1, "Tags": owned_tags()}]})
    remote.answer("ec2", "describe_launch_template_versions", {"LaunchTemplateVersions": [
        {"LaunchTemplateData": want}]})
    assert launch_template.plan(s, remote, known()) == [Step("launch template", "demo-ecs", Action.noop)]
    remote.answer("ec2", "describe_launch_template_versions", {"LaunchTemplateVersions": [
        {"LaunchTemplateData": {**want, "ImageId": "ami-old"}}]})
    (step,) = launch_template.plan(s, remote, known())
    assert (step.action, step.changes) == (Action.update, ("AMI ami-old → ami-0gpu",))
    assert [c.op for c in step.calls] == ["create_launch_template_version", "modify_launch_template"]


def test_task_that_does_not_fit_the_instance_is_refused_naming_the_field() -> None:
    too_big = project(GPU.replace("memory: 15360", "memory: 16384"))
    with pytest.raises(ConfigError) as e:
        launch_template.plan(spec(too_big), empty_remote(), known())
    assert "aws.memory" in str(e.value) and "15718 MiB" in str(e.value)
    no_gpu = project(GPU.replace("g5.xlarge", "c7i.xlarge").replace("cpu: 4096", "cpu: 1024")
                     .replace("memory: 15360", "memory: 2048"))
    with pytest.raises(ConfigError, match="aws.gpus.*c7i.xlarge has no GPU"):
        launch_template.plan(spec(no_gpu), empty_remote(), known())
    arch = project(GPU.replace("g5.xlarge", "c7g.xlarge").replace("gpus: 1", "gpus: 0")
                   .replace("cpu: 4096", "cpu: 1024").replace("memory: 15360", "memory: 2048"))
    with pytest.raises(ConfigError, match="c7g.xlarge is arm64 but image.platform is linux/amd64"):
        launch_template.plan(spec(arch), empty_remote(), known())


def test_schema_refuses_gpus_on_fargate_and_ec2_without_instance_type() -> None:
    with pytest.raises(ConfigError, match="gpus 1 needs compute: ec2"):
        project(BASE_CONFIG + "aws:\n  gpus: 1\n")
    with pytest.raises(ConfigError, match="compute ec2 needs aws.instance_type"):
        project(BASE_CONFIG + "aws:\n  compute: ec2\n")
    # EC2 tasks are not held to the Fargate size table (cpu 4096 with 4096 MiB is no Fargate pair)
    assert project(GPU.replace("memory: 15360", "memory: 4096")).config.aws.memory == 4096
    with pytest.raises(ConfigError, match="not valid with cpu 4096 on Fargate"):
        project(BASE_CONFIG + "aws:\n  cpu: 4096\n  memory: 4096\n")
    with pytest.raises(ConfigError, match="outside 128–196608"):
        project(GPU.replace("cpu: 4096", "cpu: 64"))


def test_spot_group_uses_a_mixed_instances_policy_and_scale_in_protection() -> None:
    s = spec(project(CPU_SPOT))
    k = known()
    (step,) = capacity.plan_asg(s, empty_remote(), k)
    params = step.calls[0].params
    # c7i.xlarge: 4 vCPU / 1 vCPU, (8192 × 0.975 − 256) / 2048 = 3, 4 ENIs − 1 = 3 → 3 tasks; ⌈2 × 6 / 3⌉ = 4
    assert (params["MinSize"], params["MaxSize"], params["VPCZoneIdentifier"]) == (0, 4, "subnet-a,subnet-b")
    assert params["NewInstancesProtectedFromScaleIn"] is True and "LaunchTemplate" not in params
    policy = params["MixedInstancesPolicy"]
    assert policy["InstancesDistribution"] == {"OnDemandBaseCapacity": 1, "OnDemandPercentageAboveBaseCapacity": 30,
                                               "SpotAllocationStrategy": "price-capacity-optimized"}
    assert policy["LaunchTemplate"]["Overrides"] == [{"InstanceType": "c7i.xlarge"}]
    assert k["asg_arn"] == "demo-ecs"
    (step,) = capacity.plan_asg(spec(project(GPU)), empty_remote(), known())
    assert step.calls[0].params["LaunchTemplate"] == {"LaunchTemplateName": "demo-ecs", "Version": "$Latest"}


def test_capacity_provider_is_created_with_managed_scaling_and_attached() -> None:
    s = spec(project(GPU))
    remote = empty_remote().answer("ecs", "describe_clusters", {"clusters": [
        {"clusterName": "demo", "status": "ACTIVE", "capacityProviders": ["FARGATE", "FARGATE_SPOT"]}]})
    create, attach = capacity.plan_provider(s, remote, {"asg_arn": "demo-ecs"})
    provider = create.calls[0].params["autoScalingGroupProvider"]
    assert create.calls[0].params["name"] == "mldeploy-demo"
    assert (provider["autoScalingGroupArn"], provider["managedTerminationProtection"]) == ("demo-ecs", "ENABLED")
    assert provider["managedScaling"]["status"] == "ENABLED"
    assert attach.calls == (ApiCall("ecs", "put_cluster_capacity_providers", {
        "cluster": "demo", "capacityProviders": ["FARGATE", "FARGATE_SPOT", "mldeploy-demo"],
        "defaultCapacityProviderStrategy": [{"capacityProvider": "mldeploy-demo", "weight": 1, "base": 0}]},
        retry=capacity.IN_USE_RETRY, retry_timeout_s=capacity.PROPAGATION_S),)
    # the cluster family keeps the attached EC2 provider (no fight between the two families)
    remote.answer("ecs", "describe_clusters", {"clusters": [
        {"clusterName": "demo", "status": "ACTIVE", "tags": [{"key": "mldeploy:app", "value": "demo"},
                                                             {"key": "mldeploy:env", "value": "default"}],
         "capacityProviders": ["FARGATE", "FARGATE_SPOT", "mldeploy-demo"], "settings": []}]})
    assert cluster.plan(s, remote, {}) == [Step("ecs cluster", "demo", Action.noop)]


def test_service_and_task_definition_on_ec2() -> None:
    s = spec(project(GPU))
    k = {**known(), "task_definition_arn": "td", "tg_arn": "tg", "execution_role_arn": "exec"}
    want = service.desired(s, k)
    assert want["capacityProviderStrategy"] == [{"capacityProvider": "mldeploy-demo", "weight": 1, "base": 0}]
    assert "platformVersion" not in want and "launchType" not in want
    assert want["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    td = task_definition.desired(s, k, "img")
    assert (td["requiresCompatibilities"], td["networkMode"]) == (["EC2"], "awsvpc")
    assert td["containerDefinitions"][0]["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    fargate = task_definition.desired(spec(), k, "img")
    assert fargate["requiresCompatibilities"] == ["FARGATE"]
    assert "resourceRequirements" not in fargate["containerDefinitions"][0]
    assert "compatibility → EC2" in task_definition.diff(fargate, td)


def test_fargate_plans_nothing_for_ec2_and_cleans_up_what_ec2_left() -> None:
    s = spec()
    nothing = FakeRemote()
    assert instance_role.plan(s, nothing, {}) == launch_template.plan(s, nothing, {}) == []
    assert capacity.plan_asg(s, nothing, {}) == capacity.plan_provider(s, nothing, {}) == []
    left = FakeRemote({
        ("ecs", "describe_capacity_providers"): {"capacityProviders": [
            {"name": "mldeploy-demo", "status": "ACTIVE", "tags": owned_tags("default", "demo", "key", "value")}]},
        ("ecs", "describe_clusters"): {"clusters": [{"clusterName": "demo", "status": "ACTIVE",
                                                     "capacityProviders": ["FARGATE", "mldeploy-demo"]}]},
        ("autoscaling", "describe_auto_scaling_groups"): {"AutoScalingGroups": [
            {"AutoScalingGroupName": "demo-ecs", "Tags": owned_tags()}]},
        ("ec2", "describe_launch_templates"): {"LaunchTemplates": [{"LaunchTemplateName": "demo-ecs",
                                                                    "Tags": owned_tags()}]},
        ("iam", "get_role"): {"Role": {"RoleName": "demo-instance", "Tags": owned_tags()}},
        ("iam", "get_instance_profile"): {"InstanceProfile": {"Roles": [{"RoleName": "demo-instance"}]}},
        ("iam", "list_attached_role_policies"): {"AttachedPolicies": [
            {"PolicyArn": "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"}]},
        ("iam", "list_role_policies"): {"PolicyNames": []},
    })
    steps = capacity.plan_cleanup(s, left, {})
    assert [(st.kind, st.action) for st in steps] == [
        ("capacity provider", Action.delete), ("auto scaling group", Action.delete),
        ("launch template", Action.delete), ("instance profile", Action.delete), ("iam role", Action.delete)]
    assert [c.op for c in steps[0].calls] == ["put_cluster_capacity_providers", "delete_capacity_provider"]
    assert steps[1].calls[0].params == {"AutoScalingGroupName": "demo-ecs", "ForceDelete": True}


def test_families_order_up_and_reverse_for_down() -> None:
    names = [f.name for f in stack.RESOURCES]
    order = ["instance role", "security groups", "launch template", "auto scaling group", "capacity provider",
             "task definition", "service", "ec2 cleanup"]
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    assert names.index("cluster") < names.index("capacity provider")  # down: provider, group, … before cluster


def test_instance_role_has_only_the_ecs_instance_policy() -> None:
    s = spec(project(GPU))
    role, profile = instance_role.plan(s, empty_remote(), {})
    assert [c.op for c in role.calls] == ["create_role", "attach_role_policy"]
    assert role.calls[1].params["PolicyArn"] == \
        "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
    assert '"ec2.amazonaws.com"' in role.calls[0].params["AssumeRolePolicyDocument"]
    assert [c.op for c in profile.calls] == ["create_instance_profile", "add_role_to_instance_profile"]


def test_group_in_sync_is_a_noop_and_a_new_maximum_an_update() -> None:
    s = spec(project(GPU))
    want = capacity.asg_params(s, known())
    group = {"AutoScalingGroupName": "demo-ecs", "AutoScalingGroupARN": "arn:asg", "Tags": owned_tags(), **want}
    remote = empty_remote().answer("autoscaling", "describe_auto_scaling_groups", {"AutoScalingGroups": [group]})
    k = known()
    assert capacity.plan_asg(s, remote, k) == [Step("auto scaling group", "demo-ecs", Action.noop)]
    assert k["asg_arn"] == "arn:asg"
    bigger = spec(project(GPU + "  autoscaling: {min: 1, max: 6}\n"))
    (step,) = capacity.plan_asg(bigger, remote, known())
    assert (step.action, step.changes) == (
        Action.update, ("instances 0–8 → 0–12 (1 task per instance, bound by CPU, memory, GPUs)",))
    assert step.calls[0].op == "update_auto_scaling_group" and step.calls[0].params["MaxSize"] == 12
