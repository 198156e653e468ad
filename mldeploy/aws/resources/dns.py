"""Route 53 for ``aws.domain``: the hosted zone that holds it, and the alias A record to the load balancer.

The zone is ``aws.hosted_zone_id`` or the public hosted zone with the longest name the domain ends with
(``api.example.com`` → ``example.com`` unless ``api.example.com`` is a zone of its own). ``known`` values: reads
``alb_arn``, ``alb_dns``; writes ``hosted_zone_id``/``hosted_zone_name`` (also read by ``certificate``).

Route 53 records carry no tags, so ownership is by target: an A alias to a load balancer of ours (its DNS name
starts with our load balancer's name) is ours to update or delete; any other record at the domain is refused.
"""

from __future__ import annotations

from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Ref, Step, is_unknown, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec
from mldeploy.errors import AwsError

KIND = "dns record"
ZONE_KEY, ZONE_NAME_KEY = "hosted_zone_id", "hosted_zone_name"


def fqdn(name: str) -> str:
    """Lower case with the trailing dot, as Route 53 answers record and zone names."""
    return name.lower().rstrip(".") + "."


def _zone_id(raw: str) -> str:
    return raw.rsplit("/", 1)[-1]


def find_zone(spec: StackSpec, remote: Remote) -> tuple[str, str] | None:
    """(zone id, zone name) for ``aws.domain``: the configured zone, else the longest public zone name the domain
    ends with; None when there is none."""
    aws = spec.config.aws
    domain = fqdn(aws.domain or "")
    if aws.hosted_zone_id:
        found = remote.get("route53", "get_hosted_zone", Id=_zone_id(aws.hosted_zone_id), missing=("NoSuchHostedZone",))
        if not found:
            raise AwsError(f"aws.hosted_zone_id {aws.hosted_zone_id!r} does not exist in this account",
                           hint="check the id in the Route 53 console, or remove it to look the zone up by name")
        name = fqdn(found["HostedZone"]["Name"])
        if not (domain == name or domain.endswith("." + name)):
            raise AwsError(f"aws.domain {aws.domain!r} is not inside hosted zone {name} ({aws.hosted_zone_id})",
                           hint="set aws.hosted_zone_id to the zone that holds the domain, or remove it")
        return _zone_id(found["HostedZone"]["Id"]), name
    zones = [z for z in remote.pages("route53", "list_hosted_zones", "HostedZones")
             if not (z.get("Config") or {}).get("PrivateZone")]
    matching = [z for z in zones if domain == fqdn(z["Name"]) or domain.endswith("." + fqdn(z["Name"]))]
    if not matching:
        return None
    best = max(matching, key=lambda z: len(fqdn(z["Name"])))
    return _zone_id(best["Id"]), fqdn(best["Name"])


def zone(spec: StackSpec, remote: Remote, known: Known) -> str | None:
    """The zone id (looked up once per plan and kept in ``known``); None without a domain or a zone."""
    if not spec.config.aws.domain:
        return None
    if ZONE_KEY not in known:
        found = find_zone(spec, remote)
        known[ZONE_KEY], known[ZONE_NAME_KEY] = found if found else (None, None)
    return known[ZONE_KEY]


def no_zone_error(spec: StackSpec) -> AwsError:
    return AwsError(f"no public Route 53 hosted zone holds aws.domain {spec.config.aws.domain!r}, so mldeploy cannot "
                    "validate an ACM certificate for it nor point it at the load balancer",
                    hint="create a public hosted zone for the domain (or its parent), set aws.hosted_zone_id, or "
                         "set aws.certificate_arn to a certificate you manage and point the name at the ALB yourself")


def notes(spec: StackSpec, remote: Remote, known: Known) -> list[str]:
    """Plan notes: a domain without a zone (only possible with ``certificate_arn``) is not pointed at the ALB."""
    if spec.config.aws.domain and zone(spec, remote, known) is None:
        return [f"no Route 53 hosted zone holds {spec.config.aws.domain}: point it at the load balancer's DNS name "
                "yourself (a CNAME or your DNS provider's alias)"]
    return []


def records(remote: Remote, zone_id: str, name: str, type_: str) -> list[dict[str, Any]]:
    """The record sets named ``name`` of type ``type_`` in the zone."""
    found = remote.get("route53", "list_resource_record_sets", HostedZoneId=zone_id, StartRecordName=fqdn(name),
                       StartRecordType=type_, MaxItems="10", missing=("NoSuchHostedZone",))
    return [r for r in (found or {}).get("ResourceRecordSets", [])
            if fqdn(r["Name"]) == fqdn(name) and r["Type"] == type_]


def change(zone_id: Any, action: str, record: dict[str, Any], comment: str, **kwargs: Any) -> ApiCall:
    """One ``change_resource_record_sets`` call (UPSERT creates or replaces; DELETE needs the exact record)."""
    return ApiCall("route53", "change_resource_record_sets", {
        "HostedZoneId": zone_id, "ChangeBatch": {"Comment": comment, "Changes": [
            {"Action": action, "ResourceRecordSet": record}]}}, **kwargs)


def _alias_host(record: dict[str, Any]) -> str:
    host = fqdn((record.get("AliasTarget") or {}).get("DNSName", ""))
    return host.removeprefix("dualstack.")


def _ours(spec: StackSpec, record: dict[str, Any]) -> bool:
    """An A alias to one of our load balancers (``NAME-123.region.elb.amazonaws.com``, ``internal-NAME-…``)."""
    host = _alias_host(record)
    lb = spec.names.load_balancer.lower()
    return record.get("Type") == "A" and host.endswith(".elb.amazonaws.com.") and \
        host.removeprefix("internal-").startswith(lb + "-")


def _read_lb(spec: StackSpec, remote: Remote) -> dict | None:
    found = remote.get("elbv2", "describe_load_balancers", Names=[spec.names.load_balancer],
                       missing=("LoadBalancerNotFound",))
    return found["LoadBalancers"][0] if found and found["LoadBalancers"] else None


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """``aws.domain`` → an alias A record to the load balancer (UPSERT), in the domain's hosted zone."""
    domain = spec.config.aws.domain
    if not domain:
        return []
    zone_id = zone(spec, remote, known)
    if zone_id is None:
        if spec.config.aws.certificate_arn:
            return []  # the user's own certificate and DNS (a plan note says so)
        raise no_zone_error(spec)
    calls: list[ApiCall] = []
    alb_arn, alb_dns = known["alb_arn"], known["alb_dns"]
    if is_unknown(alb_arn):
        # a new load balancer: its canonical hosted zone is read once it exists (create_load_balancer's output
        # belongs to the load balancer family)
        calls.append(ApiCall("elbv2", "describe_load_balancers", {"LoadBalancerArns": [alb_arn]},
                             outputs=(("alb_zone_id", "LoadBalancers[0].CanonicalHostedZoneId"),)))
        lb_zone: Any = Ref("alb_zone_id")
    else:
        lb = _read_lb(spec, remote)
        if lb is None:
            raise AwsError(f"load balancer {spec.names.load_balancer!r} disappeared while planning",
                           hint="run the command again")
        lb_zone = lb["CanonicalHostedZoneId"]
    want = {"Name": fqdn(domain), "Type": "A", "AliasTarget": {
        "HostedZoneId": lb_zone, "DNSName": alb_dns, "EvaluateTargetHealth": False}}
    current = records(remote, zone_id, domain, "A") + records(remote, zone_id, domain, "CNAME")
    foreign = [r for r in current if not _ours(spec, r)]
    if foreign:
        what = foreign[0].get("AliasTarget", {}).get("DNSName") or \
            ", ".join(v["Value"] for v in foreign[0].get("ResourceRecords", []))
        raise AwsError(f"{domain} already has a {foreign[0]['Type']} record ({what}) in hosted zone "
                       f"{known[ZONE_NAME_KEY]} that does not point at this app's load balancer",
                       hint="delete that record, or pick another aws.domain")
    label = f"{fqdn(domain)} A"
    calls.append(change(zone_id, "UPSERT", want, f"mldeploy {spec.names.app}/{spec.names.env}: alias to the ALB"))
    if not current:
        return [Step(KIND, label, Action.create, [f"alias → {alb_dns}"], calls=calls)]
    cur = current[0]
    if not is_unknown(want) and _alias_host(cur) == fqdn(str(alb_dns)) and \
            (cur.get("AliasTarget") or {}).get("HostedZoneId") == lb_zone:
        return [noop(KIND, label)]
    return [Step(KIND, label, Action.update, [f"alias {_alias_host(cur).rstrip('.')} → {alb_dns}"], calls=calls)]


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """The alias record when it points at a load balancer of ours (DELETE sends the record exactly as read)."""
    domain = spec.config.aws.domain
    if not domain or spec.canary:
        return []
    zone_id = zone(spec, remote, known)
    if zone_id is None:
        return []
    return [Step(KIND, f"{fqdn(domain)} A", Action.delete, calls=[
        change(zone_id, "DELETE", r, f"mldeploy {spec.names.app}/{spec.names.env}: down",
               missing=("InvalidChangeBatch",))])
        for r in records(remote, zone_id, domain, "A") if _ours(spec, r)]
