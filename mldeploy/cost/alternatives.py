"""The same load on other compute, for ``cost --compare``: ECS on EC2 (on-demand instances) and AWS Lambda.

Both start from a Fargate :class:`~mldeploy.cost.model.Estimate` and replace only what differs: the compute
line(s) and the public IPv4 addresses (EC2: one per instance, tasks in ``awsvpc`` mode get none; Lambda behind a
function URL: no ALB, no NAT, no public IPv4). Logs, metrics, ECR and data transfer stay as estimated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mldeploy.cost.model import Component, Estimate

if TYPE_CHECKING:
    from mldeploy.config.schema import Config
    from mldeploy.cost.prices import PriceTable

ROOT_VOLUME_GB = 30  # the ECS-optimized AMI's default root volume
RESERVED_GIB = 0.5  # memory the OS and the ECS agent keep on each instance
LAMBDA_CPU_MB = 1769  # Lambda allots one full vCPU at 1,769 MB (Lambda docs, "Memory and computing power")
LAMBDA_MAX_MB = 10240
LAMBDA_PLATFORM_LOG_BYTES = 260  # START/END/REPORT lines per invocation in the function's log group
LAMBDA_CONCURRENCY = 1000  # default account quota of concurrent executions per region
FARGATE_KEYS = ("fargate", "fargate_canary", "public_ipv4")


@dataclass
class Alternative:
    """One compute option's monthly bill at the estimate's load (``total`` None: not priced here)."""

    key: str
    name: str
    total: float | None
    components: list[Component] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""


def _rest(est: Estimate, drop: tuple[str, ...]) -> float:
    return sum(c.monthly for c in est.components if c.key not in drop)


def ecs_on_ec2(est: Estimate, config: Config, prices: PriceTable) -> Alternative:
    """The cheapest bundled instance type/count that places the estimate's tasks, + root volumes + IPv4."""
    arch = "g" if est.variant.startswith("arm") else "i"
    table = prices.ec2_instances(est.region)
    source, read = prices.ec2_source()
    name = f"ECS on EC2 ({'Graviton' if arch == 'g' else 'x86'}, on-demand)"
    if not table:
        return Alternative("ec2", name, None, notes=[f"no bundled EC2 prices for {est.region}"], source=source)
    vcpu, gib = config.aws.cpu / 1024, config.aws.memory / 1024
    tasks = est.tasks + est.canary_tasks
    hours = prices.hours_per_month
    best: tuple[float, str, int, int] | None = None
    for itype, (i_cpu, i_gib, usd) in table.items():
        if itype[1:3] != f"7{arch}":
            continue
        per = min(int(i_cpu // vcpu), int((i_gib - RESERVED_GIB) // gib))
        if per < 1:
            continue
        count = max(math.ceil(tasks / per), min(tasks, 2))  # tasks spread over 2 AZs when there are 2+
        monthly = count * usd * hours
        if best is None or monthly < best[0]:
            best = (monthly, itype, count, per)
    if best is None:
        return Alternative("ec2", name, None, notes=["no bundled instance fits one task"], source=source)
    monthly, itype, count, per = best
    usd = table[itype][2]
    ebs = prices.price("ebs_gp3_gb_month", est.region)
    ip = prices.price("public_ipv4_hour", est.region)
    ips = est.assumptions["public_ipv4"]
    n_ips = (count if config.aws.assign_public_ip else 0) + ips["alb"] + ips["nat"]
    comps = [
        Component("ec2", f"EC2 {itype}", float(count), "instances", usd, monthly,
                  f"⌈{tasks} tasks ÷ {per} per {itype}⌉ = {count} × ${usd:g}/h × {hours:g} h (read {read})"),
        Component("ebs", "EBS gp3 root volumes", count * ROOT_VOLUME_GB, "GB-month", ebs, count * ROOT_VOLUME_GB * ebs,
                  f"{count} × {ROOT_VOLUME_GB} GB × ${ebs:g}"),
        Component("public_ipv4", "Public IPv4 addresses", n_ips * hours, "address-h", ip, n_ips * hours * ip,
                  f"({count if config.aws.assign_public_ip else 0} instances + {ips['alb']} ALB + {ips['nat']} NAT) "
                  f"× {hours:g} h × ${ip:g}"),
    ]
    total = _rest(est, FARGATE_KEYS) + sum(c.monthly for c in comps)
    notes = [f"{count} × {itype}, {per} task{'s' if per > 1 else ''} each (vCPU, memory less {RESERVED_GIB} GiB for "
             "the agent; awsvpc ENI trunking assumed); you run, patch and scale the instances"]
    return Alternative("ec2", name, total, comps, notes, source=f"{source} (read {read})")


def aws_lambda(est: Estimate, config: Config, prices: PriceTable) -> Alternative:
    """The same requests as Lambda invocations (function URL): requests + GB-seconds + platform log lines."""
    name = f"Lambda ({'Arm' if est.variant.startswith('arm') else 'x86'}, function URL)"
    arch = "arm" if est.variant.startswith("arm") else "x86"
    gbs_item = f"lambda_gb_second_{arch}"
    source = prices.get("lambda_request", est.region).source
    if est.capacity_rps_per_task is None or est.rps <= 0:
        return Alternative("lambda", name, None, notes=["needs a request rate and a per-task capacity"],
                           source=source)
    vcpu = config.aws.cpu / 1024
    cpu_s = vcpu / est.capacity_rps_per_task  # CPU seconds one request takes on one vCPU
    mb = min(LAMBDA_MAX_MB, max(config.aws.memory, LAMBDA_CPU_MB))
    duration = cpu_s / min(1.0, mb / LAMBDA_CPU_MB)  # one request is one thread
    requests = est.requests_per_month
    free = config.cost.free_tier
    req = prices.get("lambda_request", est.region)
    gbs = prices.get(gbs_item, est.region)
    ingest = prices.get("logs_ingest_gb", est.region)
    gb_seconds = requests * math.ceil(duration * 1000) / 1000 * mb / 1024
    log_gb = requests * LAMBDA_PLATFORM_LOG_BYTES / 1e9
    comps = [
        Component("lambda_requests", "Lambda requests", requests, "requests", req.price,
                  max(0.0, requests - (req.free if free else 0)) * req.price,
                  f"{requests / 1e6:,.1f} M requests" + (f" − {req.free / 1e6:g} M free" if free else "")
                  + f" × ${req.price * 1e6:g}/M"),
        Component("lambda_duration", "Lambda duration", gb_seconds, "GB-s", gbs.price,
                  max(0.0, gb_seconds - (gbs.free if free else 0)) * gbs.price,
                  f"{requests / 1e6:,.1f} M × {math.ceil(duration * 1000)} ms (vCPU {vcpu:g} ÷ "
                  f"{est.capacity_rps_per_task:g} req/s) × {mb} MB = {gb_seconds:,.0f} GB-s"
                  + (f" − {gbs.free:,.0f} free" if free else "")
                  + f" × ${gbs.price:g}"),
        Component("lambda_logs", "Lambda platform log lines", log_gb, "GB", ingest.price, log_gb * ingest.price,
                  f"{requests / 1e6:,.1f} M × {LAMBDA_PLATFORM_LOG_BYTES} B START/END/REPORT × ${ingest.price:g}"),
    ]
    total = _rest(est, (*FARGATE_KEYS, "alb", "alb_lcu", "nat", "nat_data")) + sum(c.monthly for c in comps)
    concurrency = est.rps * duration
    notes = [f"{concurrency:,.0f} concurrent executions"
             + (f" — above the default quota of {LAMBDA_CONCURRENCY}" if concurrency > LAMBDA_CONCURRENCY else "")
             + "; cold starts load the model (container image ≤ 10 GB); no batching across requests"]
    return Alternative("lambda", name, total, comps, notes, source=f"{source} (read {req.read})")


def alternatives(est: Estimate, config: Config, prices: PriceTable) -> list[Alternative]:
    """ECS on EC2 and Lambda at ``est``'s load."""
    return [ecs_on_ec2(est, config, prices), aws_lambda(est, config, prices)]
