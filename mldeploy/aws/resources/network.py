"""VPC and subnets: the configured ones, or the default VPC and its default subnets. Read-only.

``resolve`` writes ``known["vpc_id"]``, ``known["subnet_ids"]`` (the tasks') and ``known["alb_subnet_ids"]`` (the
load balancer's: ``aws.alb_subnet_ids``, else the task subnets). It refuses, before anything is created, what
CreateLoadBalancer / CreateService would reject or what could never serve: two ALB subnets in one AZ, fewer than two
AZs, an internet-facing ALB in private subnets, tasks in AZs the ALB does not serve or where Fargate does not run.
"""

from __future__ import annotations

from typing import Any

from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec
from mldeploy.config.loader import check_deploy, deploy_warnings
from mldeploy.errors import AwsError

FARGATE_ONLY_AZ_IDS: dict[str, frozenset[str]] = {
    "us-west-1": frozenset({"usw1-az1", "usw1-az3"}),
    "ap-northeast-1": frozenset({"apne1-az1", "apne1-az2", "apne1-az4"}),
}
"""Regions where Fargate runs in some AZs only, by AZ id (ECS developer guide, "Supported Regions for Amazon ECS on
AWS Fargate", Linux containers: "us-west-1 (usw1-az1 & usw1-az3 only)", "ap-northeast-1 (apne1-az1, apne1-az2, &
apne1-az4 only)"; every other listed Region without restriction). There is no API for this: update from that page."""


def fargate_az(region: str, subnet: dict[str, Any]) -> bool:
    """Whether Fargate runs in the subnet's AZ (by ``AvailabilityZoneId``: AZ names differ between accounts)."""
    only = FARGATE_ONLY_AZ_IDS.get(region)
    return only is None or subnet.get("AvailabilityZoneId") in only


def _configured(remote: Remote, vpc_id: str, field: str, ids: list[str]) -> list[dict[str, Any]]:
    got = remote.get("ec2", "describe_subnets", SubnetIds=ids, missing=("InvalidSubnetID.NotFound",))
    subnets = [s for s in (got or {}).get("Subnets", []) if s["VpcId"] == vpc_id]
    missing = [s for s in ids if s not in {x["SubnetId"] for x in subnets}]
    if missing:
        raise AwsError(f"aws.{field}: {', '.join(missing)} not found in VPC {vpc_id}",
                       hint="list them with `aws ec2 describe-subnets --filters Name=vpc-id,Values=" + vpc_id + "`")
    return sorted(subnets, key=lambda s: (s["AvailabilityZone"], s["SubnetId"]))


def _check_alb_zones(field: str, subnets: list[dict[str, Any]], vpc_id: str) -> None:
    # botocore elbv2 CreateLoadBalancerInput.Subnets: "You can specify only one subnet per Availability Zone."
    # "[Application Load Balancers] You must specify subnets from at least two Availability Zones."
    by_az: dict[str, list[str]] = {}
    for s in subnets:
        by_az.setdefault(s["AvailabilityZone"], []).append(s["SubnetId"])
    shared = {az: ids for az, ids in by_az.items() if len(ids) > 1}
    if shared:
        detail = "; ".join(f"{az}: {', '.join(ids)}" for az, ids in sorted(shared.items()))
        hint = ("list one subnet per AZ; with public and private subnets per AZ, put the public ones in "
                "aws.alb_subnet_ids and the private ones in aws.subnet_ids" if field == "subnet_ids"
                else "list one subnet per AZ")
        raise AwsError(f"aws.{field}: a load balancer takes only one subnet per availability zone ({detail})",
                       hint=hint)
    if len(by_az) < 2:
        what = f"aws.{field}" if field else f"VPC {vpc_id}"
        raise AwsError(f"{what}: the load balancer needs subnets in at least two availability zones "
                       f"(got {', '.join(sorted(by_az)) or 'none'})",
                       hint=f"configure aws.{field or 'subnet_ids'} with subnets in two or more AZs")


def _route_table(remote: Remote, vpc_id: str, subnet_id: str) -> dict[str, Any] | None:
    """The subnet's route table: its explicit association, else the VPC's main route table (VPC user guide,
    "Subnet route tables": "A subnet that is not explicitly associated with a route table is implicitly associated
    with the main route table")."""
    found = remote.get("ec2", "describe_route_tables",
                       Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["RouteTables"]
    if not found:
        found = remote.get("ec2", "describe_route_tables", Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    return found[0] if found else None


def is_public(remote: Remote, vpc_id: str, subnet_id: str) -> bool:
    """VPC user guide, "Subnet types": "Public subnet – The subnet has a direct route to an internet gateway", i.e. a
    0.0.0.0/0 route whose target is an ``igw-``."""
    table = _route_table(remote, vpc_id, subnet_id)
    return any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and str(r.get("GatewayId", "")).startswith("igw-")
               and r.get("State", "active") == "active" for r in (table or {}).get("Routes", []))


def _check_public(remote: Remote, field: str, subnets: list[dict[str, Any]], vpc_id: str) -> None:
    # ALB guide ("Create an Application Load Balancer", Network mapping): an internet-facing load balancer needs
    # public subnets; CreateLoadBalancer answers "InvalidSubnet: VPC … has no internet gateway" when the VPC has none,
    # and in a subnet without an internet-gateway route its nodes are unreachable
    private = [s["SubnetId"] for s in subnets if not is_public(remote, vpc_id, s["SubnetId"])]
    if private:
        raise AwsError(f"aws.{field}: {', '.join(private)} {'is' if len(private) == 1 else 'are'} private (no "
                       "0.0.0.0/0 route to an internet gateway): an internet-facing load balancer there is "
                       "unreachable from the internet",
                       hint="put public subnets in aws.alb_subnet_ids (the tasks may stay in private aws.subnet_ids), "
                            "or set aws.internal: true for a load balancer reachable only inside the VPC")


def resolve(spec: StackSpec, remote: Remote, known: Known, *, deploying: bool = True) -> list[str]:
    """Set ``vpc_id``/``subnet_ids``/``alb_subnet_ids`` in ``known``; returns notes for the plan.

    ``deploying`` (every plan but ``down``'s) also checks what the config lacks for ECS (``loader.check_deploy``).
    """
    aws = spec.config.aws
    notes: list[str] = []
    if deploying:
        check_deploy(spec.project)
        notes += deploy_warnings(spec.config)
    if aws.vpc_id:
        vpcs = remote.get("ec2", "describe_vpcs", VpcIds=[aws.vpc_id], missing=("InvalidVpcID.NotFound",))
        if not vpcs or not vpcs["Vpcs"]:
            raise AwsError(f"aws.vpc_id {aws.vpc_id!r} does not exist in {spec.region}",
                           hint="check the VPC id and the region")
        vpc_id = aws.vpc_id
        known["vpc_cidr"] = vpcs["Vpcs"][0].get("CidrBlock")
    else:
        found = remote.get("ec2", "describe_vpcs", Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not found:
            raise AwsError(f"no default VPC in {spec.region}",
                           hint="set aws.vpc_id and aws.subnet_ids in mldeploy.yaml, or create one with "
                                "`aws ec2 create-default-vpc`")
        vpc_id = found[0]["VpcId"]
        known["vpc_cidr"] = found[0].get("CidrBlock")
    if aws.subnet_ids:
        subnets = _configured(remote, vpc_id, "subnet_ids", aws.subnet_ids)
        outside = [s["SubnetId"] for s in subnets if not fargate_az(spec.region, s)]
        if outside and deploying:
            raise AwsError(f"aws.subnet_ids: {', '.join(outside)} {'is' if len(outside) == 1 else 'are'} in an "
                           f"availability zone where Fargate does not run in {spec.region} (Fargate runs in "
                           f"{', '.join(sorted(FARGATE_ONLY_AZ_IDS[spec.region]))} only)",
                           hint="list subnets of the supported AZ ids (`aws ec2 describe-subnets` shows "
                                "AvailabilityZoneId)")
    else:
        found = remote.get("ec2", "describe_subnets", Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
        subnets = sorted((s for s in found if fargate_az(spec.region, s)), key=lambda s: s["AvailabilityZone"])
        skipped = sorted(s["AvailabilityZone"] for s in found if not fargate_az(spec.region, s))
        if skipped:
            notes.append(f"default subnets in {', '.join(skipped)} skipped: Fargate does not run there")
    alb_field = "alb_subnet_ids" if aws.alb_subnet_ids else ("subnet_ids" if aws.subnet_ids else "")
    alb = _configured(remote, vpc_id, "alb_subnet_ids", aws.alb_subnet_ids) if aws.alb_subnet_ids else subnets
    if deploying:
        _check_alb_zones(alb_field, alb, vpc_id)
        task_zones = {s["AvailabilityZone"] for s in subnets}
        alb_zones = {s["AvailabilityZone"] for s in alb}
        if task_zones - alb_zones:
            # ALB guide ("Availability Zones for your Application Load Balancer"): a load balancer routes only to
            # targets in the Availability Zones it is enabled in; tasks elsewhere never become healthy
            raise AwsError(f"aws.subnet_ids has subnets in {', '.join(sorted(task_zones - alb_zones))}, where "
                           "aws.alb_subnet_ids has none: the load balancer would send no traffic to tasks there",
                           hint="give aws.alb_subnet_ids a subnet in every AZ of aws.subnet_ids")
        # the default VPC's default subnets are public by construction (VPC user guide, "Default VPCs": the main
        # route table sends 0.0.0.0/0 to the internet gateway): only configured subnets are looked up
        if not aws.internal and alb_field:
            _check_public(remote, alb_field, alb, vpc_id)
    known["vpc_id"] = vpc_id
    known["subnet_ids"] = [s["SubnetId"] for s in subnets]
    known["alb_subnet_ids"] = [s["SubnetId"] for s in alb]
    public = all(s.get("MapPublicIpOnLaunch") for s in subnets)
    if aws.assign_public_ip:
        notes.append(f"tasks run in {'public ' if public else ''}subnets of {vpc_id} with public IPs: "
                     "no NAT gateway needed (saves ~$32/month + data), inbound still only from the ALB")
    else:
        notes.append("tasks get no public IP: the subnets need a NAT gateway or VPC endpoints (ECR, logs, S3) "
                     "to pull the image")
    return notes


def try_resolve(spec: StackSpec, remote: Remote, known: Known) -> bool:
    """``resolve`` for ``down``: False when the VPC is gone (then there are no security groups to delete)."""
    try:
        resolve(spec, remote, known, deploying=False)
    except AwsError:
        known["vpc_id"] = None
        return False
    return True
