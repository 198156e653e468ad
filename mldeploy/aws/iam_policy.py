"""``mldeploy iam-policy``: the least-privilege policy of the identity that runs plan/up/status/logs/down/canary/
promote/rollback, and (``--boundary``) the permissions boundary of the roles mldeploy creates.

Every statement is scoped to one app/env: by ARN where the resource's ARN holds a name mldeploy chooses
(``project.names``: ECR repository, ECS cluster/service/task-definition family, load balancer and target groups and
their listeners/rules, log group, alarms, dashboard, SNS topic, SSM path, IAM roles), and by the ``mldeploy:app`` /
``mldeploy:env`` tags where the ARN is an id AWS picks (security groups, scalable targets, ACM certificates):
``aws:RequestTag`` on the create call (the tags mldeploy sends there, :meth:`Scope.tag_keys`), ``aws:ResourceTag``
afterwards. Only the calls AWS authorizes on ``"*"`` (no resource type in the Service Authorization Reference) and
read-only Describe/List calls stay on ``"*"``; each is listed with its reason in :data:`UNSCOPED`.

The tables are data: a service is a list of :class:`Grant` in :data:`GRANTS` (its ARN patterns use the
:meth:`Scope.values` placeholders; ``merge`` folds grants into one statement to stay under IAM's size quota), so a
new resource module adds its actions with one entry (``GRANTS["autoscaling"] = [...]``) and the unit test
(tests/unit/aws/test_iam_policy.py, whose ``authorizations`` models each API call) checks them like the rest.

``aws.compute: ec2`` adds the container instances' role and profile, launch template, Auto Scaling group and
capacity provider (:data:`GRANTS` ``"compute"``, :func:`instance_role_grants`), ``model.store: s3`` the shared model
bucket (``"s3"``); outside a project neither is printed (the default stays under the inline quota). With ec2 the
document is over a role's inline quota (``ROLE_POLICY_LIMIT``): :func:`managed_policies` splits it. A project that
goes back from ec2 to Fargate needs the ec2 policy until the ``up`` that removes the EC2 capacity
(``capacity.plan_cleanup``) has run.

Facts from the Service Authorization Reference ("Actions, resources, and condition keys for <service>") are cited
per grant as "SAR <service>".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mldeploy.config import Project

ANY = "*"
ROLE_POLICY_LIMIT = 10_240
MANAGED_POLICY_LIMIT = 6_144
"""IAM user guide, "IAM and AWS STS quotas": a role's inline policies "cannot exceed 10,240 characters" in all, a
managed policy 6,144; "IAM does not count white space" (:func:`size`)."""

STAR_OK_PREFIXES = ("Describe", "List", "Get")
"""Read-only verbs that may stay on ``*`` (they change nothing); every other action on ``*`` is in UNSCOPED."""

UNSCOPED: dict[str, str] = {
    # action -> why it is granted on "*" (the unit test allows exactly these mutating/credential actions on "*")
    "sts:GetCallerIdentity": "SAR STS: no resource type; names the caller's own account",
    "ecr:GetAuthorizationToken": "SAR ECR: no resource type; the token is scoped by the repository grants",
    "ecs:CreateCluster": "SAR ECS: no resource type; conditioned on aws:RequestTag (our tags on create)",
    "ecs:RegisterTaskDefinition": "SAR ECS: no resource type; conditioned on aws:RequestTag, and running it needs "
                                  "CreateService/UpdateService on our services and iam:PassRole on our roles",
    "ecs:DeregisterTaskDefinition": "SAR ECS: no resource type (only down and keep-N cleanup call it)",
    "acm:RequestCertificate": "SAR ACM: no resource type; conditioned on aws:RequestTag and acm:DomainNames",
    "servicequotas:GetServiceQuota": "read-only: plan's Fargate vCPU preflight (aws/preflight.py)",
    "tag:GetResources": "SAR Resource Groups Tagging: no resource type (read-only)",
}


@dataclass(frozen=True)
class Scope:
    """Where the policy applies: one app/env in one region/account (``*`` for what is unknown).

    ``project`` None (``iam-policy`` outside a project) covers every mldeploy app: names become ``*``.
    """

    project: Project | None
    region: str = ANY
    account: str = ANY
    partition: str = "aws"

    def values(self) -> dict[str, Any]:
        """Placeholders of the ARN patterns and conditions (a list value makes one ARN per item)."""
        base: dict[str, Any] = {"partition": self.partition, "region": self.region, "account": self.account}
        if self.project is None:
            return {**base, "app": ANY, "env": ANY, "base": ANY, "repo": ANY, "cluster": ANY, "service": ANY,
                    "canary_service": ANY, "family": ANY, "lb": ANY, "tg": ANY, "tgc": ANY, "exec_role": "*-exec",
                    "task_role": "*-task", "log_group": "/mldeploy/*", "dashboard": "mldeploy-*",
                    "alarm": ["mldeploy-*"], "topic": "mldeploy-*-alarms", "ssm_env": "mldeploy/*",
                    "ssm_app": "mldeploy/*", "zone": ANY, "vpc": ANY}
        n, cfg = self.project.names, self.project.config
        return {**base, "app": n.app, "env": n.env, "base": n.base, "repo": cfg.registry.repository or cfg.name,
                "cluster": n.cluster, "service": n.service, "canary_service": n.canary_service,
                "family": n.task_family, "lb": n.load_balancer, "tg": n.target_group, "tgc": n.canary_target_group,
                "exec_role": n.execution_role, "task_role": n.task_role, "log_group": n.log_group,
                "dashboard": n.dashboard, "alarm": alarm_names(self.project), "topic": f"mldeploy-{n.base}-alarms",
                "ssm_env": n.ssm_prefix.strip("/"), "ssm_app": f"mldeploy/{n.app}",
                "zone": (cfg.aws.hosted_zone_id or ANY).removeprefix("/hostedzone/"), "vpc": cfg.aws.vpc_id or ANY}

    def tag_keys(self) -> list[str] | None:
        """Every tag key mldeploy sends on a create call (``spec.tags`` of both roles, plus ``Name`` on security
        groups); None outside a project (the user's ``aws.tags`` are unknown)."""
        if self.project is None:
            return None
        return sorted({*self.project.names.tags(self.project.config.aws.tags), "mldeploy:role", "mldeploy:version",
                       "Name"})

    @property
    def boundary(self) -> str | None:
        return self.project.config.aws.permissions_boundary if self.project is not None else None

    @property
    def uses_ecr(self) -> bool:
        return self.project is None or not self.project.config.registry.url

    @property
    def domain(self) -> str | None:
        return self.project.config.aws.domain if self.project is not None else None

    @property
    def uses_ec2(self) -> bool:
        """``aws.compute: ec2`` (outside a project: no, to keep the default policy under IAM's size quota)."""
        return self.project is not None and self.project.config.aws.compute == "ec2"

    @property
    def uses_s3(self) -> bool:
        """``model.store: s3`` (outside a project: no)."""
        return self.project is not None and self.project.config.model.store == "s3"


def alarm_names(project: Project) -> list[str]:
    """Every alarm name mldeploy gives the app/env (both roles: resources/alarms.py)."""
    from mldeploy.aws.resources import alarms

    return [project.names.alarm(kind) for kind in (*alarms.STABLE_KINDS, *alarms.CANARY_KINDS)]


def expand(pattern: str, values: dict[str, Any]) -> list[str]:
    """``pattern`` with its placeholders filled: one string per item of a list-valued placeholder."""
    for key in re.findall(r"\{(\w+)\}", pattern):
        if isinstance(values[key], list):
            return [s for item in values[key] for s in expand(pattern.replace("{" + key + "}", item), values)]
    return [re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], pattern)]


def fill(value: Any, values: dict[str, Any]) -> Any:
    """``value`` (str/list/dict) with ``{placeholder}`` replaced from ``values``."""
    if isinstance(value, str):
        (out,) = expand(value, values)
        return out
    if isinstance(value, list):
        return [s for v in value for s in (expand(v, values) if isinstance(v, str) else [fill(v, values)])]
    if isinstance(value, dict):
        return {fill(k, values): fill(v, values) for k, v in value.items()}
    return value


def owned(prefix: str = "aws") -> dict[str, Any]:
    """An existing resource carries our tags (``aws:ResourceTag``; EC2 also answers it as ``ec2:ResourceTag``)."""
    return {"StringLike": {f"{prefix}:ResourceTag/mldeploy:app": "{app}", f"{prefix}:ResourceTag/mldeploy:env":
                           "{env}"}}


def tagged_on_create(scope: Scope) -> dict[str, Any]:
    """The create call sends our tags (``aws:RequestTag``) and no other keys than mldeploy sends
    (``aws:TagKeys``, when the project's keys are known)."""
    cond: dict[str, Any] = {"StringLike": {"aws:RequestTag/mldeploy:app": "{app}",
                                           "aws:RequestTag/mldeploy:env": "{env}"}}
    keys = scope.tag_keys()
    if keys is not None:
        cond["ForAllValues:StringEquals"] = {"aws:TagKeys": keys}
    return cond


Condition = Callable[[Scope], dict[str, Any] | None]


@dataclass(frozen=True)
class Grant:
    """Allow ``actions`` (``service:Action``) on the ARN patterns ``resources`` under ``condition``.

    Grants with the same ``merge`` key and condition become one statement (IAM's policy size limits: 10,240
    characters for a role's inline policies, 6,144 for a managed policy). Only merge grants whose actions each
    authorize on a resource type of their own, so that the cross product allows nothing more.
    """

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Condition | None = None
    when: Callable[[Scope], bool] = field(default=lambda scope: True)
    merge: str | None = None

    def statement(self, scope: Scope) -> dict[str, Any] | None:
        if not self.when(scope):
            return None
        values = scope.values()
        stmt: dict[str, Any] = {"Sid": self.sid, "Effect": "Allow", "Action": sorted(self.actions),
                                "Resource": sorted(set(fill(list(self.resources), values)))}
        cond = self.condition(scope) if self.condition else None
        if cond:
            stmt["Condition"] = fill(cond, values)
        return stmt


def _a(service: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{service}:{n}" for n in names)


ECR = "arn:{partition}:ecr:{region}:{account}:repository/{repo}"
ECS = "arn:{partition}:ecs:{region}:{account}:"
ELB = "arn:{partition}:elasticloadbalancing:{region}:{account}:"
LOGS = "arn:{partition}:logs:{region}:{account}:log-group:{log_group}"
CW = "arn:{partition}:cloudwatch:{region}:{account}:alarm:{alarm}"
SSM = "arn:{partition}:ssm:{region}:{account}:parameter/"
SG = "arn:{partition}:ec2:{region}:{account}:security-group/*"
SCALABLE_TARGET = "arn:{partition}:application-autoscaling:{region}:{account}:scalable-target/*"
CERTIFICATE = "arn:{partition}:acm:{region}:{account}:certificate/*"
ROLES = ("arn:{partition}:iam::{account}:role/{exec_role}", "arn:{partition}:iam::{account}:role/{task_role}")
TASK_ROLE = "arn:{partition}:iam::{account}:role/{task_role}"
INSTANCE_ROLE = "arn:{partition}:iam::{account}:role/{base}-instance"
INSTANCE_PROFILE = "arn:{partition}:iam::{account}:instance-profile/{base}-instance"
EC2 = "arn:{partition}:ec2:{region}:{account}:"
LAUNCH_TEMPLATE = EC2 + "launch-template/*"
MODEL_BUCKET = "arn:{partition}:s3:::mldeploy-{account}-{region}"
ECS_INSTANCE_POLICY = "arn:{partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
ELB_OURS = (ELB + "loadbalancer/app/{lb}/*", ELB + "targetgroup/{tg}/*", ELB + "targetgroup/{tgc}/*",
            ELB + "listener/app/{lb}/*", ELB + "listener-rule/app/{lb}/*")


def _with_domain(scope: Scope) -> bool:
    return scope.project is None or scope.domain is not None


def _owned(scope: Scope) -> dict[str, Any]:
    return owned()


def _ec2(scope: Scope) -> bool:
    return scope.uses_ec2


def _from_launch_template(scope: Scope) -> dict[str, Any]:
    """EC2 user guide, "Example policies to control launching instances" (launch templates): ``ec2:LaunchTemplate``
    on the instance's resources requires a launch template, and the template itself must be ours (the grant on
    ``launch-template/*`` with our tags)."""
    return {"ArnLike": {"ec2:LaunchTemplate": LAUNCH_TEMPLATE}}


GRANTS: dict[str, list[Grant]] = {
    "sts": [Grant("MldeployIdentity", _a("sts", "GetCallerIdentity"), (ANY,), merge="star")],
    # Read-only calls whose actions have no resource type (SAR EC2/ELB/ECS/ACM/Route 53/Auto Scaling "Describe*",
    # "List*"), or that list across the account to find ours by tag or name. Wildcards only for services whose
    # reads return no secrets (never ssm:Get*, logs:Get*, secretsmanager:*).
    "read": [Grant("MldeployDescribe", (
        "ec2:Describe*", "elasticloadbalancing:Describe*", "application-autoscaling:Describe*",
        "autoscaling:Describe*", "ecs:Describe*", "ecs:List*", "acm:Describe*", "acm:List*", "route53:Get*",
        "route53:List*", "logs:DescribeLogGroups",
        # canary --auto's gates (release/gates.py): SAR CloudWatch GetMetricStatistics has no resource type
        "cloudwatch:DescribeAlarms", "cloudwatch:GetMetricStatistics",
        "servicequotas:GetServiceQuota", "tag:GetResources"), (ANY,), merge="star"),
        # every plan looks for the EC2 capacity's instance role (resources/instance_role.py) to clean it up
        # (with compute ec2: in MldeployInstanceRole)
        Grant("MldeployInstanceRoleRead", _a("iam", "GetInstanceProfile", "GetRole"),
              (INSTANCE_PROFILE, INSTANCE_ROLE), when=lambda s: not s.uses_ec2)],
    # SAR ECR: every repository action takes the "repository" resource, GetAuthorizationToken none.
    "ecr": [
        Grant("MldeployEcrAuth", _a("ecr", "GetAuthorizationToken"), (ANY,), when=lambda s: s.uses_ecr,
              merge="star"),
        Grant("MldeployEcr", _a("ecr", "DescribeRepositories", "CreateRepository", "DeleteRepository",
                                "ListTagsForResource", "TagResource", "GetLifecyclePolicy", "PutLifecyclePolicy",
                                "PutImageScanningConfiguration", "BatchCheckLayerAvailability",
                                "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "PutImage",
                                "BatchGetImage", "GetDownloadUrlForLayer", "DescribeImages"),
              (ECR,), when=lambda s: s.uses_ecr),
    ],
    "ecs": [
        # SAR ECS: CreateCluster and RegisterTaskDefinition have no resource type (aws:RequestTag, aws:TagKeys);
        # DeregisterTaskDefinition has none either
        Grant("MldeployEcsCreate", _a("ecs", "CreateCluster", "RegisterTaskDefinition"), (ANY,),
              condition=lambda s: _domains(s), merge="tagged-create-star"),
        Grant("MldeployEcsDeregister", _a("ecs", "DeregisterTaskDefinition"), (ANY,), merge="star"),
        # SAR ECS: cluster actions take "cluster", service actions "service", DescribeTasks "task",
        # DeleteTaskDefinitions "task-definition"
        Grant("MldeployEcs", _a("ecs", "DeleteCluster", "UpdateClusterSettings", "PutClusterCapacityProviders",
                                "CreateService", "UpdateService", "DeleteService", "DeleteTaskDefinitions"),
              (ECS + "cluster/{cluster}", ECS + "service/{cluster}/{service}",
               ECS + "service/{cluster}/{canary_service}", ECS + "task-definition/{family}:*")),
        # ECS guide, "Grant permission to tag resources on creation": tags on CreateCluster/CreateService/
        # RegisterTaskDefinition need ecs:TagResource, which the ecs:CreateAction condition limits to creation
        Grant("MldeployEcsTagOnCreate", _a("ecs", "TagResource"),
              (ECS + "cluster/{cluster}", ECS + "service/{cluster}/{service}",
               ECS + "service/{cluster}/{canary_service}", ECS + "task-definition/{family}:*"),
              condition=lambda s: {"StringEquals": {"ecs:CreateAction": ["CreateCluster", "CreateService",
                                                                         "RegisterTaskDefinition"]}}),
    ],
    "elasticloadbalancing": [
        # SAR Elastic Load Balancing V2: loadbalancer/app/NAME/ID, targetgroup/NAME/ID, listener/app/LB/ID/ID,
        # listener-rule/app/LB/ID/ID/ID (each action takes its own type; CreateListener authorizes on the load
        # balancer, CreateRule on the listener); AddTags covers the tags sent on create (ELB guide, "tag on
        # creation")
        Grant("MldeployElb", _a("elasticloadbalancing", "CreateLoadBalancer", "DeleteLoadBalancer",
                                "SetSecurityGroups", "SetSubnets", "ModifyLoadBalancerAttributes", "CreateListener",
                                "CreateTargetGroup", "DeleteTargetGroup", "ModifyTargetGroup",
                                "ModifyTargetGroupAttributes", "ModifyListener", "DeleteListener", "CreateRule",
                                "AddTags"), ELB_OURS),
    ],
    "ec2": [
        # SAR EC2: CreateSecurityGroup authorizes on the new security-group (aws:RequestTag from its
        # TagSpecifications) and on the vpc (no request tags: hence a grant of its own); CreateTags at creation
        # is limited by ec2:CreateAction; later changes need our tags on the group (aws:ResourceTag).
        Grant("MldeployEc2CreateGroup", _a("ec2", "CreateSecurityGroup"), (SG,), condition=tagged_on_create,
              merge="tagged-create"),
        Grant("MldeployEc2CreateGroupInVpc", _a("ec2", "CreateSecurityGroup"),
              ("arn:{partition}:ec2:{region}:{account}:vpc/{vpc}",)),
        Grant("MldeployEc2TagOnCreate", _a("ec2", "CreateTags"), (SG,),
              condition=lambda s: {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}}),
        Grant("MldeployEc2Groups", _a("ec2", "DeleteSecurityGroup", "AuthorizeSecurityGroupIngress",
                                      "RevokeSecurityGroupIngress"), (SG,), condition=_owned, merge="owned"),
    ],
    # aws.compute: ec2 (resources/instance_role.py, launch_template.py, capacity.py); the instance role's IAM
    # actions are in role_grants
    "compute": [
        # launch_template.read_ami: AWS's public parameters have no account in their ARN (SAR Systems Manager:
        # parameter arn:…:ssm:REGION:ACCOUNT:parameter/NAME; "Referencing AMIs with public parameters" shows
        # arn:aws:ssm:REGION::parameter/aws/service/…)
        Grant("MldeployEcsAmi", _a("ssm", "GetParameter"),
              ("arn:{partition}:ssm:{region}::parameter/aws/service/ecs/optimized-ami/amazon-linux-2023/*",),
              when=_ec2),
        # SAR EC2: CreateLaunchTemplate authorizes on the new launch-template (aws:RequestTag from its
        # TagSpecifications: launch_template.plan sends spec.tag_list() there), tagging it on create is
        # ec2:CreateTags with ec2:CreateAction; CreateLaunchTemplateVersion/ModifyLaunchTemplate/
        # DeleteLaunchTemplate take the launch-template (aws:ResourceTag). The ARN holds an id EC2 picks.
        Grant("MldeployLaunchTemplateCreate", _a("ec2", "CreateLaunchTemplate"), (LAUNCH_TEMPLATE,),
              condition=tagged_on_create, when=_ec2, merge="tagged-create"),
        Grant("MldeployLaunchTemplate", _a("ec2", "CreateLaunchTemplateVersion", "ModifyLaunchTemplate",
                                           "DeleteLaunchTemplate", "RunInstances"),
              (LAUNCH_TEMPLATE,), condition=_owned, when=_ec2, merge="owned"),
        # EC2 Auto Scaling user guide, "Amazon EC2 Auto Scaling API permissions": CreateAutoScalingGroup (and
        # UpdateAutoScalingGroup) with a launch template checks the caller's ec2:RunInstances, ec2:CreateTags for
        # the template's tag specifications and iam:PassRole for its instance profile. SAR EC2 RunInstances: image
        # (arn:…:ec2:REGION::image/ID), instance, network-interface, security-group, subnet, volume, launch-template
        # ("Control Amazon EC2 launch template usage in Auto Scaling groups": only launch templates with a tag).
        # The security group is ours (task_sg_id: the "owned" statement above lets RunInstances use it).
        Grant("MldeployRunInstances", _a("ec2", "RunInstances"),
              ("arn:{partition}:ec2:{region}::image/*", EC2 + "instance/*", EC2 + "volume/*",
               EC2 + "network-interface/*", EC2 + "subnet/*"), condition=_from_launch_template, when=_ec2),
        Grant("MldeployRunInstancesGroup", _a("ec2", "RunInstances"), (EC2 + "security-group/*",),
              condition=_owned, when=_ec2, merge="owned"),
        Grant("MldeployEc2TagLaunch", _a("ec2", "CreateTags"),
              (LAUNCH_TEMPLATE, EC2 + "instance/*", EC2 + "volume/*"), when=_ec2,
              condition=lambda s: {"StringEquals": {"ec2:CreateAction": ["CreateLaunchTemplate", "RunInstances"]}}),
        # SAR Auto Scaling: autoScalingGroup arn:…:autoscaling:REGION:ACCOUNT:autoScalingGroup:UUID:
        # autoScalingGroupName/NAME (the name is ours; Describe* stays on "*" above); tags sent on create are
        # authorized as CreateOrUpdateTags
        Grant("MldeployAutoScalingGroup", _a("autoscaling", "CreateAutoScalingGroup", "UpdateAutoScalingGroup",
                                             "DeleteAutoScalingGroup", "CreateOrUpdateTags"),
              ("arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/{base}-ecs",),
              when=_ec2),
        # SAR ECS: capacity-provider arn:…:ecs:REGION:ACCOUNT:capacity-provider/NAME (capacity.provider_name);
        # PutClusterCapacityProviders takes the cluster (MldeployEcs)
        Grant("MldeployCapacityProvider", _a("ecs", "CreateCapacityProvider", "UpdateCapacityProvider",
                                             "DeleteCapacityProvider", "DescribeCapacityProviders", "TagResource"),
              (ECS + "capacity-provider/mldeploy-{base}",), when=_ec2),
    ],
    # model.store: s3 (resources/model_store.py, aws/model_upload.py). SAR S3: bucket (arn:…:s3:::NAME) for the
    # bucket's configuration, ListBucket (HeadBucket) and ListBucketVersions (ListObjectVersions); object
    # (arn:…:s3:::NAME/KEY) for PutObject (multipart parts too), GetObject (HeadObject), DeleteObject,
    # DeleteObjectVersion (DeleteObjects authorizes each key), AbortMultipartUpload. The bucket is shared by the
    # account's apps in the region; writes to objects only under <app>/<env>/.
    "s3": [
        Grant("MldeployModelStore", (
            *_a("s3", "CreateBucket", "DeleteBucket", "ListBucket", "ListBucketVersions", "PutBucketPublicAccessBlock",
                "GetBucketPublicAccessBlock", "PutBucketVersioning", "GetBucketVersioning",
                "PutEncryptionConfiguration", "GetEncryptionConfiguration", "PutBucketTagging", "GetBucketTagging",
                "PutBucketPolicy", "GetBucketPolicy"),
            *_a("s3", "PutObject", "AbortMultipartUpload", "GetObject", "DeleteObject", "DeleteObjectVersion")),
            (MODEL_BUCKET, MODEL_BUCKET + "/{app}/{env}/*"), when=lambda s: s.uses_s3),
    ],
    "application-autoscaling": [
        # Application Auto Scaling user guide, "ABAC with Application Auto Scaling": scalable targets support
        # aws:RequestTag (RegisterScalableTarget with Tags) and aws:ResourceTag; the ARN is an id AWS picks.
        # RegisterScalableTarget also updates an existing target (without Tags): the second grant.
        Grant("MldeployScalingCreate", _a("application-autoscaling", "RegisterScalableTarget", "TagResource"),
              (SCALABLE_TARGET,), condition=tagged_on_create, merge="tagged-create"),
        Grant("MldeployScaling", _a("application-autoscaling", "RegisterScalableTarget", "DeregisterScalableTarget",
                                    "PutScalingPolicy", "DeleteScalingPolicy", "PutScheduledAction",
                                    "DeleteScheduledAction"), (SCALABLE_TARGET,), condition=_owned, merge="owned"),
    ],
    "monitoring": [
        # SAR CloudWatch Logs: log-group (…:log-group:NAME; log-stream …:log-group:NAME:log-stream:S); SAR
        # CloudWatch: alarm (…:alarm:NAME), dashboard (arn:…:cloudwatch::ACCOUNT:dashboard/NAME, no region);
        # SAR SNS: topic (…:NAME)
        Grant("MldeployMonitoring", (
            *_a("logs", "CreateLogGroup", "DeleteLogGroup", "PutRetentionPolicy", "ListTagsForResource",
                "TagResource", "FilterLogEvents", "GetLogEvents"),
            *_a("cloudwatch", "PutMetricAlarm", "DeleteAlarms", "TagResource", "GetDashboard", "PutDashboard",
                "DeleteDashboards"),
            *_a("sns", "GetTopicAttributes", "CreateTopic", "DeleteTopic", "Subscribe", "ListSubscriptionsByTopic",
                "TagResource")),
            (LOGS, LOGS + ":*", CW, "arn:{partition}:cloudwatch::{account}:dashboard/{dashboard}",
             "arn:{partition}:sns:{region}:{account}:{topic}")),
    ],
    "ssm": [
        # SAR Systems Manager: parameter (…:parameter/NAME without its leading slash); GetParametersByPath
        # authorizes on the path's own ARN. Reads cover the app's other environments (up names them), writes
        # only this one's.
        Grant("MldeploySsmRead", _a("ssm", "GetParameters", "GetParameter", "GetParametersByPath"),
              (SSM + "{ssm_app}", SSM + "{ssm_app}/*")),
        Grant("MldeploySsmWrite", _a("ssm", "PutParameter", "DeleteParameter", "DeleteParameters",
                                     "AddTagsToResource"), (SSM + "{ssm_env}", SSM + "{ssm_env}/*")),
    ],
    "acm": [
        # SAR ACM: RequestCertificate has no resource type (aws:RequestTag, acm:DomainNames); the others take the
        # certificate, whose ARN is an id AWS picks: our tags
        Grant("MldeployCertificateRequest", _a("acm", "RequestCertificate"), (ANY,), condition=lambda s: _domains(s),
              when=_with_domain, merge="tagged-create-star"),
        Grant("MldeployCertificateTagOnCreate", _a("acm", "AddTagsToCertificate"), (CERTIFICATE,),
              condition=tagged_on_create, when=_with_domain, merge="tagged-create"),
        Grant("MldeployCertificateDelete", _a("acm", "DeleteCertificate"), (CERTIFICATE,), condition=_owned,
              when=_with_domain, merge="owned"),
    ],
    "route53": [
        # Route 53 guide, "Using IAM policy conditions for fine-grained access control": record names are
        # normalized (lowercase, no trailing dot); ForAllValues lets a change batch hold only our names (the
        # alias and the _<hash>. validation CNAME)
        Grant("MldeployDnsRecords", _a("route53", "ChangeResourceRecordSets"),
              ("arn:{partition}:route53:::hostedzone/{zone}",),
              condition=lambda s: {"ForAllValues:StringLike": {
                  "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                      s.domain.lower().rstrip("."), "_*." + s.domain.lower().rstrip(".")]}} if s.domain else None,
              when=_with_domain),
    ],
}
MERGED_SIDS = {"star": "MldeployUnscoped", "tagged-create-star": "MldeployCreateTagged",
               "tagged-create": "MldeployCreateTaggedIds", "owned": "MldeployTagged"}
"""The statement of each ``merge`` group (a new group needs its Sid here)."""


def _domains(scope: Scope) -> dict[str, Any]:
    """RequestCertificate: our tags, and only ``aws.domain`` (ACM condition key ``acm:DomainNames``)."""
    cond = tagged_on_create(scope)
    if scope.domain:
        # as configured (RequestCertificate sends it so) and lowercased (DNS names are case-insensitive)
        cond.setdefault("ForAllValues:StringEquals", {})["acm:DomainNames"] = sorted({scope.domain,
                                                                                      scope.domain.lower()})
    return cond


def role_grants(scope: Scope) -> list[dict[str, Any]]:
    """The app's two roles: read, delete, trust and tag them; create them and widen their permissions only with
    the configured permissions boundary (``aws.permissions_boundary``), attach only the configured managed
    policies (``aws.task_role_policy_arns``), pass them to ECS tasks only."""
    values = scope.values()
    roles = fill(list(ROLES), values)
    instance = [fill(INSTANCE_ROLE, values)] if scope.uses_ec2 else []
    boundary = scope.boundary
    with_boundary = {"StringEquals": {"iam:PermissionsBoundary": boundary}} if boundary else {}
    out: list[dict[str, Any]] = [
        {"Sid": "MldeployRoles", "Effect": "Allow", "Action": sorted(_a(
            "iam", "GetRole", "ListRolePolicies", "ListAttachedRolePolicies", "GetRolePolicy", "TagRole",
            "DeleteRole", "DeleteRolePolicy", "DetachRolePolicy", "UpdateAssumeRolePolicy")), "Resource": roles},
        # IAM user guide, "Permissions boundaries for IAM entities" (delegating role creation): CreateRole,
        # PutRolePolicy, AttachRolePolicy and PutRolePermissionsBoundary support iam:PermissionsBoundary
        {"Sid": "MldeployRolesCreate", "Effect": "Allow",
         "Action": sorted(_a("iam", "CreateRole", *(("PutRolePermissionsBoundary",) if boundary else ()))),
         "Resource": [*roles, *instance], **({"Condition": with_boundary} if boundary else {})},
        # the inline policies: the execution role's (resources/iam.py execution_policy), the task role's model
        # artifacts (resources/model_store.py task_role_policy)
        {"Sid": "MldeployInlinePolicies", "Effect": "Allow", "Action": "iam:PutRolePolicy",
         "Resource": roles, **({"Condition": with_boundary} if boundary else {})},
    ]
    arns = sorted(scope.project.config.aws.task_role_policy_arns) if scope.project is not None else None
    if arns is None or arns:
        # SAR IAM: AttachRolePolicy supports iam:PolicyARN (which managed policy) and iam:PermissionsBoundary
        cond: dict[str, Any] = {"ArnEquals": {"iam:PolicyARN": arns}} if arns else {}
        if boundary:
            cond["StringEquals"] = {"iam:PermissionsBoundary": boundary}
        out.append({"Sid": "MldeployTaskRolePolicies", "Effect": "Allow", "Action": "iam:AttachRolePolicy",
                    "Resource": fill(TASK_ROLE, values), **({"Condition": cond} if cond else {})})
    if instance:
        out += instance_role_grants(scope, boundary)
    out += [
        {"Sid": "MldeployPassRoles", "Effect": "Allow", "Action": "iam:PassRole", "Resource": roles,
         "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
        # SAR IAM: CreateServiceLinkedRole with iam:AWSServiceName; the roles live under role/aws-service-role/
        # (EC2 Auto Scaling creates AWSServiceRoleForAutoScaling with the caller's permission on the first group:
        # "Amazon EC2 Auto Scaling API permissions")
        {"Sid": "MldeployServiceLinkedRoles", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
         "Resource": fill("arn:{partition}:iam::{account}:role/aws-service-role/*", values),
         "Condition": {"StringEquals": {"iam:AWSServiceName": [
             "ecs.amazonaws.com", "elasticloadbalancing.amazonaws.com", "ecs.application-autoscaling.amazonaws.com",
             *(["autoscaling.amazonaws.com"] if instance else [])]}}},
    ]
    if boundary:
        # Deny wins over any other policy of the caller: the boundary itself and its removal stay out of reach.
        out += [
            # the boundary stays on the roles and stays as it is (each action takes its own resource type)
            {"Sid": "MldeployBoundaryIsFixed", "Effect": "Deny", "Action": sorted(_a(
                "iam", "DeleteRolePermissionsBoundary", "CreatePolicyVersion", "DeletePolicy", "DeletePolicyVersion",
                "SetDefaultPolicyVersion")), "Resource": [*roles, *instance, boundary]},
            {"Sid": "MldeployOnlyThisBoundary", "Effect": "Deny", "Action": sorted(_a(
                "iam", "CreateRole", "PutRolePermissionsBoundary", "PutRolePolicy", "AttachRolePolicy")),
             "Resource": [*roles, *instance], "Condition": {"StringNotEquals": {"iam:PermissionsBoundary": boundary}}},
        ]
    return out


def instance_role_grants(scope: Scope, boundary: str | None) -> list[dict[str, Any]]:
    """``aws.compute: ec2``: the container instances' role and instance profile (resources/instance_role.py):
    created with the boundary (MldeployRolesCreate), AWS's ECS instance policy as its only attachment, passed to
    EC2 only. SAR IAM: role actions take "role", instance profile actions "instance-profile"; AttachRolePolicy
    supports iam:PolicyARN; PassRole iam:PassedToService."""
    values = scope.values()
    role, profile = fill(INSTANCE_ROLE, values), fill(INSTANCE_PROFILE, values)
    attach: dict[str, Any] = {"ArnEquals": {"iam:PolicyARN": fill(ECS_INSTANCE_POLICY, values)}}
    if boundary:
        attach["StringEquals"] = {"iam:PermissionsBoundary": boundary}
    return [
        {"Sid": "MldeployInstanceRole", "Effect": "Allow", "Action": sorted(_a(
            "iam", "GetRole", "GetInstanceProfile", "DeleteRole", "TagRole", "ListAttachedRolePolicies",
            "ListRolePolicies", "DetachRolePolicy", "DeleteRolePolicy", "CreateInstanceProfile",
            "DeleteInstanceProfile", "AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile",
            "TagInstanceProfile")),
         "Resource": [role, profile]},
        {"Sid": "MldeployInstanceRolePolicy", "Effect": "Allow", "Action": "iam:AttachRolePolicy", "Resource": role,
         "Condition": attach},
        # the launch template's instance profile: RunInstances (through Auto Scaling) checks iam:PassRole with
        # iam:PassedToService ec2.amazonaws.com; AddRoleToInstanceProfile checks PassRole too ("The caller of this
        # operation must be granted the PassRole permission on the IAM role": botocore iam
        # AddRoleToInstanceProfile), where no service is named: hence IfExists
        {"Sid": "MldeployPassInstanceRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": role,
         "Condition": {"StringEqualsIfExists": {"iam:PassedToService": "ec2.amazonaws.com"}}},
    ]


def scope_for(project: Project | None, *, region: str | None = None, account: str | None = None,
              partition: str = "aws") -> Scope:
    region = region or (project.config.aws.region if project is not None else None)
    return Scope(project, region=region or ANY, account=account or ANY, partition=partition)


def policy_for(project: Project | None, *, region: str | None = None, account: str | None = None,
               partition: str = "aws") -> dict[str, Any]:
    """The deploy policy document (JSON-able) for ``project`` (every mldeploy app when None)."""
    scope = scope_for(project, region=region, account=account, partition=partition)
    statements: list[dict[str, Any]] = []
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for grants in GRANTS.values():
        for grant in grants:
            stmt = grant.statement(scope)
            if stmt is None:
                continue
            if grant.merge is None:
                statements.append(stmt)
                continue
            key = (grant.merge, json.dumps(stmt.get("Condition"), sort_keys=True))
            if key not in merged:
                sid = MERGED_SIDS[grant.merge]
                taken = sum(1 for k in merged if k[0] == grant.merge)
                merged[key] = {**stmt, "Sid": f"{sid}{taken + 1}" if taken else sid, "Action": [], "Resource": []}
                statements.append(merged[key])
            group = merged[key]
            group["Action"] = sorted({*group["Action"], *stmt["Action"]})
            group["Resource"] = sorted({*group["Resource"], *stmt["Resource"]})
    statements += role_grants(scope)
    return {"Version": "2012-10-17", "Statement": statements}


def boundary_name(project: Project | None) -> str:
    """The suggested name of the boundary policy (``iam-policy --boundary``), ≤ 128 characters."""
    return f"mldeploy-boundary-{project.names.base}"[:128] if project is not None else "mldeploy-boundary"


def boundary_policy(project: Project, *, region: str | None = None, account: str | None = None,
                    partition: str = "aws") -> dict[str, Any]:
    """The permissions boundary suggested for the app's roles: the execution role's needs (the image, the log
    group, the configured secrets) and, for the task role and the EC2 instance role only (``aws:PrincipalArn``),
    anything but IAM/STS/Organizations — their managed policies (``aws.task_role_policy_arns``; AWS's ECS instance
    policy) decide the rest. A role the deploy
    identity widens (an inline policy, another attachment) never gets more than this."""
    from mldeploy.aws.engine.spec import StackSpec
    from mldeploy.aws.resources.iam import execution_policy

    scope = scope_for(project, region=region, account=account, partition=partition)
    spec = StackSpec(project=project, region=scope.region, account=scope.account, partition=partition)
    statements = []
    for st in execution_policy(spec)["Statement"]:
        statements.append({**st, "Sid": f"Execution{st['Sid']}"})
    statements.append({
        "Sid": "TaskRole", "Effect": "Allow", "NotAction": ["iam:*", "sts:*", "organizations:*", "account:*"],
        "Resource": "*", "Condition": {"ArnLike": {"aws:PrincipalArn": [
            fill(TASK_ROLE, scope.values()), *([fill(INSTANCE_ROLE, scope.values())] if scope.uses_ec2 else [])]}}})
    return {"Version": "2012-10-17", "Statement": statements}


MANAGED_POLICIES_PER_ROLE = 10
"""IAM user guide, "IAM and AWS STS quotas": "Managed policies attached to an IAM role": 10 by default."""


def managed_policies(policy: dict[str, Any], limit: int = MANAGED_POLICY_LIMIT) -> list[dict[str, Any]]:
    """``policy`` as managed policies of at most ``limit`` characters each (statements kept whole, in order): for a
    policy over a role's inline quota (``ROLE_POLICY_LIMIT``, e.g. ``compute: ec2`` with a domain and a boundary).
    A Deny applies whichever attached policy holds it. Raises ``ValueError`` when the parts exceed
    ``MANAGED_POLICIES_PER_ROLE`` or one statement alone exceeds ``limit``."""
    parts: list[dict[str, Any]] = []
    for st in policy["Statement"]:
        one = {"Version": policy.get("Version", "2012-10-17"), "Statement": [st]}
        if size(one) > limit:
            raise ValueError(f"statement {st.get('Sid')} alone is {size(one)} characters, over {limit}")
        if parts and size({**parts[-1], "Statement": [*parts[-1]["Statement"], st]}) <= limit:
            parts[-1]["Statement"].append(st)
        else:
            parts.append(one)
    if len(parts) > MANAGED_POLICIES_PER_ROLE:
        raise ValueError(f"{len(parts)} managed policies: a role holds {MANAGED_POLICIES_PER_ROLE} by default")
    return parts


def unscoped_mutations(policy: dict[str, Any]) -> list[str]:
    """Allowed actions on ``"*"`` that are neither read-only nor listed in :data:`UNSCOPED` (should be none)."""
    out = []
    for st in policy["Statement"]:
        if st["Effect"] != "Allow" or st.get("Resource") not in (ANY, [ANY]):
            continue
        for action in [st["Action"]] if isinstance(st["Action"], str) else st["Action"]:
            verb = action.split(":", 1)[1]
            if action not in UNSCOPED and not verb.startswith(STAR_OK_PREFIXES):
                out.append(action)
    return out


def size(policy: dict[str, Any]) -> int:
    """The characters IAM counts against its policy size quotas (no white space)."""
    return len(re.sub(r"\s", "", json.dumps(policy)))
