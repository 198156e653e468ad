"""``mldeploy iam-policy`` as data: no mutating action on ``"*"`` but the listed exceptions, every call mldeploy's plans
make is allowed for the app's own resources and denied for another app's, the boundary guards, the roles' trust.

A small IAM evaluator (:func:`allowed`): explicit Deny wins; Action wildcard match; Resource ARN glob match; the
condition operators the policy uses (String/Arn Equals/Like/NotEquals, ForAllValues:…). :func:`authorizations`
says which IAM actions, resources and request context one API call is authorized with (the Service Authorization
Reference's resource types and the tag-on-create actions), for plan ``ApiCall``s and for the e2e API log
(tests/test_iam_policy_e2e.py).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mldeploy.aws import iam_policy
from mldeploy.aws.engine.model import Action, ApiCall, Fn, Ref
from mldeploy.aws.engine.stack import RESOURCES
from mldeploy.aws.resources import iam
from tests.unit.fakes import ACCOUNT, REGION, FakeRemote, owned_tags, project, spec

# ------------------------------------------------------------------------------------------------ the evaluator


@dataclass
class Auth:
    """One authorization AWS makes for a call: ``action`` on ``resource`` with the request ``context``."""

    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)


def _glob(pattern: str, value: str, *, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _listify(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list | tuple) else [v]


def _match(op: str, wanted: list[str], value: str) -> bool:
    if op in ("StringEquals", "ArnEquals"):
        return value in wanted
    if op in ("StringLike", "ArnLike"):
        return any(_glob(w, value) for w in wanted)
    raise AssertionError(f"evaluator: operator {op} not modelled")


def condition_holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    for op, keys in condition.items():
        for key, wanted in keys.items():
            wanted = _listify(wanted)
            got = context.get(key)
            if op.endswith("IfExists"):
                if got is not None and not any(_match(op.removesuffix("IfExists"), wanted, v) for v in _listify(got)):
                    return False
            elif op.startswith("ForAllValues:"):
                base = op.split(":", 1)[1]
                if not all(_match(base, wanted, v) for v in _listify(got or [])):
                    return False
            elif op in ("StringNotEquals", "ArnNotEquals"):
                if got is not None and got in wanted:
                    return False
            elif got is None or not any(_match(op, wanted, v) for v in _listify(got)):
                return False
    return True


def _statement_applies(st: dict[str, Any], auth: Auth) -> bool:
    actions = _listify(st.get("Action", []))
    if "NotAction" in st:
        if any(_glob(a, auth.action, case=False) for a in _listify(st["NotAction"])):
            return False
    elif not any(_glob(a, auth.action, case=False) for a in actions):
        return False
    if not any(_glob(r, auth.resource) for r in _listify(st["Resource"])):
        return False
    return condition_holds(st.get("Condition", {}), auth.context)


def allowed(policy: dict[str, Any], auth: Auth) -> bool:
    sts = policy["Statement"]
    if any(st["Effect"] == "Deny" and _statement_applies(st, auth) for st in sts):
        return False
    return any(st["Effect"] == "Allow" and _statement_applies(st, auth) for st in sts)


# ------------------------------------------------------------------------------- how AWS authorizes each call


IAM_PREFIX = {"elbv2": "elasticloadbalancing", "service-quotas": "servicequotas", "resourcegroupstaggingapi": "tag"}
ANY = "*"
READ = re.compile(r"(Describe|List|Get)")


def camel(op: str) -> str:
    return op if "_" not in op and op[:1].isupper() else "".join(p.title() for p in op.split("_"))


@dataclass
class World:
    """What the evaluator knows about the account: ``tags`` of resources by id/ARN (created ones are ours)."""

    app: str = "demo"
    env: str = "default"
    region: str = REGION
    account: str = ACCOUNT
    boundary: str | None = None
    refs: dict[str, str] = field(default_factory=dict)

    def arn(self, service: str, resource: str, region: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account}:{resource}"

    @property
    def tags(self) -> dict[str, str]:
        return {"mldeploy:app": self.app, "mldeploy:env": self.env}

    def owned(self, prefix: str = "aws") -> dict[str, str]:
        return {f"{prefix}:ResourceTag/{k}": v for k, v in self.tags.items()}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            return self.refs.get(value.name, f"(ref {value.name})")  # in an ARN it fails the check, named
        if isinstance(value, Fn):
            return "(fn)"
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.resolve(v) for v in value]
        return value


def _request_tags(tags: Any) -> dict[str, Any]:
    if isinstance(tags, dict):
        pairs = tags
    else:
        pairs = {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags or []}
    return {**{f"aws:RequestTag/{k}": v for k, v in pairs.items()}, "aws:TagKeys": sorted(pairs)}


def authorizations(service: str, op: str, params: dict[str, Any], w: World) -> list[Auth]:
    """The (action, resource, context) AWS checks for one call (SAR resource types; tag-on-create actions)."""
    p = w.resolve(params)
    prefix = IAM_PREFIX.get(service, service)
    name = camel(op)
    action = f"{prefix}:{name}"
    one = lambda resource, **ctx: [Auth(action, resource, ctx)]  # noqa: E731
    if service == "sts" or service in ("service-quotas", "resourcegroupstaggingapi"):
        return one(ANY)
    if service == "ec2":
        sg = lambda gid: w.arn("ec2", f"security-group/{gid}")  # noqa: E731
        if name.startswith("Describe"):
            return one(ANY)
        if "LaunchTemplate" in name:
            return _launch_template(action, name, p, w)
        if name == "CreateSecurityGroup":
            tags = _request_tags(p["TagSpecifications"][0]["Tags"])
            return [Auth(action, sg("sg-new"), tags), Auth(action, w.arn("ec2", f"vpc/{p['VpcId']}")),
                    Auth("ec2:CreateTags", sg("sg-new"), {**tags, "ec2:CreateAction": "CreateSecurityGroup"})]
        return one(sg(p["GroupId"]), **w.owned(), **w.owned("ec2"))
    if service == "ecr":
        if name == "GetAuthorizationToken":
            return one(ANY)
        repo = p.get("resourceArn") or w.arn("ecr", "repository/" + (p.get("repositoryName")
                                                                     or p["repositoryNames"][0]))
        out = [Auth(action, repo)]
        if name == "CreateRepository" and p.get("tags"):
            out.append(Auth("ecr:TagResource", repo, _request_tags(p["tags"])))
        return out
    if service == "ecs":
        return _ecs(action, name, p, w)
    if service == "elbv2":
        return _elb(action, name, p, w)
    if service == "application-autoscaling":
        if name.startswith("Describe"):
            return one(ANY)
        target = w.arn("application-autoscaling", "scalable-target/0123abcd")
        if name == "RegisterScalableTarget" and p.get("Tags"):
            tags = _request_tags(p["Tags"])
            return [Auth(action, target, tags), Auth("application-autoscaling:TagResource", target, tags)]
        return one(target, **w.owned())
    if service == "logs":
        if name == "DescribeLogGroups":
            return one(ANY)
        group = p.get("logGroupName") or p["resourceArn"].split(":log-group:", 1)[1].removesuffix(":*")
        arn = w.arn("logs", f"log-group:{group}")
        out = [Auth(action, arn)]
        if name == "CreateLogGroup" and p.get("tags"):
            out.append(Auth("logs:TagResource", arn, _request_tags(p["tags"])))
        return out
    if service == "cloudwatch":
        if name == "DescribeAlarms":
            return one(ANY)
        if "Dashboard" in name:
            names = p.get("DashboardNames") or [p["DashboardName"]]
            return [Auth(action, w.arn("cloudwatch", f"dashboard/{n}", region=False)) for n in names]
        names = p.get("AlarmNames") or [p["AlarmName"]]
        out = [Auth(action, w.arn("cloudwatch", f"alarm:{n}")) for n in names]
        if name == "PutMetricAlarm" and p.get("Tags"):
            out.append(Auth("cloudwatch:TagResource", out[0].resource, _request_tags(p["Tags"])))
        return out
    if service == "sns":
        arn = p.get("TopicArn") or w.arn("sns", p["Name"])
        out = [Auth(action, arn)]
        if name == "CreateTopic" and p.get("Tags"):
            out.append(Auth("sns:TagResource", arn, _request_tags(p["Tags"])))
        return out
    if service == "ssm":
        names = p.get("Names") or [p.get("Name") or p["Path"]]
        # AWS's public parameters (the ECS-optimized AMI) have no account in their ARN
        out = [Auth(action, f"arn:aws:ssm:{w.region}::parameter/{n.lstrip('/')}" if n.startswith("/aws/service/")
                    else w.arn("ssm", f"parameter/{n.lstrip('/')}")) for n in names]
        if name == "PutParameter" and p.get("Tags"):
            out.append(Auth("ssm:AddTagsToResource", out[0].resource, _request_tags(p["Tags"])))
        return out
    if service == "acm":
        if name in ("ListCertificates", "DescribeCertificate", "ListTagsForCertificate"):
            return one(ANY)
        if name == "RequestCertificate":
            tags = _request_tags(p.get("Tags"))
            domains = [p["DomainName"], *p.get("SubjectAlternativeNames", [])]
            return [Auth(action, ANY, {**tags, "acm:DomainNames": domains}),
                    Auth("acm:AddTagsToCertificate", w.arn("acm", "certificate/new"), tags)]
        return one(p["CertificateArn"], **w.owned())
    if service == "route53":
        if name != "ChangeResourceRecordSets":
            return one(ANY)
        names = [c["ResourceRecordSet"]["Name"].lower().rstrip(".") for c in p["ChangeBatch"]["Changes"]]
        zone = p["HostedZoneId"].removeprefix("/hostedzone/")
        return one(f"arn:aws:route53:::hostedzone/{zone}", **{
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": names})
    if service == "iam":
        return _iam(action, name, p, w)
    if service == "autoscaling":
        return _asg(action, name, p, w)
    if service == "s3":
        return _s3(name, p, w)
    if READ.match(name):  # a read of a module this model does not know yet: it must be granted on "*"
        return one(ANY)
    raise AssertionError(f"evaluator: no authorization model for {service}.{op}: add it (and its grant)")


def _ecs(action: str, name: str, p: dict[str, Any], w: World) -> list[Auth]:
    cluster = (p.get("cluster") or "default").rsplit("/", 1)[-1]
    cl = w.arn("ecs", f"cluster/{cluster}")
    if name in ("DescribeTaskDefinition", "ListTaskDefinitions", "ListTasks", "DeregisterTaskDefinition",
                "ListServiceDeployments", "DescribeServiceDeployments", "DescribeServiceRevisions"):
        return [Auth(action, ANY)]
    if name == "CreateCluster":
        tags = _request_tags(p.get("tags"))
        cl = w.arn("ecs", f"cluster/{p['clusterName']}")
        return [Auth(action, ANY, tags), Auth("ecs:TagResource", cl, {**tags, "ecs:CreateAction": name})]
    if name == "RegisterTaskDefinition":
        tags = _request_tags(p.get("tags"))
        td = w.arn("ecs", f"task-definition/{p['family']}:7")
        out = [Auth(action, ANY, tags), Auth("ecs:TagResource", td, {**tags, "ecs:CreateAction": name})]
        for key in ("executionRoleArn", "taskRoleArn"):
            if p.get(key):
                out.append(Auth("iam:PassRole", p[key], {"iam:PassedToService": "ecs-tasks.amazonaws.com"}))
        return out
    if name in ("DescribeClusters",):
        return [Auth(action, w.arn("ecs", f"cluster/{c.rsplit('/', 1)[-1]}")) for c in p["clusters"]]
    if name in ("DeleteCluster", "UpdateClusterSettings", "PutClusterCapacityProviders"):
        return [Auth(action, cl)]
    if name in ("CreateCapacityProvider", "UpdateCapacityProvider", "DeleteCapacityProvider"):
        cp = w.arn("ecs", f"capacity-provider/{p.get('name') or p['capacityProvider']}")
        out = [Auth(action, cp)]
        if p.get("tags"):
            out.append(Auth("ecs:TagResource", cp, {**_request_tags(p["tags"]), "ecs:CreateAction": name}))
        return out
    if name == "CreateService":
        svc = w.arn("ecs", f"service/{cluster}/{p['serviceName']}")
        out = [Auth(action, svc)]
        if p.get("tags"):
            out.append(Auth("ecs:TagResource", svc, {**_request_tags(p["tags"]), "ecs:CreateAction": name}))
        return out
    if name in ("UpdateService", "DeleteService"):
        return [Auth(action, w.arn("ecs", f"service/{cluster}/{p['service'].rsplit('/', 1)[-1]}"))]
    if name == "DescribeServices":
        return [Auth(action, w.arn("ecs", f"service/{cluster}/{s.rsplit('/', 1)[-1]}")) for s in p["services"]]
    if name == "DescribeTasks":
        return [Auth(action, w.arn("ecs", f"task/{cluster}/{t.rsplit('/', 1)[-1]}")) for t in p["tasks"]]
    if name == "DeleteTaskDefinitions":
        return [Auth(action, t if t.startswith("arn:") else w.arn("ecs", f"task-definition/{t}"))
                for t in p["taskDefinitions"]]
    if READ.match(name):
        return [Auth(action, ANY)]
    raise AssertionError(f"evaluator: no authorization model for ecs {name}")


def _elb(action: str, name: str, p: dict[str, Any], w: World) -> list[Auth]:
    if name.startswith("Describe"):
        return [Auth(action, ANY)]
    arn = lambda r: w.arn("elasticloadbalancing", r)  # noqa: E731
    tag = lambda r: Auth("elasticloadbalancing:AddTags", r, {  # noqa: E731
        **_request_tags(p["Tags"]), "elasticloadbalancing:CreateAction": name})
    if name == "CreateLoadBalancer":
        lb = arn(f"loadbalancer/app/{p['Name']}/0123456789abcdef")
        return [Auth(action, lb), *([tag(lb)] if p.get("Tags") else [])]
    if name == "CreateTargetGroup":
        tg = arn(f"targetgroup/{p['Name']}/0123456789abcdef")
        return [Auth(action, tg), *([tag(tg)] if p.get("Tags") else [])]
    if name == "CreateListener":
        lb = p["LoadBalancerArn"]
        listener = lb.replace(":loadbalancer/", ":listener/") + "/fedcba9876543210"
        return [Auth(action, lb), *([tag(listener)] if p.get("Tags") else [])]
    if name == "CreateRule":
        rule = p["ListenerArn"].replace(":listener/", ":listener-rule/") + "/1111222233334444"
        return [Auth(action, p["ListenerArn"]), *([tag(rule)] if p.get("Tags") else [])]
    for key in ("ListenerArn", "TargetGroupArn", "LoadBalancerArn"):
        if key in p:
            return [Auth(action, p[key])]
    raise AssertionError(f"evaluator: no authorization model for elbv2 {name}")


def _iam(action: str, name: str, p: dict[str, Any], w: World) -> list[Auth]:
    if "InstanceProfileName" in p:
        profile = w.arn("iam", f"instance-profile/{p['InstanceProfileName']}", region=False)
        out = [Auth(action, profile)]
        if name == "CreateInstanceProfile" and p.get("Tags"):
            out.append(Auth("iam:TagInstanceProfile", profile, _request_tags(p["Tags"])))
        if name == "AddRoleToInstanceProfile":  # botocore iam: "must be granted the PassRole permission"
            out.append(Auth("iam:PassRole", w.arn("iam", f"role/{p['RoleName']}", region=False)))
        return out
    role = w.arn("iam", f"role/{p['RoleName']}", region=False)
    ctx: dict[str, Any] = {}
    if name == "CreateRole":
        out = [Auth(action, role, {"iam:PermissionsBoundary": p["PermissionsBoundary"]}
                    if p.get("PermissionsBoundary") else {})]
        if p.get("Tags"):
            out.append(Auth("iam:TagRole", role, _request_tags(p["Tags"])))
        return out
    if name == "PutRolePermissionsBoundary":
        ctx["iam:PermissionsBoundary"] = p["PermissionsBoundary"]
    elif name in ("PutRolePolicy", "AttachRolePolicy", "DeleteRolePolicy", "DetachRolePolicy") and w.boundary:
        ctx["iam:PermissionsBoundary"] = w.boundary  # the role's own boundary
    if "PolicyArn" in p:
        ctx["iam:PolicyARN"] = p["PolicyArn"]
    return [Auth(action, role, ctx)]


LT_ID = "lt-0123456789abcdef0"


def _launch_template(action: str, name: str, p: dict[str, Any], w: World) -> list[Auth]:
    """SAR EC2: the launch-template resource (an id EC2 picks); tags on create via ec2:CreateTags."""
    if name == "CreateLaunchTemplate":
        lt = w.arn("ec2", "launch-template/lt-new")
        spec = [t for t in p.get("TagSpecifications", []) if t["ResourceType"] == "launch-template"]
        tags = _request_tags(spec[0]["Tags"] if spec else [])
        return [Auth(action, lt, tags), Auth("ec2:CreateTags", lt, {**tags, "ec2:CreateAction": name})]
    return [Auth(action, w.arn("ec2", f"launch-template/{LT_ID}"), {**w.owned(), **w.owned("ec2")})]


def _asg(action: str, name: str, p: dict[str, Any], w: World) -> list[Auth]:
    """SAR Auto Scaling: autoScalingGroup ARNs hold a UUID and the name; a launch template on create/update is
    checked as the caller's ec2:RunInstances, ec2:CreateTags and iam:PassRole ("Amazon EC2 Auto Scaling API
    permissions")."""
    if READ.match(name):
        return [Auth(action, ANY)]
    group = w.arn("autoscaling", f"autoScalingGroup:0f1e2d3c-aaaa-bbbb-cccc-000000000000:autoScalingGroupName/"
                                 f"{p['AutoScalingGroupName']}")
    out = [Auth(action, group)]
    if p.get("Tags"):
        out.append(Auth("autoscaling:CreateOrUpdateTags", group, _request_tags(p["Tags"])))
    if name in ("CreateAutoScalingGroup", "UpdateAutoScalingGroup") and (
            "LaunchTemplate" in p or "MixedInstancesPolicy" in p):
        lt = w.arn("ec2", f"launch-template/{LT_ID}")
        from_lt = {"ec2:LaunchTemplate": lt}
        subnets = str(p.get("VPCZoneIdentifier") or "subnet-a").split(",")
        out += [Auth("ec2:RunInstances", lt, {**w.owned(), **w.owned("ec2")}),
                Auth("ec2:RunInstances", w.arn("ec2", "security-group/sg-0c2d"), {**w.owned(), **w.owned("ec2"),
                                                                                  **from_lt}),
                Auth("ec2:RunInstances", f"arn:aws:ec2:{w.region}::image/ami-0x86", from_lt),
                *[Auth("ec2:RunInstances", w.arn("ec2", f"{kind}/{kind[:3]}-1"), from_lt)
                  for kind in ("instance", "volume", "network-interface")],
                *[Auth("ec2:RunInstances", w.arn("ec2", f"subnet/{sn}"), from_lt) for sn in subnets],
                *[Auth("ec2:CreateTags", w.arn("ec2", f"{kind}/{kind[:3]}-1"), {"ec2:CreateAction": "RunInstances"})
                  for kind in ("instance", "volume")],
                Auth("iam:PassRole", w.arn("iam", f"role/{w.app}-instance" if w.env == "default"
                                           else f"role/{w.app}-{w.env}-instance", region=False),
                     {"iam:PassedToService": "ec2.amazonaws.com"})]
    return out


S3_ACTIONS = {"HeadBucket": "ListBucket", "ListObjectsV2": "ListBucket", "ListObjectVersions": "ListBucketVersions",
              "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
              "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
              "GetBucketEncryption": "GetEncryptionConfiguration", "PutBucketEncryption": "PutEncryptionConfiguration",
              "HeadObject": "GetObject", "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
              "CompleteMultipartUpload": "PutObject"}
"""SAR S3: the IAM action of each S3 API operation whose names differ."""


def _s3(name: str, p: dict[str, Any], w: World) -> list[Auth]:
    bucket = f"arn:aws:s3:::{p['Bucket']}"
    if name in ("DeleteObjects", "DeleteObject"):
        objects = p["Delete"]["Objects"] if name == "DeleteObjects" else [p]
        return [Auth("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject", f"{bucket}/{o['Key']}")
                for o in objects]
    action = "s3:" + S3_ACTIONS.get(name, name)
    return [Auth(action, f"{bucket}/{p['Key']}" if "Key" in p else bucket)]


# ----------------------------------------------------------------------------------------- plans from scratch


def _lb_arn(w: World, name: str) -> str:
    return w.arn("elasticloadbalancing", f"loadbalancer/app/{name}/50dc6c495c0c9188")


def fake_refs(w: World, base: str) -> dict[str, str]:
    lb = _lb_arn(w, base)
    listener = lb.replace(":loadbalancer/", ":listener/")
    return {"alb_arn": lb, "alb_dns": f"{base}-1.{w.region}.elb.amazonaws.com", "alb_zone": "Z35SXDOTRQ7X7K",
            "tg_arn": w.arn("elasticloadbalancing", f"targetgroup/{base}-tg/aaaa"),
            "canary.tg_arn": w.arn("elasticloadbalancing", f"targetgroup/{base}-tgc/bbbb"),
            "http_listener_arn": f"{listener}/1111", "https_listener_arn": f"{listener}/2222",
            "listener_arn": f"{listener}/1111", "alb_sg_id": "sg-0a1b", "task_sg_id": "sg-0c2d",
            "task_definition_arn": w.arn("ecs", f"task-definition/{base}:1"), "service_arn": w.arn(
                "ecs", f"service/{base}/{base}"), "image": "123.dkr.ecr/demo:1", "topic_arn": w.arn(
                "sns", f"mldeploy-{base}-alarms"), "certificate_arn": w.arn("acm", "certificate/1234-abcd"),
            "canary.task_definition_arn": w.arn("ecs", f"task-definition/{base}:2"),
            "certificate_validation_name": "_3f6a9c.api.example.com.", "certificate_validation_value": "_x.acm"}


class _Nothing(dict):
    """A describe answer with no items under any key."""

    def __missing__(self, key: str) -> list[Any]:
        return []


class EmptyAccount(FakeRemote):
    """An account with a default VPC and nothing of ours: every describe answers "not found" or empty."""

    EMPTY = {"describe_repositories": None, "get_role": None, "describe_log_groups": {"logGroups": []},
             "describe_clusters": {"clusters": []}, "describe_security_groups": {"SecurityGroups": []},
             "describe_load_balancers": None, "describe_target_groups": None, "describe_listeners": {"Listeners": []},
             "describe_task_definition": None, "describe_services": {"services": []},
             "describe_scalable_targets": {"ScalableTargets": []}, "describe_scaling_policies": {"ScalingPolicies": []},
             "get_topic_attributes": None, "describe_alarms": {"MetricAlarms": []}, "get_dashboard": None,
             "get_parameters": {"Parameters": []}, "get_parameters_by_path": {"Parameters": []},
             "list_task_definitions": {"taskDefinitionArns": []}, "list_certificates": {"CertificateSummaryList": []},
             "list_hosted_zones": {"HostedZones": [{"Id": "/hostedzone/Z0123456789ABC", "Name": "example.com.",
                                                   "Config": {"PrivateZone": False}}]},
             "list_resource_record_sets": {"ResourceRecordSets": []}, "describe_rules": {"Rules": []},
             "get_role_policy": None, "list_attached_role_policies": {"AttachedPolicies": []}, "head_bucket": None}

    def get(self, service: str, op: str, *, missing: tuple[str, ...] = (), **params: Any) -> Any:
        self.calls.append((service, op, params))
        if (service, op) in self.answers:
            value = self.answers[(service, op)]
            return value(**params) if callable(value) else value
        if op in self.EMPTY:
            return self.EMPTY[op]
        if op.startswith(("describe_", "list_")):  # resources other modules add (capacity, model store…)
            return _Nothing()
        if op.startswith("get_"):
            return None
        raise AssertionError(f"EmptyAccount: no answer for {service}.{op}({json.dumps(params, default=str)})")


def plan_calls(proj: Any, remote: FakeRemote, w: World, *, roles: tuple[str, ...] = ("stable",)) -> list[ApiCall]:
    """Every ApiCall of ``plan_up`` for each role, planned family by family with the network already known."""
    calls: list[ApiCall] = []
    known: dict[str, Any] = {"vpc_id": "vpc-1", "subnet_ids": ["subnet-a", "subnet-b"],
                             "alb_subnet_ids": ["subnet-a", "subnet-b"], "public_subnets": True,
                             "image": Ref("image"),
                             # the canary's revision comes from release/targets/aws_plans (the e2e test covers it)
                             "canary.task_definition_arn": Ref("canary.task_definition_arn")}
    for role in roles:
        s = spec(proj).as_role(role, version="1.1.0" if role == "canary" else None, desired_count=1,
                                image="123.dkr.ecr/demo:2" if role == "canary" else None)
        for family in RESOURCES:
            if role not in family.roles:
                continue
            for step in family.plan(s, remote, known):
                if step.action is not Action.noop:
                    calls += [c for c in step.calls if isinstance(c, ApiCall)]
    return calls


def check(policy: dict[str, Any], calls: list[tuple[str, str, dict[str, Any]]], w: World) -> list[str]:
    """The authorizations ``policy`` refuses (should be none)."""
    return [f"{a.action} on {a.resource} {a.context}" for service, op, params in calls
            for a in authorizations(service, op, params, w) if not allowed(policy, a)]


def denied_mutations(policy: dict[str, Any], calls: list[tuple[str, str, dict[str, Any]]], w: World) -> list[str]:
    """Mutating calls ``policy`` lets through whole (every authorization allowed), but for the UNSCOPED ones
    (for a policy of ANOTHER app: should be none)."""
    out = []
    for service, op, params in calls:
        auths = authorizations(service, op, params, w)
        verb = auths[0].action.split(":", 1)[1]
        if READ.match(verb) or auths[0].action in iam_policy.UNSCOPED:
            continue
        if all(allowed(policy, a) for a in auths):
            out.append(f"{service}.{op}: " + ", ".join(f"{a.action} on {a.resource}" for a in auths))
    return out


DOMAIN_CONFIG = """\
name: demo
model:
  path: model.onnx
  version: 1.0.0
aws:
  region: us-east-1
  domain: API.example.com
  secrets:
    MLDEPLOY_API_KEYS: arn:aws:ssm:us-east-1:123456789012:parameter/demo/keys
  task_role_policy_arns: [arn:aws:iam::123456789012:policy/demo-model-read]
  permissions_boundary: arn:aws:iam::123456789012:policy/mldeploy-boundary-demo
  tags: {team: ml}
  alarms: {email: ops@example.com}
"""


EC2_CONFIG = """\
name: demo
model:
  path: model.onnx
  version: 1.0.0
aws:
  region: us-east-1
  compute: ec2
  instance_type: c7i.xlarge
  cpu: 1024
  memory: 2048
  spot: {enabled: true, weight: 70, base: 1}
  autoscaling: {min: 1, max: 4, schedule: [{cron: "0 20 ? * MON-FRI *", min: 1, max: 2}]}
  permissions_boundary: arn:aws:iam::123456789012:policy/mldeploy-boundary-demo
"""
S3_CONFIG = """\
name: demo
model:
  path: model.onnx
  version: 1.0.0
  store: s3
aws:
  region: us-east-1
"""
CONFIGS = {"domain": DOMAIN_CONFIG, "ec2": EC2_CONFIG, "s3": S3_CONFIG}


def _ami(Name: str) -> dict[str, Any] | None:  # noqa: N803 - boto3's parameter name
    return {"Parameter": {"Name": Name, "Value": "ami-0x86"}} if Name.startswith("/aws/service/") else None


def _calls(calls: list[ApiCall]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.service, c.op, c.params) for c in calls]


@pytest.mark.parametrize("config", ["plain", "domain", "ec2", "s3"])
def test_every_call_of_a_fresh_up_and_canary_is_allowed_for_the_app_and_denied_for_another(config: str) -> None:
    from tests.unit.fakes import BASE_CONFIG

    text = CONFIGS.get(config, BASE_CONFIG)
    proj = project(text)
    w = World(boundary=proj.config.aws.permissions_boundary)
    w.refs = fake_refs(w, "demo")
    remote = EmptyAccount({("ssm", "get_parameter"): _ami})
    calls = _calls(plan_calls(proj, remote, w, roles=("stable", "canary")))
    ops = {op for _, op, _ in calls}
    assert {"create_role", "create_cluster", "create_service", "register_task_definition", "create_load_balancer",
            "create_security_group", "authorize_security_group_ingress", "put_metric_alarm",
            "register_scalable_target", "put_parameter"} <= ops
    if config == "domain":
        assert {"request_certificate", "change_resource_record_sets", "create_topic", "attach_role_policy"} <= ops
    if config == "ec2":
        assert {"create_instance_profile", "add_role_to_instance_profile", "create_launch_template",
                "create_auto_scaling_group", "create_capacity_provider", "put_cluster_capacity_providers",
                "put_scheduled_action"} <= ops
        assert [c for c in calls if c[1] == "create_role" and c[2]["RoleName"] == "demo-instance"][0][2][
            "PermissionsBoundary"] == proj.config.aws.permissions_boundary
    if config == "s3":
        assert {"create_bucket", "put_bucket_policy", "put_public_access_block", "put_role_policy"} <= ops
    policy = iam_policy.policy_for(proj, account=ACCOUNT)
    assert check(policy, calls, w) == []
    # the AMI parameter read of the plan (not an ApiCall) is allowed too
    reads = [c for c in remote.calls if c[:2] in {("ssm", "get_parameter"), ("s3", "head_bucket")}]
    assert check(policy, reads, w) == []
    # the same plan's calls, made by a deploy identity whose policy is for another app, are refused; but for the
    # model bucket, which the account's apps share (resources/model_store.py): its configuration, not its objects
    other = project(text.replace("name: demo", "name: other").replace("API.example.com", "other.example.com"))
    leaks = denied_mutations(iam_policy.policy_for(other, account=ACCOUNT), calls, w)
    assert [leak for leak in leaks if not _bucket_only(leak)] == []
    if config == "s3":
        assert leaks and any(leak.startswith("s3.put_bucket_policy") for leak in leaks)
    # and by the policy for another environment of the same app, but for the app's one image repository
    staging = project(text.replace("API.example.com", "staging.example.com") + "environments:\n  staging: {}\n",
                      env="staging")
    leaks = denied_mutations(iam_policy.policy_for(staging, account=ACCOUNT), calls, w)
    assert leaks and all(leak.startswith("ecr.") or _bucket_only(leak) for leak in leaks)


def _bucket_only(leak: str) -> bool:
    """A call on the shared model bucket itself (its configuration), none on an object."""
    return leak.startswith("s3.") and "/" not in leak.split(" on arn:aws:s3:::", 1)[1]


def test_reads_and_plan_describes_are_allowed_too() -> None:
    """The describes planners make (FakeRemote records them) are allowed on the app's resources."""
    proj = project()
    w = World()
    w.refs = fake_refs(w, "demo")
    remote = EmptyAccount()
    plan_calls(proj, remote, w)
    reads = [(svc, op, {k: v for k, v in params.items()}) for svc, op, params in remote.calls
             if svc not in ("ec2",) or op.startswith("describe")]
    assert len(reads) > 15
    assert check(iam_policy.policy_for(proj), [r for r in reads if _modelled(r)], w) == []


def _modelled(call: tuple[str, str, dict[str, Any]]) -> bool:
    # list_tags / get_* with ARNs of resources that do not exist in EmptyAccount are not asked
    return call[1] not in ("get_parameters_by_path",) or call[2].get("Path", "").startswith("/mldeploy/demo")


def test_no_mutating_action_on_star_except_the_listed_ones() -> None:
    for proj in (None, project(), project(DOMAIN_CONFIG)):
        policy = iam_policy.policy_for(proj)
        assert iam_policy.unscoped_mutations(policy) == []
        on_star = {a for st in policy["Statement"] if st["Effect"] == "Allow" and st["Resource"] in ("*", ["*"])
                   for a in _listify(st["Action"])}
        assert {a for a in on_star if not READ.match(a.split(":", 1)[1])} <= set(iam_policy.UNSCOPED)
        # every exception that is a create is conditioned on our tags
        for st in policy["Statement"]:
            if {"ecs:CreateCluster", "acm:RequestCertificate"} & set(_listify(st["Action"])):
                assert "aws:RequestTag/mldeploy:app" in json.dumps(st["Condition"])
        assert "cloudwatch:SetAlarmState" not in json.dumps(policy)  # tests only; never the deploy identity's
        sids = [st["Sid"] for st in policy["Statement"]]
        assert len(sids) == len(set(sids))


def test_without_a_project_the_names_are_wildcards_but_the_shape_is_the_same() -> None:
    policy = iam_policy.policy_for(None)
    text = json.dumps(policy)
    assert "role/*-exec" in text and "parameter/mldeploy/*" in text
    w = World(app="anything", env="prod")
    assert allowed(policy, Auth("ssm:PutParameter", w.arn("ssm", "parameter/mldeploy/anything/prod/lock")))
    assert not allowed(policy, Auth("ssm:PutParameter", w.arn("ssm", "parameter/prod/db-password")))
    assert not allowed(policy, Auth("ec2:DeleteSecurityGroup", w.arn("ec2", "security-group/sg-1")))  # untagged
    assert allowed(policy, Auth("ec2:DeleteSecurityGroup", w.arn("ec2", "security-group/sg-1"), w.owned()))


def test_ssm_and_iam_are_limited_to_the_app() -> None:
    policy = iam_policy.policy_for(project(DOMAIN_CONFIG), account=ACCOUNT)
    w = World()
    ssm = lambda n: w.arn("ssm", f"parameter/{n}")  # noqa: E731
    assert allowed(policy, Auth("ssm:GetParameter", ssm("mldeploy/demo/default/lock")))
    assert not allowed(policy, Auth("ssm:GetParameter", ssm("demo/keys")))  # the app's secret: execution role only
    assert not allowed(policy, Auth("ssm:PutParameter", ssm("mldeploy/demo2/default/lock")))
    role = w.arn("iam", "role/demo-task", region=False)
    boundary = "arn:aws:iam::123456789012:policy/mldeploy-boundary-demo"
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    # attach only the configured policy, only while the role carries the boundary
    assert allowed(policy, Auth("iam:AttachRolePolicy", role, {
        "iam:PolicyARN": "arn:aws:iam::123456789012:policy/demo-model-read", "iam:PermissionsBoundary": boundary}))
    assert not allowed(policy, Auth("iam:AttachRolePolicy", role, {"iam:PolicyARN": admin,
                                                                    "iam:PermissionsBoundary": boundary}))
    assert not allowed(policy, Auth("iam:AttachRolePolicy", role, {
        "iam:PolicyARN": "arn:aws:iam::123456789012:policy/demo-model-read"}))
    assert not allowed(policy, Auth("iam:CreateRole", role))  # no boundary
    assert not allowed(policy, Auth("iam:CreateRole", role, {"iam:PermissionsBoundary": admin}))
    assert allowed(policy, Auth("iam:CreateRole", role, {"iam:PermissionsBoundary": boundary}))
    assert not allowed(policy, Auth("iam:PutRolePermissionsBoundary", role, {"iam:PermissionsBoundary": admin}))
    assert not allowed(policy, Auth("iam:DeleteRolePermissionsBoundary", role))
    for change in ("CreatePolicyVersion", "SetDefaultPolicyVersion", "DeletePolicy"):
        assert not allowed(policy, Auth(f"iam:{change}", boundary))
    assert not allowed(policy, Auth("iam:CreateRole", w.arn("iam", "role/x-task", region=False),
                                    {"iam:PermissionsBoundary": boundary}))
    assert not allowed(policy, Auth("iam:PassRole", w.arn("iam", "role/other-task", region=False),
                                    {"iam:PassedToService": "ecs-tasks.amazonaws.com"}))


def test_release_role_keeps_the_boundary_guards() -> None:
    from mldeploy.ci import github

    policy = iam_policy.policy_for(project(DOMAIN_CONFIG), account=ACCOUNT)
    for kind in ("deploy", "release"):
        split = github.split_policy(policy, kind)
        denies = [st["Sid"] for st in split["Statement"] if st["Effect"] == "Deny"]
        assert denies == ["MldeployBoundaryIsFixed", "MldeployOnlyThisBoundary"]
    release = github.split_policy(policy, "release")
    assert not any(allowed(release, Auth(f"iam:{a}", f"arn:aws:iam::{ACCOUNT}:role/demo-task", {
        "iam:PermissionsBoundary": "arn:aws:iam::123456789012:policy/mldeploy-boundary-demo"}))
        for a in ("CreateRole", "PutRolePolicy", "AttachRolePolicy", "UpdateAssumeRolePolicy"))


# -------------------------------------------------------------------------------------- roles the tool creates


def test_created_roles_carry_the_boundary_and_an_account_scoped_trust() -> None:
    s = spec(project(DOMAIN_CONFIG))
    remote = EmptyAccount()
    (exec_step,) = iam.plan_execution_role(s, remote, {})
    create = exec_step.calls[0]
    assert create.op == "create_role"
    assert create.params["PermissionsBoundary"] == "arn:aws:iam::123456789012:policy/mldeploy-boundary-demo"
    (stmt,) = json.loads(create.params["AssumeRolePolicyDocument"])["Statement"]
    assert stmt["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    (task_step,) = iam.plan_task_role(s, remote, {})
    (stmt,) = json.loads(task_step.calls[0].params["AssumeRolePolicyDocument"])["Statement"]
    assert stmt["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                                 "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:*"}}
    # without aws.permissions_boundary: no boundary sent
    (plain,) = iam.plan_execution_role(spec(), EmptyAccount(), {})
    assert "PermissionsBoundary" not in plain.calls[0].params


OLD_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def _existing(name: str, trust: Any, boundary: str | None = None) -> dict[str, Any]:
    role = {"RoleName": name, "Arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "Tags": owned_tags(),
            "AssumeRolePolicyDocument": trust}
    if boundary:
        role["PermissionsBoundary"] = {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": boundary}
    return role


def test_an_existing_role_with_the_old_trust_gets_the_boundary_then_the_new_trust() -> None:
    s = spec(project(DOMAIN_CONFIG))
    boundary = s.config.aws.permissions_boundary
    policy = {"PolicyDocument": json.dumps(iam.execution_policy(s))}
    remote = EmptyAccount({("iam", "get_role"): {"Role": _existing("demo-exec", OLD_TRUST)},
                          ("iam", "get_role_policy"): policy})
    (step,) = iam.plan_execution_role(s, remote, {})
    assert step.action is Action.update
    assert list(step.calls) == [
        ApiCall("iam", "put_role_permissions_boundary", {"RoleName": "demo-exec", "PermissionsBoundary": boundary}),
        ApiCall("iam", "update_assume_role_policy", {"RoleName": "demo-exec", "PolicyDocument": json.dumps(
            iam.trust_policy(s, task_role=False))})]
    # the same role as IAM answers it after the update (URL-encoded JSON text from some clients): a no-op
    from urllib.parse import quote

    fixed = _existing("demo-exec", quote(json.dumps(iam.trust_policy(s, task_role=False))), boundary)
    remote.answer("iam", "get_role", {"Role": fixed})
    assert [st.action for st in iam.plan_execution_role(s, remote, {})] == [Action.noop]
    # the calls of the update are allowed by the policy the boundary's owner printed
    w = World(boundary=boundary)
    assert check(iam_policy.policy_for(s.project, account=ACCOUNT), _calls(step.calls), w) == []


def test_existing_task_role_gets_the_new_trust_before_its_attachments() -> None:
    s = spec(project(DOMAIN_CONFIG))
    remote = EmptyAccount({("iam", "get_role"): {"Role": _existing("demo-task", OLD_TRUST,
                                                                   s.config.aws.permissions_boundary)}})
    (step,) = iam.plan_task_role(s, remote, {})
    assert [c.op for c in step.calls] == ["update_assume_role_policy", "attach_role_policy"]
    assert step.changes[0].startswith("trust policy")


# --------------------------------------------------------------------------------------------------- boundary


def test_boundary_holds_the_execution_needs_and_caps_the_task_role() -> None:
    proj = project(DOMAIN_CONFIG)
    doc = iam_policy.boundary_policy(proj, account=ACCOUNT)
    w = World()
    exec_principal = {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/demo-exec"}
    task_principal = {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/demo-task"}
    # the execution role's inline policy fits inside the boundary
    for st in iam.execution_policy(spec(proj))["Statement"]:
        for action in _listify(st["Action"]):
            for resource in _listify(st["Resource"]):
                assert allowed(doc, Auth(action, resource, exec_principal)), (action, resource)
    # a widened execution role gets nothing more
    assert not allowed(doc, Auth("ssm:GetParameters", w.arn("ssm", "parameter/prod/db-password"), exec_principal))
    assert not allowed(doc, Auth("s3:GetObject", "arn:aws:s3:::bucket/key", exec_principal))
    # the task role: its managed policies decide, but never IAM/STS
    assert allowed(doc, Auth("s3:GetObject", "arn:aws:s3:::bucket/key", task_principal))
    assert not allowed(doc, Auth("iam:CreateUser", "arn:aws:iam::123456789012:user/x", task_principal))
    assert not allowed(doc, Auth("sts:AssumeRole", "arn:aws:iam::123456789012:role/admin", task_principal))


def test_a_boundary_that_is_not_a_policy_arn_is_a_config_error_naming_the_field() -> None:
    from mldeploy.errors import MldeployError

    bad = DOMAIN_CONFIG.replace("arn:aws:iam::123456789012:policy/mldeploy-boundary-demo", "mldeploy-boundary")
    with pytest.raises(MldeployError, match=r"permissions_boundary.*'mldeploy-boundary' is not an IAM managed policy"):
        project(bad)


def test_the_policies_fit_a_roles_inline_policy_quota() -> None:
    from mldeploy.ci import github

    ec2 = DOMAIN_CONFIG.replace("  tags: {team: ml}\n", "  tags: {team: ml, cost-center: ml-platform-2024}\n")
    for proj in (None, project(), project(ec2)):
        policy = iam_policy.policy_for(proj, account=ACCOUNT)
        for doc in (policy, github.split_policy(policy, "deploy"), github.split_policy(policy, "release")):
            assert iam_policy.size(doc) <= iam_policy.ROLE_POLICY_LIMIT, iam_policy.size(doc)
    assert iam_policy.size({"Version": "2012-10-17"}) == len('{"Version":"2012-10-17"}')  # no white space


# ------------------------------------------------------------------------- compute ec2 and model store s3


def _existing_ec2(boundary: str | None = None) -> FakeRemote:
    """An account holding the app's EC2 capacity as an older mldeploy left it: no boundary on the instance role,
    an extra policy attached, an old AMI, a smaller group, an undrained capacity provider on the cluster."""
    role = _existing("demo-instance", {"Version": "2012-10-17", "Statement": []})
    return FakeRemote({
        ("iam", "get_role"): {"Role": role},
        ("iam", "list_attached_role_policies"): {"AttachedPolicies": [
            {"PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}]},
        ("iam", "list_role_policies"): {"PolicyNames": []},
        ("iam", "get_instance_profile"): {"InstanceProfile": {"Roles": [{"RoleName": "demo-instance"}]}},
        ("ssm", "get_parameter"): _ami,
        ("ec2", "describe_launch_templates"): {"LaunchTemplates": [
            {"LaunchTemplateName": "demo-ecs", "Tags": owned_tags(), "LatestVersionNumber": 1}]},
        ("ec2", "describe_launch_template_versions"): {"LaunchTemplateVersions": [
            {"LaunchTemplateData": {"ImageId": "ami-old"}}]},
        ("autoscaling", "describe_auto_scaling_groups"): {"AutoScalingGroups": [
            {"AutoScalingGroupName": "demo-ecs", "MinSize": 0, "MaxSize": 1, "VPCZoneIdentifier": "subnet-a",
             "AutoScalingGroupARN": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:u:"
                                    "autoScalingGroupName/demo-ecs", "Tags": owned_tags()}]},
        ("ecs", "describe_capacity_providers"): {"capacityProviders": [
            {"name": "mldeploy-demo", "status": "ACTIVE", "tags": owned_tags(key="key", value="value"),
             "autoScalingGroupProvider": {"managedDraining": "DISABLED"}}]},
        ("ecs", "describe_clusters"): {"clusters": [
            {"clusterName": "demo", "status": "ACTIVE", "capacityProviders": ["FARGATE", "mldeploy-demo"]}]},
    })


def test_ec2_updates_and_down_are_allowed_for_the_app_and_refused_for_another() -> None:
    from mldeploy.aws.resources import capacity, instance_role, launch_template

    proj = project(EC2_CONFIG)
    s, remote = spec(proj), _existing_ec2()
    known: dict[str, Any] = {"task_sg_id": "sg-0c2d", "instance_sg_id": "sg-0c2e",
                             "subnet_ids": ["subnet-a", "subnet-b"]}
    steps = [*instance_role.plan(s, remote, known), *launch_template.plan(s, remote, known),
             *capacity.plan_asg(s, remote, known), *capacity.plan_provider(s, remote, known),
             *capacity.delete_provider(s, remote, known), *capacity.delete_asg(s, remote, known),
             *launch_template.delete(s, remote, known), *instance_role.delete(s, remote, known)]
    calls = _calls([c for st in steps for c in st.calls if isinstance(c, ApiCall)])
    ops = [op for _, op, _ in calls]
    # the boundary goes on before anything is attached (the policy allows AttachRolePolicy only with it)
    assert ops[:3] == ["put_role_permissions_boundary", "attach_role_policy", "detach_role_policy"]
    assert {"create_launch_template_version", "modify_launch_template", "update_auto_scaling_group",
            "update_capacity_provider", "delete_capacity_provider", "delete_auto_scaling_group",
            "delete_launch_template", "remove_role_from_instance_profile", "delete_instance_profile",
            "delete_role"} <= set(ops)
    w = World(boundary=proj.config.aws.permissions_boundary)
    policy = iam_policy.policy_for(proj, account=ACCOUNT)
    assert check(policy, calls, w) == []
    other = iam_policy.policy_for(project(EC2_CONFIG.replace("name: demo", "name: other")), account=ACCOUNT)
    assert denied_mutations(other, calls, w) == []
    # the instance role: only AWS's ECS instance policy, only with the boundary, passed only to EC2
    role = w.arn("iam", "role/demo-instance", region=False)
    boundary = proj.config.aws.permissions_boundary
    ecs_policy = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
    assert allowed(policy, Auth("iam:AttachRolePolicy", role, {"iam:PolicyARN": ecs_policy,
                                                               "iam:PermissionsBoundary": boundary}))
    for bad in ({"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess", "iam:PermissionsBoundary": boundary},
                {"iam:PolicyARN": ecs_policy}):
        assert not allowed(policy, Auth("iam:AttachRolePolicy", role, bad))
    assert not allowed(policy, Auth("iam:PutRolePolicy", role, {"iam:PermissionsBoundary": boundary}))
    assert not allowed(policy, Auth("iam:UpdateAssumeRolePolicy", role))
    assert not allowed(policy, Auth("iam:CreateRole", role))
    assert not allowed(policy, Auth("iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"}))
    assert not allowed(policy, Auth("iam:DeleteRolePermissionsBoundary", role))
    # instances only from one of our launch templates; none launched outside a template
    assert not allowed(policy, Auth("ec2:RunInstances", w.arn("ec2", "instance/i-1")))
    assert not allowed(policy, Auth("ec2:RunInstances", w.arn("ec2", f"launch-template/{LT_ID}")))  # untagged
    # the boundary lets the instance role keep what its managed policy gives it (not IAM)
    doc = iam_policy.boundary_policy(proj, account=ACCOUNT)
    principal = {"aws:PrincipalArn": role}
    assert allowed(doc, Auth("ecs:RegisterContainerInstance", w.arn("ecs", "cluster/demo"), principal))
    assert not allowed(doc, Auth("iam:CreateUser", "arn:aws:iam::123456789012:user/x", principal))


def test_fargate_and_image_store_policies_grant_no_ec2_capacity_or_bucket() -> None:
    for proj in (None, project()):
        text = json.dumps(iam_policy.policy_for(proj, account=ACCOUNT))
        for action in ("ec2:RunInstances", "autoscaling:CreateAutoScalingGroup", "ecs:CreateCapacityProvider",
                       "iam:AddRoleToInstanceProfile", "s3:PutObject", "s3:PutBucketPolicy"):
            assert action not in text, action


def test_model_uploads_and_down_touch_only_the_apps_prefix() -> None:
    from mldeploy.aws.resources import model_store

    proj = project(S3_CONFIG)
    s = spec(proj)
    bucket = model_store.bucket_name(ACCOUNT, REGION)
    prefix = "demo/default/1.0.0/0123456789abcdef/"
    # what model_upload.upload sends (boto3's managed transfer: multipart above 64 MiB)
    upload = [("s3", op, {"Bucket": bucket, "Key": prefix + key}) for op, key in (
        ("HeadObject", "mldeploy-files.json"), ("HeadObject", "model.onnx"), ("CreateMultipartUpload", "model.onnx"),
        ("UploadPart", "model.onnx"), ("CompleteMultipartUpload", "model.onnx"), ("AbortMultipartUpload", "x"),
        ("PutObject", "mldeploy-files.json"))]

    def listing(Bucket: str, Prefix: str | None = None) -> dict[str, Any]:  # noqa: N803 - boto3's names
        keys = [prefix + "model.onnx", "other/default/2.0.0/ffff/model.onnx"]
        return {"Versions": [{"Key": k, "VersionId": "v1"} for k in keys if k.startswith(Prefix or "")],
                "DeleteMarkers": [{"Key": prefix + "old.onnx", "VersionId": "m1"}] if Prefix else []}

    remote = FakeRemote({("s3", "head_bucket"): {}, ("s3", "get_bucket_tagging"): {"TagSet": [
        {"Key": "mldeploy:purpose", "Value": "model-store"}]}, ("s3", "list_object_versions"): listing})
    down = _calls([c for st in model_store.delete(s, remote, {}) for c in st.calls])
    assert [op for _, op, _ in down] == ["delete_objects"]  # another app's model keeps the bucket
    calls = upload + down + [c for c in remote.calls if c[0] == "s3"]
    w = World()
    assert check(iam_policy.policy_for(proj, account=ACCOUNT), calls, w) == []
    other = iam_policy.policy_for(project(S3_CONFIG.replace("name: demo", "name: other")), account=ACCOUNT)
    refused = [a for c in upload + down for a in authorizations(*c, w) if not allowed(other, a)]
    assert len(refused) == len([a for c in upload + down for a in authorizations(*c, w)])  # every object call
    # and the other app's objects are out of this app's reach
    policy = iam_policy.policy_for(proj, account=ACCOUNT)
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObjectVersion"):
        assert not allowed(policy, Auth(action, f"arn:aws:s3:::{bucket}/other/default/2.0.0/ffff/model.onnx"))
        assert not allowed(policy, Auth(action, f"arn:aws:s3:::{bucket}/demo/staging/1.0.0/ffff/model.onnx"))


ALL_CONFIG = DOMAIN_CONFIG.replace("  region: us-east-1\n", "  region: us-east-1\n  compute: ec2\n  instance_type: "
                                   "c7i.xlarge\n  cpu: 1024\n  memory: 2048\n").replace(
    "  version: 1.0.0\n", "  version: 1.0.0\n  store: s3\n", 1)


@pytest.mark.parametrize("config", ["ec2", "s3", "all"])
def test_a_policy_over_the_inline_quota_splits_into_managed_policies(config: str) -> None:
    """compute ec2 (with a domain and a boundary) is over a role's 10,240 inline characters: it goes out as
    managed policies of at most 6,144 each, the same statements in the same order."""
    from mldeploy.ci import github

    proj = project(ALL_CONFIG if config == "all" else CONFIGS[config])
    assert (proj.config.aws.compute == "ec2") == (config != "s3")
    policy = iam_policy.policy_for(proj, account=ACCOUNT)
    if config == "s3":
        assert iam_policy.size(policy) <= iam_policy.ROLE_POLICY_LIMIT
    for doc in (policy, github.split_policy(policy, "deploy"), github.split_policy(policy, "release")):
        parts = iam_policy.managed_policies(doc)
        assert all(iam_policy.size(part) <= iam_policy.MANAGED_POLICY_LIMIT for part in parts)
        assert [st for part in parts for st in part["Statement"]] == doc["Statement"]
        if iam_policy.size(doc) > iam_policy.ROLE_POLICY_LIMIT:
            assert len(parts) >= 2
    with pytest.raises(ValueError, match="MldeployUnscoped alone is"):
        iam_policy.managed_policies(policy, limit=100)


def test_iam_policy_cli_prints_managed_policies_when_over_the_inline_quota(tmp_path: Path) -> None:
    """The real CLI: a policy over 10,240 characters is printed as a JSON list of managed policies (each within
    6,144) holding the same statements, with a line saying how to create them; a small one stays one document."""
    import subprocess
    import sys

    def run(config: str) -> tuple[Any, str]:
        (tmp_path / "mldeploy.yaml").write_text(config)
        (tmp_path / "model.onnx").write_bytes(b"")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLDEPLOY_", "AWS_"))}
        proc = subprocess.run([sys.executable, "-m", "mldeploy", "iam-policy"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout), proc.stderr

    out, err = run(ALL_CONFIG)
    assert isinstance(out, list) and len(out) >= 2, err
    assert all(iam_policy.size(part) <= iam_policy.MANAGED_POLICY_LIMIT for part in out)
    err = " ".join(err.split())  # the terminal wraps the note
    assert "3 managed policies" in err or "2 managed policies" in err, err
    assert "create-policy" in err
    whole = iam_policy.policy_for(project(ALL_CONFIG))
    assert [st["Sid"] for part in out for st in part["Statement"]] == [st["Sid"] for st in whole["Statement"]]
    small, _ = run(S3_CONFIG)
    assert isinstance(small, dict) and small["Version"] == "2012-10-17"
