"""Application Load Balancer, its ip target group (health check on /ready) and listeners (HTTP, HTTPS)."""

from __future__ import annotations

from typing import Any

from mldeploy.aws.clients import call
from mldeploy.aws.context import DeployContext, tag_dict
from mldeploy.aws.plan import Action, Pending, Step, is_pending
from mldeploy.errors import AwsError

SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def _tags(ctx: DeployContext, arn: str) -> dict[str, str]:
    desc = call(ctx.aws.elbv2.describe_tags, ResourceArns=[arn])["TagDescriptions"]
    return tag_dict(desc[0]["Tags"]) if desc else {}


def describe_lb(ctx: DeployContext) -> dict | None:
    found = call(ctx.aws.elbv2.describe_load_balancers, Names=[ctx.names.load_balancer],
                 missing=("LoadBalancerNotFound",))
    return found["LoadBalancers"][0] if found else None


def describe_tg(ctx: DeployContext, name: str) -> dict | None:
    found = call(ctx.aws.elbv2.describe_target_groups, Names=[name], missing=("TargetGroupNotFound",))
    return found["TargetGroups"][0] if found else None


def _record_lb(ctx: DeployContext, lb: dict) -> None:
    ctx.outputs["alb_arn"] = lb["LoadBalancerArn"]
    ctx.outputs["alb_dns"] = lb["DNSName"]
    ctx.outputs["alb_full_name"] = lb["LoadBalancerArn"].split(":loadbalancer/", 1)[1]


def url(ctx: DeployContext) -> str:
    aws = ctx.config.aws
    if aws.certificate_arn:
        return f"https://{aws.domain or ctx.outputs.get('alb_dns')}"
    return f"http://{ctx.outputs.get('alb_dns')}"


# ------------------------------------------------------------------------------------------------ load balancer


def plan_load_balancer(ctx: DeployContext) -> list[Step]:
    name = ctx.names.load_balancer
    scheme = "internal" if ctx.config.aws.internal else "internet-facing"
    lb = describe_lb(ctx)
    elbv2 = ctx.aws.elbv2
    if lb is None:
        ctx.outputs.update(alb_arn=Pending("load balancer"), alb_dns=Pending("load balancer DNS"),
                           alb_full_name=Pending("load balancer"))

        def create(c: DeployContext) -> None:
            created = call(elbv2.create_load_balancer, Name=name, Subnets=c.outputs["subnet_ids"],
                           SecurityGroups=[c.outputs["alb_sg_id"]], Scheme=scheme, Type="application",
                           IpAddressType="ipv4", Tags=c.tag_list())["LoadBalancers"][0]
            _record_lb(c, created)

        return [Step("load balancer", name, Action.create, [scheme, f"{len(ctx.outputs['subnet_ids'])} subnets"],
                     apply=create)]
    ctx.check_owned("load balancer", name, _tags(ctx, lb["LoadBalancerArn"]))
    _record_lb(ctx, lb)
    if lb["Scheme"] != scheme:
        raise AwsError(f"load balancer {name!r} is {lb['Scheme']} but aws.internal asks for {scheme}; AWS cannot "
                       "change the scheme of a load balancer",
                       hint="run `mldeploy down` then `mldeploy up` to recreate it (the URL will change)")
    changes, actions = [], []
    sg = ctx.outputs["alb_sg_id"]
    if is_pending(sg) or lb.get("SecurityGroups") != [sg]:
        changes.append("security groups")
        actions.append(lambda c: call(elbv2.set_security_groups, LoadBalancerArn=c.outputs["alb_arn"],
                                      SecurityGroups=[c.outputs["alb_sg_id"]]))
    current_subnets = sorted(z["SubnetId"] for z in lb.get("AvailabilityZones", []))
    if current_subnets != sorted(ctx.outputs["subnet_ids"]):
        changes.append(f"subnets {len(current_subnets)} → {len(ctx.outputs['subnet_ids'])}")
        actions.append(lambda c: call(elbv2.set_subnets, LoadBalancerArn=c.outputs["alb_arn"],
                                      Subnets=c.outputs["subnet_ids"]))
    if not changes:
        return [Step("load balancer", name, Action.noop)]
    return [Step("load balancer", name, Action.update, changes, apply=lambda c: [a(c) for a in actions] and None)]


# ------------------------------------------------------------------------------------------------- target group


def target_group_settings(ctx: DeployContext) -> dict[str, Any]:
    hc = ctx.config.aws.health_check
    return {"HealthCheckPath": hc.path, "HealthCheckIntervalSeconds": hc.interval_s,
            "HealthCheckTimeoutSeconds": hc.timeout_s, "HealthyThresholdCount": hc.healthy_threshold,
            "UnhealthyThresholdCount": hc.unhealthy_threshold, "Matcher": {"HttpCode": "200"}}


def plan_target_group(ctx: DeployContext, name: str | None = None, key: str = "tg_arn") -> list[Step]:
    """Plan one ip target group (``name``: the main one by default; the release module adds the canary's)."""
    name = name or ctx.names.target_group
    port = ctx.config.runtime.port
    delay = str(ctx.config.aws.health_check.deregistration_delay_s)
    settings = target_group_settings(ctx)
    tg = describe_tg(ctx, name)
    elbv2 = ctx.aws.elbv2

    def set_delay(c: DeployContext) -> None:
        call(elbv2.modify_target_group_attributes, TargetGroupArn=c.outputs[key],
             Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": delay}])

    if tg is None:
        def create(c: DeployContext) -> None:
            created = call(elbv2.create_target_group, Name=name, Protocol="HTTP", Port=port,
                           VpcId=c.outputs["vpc_id"], TargetType="ip", HealthCheckProtocol="HTTP",
                           HealthCheckEnabled=True, Tags=c.tag_list(), **settings)["TargetGroups"][0]
            c.outputs[key] = created["TargetGroupArn"]
            set_delay(c)

        ctx.outputs[key] = Pending(f"target group {name}")
        return [Step("target group", name, Action.create,
                     [f"ip:{port}, health {settings['HealthCheckPath']}, deregistration {delay}s"], apply=create)]
    if tg["Port"] != port or tg.get("VpcId") != ctx.outputs["vpc_id"]:
        raise AwsError(f"target group {name!r} serves port {tg['Port']} in {tg.get('VpcId')}; the config asks for "
                       f"port {port} in {ctx.outputs['vpc_id']}, which AWS cannot change in place",
                       hint="run `mldeploy down` then `mldeploy up` to recreate the load balancer resources")
    ctx.check_owned("target group", name, _tags(ctx, tg["TargetGroupArn"]))
    ctx.outputs[key] = tg["TargetGroupArn"]
    changes, actions = [], []
    diff = {k: v for k, v in settings.items() if tg.get(k) != v}
    if diff:
        changes.append("health check " + ", ".join(f"{k.removeprefix('HealthCheck')}={v}" for k, v in diff.items()))
        actions.append(lambda c: call(elbv2.modify_target_group, TargetGroupArn=c.outputs[key], **settings))
    attrs = {a["Key"]: a["Value"] for a in
             call(elbv2.describe_target_group_attributes, TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
    if attrs.get("deregistration_delay.timeout_seconds") != delay:
        changes.append(f"deregistration delay {attrs.get('deregistration_delay.timeout_seconds')}s → {delay}s")
        actions.append(set_delay)
    if not changes:
        return [Step("target group", name, Action.noop)]
    return [Step("target group", name, Action.update, changes, apply=lambda c: [a(c) for a in actions] and None)]


# ---------------------------------------------------------------------------------------------------- listeners


def forward(target_groups: dict[str, int]) -> list[dict[str, Any]]:
    """A forward action; several target groups get weights (canary)."""
    if len(target_groups) == 1:
        return [{"Type": "forward", "TargetGroupArn": next(iter(target_groups))}]
    return [{"Type": "forward", "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": arn, "Weight": w} for arn, w in target_groups.items()]}}]


REDIRECT = [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]


def forwarded_to(actions: list[dict[str, Any]]) -> dict[str, int]:
    """Target group ARN → weight of a listener's forward action ({} for redirects)."""
    for a in actions:
        if a.get("Type") != "forward":
            continue
        groups = (a.get("ForwardConfig") or {}).get("TargetGroups")
        if groups:
            return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
        if a.get("TargetGroupArn"):
            return {a["TargetGroupArn"]: 1}
    return {}


def listeners(ctx: DeployContext, alb_arn: str) -> dict[int, dict]:
    return {li["Port"]: li for li in call(ctx.aws.elbv2.describe_listeners, LoadBalancerArn=alb_arn)["Listeners"]}


def traffic_listener(ctx: DeployContext) -> dict | None:
    """The listener that forwards traffic (HTTPS when a certificate is configured, else HTTP)."""
    lb = describe_lb(ctx)
    if lb is None:
        return None
    return listeners(ctx, lb["LoadBalancerArn"]).get(443 if ctx.config.aws.certificate_arn else 80)


def set_weights(ctx: DeployContext, weights: dict[str, int]) -> None:
    """Point the traffic listener at ``{target group ARN: weight}`` (canary / promote / rollback)."""
    li = traffic_listener(ctx)
    if li is None:
        raise AwsError(f"load balancer {ctx.names.load_balancer!r} has no listener", hint="run `mldeploy up` first")
    call(ctx.aws.elbv2.modify_listener, ListenerArn=li["ListenerArn"], DefaultActions=forward(weights))


def plan_listeners(ctx: DeployContext) -> list[Step]:
    cert = ctx.config.aws.certificate_arn
    alb = ctx.outputs["alb_arn"]
    current = {} if is_pending(alb) else listeners(ctx, alb)
    elbv2 = ctx.aws.elbv2
    steps: list[Step] = []
    name = ctx.names.load_balancer

    def desired(port: int, c: DeployContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if port == 80 and cert:
            return REDIRECT, {"Protocol": "HTTP"}
        extra: dict[str, Any] = {"Protocol": "HTTPS", "SslPolicy": SSL_POLICY,
                                 "Certificates": [{"CertificateArn": cert}]} if port == 443 else {"Protocol": "HTTP"}
        return forward({c.outputs["tg_arn"]: 1}), extra

    for port in (80, 443) if cert else (80,):
        li = current.get(port)
        label = f"{name}:{port}"
        what = "HTTP → HTTPS redirect" if (port == 80 and cert) else f"{'HTTPS' if port == 443 else 'HTTP'} → forward"

        def create(c: DeployContext, port: int = port) -> None:
            actions, extra = desired(port, c)
            call(elbv2.create_listener, LoadBalancerArn=c.outputs["alb_arn"], Port=port, DefaultActions=actions,
                 Tags=c.tag_list(), **extra)

        if li is None:
            steps.append(Step("listener", label, Action.create, [what], apply=create))
            continue
        changes = []
        tg = ctx.outputs["tg_arn"]
        if port == 80 and cert:
            if li["DefaultActions"][0].get("Type") != "redirect":
                changes.append("redirect HTTP → HTTPS")
        else:
            weights = forwarded_to(li["DefaultActions"])
            # a running canary (weights over several groups including ours) is the release commands' business
            if is_pending(tg) or tg not in weights:
                changes.append("forward to " + ctx.names.target_group)
            if port == 443 and [x["CertificateArn"] for x in li.get("Certificates", [])][:1] != [cert]:
                changes.append("certificate")
        if li.get("Protocol") != ("HTTPS" if port == 443 else "HTTP"):
            changes.append(f"protocol {li.get('Protocol')}")
        if not changes:
            steps.append(Step("listener", label, Action.noop))
            continue

        def update(c: DeployContext, port: int = port, arn: str = li["ListenerArn"]) -> None:
            actions, extra = desired(port, c)
            call(elbv2.modify_listener, ListenerArn=arn, DefaultActions=actions, **extra)

        steps.append(Step("listener", label, Action.update, changes, apply=update))
    for port, li in current.items():
        if port not in ((80, 443) if cert else (80,)):
            steps.append(Step("listener", f"{name}:{port}", Action.delete, ["not configured"],
                              apply=lambda c, arn=li["ListenerArn"]: call(elbv2.delete_listener, ListenerArn=arn)))
    return steps


# Paths the server answers but the internet should not see: Prometheus metrics (model versions, traffic).
# A listener rule answers them with a fixed 404 at the ALB; ECS health checks and scrapers inside the VPC
# still reach the tasks directly.
PRIVATE_PATHS = ["/metrics", "/metrics/*"]
PRIVATE_RULE_PRIORITY = 1
PRIVATE_RESPONSE = {"Type": "fixed-response", "FixedResponseConfig": {
    "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "Not Found"}}


def _private_rule(ctx: DeployContext, listener_arn: str) -> dict | None:
    for rule in call(ctx.aws.elbv2.describe_rules, ListenerArn=listener_arn)["Rules"]:
        for cond in rule.get("Conditions", []):
            values = cond.get("Values") or (cond.get("PathPatternConfig") or {}).get("Values") or []
            if cond.get("Field") == "path-pattern" and sorted(values) == sorted(PRIVATE_PATHS):
                return rule
    return None


def plan_private_paths(ctx: DeployContext) -> list[Step]:
    """A rule on the traffic listener that keeps ``/metrics`` off the internet."""
    label = f"{ctx.names.load_balancer}: {', '.join(PRIVATE_PATHS)} → 404"
    li = None if is_pending(ctx.outputs["alb_arn"]) else traffic_listener(ctx)
    if li is not None and _private_rule(ctx, li["ListenerArn"]) is not None:
        return [Step("listener rule", label, Action.noop)]

    def create(c: DeployContext) -> None:
        listener = traffic_listener(c)  # created earlier in this apply when new
        if listener is None:
            raise AwsError(f"load balancer {c.names.load_balancer!r} has no traffic listener")
        call(c.aws.elbv2.create_rule, ListenerArn=listener["ListenerArn"], Priority=PRIVATE_RULE_PRIORITY,
             Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": PRIVATE_PATHS}}],
             Actions=[PRIVATE_RESPONSE], Tags=c.tag_list())

    return [Step("listener rule", label, Action.create, ["keep Prometheus metrics private"], apply=create)]


# ------------------------------------------------------------------------------------------------------ delete


def delete_load_balancer(ctx: DeployContext) -> bool:
    lb = describe_lb(ctx)
    if lb is None:
        return False
    if _tags(ctx, lb["LoadBalancerArn"]).get("mldeploy:app") != ctx.names.app:
        return False
    for li in listeners(ctx, lb["LoadBalancerArn"]).values():
        call(ctx.aws.elbv2.delete_listener, ListenerArn=li["ListenerArn"], missing=("ListenerNotFound",))
    call(ctx.aws.elbv2.delete_load_balancer, LoadBalancerArn=lb["LoadBalancerArn"])
    return True


def delete_target_group(ctx: DeployContext, name: str) -> bool:
    tg = describe_tg(ctx, name)
    if tg is None or _tags(ctx, tg["TargetGroupArn"]).get("mldeploy:app") != ctx.names.app:
        return False
    call(ctx.aws.elbv2.delete_target_group, TargetGroupArn=tg["TargetGroupArn"], missing=("TargetGroupNotFound",))
    return True
