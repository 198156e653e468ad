"""VPC and subnets: the configured ones, or the default VPC and its default subnets. Read-only."""

from __future__ import annotations

from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec
from mldeploy.errors import AwsError


def resolve(spec: StackSpec, remote: Remote, known: Known) -> list[str]:
    """Set ``vpc_id``/``subnet_ids`` in ``known``; returns notes for the plan."""
    aws = spec.config.aws
    notes: list[str] = []
    if aws.vpc_id:
        vpcs = remote.get("ec2", "describe_vpcs", VpcIds=[aws.vpc_id], missing=("InvalidVpcID.NotFound",))
        if not vpcs or not vpcs["Vpcs"]:
            raise AwsError(f"aws.vpc_id {aws.vpc_id!r} does not exist in {spec.region}",
                           hint="check the VPC id and the region")
        vpc_id = aws.vpc_id
    else:
        found = remote.get("ec2", "describe_vpcs", Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not found:
            raise AwsError(f"no default VPC in {spec.region}",
                           hint="set aws.vpc_id and aws.subnet_ids in mldeploy.yaml, or create one with "
                                "`aws ec2 create-default-vpc`")
        vpc_id = found[0]["VpcId"]
    if aws.subnet_ids:
        got = remote.get("ec2", "describe_subnets", SubnetIds=aws.subnet_ids, missing=("InvalidSubnetID.NotFound",))
        subnets = (got or {}).get("Subnets", [])
        present = {s["SubnetId"] for s in subnets if s["VpcId"] == vpc_id}
        missing = [s for s in aws.subnet_ids if s not in present]
        if missing:
            raise AwsError(f"aws.subnet_ids: {', '.join(missing)} not found in VPC {vpc_id}",
                           hint="list them with `aws ec2 describe-subnets --filters Name=vpc-id,Values=" + vpc_id + "`")
    else:
        subnets = remote.get("ec2", "describe_subnets", Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    subnets = sorted(subnets, key=lambda s: s["AvailabilityZone"])
    if len({s["AvailabilityZone"] for s in subnets}) < 2:
        raise AwsError(f"VPC {vpc_id} needs subnets in at least two availability zones for a load balancer",
                       hint="configure aws.subnet_ids with subnets in two or more AZs")
    known["vpc_id"] = vpc_id
    known["subnet_ids"] = [s["SubnetId"] for s in subnets]
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
        resolve(spec, remote, known)
    except AwsError:
        known["vpc_id"] = None
        return False
    return True
