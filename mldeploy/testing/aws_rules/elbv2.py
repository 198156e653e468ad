"""Elastic Load Balancing v2 rules: ALB / target group names, subnets, health checks, forward actions, tags."""

from __future__ import annotations

import re

from mldeploy.testing.aws_rules.core import Call, as_int, in_range, reject, rule

_ELB_NAME = re.compile(r"[A-Za-z0-9-]{1,32}")


def _elb_name(kind: str, name: str) -> None:
    if len(name) > 32:
        reject("ValidationError", f"{kind} name cannot be longer than '32' characters: {name!r}")
    if not _ELB_NAME.fullmatch(name):
        reject("ValidationError", f"{kind} name {name!r} can only contain characters that are alphanumeric "
                                  "characters or hyphens(-)")
    if name.startswith("-") or name.endswith("-"):
        reject("ValidationError", f"{kind} name {name!r} cannot begin or end with '-' character")


@rule("elbv2", "CreateLoadBalancer")
def lb_name(call: Call) -> None:
    # botocore elbv2 CreateLoadBalancerInput.Name: "can have a maximum of 32 characters, must contain only
    # alphanumeric characters or hyphens, must not begin or end with a hyphen, and must not begin with "internal-"".
    name = call.params.get("Name", "")
    _elb_name("LoadBalancer", name)
    if name.startswith("internal-"):
        reject("ValidationError", f"LoadBalancer name {name!r} cannot begin with 'internal-'")


@rule("elbv2", "CreateTargetGroup")
def tg_name(call: Call) -> None:
    # botocore elbv2 CreateTargetGroupInput.Name: "can have a maximum of 32 characters, must contain only
    # alphanumeric characters or hyphens, and must not begin or end with a hyphen".
    _elb_name("Target group", call.params.get("Name", ""))


@rule("elbv2", "CreateLoadBalancer", "SetSubnets")
def lb_subnets(call: Call) -> None:
    # botocore elbv2 CreateLoadBalancerInput.Subnets / SubnetMappings and SetSubnetsInput.Subnets: "You can specify
    # only one subnet per Availability Zone." "[Application Load Balancers] You must specify subnets from at least
    # two Availability Zones." ALB guide (application-load-balancers.html, "Subnets for your load balancer"): "You
    # must select at least two Availability Zone subnets ... Each subnet must be from a different Availability Zone".
    p = call.params
    if p.get("Type", "application") != "application" and call.op == "CreateLoadBalancer":
        return
    subnets = list(p.get("Subnets") or []) + [m["SubnetId"] for m in p.get("SubnetMappings") or [] if "SubnetId" in m]
    if call.op == "SetSubnets":
        lbs = call.client("elbv2").describe_load_balancers(LoadBalancerArns=[p["LoadBalancerArn"]])["LoadBalancers"]
        if lbs and lbs[0].get("Type") != "application":
            return
    if not subnets:
        return
    found = call.client("ec2").describe_subnets(SubnetIds=subnets)["Subnets"]
    zones = [s["AvailabilityZone"] for s in found]
    if len(set(zones)) < len(zones):
        reject("InvalidConfigurationRequest",
               "A load balancer cannot be attached to multiple subnets in the same Availability Zone")
    if len(set(zones)) < 2:
        reject("ValidationError", "At least two subnets in two different Availability Zones must be specified")


@rule("elbv2", "CreateTargetGroup", "ModifyTargetGroup")
def tg_health_check(call: Call) -> None:
    # botocore elbv2 CreateTargetGroupInput: HealthCheckIntervalSeconds "The range is 5-300",
    # HealthCheckTimeoutSeconds "The range is 2–120 seconds", HealthyThresholdCount / UnhealthyThresholdCount
    # "The range is 2-10". Interval vs timeout: AWS answers "ValidationError: Health check interval must be greater
    # than the timeout." (hashicorp/terraform-provider-aws#48071, aws/aws-cdk#29075 quoting the API error).
    p = call.params
    in_range("ValidationError", "HealthCheckIntervalSeconds", p.get("HealthCheckIntervalSeconds"), 5, 300)
    in_range("ValidationError", "HealthCheckTimeoutSeconds", p.get("HealthCheckTimeoutSeconds"), 2, 120)
    in_range("ValidationError", "HealthyThresholdCount", p.get("HealthyThresholdCount"), 2, 10)
    in_range("ValidationError", "UnhealthyThresholdCount", p.get("UnhealthyThresholdCount"), 2, 10)
    interval, timeout = as_int(p.get("HealthCheckIntervalSeconds")), as_int(p.get("HealthCheckTimeoutSeconds"))
    if call.op == "ModifyTargetGroup" and (interval is None) != (timeout is None):
        tg = call.client("elbv2").describe_target_groups(TargetGroupArns=[p["TargetGroupArn"]])["TargetGroups"][0]
        interval = interval if interval is not None else tg.get("HealthCheckIntervalSeconds")
        timeout = timeout if timeout is not None else tg.get("HealthCheckTimeoutSeconds")
    if interval is not None and timeout is not None and interval <= timeout:
        reject("ValidationError", "Health check interval must be greater than the timeout.")


@rule("elbv2", "CreateTargetGroup")
def tg_matcher(call: Call) -> None:
    # botocore elbv2 Matcher.HttpCode: "For Application Load Balancers, you can specify values between 200 and 499".
    code = (call.params.get("Matcher") or {}).get("HttpCode")
    if code and call.params.get("Protocol", "HTTP") in ("HTTP", "HTTPS"):
        for part in re.split(r"[,-]", code):
            if not part.isdigit() or not 200 <= int(part) <= 499:
                reject("ValidationError", f"Health check matcher HTTP code '{code}' must be within '200-499'")


@rule("elbv2", "CreateListener", "ModifyListener", "CreateRule", "ModifyRule")
def forward_actions(call: Call) -> None:
    # botocore elbv2 TargetGroupTuple.Weight: "The weight. The range is 0 to 999." Terraform
    # internal/service/elbv2/listener.go: forward.target_group MinItems 1, MaxItems 5, weight IntBetween(0, 999).
    # botocore elbv2 Action.ForwardConfig: "If you specify both ForwardConfig and TargetGroupArn, you can specify
    # only one target group using ForwardConfig and it must be the same target group specified in TargetGroupArn."
    for action in call.params.get("DefaultActions") or call.params.get("Actions") or []:
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
        if groups is None:
            continue
        if not 1 <= len(groups) <= 5:
            reject("ValidationError", f"A forward action can have 1 to 5 target groups; got {len(groups)}")
        for g in groups:
            if g.get("Weight") is not None and not 0 <= int(g["Weight"]) <= 999:
                reject("ValidationError", f"Target group weight must be between 0 and 999; got {g['Weight']}")
        arn = action.get("TargetGroupArn")
        if arn and (len(groups) != 1 or groups[0].get("TargetGroupArn") != arn):
            reject("ValidationError", "You cannot specify both TargetGroupArn and a different or multiple target "
                                      "groups in ForwardConfig")


@rule("elbv2", "CreateLoadBalancer", "CreateTargetGroup", "CreateListener", "CreateRule", "AddTags")
def elb_tags(call: Call) -> None:
    # ALB guide (load-balancer-tags.html / target-group-tags.html, "Tag restrictions"): "Maximum number of tags per
    # resource—50"; botocore elbv2 Tag.Key max 128 / Tag.Value max 256 (checked by the model limits).
    tags = call.params.get("Tags") or []
    if len(tags) > 50:
        reject("TooManyTags", f"The quota for the number of tags that can be assigned to a resource is 50; "
                              f"got {len(tags)}")
    keys = [t.get("Key") for t in tags]
    if len(set(keys)) < len(keys):
        # botocore elbv2 CreateLoadBalancer error shapes: DuplicateTagKeysException "A tag key was specified more
        # than once."
        reject("DuplicateTagKeys", "A tag key was specified more than once.")
