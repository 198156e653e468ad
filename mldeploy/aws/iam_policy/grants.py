"""The deploy policy as data: :data:`GRANTS`, one list of :class:`Grant` per service (SAR citations per grant)."""

from __future__ import annotations

from typing import Any

from mldeploy.aws.iam_policy.arns import (
    CERTIFICATE,
    CW,
    EC2,
    ECR,
    ECS,
    ELB_OURS,
    INSTANCE_PROFILE,
    INSTANCE_ROLE,
    LAUNCH_TEMPLATE,
    LOGS,
    MODEL_BUCKET,
    SCALABLE_TARGET,
    SG,
    SSM,
)
from mldeploy.aws.iam_policy.scope import ANY, Grant, Scope, _a, owned, tagged_on_create


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
        # The security group is ours (instance_sg_id: the "owned" statement above lets RunInstances use it).
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
        # authorized as CreateOrUpdateTags; StartInstanceRefresh (capacity.plan_refresh, no desired configuration)
        # takes the group too
        Grant("MldeployAutoScalingGroup", _a("autoscaling", "CreateAutoScalingGroup", "UpdateAutoScalingGroup",
                                             "DeleteAutoScalingGroup", "CreateOrUpdateTags", "StartInstanceRefresh"),
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
