"""End-to-end ``aws.compute: ec2`` (GPU, Spot, scheduled scaling): the real CLI against the moto server with the
strict AWS layer — plan, up, a re-run that changes nothing, down that leaves nothing of the app.

What moto checks here: the launch template (AMI read from moto's copy of AWS's public ECS-optimized AMI parameters,
user data), the Auto Scaling group (mixed instances policy, scale-in protection), the capacity provider (managed
scaling, managed termination protection; the strict layer refuses it on a group without scale-in protection),
its attachment to the cluster, the service's capacity provider strategy, the task definition (EC2, awsvpc, GPU
resource requirement), the scheduled action and the instances' own security group. moto has no instance refreshes
(DescribeInstanceRefreshes and StartInstanceRefresh answer HTTP 500, NotImplementedError): the refresh test asserts
the request and lets the call answer AWS's documented InstanceRefreshInProgress instead.

What moto cannot show: instances booting and joining the cluster (its ASG launches no ECS container instances),
managed scaling reacting to pending tasks, GPUs assigned to the container, the NVIDIA runtime of the GPU AMI, Spot
interruptions and draining, an instance refresh replacing instances.
"""

from __future__ import annotations

import base64
import copy

import pytest

from tests.test_aws_helpers import BASE_CONFIG, Project, tagged_arns

IMAGE = "registry.example/demo:1"
GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"


def gpu_config() -> dict:
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["aws"].update({"compute": "ec2", "instance_type": "g5.xlarge", "gpus": 1, "cpu": 4096, "memory": 15360,
                       "spot": True, "autoscaling": {"min": 1, "max": 4, "schedule": [
                           {"cron": "0 20 ? * MON-FRI *", "min": 1, "max": 2}]}})
    return cfg


@pytest.fixture
def project(tmp_path, aws):
    return Project(tmp_path, aws, gpu_config())


def test_gpu_plan_up_noop_down(project, moto_server):
    c = moto_server.client

    r = project.run("plan")
    assert r.rc == 0, r.stderr
    text = r.stdout + r.stderr
    for line in ("iam role", "instance profile", "launch template", "auto scaling group", "capacity provider",
                 "scheduled action", "g5.xlarge", "ECS_ENABLE_GPU_SUPPORT", "EC2 g5.xlarge on-demand"):
        assert line in text, line
    assert r.mutating == []

    r = project.run("up", "--image", IMAGE, "--no-wait", "--json")
    assert r.rc == 0, r.stderr

    ami = c("ssm").get_parameter(Name=GPU_AMI_PARAMETER)["Parameter"]["Value"]
    (lt,) = c("ec2").describe_launch_template_versions(LaunchTemplateName="demo-ecs")["LaunchTemplateVersions"]
    data = lt["LaunchTemplateData"]
    assert (data["ImageId"], data["InstanceType"]) == (ami, "g5.xlarge")
    assert data["IamInstanceProfile"]["Name"] == "demo-instance"
    script = base64.b64decode(data["UserData"]).decode()
    assert "ECS_CLUSTER=demo" in script and "ECS_ENABLE_GPU_SUPPORT=true" in script

    profile = c("iam").get_instance_profile(InstanceProfileName="demo-instance")["InstanceProfile"]
    assert [x["RoleName"] for x in profile["Roles"]] == ["demo-instance"]
    attached = c("iam").list_attached_role_policies(RoleName="demo-instance")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonEC2ContainerServiceforEC2Role"]

    (group,) = c("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["demo-ecs"])["AutoScalingGroups"]
    assert group["NewInstancesProtectedFromScaleIn"] is True
    assert (group["MinSize"], group["MaxSize"]) == (0, 8)  # 1 task per g5.xlarge, 2 × autoscaling max 4
    dist = group["MixedInstancesPolicy"]["InstancesDistribution"]
    assert (dist["OnDemandBaseCapacity"], dist["OnDemandPercentageAboveBaseCapacity"]) == (1, 0)

    ecs = c("ecs")
    (cp,) = ecs.describe_capacity_providers(capacityProviders=["mldeploy-demo"])["capacityProviders"]
    asg = cp["autoScalingGroupProvider"]
    assert (asg["managedTerminationProtection"], asg["managedScaling"]["status"]) == ("ENABLED", "ENABLED")
    (cluster,) = ecs.describe_clusters(clusters=["demo"])["clusters"]
    assert "mldeploy-demo" in cluster["capacityProviders"]

    (create,) = r.params("CreateService")
    assert create["capacityProviderStrategy"] == [{"capacityProvider": "mldeploy-demo", "weight": 1, "base": 0}]
    assert "launchType" not in create and "platformVersion" not in create
    assert create["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    td = ecs.describe_task_definition(taskDefinition="demo")["taskDefinition"]
    assert (td["requiresCompatibilities"], td["networkMode"]) == (["EC2"], "awsvpc")
    assert td["containerDefinitions"][0]["resourceRequirements"] == [{"type": "GPU", "value": "1"}]

    (action,) = c("application-autoscaling").describe_scheduled_actions(ServiceNamespace="ecs")["ScheduledActions"]
    assert (action["Schedule"], action["ScalableTargetAction"]) == (
        "cron(0 20 ? * MON-FRI *)", {"MinCapacity": 1, "MaxCapacity": 2})

    # a re-run changes nothing
    r = project.run("up", "--image", IMAGE, "--no-wait", "--json")
    assert r.rc == 0, r.stderr
    assert r.mutating == [], r.mutating

    r = project.run("down", "--yes")
    assert r.rc == 0, r.stderr
    assert c("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["demo-ecs"])["AutoScalingGroups"] == []
    assert c("ec2").describe_launch_templates(Filters=[{"Name": "launch-template-name",
                                                        "Values": ["demo-ecs"]}])["LaunchTemplates"] == []
    assert [p for p in ecs.describe_capacity_providers(capacityProviders=["mldeploy-demo"])["capacityProviders"]
            if p.get("status") == "ACTIVE"] == []
    assert c("iam").list_instance_profiles()["InstanceProfiles"] == []
    assert [a for a in tagged_arns(c) if ":repository/" not in a] == []


def test_back_to_fargate_moves_the_service_then_removes_the_ec2_capacity(project, moto_server):
    c = moto_server.client
    cpu = gpu_config()
    cpu["aws"].update({"instance_type": "c7i.xlarge", "gpus": 0, "cpu": 1024, "memory": 2048, "spot": False})
    project.write(cpu)
    r = project.run("up", "--image", IMAGE, "--no-wait", "--json")
    assert r.rc == 0, r.stderr
    lt = c("ec2").describe_launch_template_versions(LaunchTemplateName="demo-ecs")["LaunchTemplateVersions"][0]
    assert "ECS_ENABLE_GPU_SUPPORT" not in base64.b64decode(lt["LaunchTemplateData"]["UserData"]).decode()

    fargate = copy.deepcopy(BASE_CONFIG)
    project.write(fargate)
    r = project.run("up", "--image", IMAGE, "--no-wait", "--json")
    assert r.rc == 0, r.stderr
    ops = r.resource_mutating
    assert ops.index("UpdateService") < ops.index("DeleteCapacityProvider") < ops.index("DeleteAutoScalingGroup")
    assert c("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["demo-ecs"])["AutoScalingGroups"] == []
    (cluster,) = c("ecs").describe_clusters(clusters=["demo"])["clusters"]
    assert sorted(cluster["capacityProviders"]) == ["FARGATE", "FARGATE_SPOT"]
    r = project.run("up", "--image", IMAGE, "--no-wait", "--json")
    assert r.rc == 0 and r.mutating == [], r.mutating


def test_validate_refuses_a_task_bigger_than_the_instance(tmp_path, aws):
    cfg = gpu_config()
    cfg["aws"]["memory"] = 16384
    r = Project(tmp_path, aws, cfg).run("validate")
    assert r.rc == 3, (r.stdout, r.stderr)
    assert "aws.memory" in r.stderr and "15718 MiB the ECS agent registers on g5.xlarge" in r.stderr


def test_a_new_launch_template_version_refreshes_the_running_instances(project, moto_server):
    c = moto_server.client
    cpu = gpu_config()
    cpu["aws"].update({"instance_type": "c7i.xlarge", "gpus": 0, "cpu": 1024, "memory": 2048, "spot": False})
    project.write(cpu)
    r = project.run("up", "--image", IMAGE, "--no-wait", "--json")
    assert r.rc == 0, r.stderr
    assert "StartInstanceRefresh" not in r.mutating  # a new group has no instance to refresh
    # the instances' interface carries their own group (no inbound), not the tasks'
    groups = {g["GroupName"]: g for g in c("ec2").describe_security_groups(Filters=[
        {"Name": "group-name", "Values": ["demo-instances", "demo-tasks"]}])["SecurityGroups"]}
    assert groups["demo-instances"]["IpPermissions"] == [] and groups["demo-tasks"]["IpPermissions"]
    (lt,) = c("ec2").describe_launch_template_versions(LaunchTemplateName="demo-ecs")["LaunchTemplateVersions"]
    assert lt["LaunchTemplateData"]["NetworkInterfaces"][0]["Groups"] == [groups["demo-instances"]["GroupId"]]

    # ECS managed scaling would launch an instance for the tasks; moto's ECS does not, so the test does
    c("autoscaling").set_desired_capacity(AutoScalingGroupName="demo-ecs", DesiredCapacity=1)
    (group,) = c("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["demo-ecs"])["AutoScalingGroups"]
    assert [i["LaunchTemplate"]["Version"] for i in group["Instances"]] == ["1"]

    cpu["aws"]["instance_type"] = "m7i.xlarge"
    project.write(cpu)
    r = project.run("plan", "--json")
    assert r.rc == 0, r.stderr
    steps = {(s["kind"], s["action"]): s for s in r.json["steps"]}
    assert steps[("launch template", "update")]["changes"] == ["instance type c7i.xlarge → m7i.xlarge"]
    refresh = steps[("instance refresh", "create")]
    assert refresh["changes"][0] == "replace 1 instance on launch template version 1 with the new version"
    assert "not readable" in refresh["note"]  # moto: DescribeInstanceRefreshes is not implemented
    (call,) = refresh["calls"]
    preferences = {"MinHealthyPercentage": 100, "MaxHealthyPercentage": 200, "SkipMatching": True,
                   "ScaleInProtectedInstances": "Refresh", "InstanceWarmup": 300}
    assert call == {"call": "autoscaling.start_instance_refresh", "missing": ["InstanceRefreshInProgress"],
                    "params": {"AutoScalingGroupName": "demo-ecs", "Strategy": "Rolling",
                               "Preferences": preferences}}

    busy = "autoscaling:StartInstanceRefresh:InstanceRefreshInProgress:An Instance Refresh is already in progress:1"
    r = project.run("up", "--image", IMAGE, "--no-wait", "--json", env={"MLDEPLOY_FAULT_ERROR": busy})
    assert r.rc == 0, r.stderr
    ops = r.resource_mutating
    assert ops.index("CreateLaunchTemplateVersion") < ops.index("ModifyLaunchTemplate") < \
        ops.index("StartInstanceRefresh")
    assert r.params("StartInstanceRefresh") == [{"AutoScalingGroupName": "demo-ecs", "Strategy": "Rolling",
                                                  "Preferences": preferences}]
    assert r.params("ModifyLaunchTemplate") == [{"LaunchTemplateName": "demo-ecs", "DefaultVersion": "2"}]
    (latest,) = c("ec2").describe_launch_template_versions(LaunchTemplateName="demo-ecs",
                                                           Versions=["$Latest"])["LaunchTemplateVersions"]
    assert (latest["VersionNumber"], latest["LaunchTemplateData"]["InstanceType"]) == (2, "m7i.xlarge")

    r = project.run("down", "--yes")
    assert r.rc == 0, r.stderr
    assert c("ec2").describe_security_groups(Filters=[
        {"Name": "group-name", "Values": ["demo-instances"]}])["SecurityGroups"] == []
