"""The load balancer's listeners (HTTP, and HTTPS with a certificate), the ``/metrics`` 404 rule, canary weights.

The *traffic listener* is the one that forwards: 443 with HTTPS (80 then redirects), else 80. HTTPS is on with
``aws.certificate_arn``, or with ``aws.domain`` alone, using the certificate the ``certificate`` family requests
(``known["certificate_arn"]``, planned before the listeners).
``known`` values: reads ``alb_arn``, ``tg_arn`` (and ``canary.tg_arn`` for weights), ``certificate_arn``; writes
``listener_arn`` (the traffic listener; a ``Ref`` to ``create_listener``'s output when this plan creates it).

``up`` creates the forward to the stable target group and leaves a running canary's weighted forward alone (as
long as it still includes the stable group); ``canary``/``promote``/``rollback`` change the split with
``plan_weights``.
"""

from __future__ import annotations

from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Ref, Step, is_unknown, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec
from mldeploy.aws.resources import certificate, load_balancer, target_group
from mldeploy.errors import AwsError

KIND = "listener"
RULE_KIND = "listener rule"
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
REDIRECT = [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]

# Paths the server answers but the internet should not see: Prometheus metrics (model versions, traffic).
# A listener rule answers them with a fixed 404 at the ALB; ECS health checks and scrapers inside the VPC
# still reach the tasks directly.
PRIVATE_PATHS = ["/metrics", "/metrics/*"]
PRIVATE_RULE_PRIORITY = 1
PRIVATE_RESPONSE = {"Type": "fixed-response", "FixedResponseConfig": {
    "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "Not Found"}}


# ------------------------------------------------------------------------------------------------- reading


def tg_name(arn: str) -> str:
    """``arn:…:targetgroup/NAME/ID`` → NAME."""
    return arn.split(":targetgroup/", 1)[-1].split("/", 1)[0]


def forwarded_to(actions: list[dict[str, Any]]) -> dict[str, int]:
    """Target group ARN → weight of a listener's forward action ({} for a redirect or fixed response)."""
    for a in actions:
        if a.get("Type") != "forward":
            continue
        groups = (a.get("ForwardConfig") or {}).get("TargetGroups")
        if groups:
            return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
        if a.get("TargetGroupArn"):
            return {a["TargetGroupArn"]: 1}
    return {}


def traffic_port(spec: StackSpec) -> int:
    return 443 if certificate.https(spec) else 80


def ports(spec: StackSpec) -> tuple[int, ...]:
    return (80, 443) if certificate.https(spec) else (80,)


def certificate_arn(spec: StackSpec, known: Known) -> Any:
    """The HTTPS listener's certificate: ``aws.certificate_arn``, else the one ``certificate.plan`` put in ``known``
    (None without HTTPS)."""
    if not certificate.https(spec):
        return None
    arn = spec.config.aws.certificate_arn or known.get(certificate.KEY)
    if arn is None:
        raise AwsError(f"no certificate for {spec.config.aws.domain}: the certificate family was not planned",
                       hint="plan the listeners with engine.stack.plan_up (certificate before listeners)")
    return arn


def read(remote: Remote, alb_arn: str) -> dict[int, dict]:
    """The load balancer's listeners by port."""
    found = remote.get("elbv2", "describe_listeners", LoadBalancerArn=alb_arn, missing=("LoadBalancerNotFound",))
    return {li["Port"]: li for li in (found or {}).get("Listeners", [])}


def _alb_arn(spec: StackSpec, remote: Remote, known: Known) -> Any:
    """``known["alb_arn"]`` when an earlier planner set it, else the existing load balancer's (None when absent)."""
    if "alb_arn" in known:
        return known["alb_arn"]
    lb = load_balancer.read(spec, remote)
    return lb["LoadBalancerArn"] if lb else None


def traffic_listener(spec: StackSpec, remote: Remote, known: Known) -> dict | None:
    """The existing listener that forwards traffic (None when it or the load balancer does not exist yet)."""
    alb = _alb_arn(spec, remote, known)
    if alb is None or is_unknown(alb):
        return None
    return read(remote, alb).get(traffic_port(spec))


def _label(spec: StackSpec, port: int) -> str:
    return f"{spec.names.load_balancer}:{port}"


# ------------------------------------------------------------------------------------------------ listeners


def forward(tg_arn: Any) -> list[dict[str, Any]]:
    """A plain forward to one target group (the ARN may be a ``Ref``)."""
    return [{"Type": "forward", "TargetGroupArn": tg_arn}]


def _protocol(port: int) -> dict[str, Any]:
    return {"Protocol": "HTTPS" if port == 443 else "HTTP"}


def _tls(cert: Any) -> dict[str, Any]:
    return {"SslPolicy": SSL_POLICY, "Certificates": [{"CertificateArn": cert}]}


def _desired_actions(spec: StackSpec, port: int, tg: Any) -> list[dict[str, Any]]:
    return REDIRECT if (port == 80 and certificate.https(spec)) else forward(tg)


def _delete_call(li: dict) -> ApiCall:
    return ApiCall("elbv2", "delete_listener", {"ListenerArn": li["ListenerArn"]}, missing=("ListenerNotFound",))


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """The configured listeners (create, update, delete extra ports); sets ``known["listener_arn"]``."""
    alb, tg = known["alb_arn"], known["tg_arn"]
    current = {} if is_unknown(alb) else read(remote, alb)
    wanted = ports(spec)
    traffic = traffic_port(spec)
    cert = certificate_arn(spec, known)
    steps: list[Step] = []
    for port in wanted:
        li = current.get(port)
        label = _label(spec, port)
        redirect = port == 80 and cert is not None
        tls = _tls(cert) if port == 443 else {}
        actions = _desired_actions(spec, port, tg)
        if li is None:
            if port == traffic:
                known["listener_arn"] = Ref("listener_arn")
            what = "HTTP → HTTPS redirect" if redirect else f"{_protocol(port)['Protocol']} → forward"
            steps.append(Step(KIND, label, Action.create, [what], calls=[
                ApiCall("elbv2", "create_listener", {
                    "LoadBalancerArn": alb, "Port": port, **_protocol(port), **tls, "DefaultActions": actions,
                    "Tags": spec.tag_list()},
                    outputs=(("listener_arn", "Listeners[0].ListenerArn"),) if port == traffic else ())]))
            continue
        if port == traffic:
            known["listener_arn"] = li["ListenerArn"]
        changes: list[str] = []
        params: dict[str, Any] = {"ListenerArn": li["ListenerArn"]}
        if redirect:
            if (li.get("DefaultActions") or [{}])[0].get("Type") != "redirect":
                changes.append("redirect HTTP → HTTPS")
                params["DefaultActions"] = actions
        # a running canary (a weighted forward over several groups, ours among them) is the release commands'
        # business: only a forward that leaves our target group out is replaced
        elif is_unknown(tg) or tg not in forwarded_to(li.get("DefaultActions", [])):
            changes.append(f"forward to {spec.names.target_group}")
            params["DefaultActions"] = actions
        if port == 443 and (is_unknown(cert) or [c["CertificateArn"] for c in li.get("Certificates", [])][:1]
                            != [cert]):
            changes.append("certificate")
            params.update(tls)
        if li.get("Protocol") != _protocol(port)["Protocol"]:
            changes.append(f"protocol {li.get('Protocol')} → {_protocol(port)['Protocol']}")
            params.update(_protocol(port), **tls)
        if not changes:
            steps.append(noop(KIND, label))
            continue
        # "Any properties that you do not specify remain unchanged" (ELBv2 API reference, ModifyListener): only
        # what changed is sent, so fixing a certificate keeps a running canary's weights
        steps.append(Step(KIND, label, Action.update, changes, calls=[ApiCall("elbv2", "modify_listener", params)]))
    for port, li in sorted(current.items()):
        if port not in wanted:
            steps.append(Step(KIND, _label(spec, port), Action.delete, ["not configured"],
                              calls=[_delete_call(li)]))
    return steps


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Every listener of our load balancer (target groups cannot be deleted while a listener forwards to them)."""
    lb = load_balancer.read(spec, remote)
    if lb is None or not spec.owns(load_balancer.tags(remote, lb["LoadBalancerArn"])):
        return []
    return [Step(KIND, _label(spec, port), Action.delete, calls=[_delete_call(li)])
            for port, li in sorted(read(remote, lb["LoadBalancerArn"]).items())]


# ------------------------------------------------------------------------------------------- private paths


def _private_rule(remote: Remote, listener_arn: str) -> dict | None:
    for rule in remote.get("elbv2", "describe_rules", ListenerArn=listener_arn)["Rules"]:
        for cond in rule.get("Conditions", []):
            values = cond.get("Values") or (cond.get("PathPatternConfig") or {}).get("Values") or []
            if cond.get("Field") == "path-pattern" and sorted(values) == sorted(PRIVATE_PATHS):
                return rule
    return None


def private_label(spec: StackSpec) -> str:
    return f"{spec.names.load_balancer}: {', '.join(PRIVATE_PATHS)} → 404"


def plan_private_paths(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """A rule on the traffic listener (``known["listener_arn"]``) that keeps ``/metrics`` off the internet."""
    arn = known["listener_arn"]
    label = private_label(spec)
    if not is_unknown(arn) and _private_rule(remote, arn) is not None:
        return [noop(RULE_KIND, label)]
    return [Step(RULE_KIND, label, Action.create, ["keep Prometheus metrics private"], calls=[
        ApiCall("elbv2", "create_rule", {
            "ListenerArn": arn, "Priority": PRIVATE_RULE_PRIORITY,
            "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": PRIVATE_PATHS}}],
            "Actions": [PRIVATE_RESPONSE], "Tags": spec.tag_list()})])]


def delete_private_paths(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Nothing: "When you delete a listener, all its rules are deleted" (ALB guide, Delete a listener rule)."""
    return []


# ------------------------------------------------------------------------------------------- canary weights


def read_weights(spec: StackSpec, remote: Remote, known: Known) -> dict[str, int]:
    """Target-group NAME → weight on the traffic listener ({} without one, or when it does not forward)."""
    li = traffic_listener(spec, remote, known)
    if li is None:
        return {}
    return {tg_name(arn): w for arn, w in forwarded_to(li.get("DefaultActions", [])).items()}


def _tg_arn(spec: StackSpec, remote: Remote, known: Known) -> Any:
    """``known[spec.key("tg_arn")]`` (possibly a ``Ref``), else the existing group's ARN, else None."""
    if spec.key("tg_arn") in known:
        return known[spec.key("tg_arn")]
    tg = target_group.read(spec, remote)
    return tg["TargetGroupArn"] if tg else None


def plan_weights(spec: StackSpec, remote: Remote, known: Known, canary_percent: int | None) -> list[Step]:
    """Make the traffic listener forward (100−N) % / N % to the stable / canary target groups.

    ``None`` forwards everything to the stable group alone (as ``up`` creates it); a no-op step when the listener
    already does what is asked. The listener's other (non-forward) actions are kept.
    """
    stable, canary = spec.as_role("stable"), spec.as_role("canary")
    li = traffic_listener(spec, remote, known)
    if li is None:
        raise AwsError(f"load balancer {spec.names.load_balancer!r} has no listener on port {traffic_port(spec)}",
                       hint="run `mldeploy up` first")
    label = _label(spec, li["Port"])
    stable_arn = _tg_arn(stable, remote, known)
    if stable_arn is None:
        raise AwsError(f"target group {stable.target_group_name!r} does not exist", hint="run `mldeploy up` first")
    current_actions = li.get("DefaultActions", [])
    current = forwarded_to(current_actions)
    if canary_percent is None:
        if not is_unknown(stable_arn) and set(current) == {stable_arn}:
            return [noop(KIND, label)]
        action: dict[str, Any] = {"Type": "forward", "TargetGroupArn": stable_arn}
        change = f"forward 100% to {stable.target_group_name}"
    else:
        # a weight is 0–999 ("The range is 0 to 999", ELBv2 API reference, TargetGroupTuple.Weight): percentages
        # fit, and 100−N / N keep the split readable in the console
        if not 0 <= canary_percent <= 100:
            raise AwsError(f"canary percent must be between 0 and 100, not {canary_percent}")
        canary_arn = _tg_arn(canary, remote, known)
        if canary_arn is None:
            raise AwsError(f"target group {canary.target_group_name!r} does not exist",
                           hint="plan it with target_group.plan for the canary role first")
        weights = {stable_arn: 100 - canary_percent, canary_arn: canary_percent}
        if not is_unknown([stable_arn, canary_arn]) and current == weights:
            return [noop(KIND, label)]
        # ForwardConfig is how a forward action routes to several target groups (ELBv2 API reference, Action)
        action = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": arn, "Weight": w} for arn, w in weights.items()]}}
        change = (f"forward {100 - canary_percent}% to {stable.target_group_name}, "
                  f"{canary_percent}% to {canary.target_group_name}")
    others = [a for a in current_actions if a.get("Type") != "forward"]
    if others:
        # "Order … is required for rules with multiple actions"; the routing action must be the last one
        # (ELBv2 API reference, Action)
        action["Order"] = max(int(a.get("Order", 0)) for a in others) + 1
    return [Step(KIND, label, Action.update, [change], calls=[
        ApiCall("elbv2", "modify_listener", {"ListenerArn": li["ListenerArn"], "DefaultActions": [*others, action]})])]
