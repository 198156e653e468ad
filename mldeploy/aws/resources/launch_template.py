"""``aws.compute: ec2``: the launch template of the container instances.

The AMI is the ECS-optimized Amazon Linux 2023 AMI that AWS publishes in its public SSM parameters ("Retrieving
Amazon ECS-optimized Linux AMI metadata", ECS developer guide: ``/aws/service/ecs/optimized-ami/amazon-linux-2023/
<version>``, ``…/amazon-linux-2023/arm64/<version>``; the GPU variant ``…/amazon-linux-2023/gpu/<version>``),
read at plan time: a newer recommended AMI shows in the plan as a new template version (the Auto Scaling group
launches ``$Latest``; the instances already running are replaced by the instance refresh ``capacity.plan_refresh``
plans). User data joins the cluster and sets the agent's configuration (``/etc/ecs/ecs.config``, "Amazon ECS
container agent configuration"). The instances' own network interface carries the instances' security group
(``security_groups.instance_rules``: no inbound), not the tasks': each awsvpc task gets an interface of its own with
the service's groups. Reads ``known``: ``instance_profile``, ``instance_sg_id``; writes ``known["launch_template"]``,
``known["launch_template_version"]`` (the latest version number, None before the template exists) and
``known["launch_template_changes"]`` (what a new version changes; empty when none is created).
"""

from __future__ import annotations

import base64
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Fn, Ref, Step, is_unknown, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict
from mldeploy.aws.resources.instance_role import PROFILE_RETRY, ec2
from mldeploy.errors import ConfigError, Location, Problem

KIND = "launch template"
AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/{variant}recommended/image_id"
IAM_PROPAGATION_S = 120.0


def name(spec: StackSpec) -> str:
    """Launch template names: 3–128 characters of letters, digits and ``()./_-`` (botocore ec2
    LaunchTemplateName)."""
    return f"{spec.names.base}-ecs"


def ami_parameter(spec: StackSpec) -> str:
    """The public SSM parameter of the recommended AMI: GPU when ``aws.gpus``, arm64 for Graviton images."""
    if spec.config.aws.gpus:
        return AMI_PARAMETER.format(variant="gpu/")
    return AMI_PARAMETER.format(variant="arm64/" if spec.config.image.platform == "linux/arm64" else "")


def read_ami(spec: StackSpec, remote: Remote) -> str:
    got = remote.get("ssm", "get_parameter", Name=ami_parameter(spec), missing=("ParameterNotFound",))
    if not got:
        from mldeploy.errors import AwsError

        raise AwsError(f"the ECS-optimized AMI parameter {ami_parameter(spec)} does not exist in {spec.region}",
                       hint="pick a region where ECS publishes the Amazon Linux 2023 ECS-optimized AMI")
    return str(got["Parameter"]["Value"])


def user_data(spec: StackSpec) -> str:
    """The agent configuration: the cluster to join, memory kept for the OS (``cost.instances``), no instance
    metadata for awsvpc tasks (``ECS_AWSVPC_BLOCK_IMDS``), and GPUs when the tasks need them
    (``ECS_ENABLE_GPU_SUPPORT``: "Working with GPUs on Amazon ECS", ECS developer guide)."""
    from mldeploy.cost.instances import ECS_RESERVED_MEMORY_MIB

    lines = [f"ECS_CLUSTER={spec.names.cluster}", f"ECS_RESERVED_MEMORY={ECS_RESERVED_MEMORY_MIB}",
             "ECS_AWSVPC_BLOCK_IMDS=true", "ECS_ENABLE_CONTAINER_METADATA=true"]
    if spec.config.aws.gpus:
        lines.append("ECS_ENABLE_GPU_SUPPORT=true")
    script = "#!/bin/bash\ncat >> /etc/ecs/ecs.config <<'EOF'\n" + "\n".join(lines) + "\nEOF\n"
    return base64.b64encode(script.encode()).decode()


def data(spec: StackSpec, known: Known, ami: str) -> dict[str, Any]:
    """``LaunchTemplateData``."""
    from mldeploy.cost.instances import ROOT_VOLUME_GB
    aws = spec.config.aws
    tags = spec.tag_list()
    return {
        "ImageId": ami,
        "InstanceType": aws.instance_type,
        "IamInstanceProfile": {"Name": known["instance_profile"]},
        "NetworkInterfaces": [{"DeviceIndex": 0, "AssociatePublicIpAddress": aws.assign_public_ip,
                               "Groups": [known["instance_sg_id"]], "DeleteOnTermination": True}],
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {
            "VolumeSize": ROOT_VOLUME_GB, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}}],
        # IMDSv2 only, one hop: containers in bridge mode cannot reach the instance's credentials
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"},
        "UserData": user_data(spec),
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags},
                              {"ResourceType": "volume", "Tags": tags}],
    }


COMPARED = ("ImageId", "InstanceType", "IamInstanceProfile", "UserData", "MetadataOptions")


def _norm(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: d.get(k) for k in COMPARED}
    out["MetadataOptions"] = {k: (d.get("MetadataOptions") or {}).get(k) for k in ("HttpTokens",)}
    nic = (d.get("NetworkInterfaces") or [{}])[0]
    out["nic"] = (nic.get("AssociatePublicIpAddress"), tuple(sorted(nic.get("Groups") or [])))
    return out


def changes(cur: dict[str, Any], want: dict[str, Any]) -> list[str]:
    a, b = _norm(cur), _norm(want)
    out = []
    for key in b:
        if is_unknown(b[key]) or a[key] != b[key]:
            out.append({"ImageId": f"AMI {a['ImageId']} → {b['ImageId']}",
                        "InstanceType": f"instance type {a['InstanceType']} → {b['InstanceType']}",
                        "nic": "network (security group / public IP)"}.get(key, key))
    return out


def read(spec: StackSpec, remote: Remote) -> dict[str, Any] | None:
    got = remote.get("ec2", "describe_launch_templates", LaunchTemplateNames=[name(spec)],
                     missing=("InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound"))
    found = (got or {}).get("LaunchTemplates") or []
    return found[0] if found else None


def latest_data(spec: StackSpec, remote: Remote) -> dict[str, Any]:
    got = remote.get("ec2", "describe_launch_template_versions", LaunchTemplateName=name(spec),
                     Versions=["$Latest"])
    versions = got.get("LaunchTemplateVersions") or [{}]
    return dict(versions[0].get("LaunchTemplateData") or {})


def check_fit(spec: StackSpec) -> None:
    """Refuse a task that no instance of ``aws.instance_type`` can place (``cost.instances.fit_problems``)."""
    from mldeploy.cost.instances import fit_problems

    problems = fit_problems(spec.config)
    if problems:
        where = Location(str(spec.project.path), None, None)
        raise ConfigError([Problem(where, f, m) for f, m in problems])


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    if not ec2(spec):
        return []
    check_fit(spec)
    n = name(spec)
    known["launch_template"] = n
    known["launch_template_version"], known["launch_template_changes"] = None, []
    want = data(spec, known, read_ami(spec, remote))
    cur = read(spec, remote)
    aws = spec.config.aws
    if cur is None:
        what = [f"{aws.instance_type} from {ami_parameter(spec).rsplit('/recommended', 1)[0].rsplit('/', 1)[-1]} "
                f"ECS-optimized AMI {want['ImageId']}", f"joins cluster {spec.names.cluster}"]
        if aws.gpus:
            what.append("ECS_ENABLE_GPU_SUPPORT")
        return [Step(KIND, n, Action.create, what, calls=[
            ApiCall("ec2", "create_launch_template", {
                "LaunchTemplateName": n, "LaunchTemplateData": want,
                "VersionDescription": "mldeploy", "TagSpecifications": [
                    {"ResourceType": "launch-template", "Tags": spec.tag_list()}]},
                retry=PROFILE_RETRY, retry_timeout_s=IAM_PROPAGATION_S)])]
    spec.check_owned("launch template", n, tag_dict(cur.get("Tags")))
    known["launch_template_version"] = cur.get("LatestVersionNumber")
    diff = changes(latest_data(spec, remote), want)
    if not diff:
        return [noop(KIND, n)]
    known["launch_template_changes"] = diff
    # ModifyLaunchTemplate.DefaultVersion takes "the version number of the launch template to set as the default
    # version" (botocore ec2 ModifyLaunchTemplateRequest): the number the new version got, as a string
    return [Step(KIND, n, Action.update, diff, note=f"new version after {cur.get('LatestVersionNumber')}", calls=[
        ApiCall("ec2", "create_launch_template_version", {"LaunchTemplateName": n, "LaunchTemplateData": want,
                                                          "VersionDescription": "mldeploy"},
                outputs=(("lt_version", "LaunchTemplateVersion.VersionNumber"),),
                retry=PROFILE_RETRY, retry_timeout_s=IAM_PROPAGATION_S),
        ApiCall("ec2", "modify_launch_template", {"LaunchTemplateName": n, "DefaultVersion": Fn(
            "format", ("{v}",), (("v", Ref("lt_version")),))})])]


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    cur = read(spec, remote)
    if cur is None or not spec.owns(tag_dict(cur.get("Tags"))):
        return []
    return [Step(KIND, name(spec), Action.delete, calls=[
        ApiCall("ec2", "delete_launch_template", {"LaunchTemplateName": name(spec)},
                missing=("InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound"))])]
