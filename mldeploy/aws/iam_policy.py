"""``mldeploy iam-policy``: the IAM policy a caller needs for plan/up/status/logs/down (and the release commands).

Actions are the exact API calls mldeploy makes (plus the tagging and service-linked-role permissions AWS checks
implicitly). IAM role changes and ``iam:PassRole`` are scoped to the app's two roles; most other services do not
support resource-level permissions for their describe/create calls, so those statements use ``*``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mldeploy.config import Project

ACTIONS: dict[str, list[str]] = {
    "sts": ["GetCallerIdentity"],
    "ec2": ["DescribeVpcs", "DescribeSubnets", "DescribeSecurityGroups", "CreateSecurityGroup", "DeleteSecurityGroup",
            "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "CreateTags"],
    "ecr": ["DescribeRepositories", "CreateRepository", "DeleteRepository", "ListTagsForResource", "TagResource",
            "GetLifecyclePolicy", "PutLifecyclePolicy", "PutImageScanningConfiguration",
            # image push (mldeploy up builds and pushes)
            "GetAuthorizationToken", "BatchCheckLayerAvailability", "InitiateLayerUpload", "UploadLayerPart",
            "CompleteLayerUpload", "PutImage", "BatchGetImage", "GetDownloadUrlForLayer", "DescribeImages"],
    "ecs": ["DescribeClusters", "CreateCluster", "DeleteCluster", "UpdateClusterSettings",
            "PutClusterCapacityProviders", "DescribeTaskDefinition", "RegisterTaskDefinition",
            "DeregisterTaskDefinition", "DeleteTaskDefinitions", "ListTaskDefinitions", "DescribeServices",
            "CreateService", "UpdateService", "DeleteService", "ListTasks", "DescribeTasks", "TagResource",
            # rollout status (waiters.ServiceDeployments)
            "ListServiceDeployments", "DescribeServiceDeployments", "DescribeServiceRevisions"],
    "elasticloadbalancing": ["DescribeLoadBalancers", "CreateLoadBalancer", "DeleteLoadBalancer", "SetSecurityGroups",
                             "SetSubnets", "DescribeTargetGroups", "CreateTargetGroup", "DeleteTargetGroup",
                             "ModifyTargetGroup", "DescribeTargetGroupAttributes", "ModifyTargetGroupAttributes",
                             "DescribeTargetHealth", "DescribeListeners", "CreateListener", "ModifyListener",
                             "DeleteListener", "DescribeRules", "CreateRule", "DescribeTags", "AddTags"],
    "application-autoscaling": ["DescribeScalableTargets", "RegisterScalableTarget", "DeregisterScalableTarget",
                                "DescribeScalingPolicies", "PutScalingPolicy", "DeleteScalingPolicy", "TagResource"],
    "logs": ["DescribeLogGroups", "CreateLogGroup", "DeleteLogGroup", "PutRetentionPolicy", "ListTagsForResource",
             "TagResource", "FilterLogEvents", "GetLogEvents"],
    "cloudwatch": ["DescribeAlarms", "PutMetricAlarm", "DeleteAlarms", "GetDashboard", "PutDashboard",
                   "DeleteDashboards", "TagResource", "SetAlarmState"],
    "sns": ["GetTopicAttributes", "CreateTopic", "DeleteTopic", "Subscribe", "ListSubscriptionsByTopic",
            "TagResource"],
    "ssm": ["GetParameters", "GetParametersByPath", "GetParameter", "PutParameter", "DeleteParameters",
            "DeleteParameter", "AddTagsToResource"],
    "tag": ["GetResources"],
    "servicequotas": ["GetServiceQuota"],  # plan's Fargate vCPU preflight (aws/preflight.py)
    # aws.domain: the ACM certificate with DNS validation and the alias record (resources/certificate.py, dns.py)
    "acm": ["RequestCertificate", "AddTagsToCertificate", "DescribeCertificate", "ListCertificates",
            "ListTagsForCertificate", "DeleteCertificate"],
    "route53": ["ListHostedZones", "GetHostedZone", "ListResourceRecordSets", "ChangeResourceRecordSets"],
}

IAM_ROLE_ACTIONS = ["GetRole", "CreateRole", "DeleteRole", "TagRole", "GetRolePolicy", "PutRolePolicy",
                    "DeleteRolePolicy", "ListRolePolicies", "ListAttachedRolePolicies", "AttachRolePolicy",
                    "DetachRolePolicy"]


def role_arns(project: Project | None) -> list[str]:
    if project is None:
        return ["arn:aws:iam::*:role/*-exec", "arn:aws:iam::*:role/*-task"]
    n = project.names
    return [f"arn:aws:iam::*:role/{n.execution_role}", f"arn:aws:iam::*:role/{n.task_role}"]


def policy_for(project: Project | None) -> dict[str, Any]:
    """The policy document (JSON-able)."""
    statements: list[dict[str, Any]] = [
        {"Sid": f"Mldeploy{service.title().replace('-', '')}", "Effect": "Allow",
         "Action": sorted(f"{service}:{a}" for a in actions), "Resource": "*"}
        for service, actions in ACTIONS.items()
    ]
    roles = role_arns(project)
    statements += [
        {"Sid": "MldeployRoles", "Effect": "Allow", "Action": sorted(f"iam:{a}" for a in IAM_ROLE_ACTIONS),
         "Resource": roles},
        {"Sid": "MldeployPassRoles", "Effect": "Allow", "Action": "iam:PassRole", "Resource": roles,
         "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
        {"Sid": "MldeployServiceLinkedRoles", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
         "Resource": "*", "Condition": {"StringEquals": {"iam:AWSServiceName": [
             "ecs.amazonaws.com", "elasticloadbalancing.amazonaws.com", "ecs.application-autoscaling.amazonaws.com"]}}},
    ]
    return {"Version": "2012-10-17", "Statement": statements}
