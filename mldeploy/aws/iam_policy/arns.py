"""The ARN patterns of the resources mldeploy creates (placeholders: :meth:`Scope.values`)."""

from __future__ import annotations

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
