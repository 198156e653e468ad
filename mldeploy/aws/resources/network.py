"""VPC and subnets: the configured ones, or the default VPC and its default subnets. Read-only."""

from __future__ import annotations

from mldeploy.aws.clients import call
from mldeploy.aws.context import DeployContext
from mldeploy.errors import AwsError


def resolve(ctx: DeployContext) -> list[str]:
    """Fill ``vpc_id``/``subnet_ids`` in ``ctx.outputs``; returns notes for the plan."""
    aws = ctx.config.aws
    ec2 = ctx.aws.ec2
    notes: list[str] = []
    if aws.vpc_id:
        vpcs = call(ec2.describe_vpcs, VpcIds=[aws.vpc_id], missing=("InvalidVpcID.NotFound",))
        if not vpcs or not vpcs["Vpcs"]:
            raise AwsError(f"aws.vpc_id {aws.vpc_id!r} does not exist in {ctx.aws.region}",
                           hint="check the VPC id and the region")
        vpc_id = aws.vpc_id
    else:
        vpcs = call(ec2.describe_vpcs, Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise AwsError(f"no default VPC in {ctx.aws.region}",
                           hint="set aws.vpc_id and aws.subnet_ids in mldeploy.yaml, or create one with "
                                "`aws ec2 create-default-vpc`")
        vpc_id = vpcs[0]["VpcId"]
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
    if aws.subnet_ids:
        subnets = call(ec2.describe_subnets, SubnetIds=aws.subnet_ids, missing=("InvalidSubnetID.NotFound",))
        subnets = (subnets or {}).get("Subnets", [])
        found = {s["SubnetId"] for s in subnets if s["VpcId"] == vpc_id}
        missing = [s for s in aws.subnet_ids if s not in found]
        if missing:
            raise AwsError(f"aws.subnet_ids: {', '.join(missing)} not found in VPC {vpc_id}",
                           hint="list them with `aws ec2 describe-subnets --filters Name=vpc-id,Values=" + vpc_id + "`")
    else:
        subnets = call(ec2.describe_subnets, Filters=[*filters, {"Name": "default-for-az", "Values": ["true"]}])
        subnets = subnets["Subnets"]
    subnets = sorted(subnets, key=lambda s: s["AvailabilityZone"])
    if len({s["AvailabilityZone"] for s in subnets}) < 2:
        raise AwsError(f"VPC {vpc_id} needs subnets in at least two availability zones for a load balancer",
                       hint="configure aws.subnet_ids with subnets in two or more AZs")
    ctx.outputs["vpc_id"] = vpc_id
    ctx.outputs["subnet_ids"] = [s["SubnetId"] for s in subnets]
    public = all(s.get("MapPublicIpOnLaunch") for s in subnets)
    if aws.assign_public_ip:
        notes.append(f"tasks run in {'public ' if public else ''}subnets of {vpc_id} with public IPs: "
                     "no NAT gateway needed (saves ~$32/month + data), inbound still only from the ALB")
    else:
        notes.append("tasks get no public IP: the subnets need a NAT gateway or VPC endpoints (ECR, logs, S3) "
                     "to pull the image")
    return notes
