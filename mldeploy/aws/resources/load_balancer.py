"""The Application Load Balancer (internet-facing or internal) in the resolved subnets, behind the ALB security group.

``known`` values: reads ``alb_subnet_ids`` (``network.resolve``; the task ``subnet_ids`` when absent), ``alb_sg_id``;
writes ``alb_arn``, ``alb_dns`` (``Ref``s to
``create_load_balancer``'s response when this plan creates it) and ``alb_full_name`` (``app/NAME/ID``, the
CloudWatch ``LoadBalancer`` dimension, derived with ``after`` so it also works for a new load balancer).
"""

from __future__ import annotations

import math
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Fn, Ref, Step, after, is_unknown, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict
from mldeploy.errors import AwsError

KIND = "load balancer"


def read(spec: StackSpec, remote: Remote) -> dict | None:
    found = remote.get("elbv2", "describe_load_balancers", Names=[spec.names.load_balancer],
                       missing=("LoadBalancerNotFound",))
    return found["LoadBalancers"][0] if found and found["LoadBalancers"] else None


def tags(remote: Remote, arn: str) -> dict[str, str]:
    """The tags of an ELBv2 resource (load balancer, target group, listener)."""
    desc = remote.get("elbv2", "describe_tags", ResourceArns=[arn])["TagDescriptions"]
    return tag_dict(desc[0]["Tags"]) if desc else {}


def scheme(spec: StackSpec) -> str:
    return "internal" if spec.config.aws.internal else "internet-facing"


def url(spec: StackSpec, known: Known) -> Any:
    """The service URL: ``https://`` the domain (or the ALB's DNS name) with a certificate, else ``http://`` the DNS
    name; an ``Fn`` while ``known["alb_dns"]`` is not known yet."""
    aws = spec.config.aws
    proto = "https" if spec.https else "http"
    host = (aws.domain if spec.https else None) or known.get("alb_dns")
    if is_unknown(host):
        return Fn("format", (proto + "://{host}",), (("host", host),))
    return f"{proto}://{host}"


DEFAULT_IDLE_TIMEOUT_S = 60
"""botocore elbv2 LoadBalancerAttribute.Key: "idle_timeout.timeout_seconds - The idle timeout value, in seconds. The
valid range is 1-4000 seconds. The default is 60 seconds." """
IDLE_MARGIN_S = 5
IDLE_TIMEOUT_KEY = "idle_timeout.timeout_seconds"


def idle_timeout(spec: StackSpec) -> int | None:
    """The ALB idle timeout ``runtime.request_timeout_s`` needs, or None when AWS's default of 60 s is enough.

    The ALB closes a connection on which nothing moved for the idle timeout and answers 504 (ALB guide, "Idle
    timeout"); a slow prediction sends nothing until it is done, so the timeout must exceed the request's own, with a
    margin for the server's 504 to arrive first.
    """
    wanted = math.ceil(spec.config.runtime.request_timeout_s) + IDLE_MARGIN_S
    return wanted if wanted > DEFAULT_IDLE_TIMEOUT_S else None


def _idle_call(arn: Any, seconds: int) -> ApiCall:
    return ApiCall("elbv2", "modify_load_balancer_attributes", {
        "LoadBalancerArn": arn, "Attributes": [{"Key": IDLE_TIMEOUT_KEY, "Value": str(seconds)}]})


def _record(known: Known, arn: Any, dns: Any) -> None:
    known["alb_arn"] = arn
    known["alb_dns"] = dns
    known["alb_full_name"] = after(arn, ":loadbalancer/")


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    name = spec.names.load_balancer
    want = scheme(spec)
    subnets, sg = known.get("alb_subnet_ids", known["subnet_ids"]), known["alb_sg_id"]
    idle = idle_timeout(spec)
    lb = read(spec, remote)
    if lb is None:
        _record(known, Ref("alb_arn"), Ref("alb_dns"))
        calls = [ApiCall("elbv2", "create_load_balancer", {
            "Name": name, "Subnets": subnets, "SecurityGroups": [sg], "Scheme": want, "Type": "application",
            "IpAddressType": "ipv4", "Tags": spec.tag_list()},
            outputs=(("alb_arn", "LoadBalancers[0].LoadBalancerArn"), ("alb_dns", "LoadBalancers[0].DNSName")))]
        changes = [want, f"{len(subnets)} subnets"]
        if idle is not None:
            changes.append(f"idle timeout {idle}s (runtime.request_timeout_s)")
            calls.append(_idle_call(Ref("alb_arn"), idle))
        return [Step(KIND, name, Action.create, changes, calls=calls)]
    arn = lb["LoadBalancerArn"]
    spec.check_owned("load balancer", name, tags(remote, arn))
    _record(known, arn, lb["DNSName"])
    if lb["Scheme"] != want:
        raise AwsError(f"load balancer {name!r} is {lb['Scheme']} but aws.internal asks for {want}; AWS cannot "
                       "change the scheme of a load balancer",
                       hint="run `mldeploy down` then `mldeploy up` to recreate it (the URL will change)")
    changes, calls = [], []
    if is_unknown(sg) or lb.get("SecurityGroups") != [sg]:
        changes.append("security groups")
        calls.append(ApiCall("elbv2", "set_security_groups", {"LoadBalancerArn": arn, "SecurityGroups": [sg]}))
    current = sorted(z["SubnetId"] for z in lb.get("AvailabilityZones", []))
    if current != sorted(subnets):
        changes.append(f"subnets {len(current)} → {len(subnets)}")
        calls.append(ApiCall("elbv2", "set_subnets", {"LoadBalancerArn": arn, "Subnets": subnets}))
    if idle is not None:  # only then: the attribute is left at AWS's default otherwise (no describe call)
        attrs = remote.get("elbv2", "describe_load_balancer_attributes", LoadBalancerArn=arn)["Attributes"]
        current = next((a["Value"] for a in attrs if a["Key"] == IDLE_TIMEOUT_KEY), str(DEFAULT_IDLE_TIMEOUT_S))
        if current != str(idle):
            changes.append(f"idle timeout {current}s → {idle}s")
            calls.append(_idle_call(arn, idle))
    if not changes:
        return [noop(KIND, name)]
    return [Step(KIND, name, Action.update, changes, calls=calls)]


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """The load balancer when tagged ours (``listener.delete`` runs first; deleting it would remove them anyway)."""
    lb = read(spec, remote)
    if lb is None or not spec.owns(tags(remote, lb["LoadBalancerArn"])):
        return []
    # "If the load balancer does not exist or has already been deleted, the call succeeds" (ELBv2 API reference,
    # DeleteLoadBalancer); LoadBalancerNotFound is tolerated all the same
    return [Step(KIND, spec.names.load_balancer, Action.delete, calls=[
        ApiCall("elbv2", "delete_load_balancer", {"LoadBalancerArn": lb["LoadBalancerArn"]},
                missing=("LoadBalancerNotFound",))])]
