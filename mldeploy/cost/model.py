"""The cost arithmetic: tasks per traffic level and the monthly price of every AWS component mldeploy creates.

Conventions (the AWS pricing pages' own): a month is 730 hours, 1 GB is 10⁹ bytes, traffic is steady at the
given request rate. Every component keeps the formula that produced it, so reports can show the arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mldeploy.cost.prices import DEFAULT_REGION, PriceTable, bundled
from mldeploy.errors import ConfigError

if TYPE_CHECKING:
    from mldeploy.config.schema import Config, Spot

GB = 1e9
Arch = Literal["x86", "arm"]

# ALB LCU dimensions (https://aws.amazon.com/elasticloadbalancing/pricing/): one LCU is the largest of these.
LCU_NEW_CONNECTIONS_PER_S = 25.0
LCU_ACTIVE_CONNECTIONS = 3000.0
LCU_PROCESSED_GB_PER_HOUR = 1.0
LCU_RULE_EVALUATIONS_PER_S = 1000.0
FREE_RULES = 10

# Alarms mldeploy creates (mldeploy/aws/resources/alarms.py), billed per alarm *metric* (CloudWatch pricing: a
# metric-math alarm is charged for every metric in its expression). Stable: 5xx rate = math over 3 metrics
# (target 5xx, ELB 5xx, requests), p99 latency (1), unhealthy hosts (1). Canary: 5xx rate over 2 metrics + p99 (1).
# Each target-tracking scaling policy adds two single-metric alarms (scale out / scale in).
SERVICE_ALARMS = 3
SERVICE_ALARM_METRICS = 5
CANARY_ALARM_METRICS = 3
ALARMS_PER_TRACKING_POLICY = 2
DASHBOARDS = 1

# The runtime's EMF lines (runtime/telemetry.py EmfAggregator.flush): Latency, Requests, Errors, LowConfidence and
# (classifiers) Confidence, each under two dimension sets, [app, env] and [app, env, Version]. A custom metric is
# one name + dimension values, so V versions serving make 5 × (1 + V): 10 with one version, 15 during a canary.
EMF_METRIC_NAMES = 5
EMF_INTERVAL_S = 10.0  # runtime Settings.emf_interval_s: one line per task and version every 10 s
EMF_LINE_BYTES = 1800  # a full line: 100 latency + 100 confidence samples (~7 B each) + names/dimensions

# Access-log sampling: the default share of requests that write their ~300-byte JSON line (errors and slow
# requests are always logged: cost.always_logged_fraction). 1 % keeps logs far below compute (docs/cost.md).
DEFAULT_LOG_SAMPLE_RATE = 0.01

# Container Insights (standard) on Fargate: custom metrics per cluster / service / task-definition family
# (Container-Insights-metrics-ECS) and one performance log event per task and container each minute. ESTIMATE.
CI_CLUSTER_METRICS = 10
CI_SERVICE_METRICS = 13
CI_TASK_FAMILY_METRICS = 9
CI_LOG_BYTES_PER_TASK_MINUTE = 2000

# Subnets in each region's default VPC (one default subnet per availability zone); an internet-facing ALB has a
# node with a public IPv4 address in every subnet it spans. Regions not listed: 3.
DEFAULT_SUBNETS = {"us-east-1": 6, "us-east-2": 3, "us-west-1": 2, "us-west-2": 4, "eu-west-1": 3, "eu-west-2": 3,
                   "eu-west-3": 3, "eu-central-1": 3, "eu-north-1": 3, "ap-southeast-1": 3, "ap-southeast-2": 3,
                   "ap-northeast-1": 3, "ap-south-1": 3, "ca-central-1": 3, "sa-east-1": 3}
DEFAULT_AZS = 3


def alb_subnets(config: Config, region: str) -> tuple[int, str]:
    """(subnets the ALB spans, where that number came from): ``cost.alb_subnets``, the configured subnets, else
    the default subnets of the region's default VPC."""
    aws = config.aws
    if config.cost.alb_subnets is not None:
        return config.cost.alb_subnets, "cost.alb_subnets"
    for name in ("alb_subnet_ids", "subnet_ids"):
        ids = getattr(aws, name, None)
        if ids:
            return len(ids), f"aws.{name}"
    n = DEFAULT_SUBNETS.get(region, DEFAULT_AZS)
    return n, f"default subnets in {region}" if region in DEFAULT_SUBNETS else "assumed (3 AZs)"


def log_sample_rate(config: Config) -> tuple[float, str]:
    """(share of requests that write an access-log line, source): ``cost.log_sample_rate``, the runtime's
    ``runtime.access_log.sample_rate`` (off: 0), else :data:`DEFAULT_LOG_SAMPLE_RATE`."""
    if config.cost.log_sample_rate is not None:
        return config.cost.log_sample_rate, "cost.log_sample_rate"
    access = getattr(config.runtime, "access_log", None)
    if access is False or getattr(access, "enabled", True) is False:
        return 0.0, "runtime.access_log off"
    rate = getattr(access, "sample_rate", None)
    if rate is not None:
        return float(rate), "runtime.access_log.sample_rate"
    return DEFAULT_LOG_SAMPLE_RATE, "default"


def custom_metric_count(config: Config, versions: int = 1) -> int:
    """Custom metrics while ``versions`` model versions serve (``cost.custom_metrics`` overrides)."""
    if config.cost.custom_metrics is not None:
        return config.cost.custom_metrics
    return EMF_METRIC_NAMES * (1 + versions)


def canary_tasks(stable_tasks: int, percent: int) -> int:
    """Tasks of a canary at ``percent``: its share of the stable tasks, at least one (release.targets)."""
    return max(1, math.ceil(stable_tasks * percent / 100))


@dataclass
class Component:
    """One line of the bill."""

    key: str
    name: str
    quantity: float
    unit: str
    unit_price: float
    monthly: float
    formula: str
    estimate: bool = False


@dataclass
class Lcu:
    """The four ALB LCU dimensions (in LCUs) and the one that is billed (the largest)."""

    new_connections: float
    active_connections: float
    processed_bytes: float
    rule_evaluations: float

    @property
    def billed(self) -> float:
        return max(self.new_connections, self.active_connections, self.processed_bytes, self.rule_evaluations)

    @property
    def dimension(self) -> str:
        dims = asdict(self)
        return max(dims, key=dims.__getitem__)


@dataclass
class Estimate:
    """The monthly bill for one configuration at one request rate."""

    variant: str
    region: str
    rps: float
    tasks: int
    tasks_needed: int
    saturated: bool
    capacity_rps_per_task: float | None
    capacity_source: str | None
    components: list[Component]
    lcu: Lcu
    requests_per_month: float
    prices: str
    assumptions: dict[str, Any] = field(default_factory=dict)
    before_traffic: bool = False  # rps=None: what ``up`` creates (desired_count tasks), no traffic
    capacity_estimated: bool = False  # the capacity is an estimate (not measured by `mldeploy bench`)
    canary_percent: int | None = None  # priced during a canary at this percent (its tasks, metrics, alarms)
    canary_tasks: int = 0

    @property
    def total(self) -> float:
        return sum(c.monthly for c in self.components)

    @property
    def overloaded(self) -> bool:
        """More tasks needed than ``autoscaling.max``: the bill is capped, the service is not keeping up."""
        return self.saturated

    @property
    def per_million(self) -> float | None:
        """Cost per 1M requests (None without traffic, or when overloaded: the requests would not be served)."""
        if self.requests_per_month <= 0 or self.saturated:
            return None
        return self.total / (self.requests_per_month / 1e6)

    def component(self, key: str) -> Component:
        return next(c for c in self.components if c.key == key)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lcu"] = {**d["lcu"], "billed": self.lcu.billed, "dimension": self.lcu.dimension}
        d["total"] = round(self.total, 2)
        d["per_million"] = None if self.per_million is None else round(self.per_million, 4)
        d["overloaded"] = self.overloaded
        for c in d["components"]:
            c["monthly"] = round(c["monthly"], 2)
        return d


def tasks_for(rps: float, capacity: float, utilization: float, lo: int, hi: int) -> tuple[int, int, bool]:
    """(tasks needed, tasks billed, saturated): the autoscaler keeps each task at ``utilization`` of its capacity,
    within the ``lo``..``hi`` autoscaling bounds."""
    needed = math.ceil(rps / (capacity * utilization) - 1e-9) if rps > 0 else 0
    return needed, min(max(needed, lo), hi), needed > hi


def spot_split(tasks: float, spot: Spot) -> tuple[float, float]:
    """(on-demand, spot) tasks for a FARGATE/FARGATE_SPOT strategy: ``base`` on-demand, then ``weight`` % Spot."""
    if not spot.enabled:
        return tasks, 0.0
    base = min(float(spot.base), tasks)
    on_spot = (tasks - base) * spot.weight / 100.0
    return tasks - on_spot, on_spot


def tiered_cost(quantity: float, tiers: tuple[tuple[float | None, float], ...]) -> float:
    """Cost of ``quantity`` units under cumulative ``(up_to, price)`` tiers (``None`` = no upper bound)."""
    cost, lower = 0.0, 0.0
    for upper, price in tiers:
        top = math.inf if upper is None else upper
        if quantity <= lower:
            break
        cost += (min(quantity, top) - lower) * price
        lower = top
    return cost


def lcu_for(rps: float, request_bytes: int, response_bytes: int, keepalive: float, connection_s: float,
            rules: int) -> Lcu:
    """ALB LCUs per hour for steady traffic of ``rps`` requests/s."""
    new_conn = rps / keepalive
    active = new_conn * connection_s  # concurrent connections (Little's law)
    gb_per_hour = rps * (request_bytes + response_bytes) * 3600 / GB
    rule_evals = rps * max(0, rules - FREE_RULES)
    return Lcu(new_connections=new_conn / LCU_NEW_CONNECTIONS_PER_S,
               active_connections=active / LCU_ACTIVE_CONNECTIONS,
               processed_bytes=gb_per_hour / LCU_PROCESSED_GB_PER_HOUR,
               rule_evaluations=rule_evals / LCU_RULE_EVALUATIONS_PER_S)


def _usd(x: float) -> str:
    return f"${x:.6g}" if x < 1 else f"${x:,.2f}"


def _less_free(qty: str, free_units: float) -> str:
    return f"({qty} − {free_units:g} free)" if free_units else qty


def _tasks(n: float) -> str:
    return f"{_num(n)} task" + ("" if n == 1 else "s")


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 or x == int(x) else f"{x:,.3g}"


def variant_name(arch: Arch, spot: bool) -> str:
    return f"{arch}+spot" if spot else arch


def resolve_capacity(config: Config, capacity: float | None) -> tuple[float | None, str | None]:
    if capacity is not None:
        return capacity, "given"
    if config.cost.capacity_rps_per_task is not None:
        return config.cost.capacity_rps_per_task, "cost.capacity_rps_per_task"
    return None, None


def estimate(config: Config, rps: float | None = None, *, capacity: float | None = None,
             capacity_source: str | None = None, region: str | None = None, prices: PriceTable | None = None,
             arch: Arch | None = None, spot: Spot | None = None, canary_percent: int | None = None,
             capacity_estimated: bool = False) -> Estimate:
    """The monthly bill of ``config`` at ``rps`` requests/s (``None``: what ``up`` creates, before traffic).

    ``arch``/``spot`` override the config's ``image.platform``/``aws.spot`` (for ``--compare``); ``capacity``
    (requests/s one task sustains at 100 % CPU) overrides ``cost.capacity_rps_per_task``. ``canary_percent``
    prices the state during a canary (as if it lasted the month): its extra tasks, a second model version's
    metrics and the canary alarms; the stable tasks are not reduced (an upper bound).
    """
    prices = prices or bundled()
    region = region or config.aws.region or DEFAULT_REGION
    aws, cost = config.aws, config.cost
    arch = arch or ("arm" if config.image.platform == "linux/arm64" else "x86")
    spot = spot if spot is not None else aws.spot
    hours = prices.hours_per_month
    seconds = hours * 3600
    free = cost.free_tier
    lo, hi = aws.autoscaling.min, aws.autoscaling.max
    utilization = aws.autoscaling.cpu_target / 100.0

    if capacity is None:
        capacity, capacity_source = resolve_capacity(config, None)
    if rps is None:
        traffic = 0.0
        needed = tasks = min(max(aws.desired_count, lo), hi)
        saturated = False
    else:
        if rps < 0:
            raise ConfigError(f"--rps: {rps} is negative; give request rates ≥ 0 (e.g. 100,1000,10000)")
        traffic = float(rps)
        if traffic > 0 and capacity is None:
            raise ConfigError(
                "cost.capacity_rps_per_task: not set, and no `mldeploy bench` measurement found — the number of "
                "tasks per traffic level depends on it",
                hint="measure it with `mldeploy bench --local` (or --url), set cost.capacity_rps_per_task in "
                     "mldeploy.yaml, or pass --capacity N",
            )
        needed, tasks, saturated = tasks_for(traffic, capacity or 1.0, utilization, lo, hi)
        per_target = aws.autoscaling.requests_per_target  # ALBRequestCountPerTarget: requests per task per minute
        if per_target and traffic > 0:  # target tracking scales out when either policy asks for it
            by_requests = math.ceil(traffic * 60 / per_target - 1e-9)
            if by_requests > needed:
                needed, tasks, saturated = by_requests, min(max(by_requests, lo), hi), by_requests > hi

    extra = canary_tasks(tasks, canary_percent) if canary_percent is not None else 0
    running = tasks + extra
    versions = 2 if canary_percent is not None else 1

    comps: list[Component] = []

    def add(key: str, name: str, qty: float, unit: str, item: str, formula: str, *, monthly: float | None = None,
            free_units: float = 0.0) -> None:
        info = prices.get(item, region)
        billable = max(0.0, qty - free_units)
        value = billable * info.price if monthly is None else monthly
        comps.append(Component(key, name, qty, unit, info.price, value, formula, info.estimate))

    # --- aws.autoscaling.schedule: the week's time-weighted task count --------------------------------------------
    from mldeploy.cost.schedule import segments as schedule_segments
    from mldeploy.cost.schedule import weighted

    segs, schedule_notes = schedule_segments(aws.autoscaling)
    wanted = aws.desired_count if rps is None else needed
    weekly_tasks = weighted(segs, wanted) if aws.autoscaling.schedule else float(tasks)
    if aws.autoscaling.schedule:
        schedule_formula = "; ".join(f"{seg.share:.1%} of the week {seg.min}–{seg.max} tasks ({seg.source})"
                                     for seg in segs) + f" → {weekly_tasks:.3g} tasks on average"
    else:
        schedule_formula = ""

    # --- compute: EC2 instances (aws.compute: ec2) or Fargate ----------------------------------------------------
    vcpu, mem_gb = aws.cpu / 1024, aws.memory / 1024
    ec2_instances = 0.0
    if aws.compute == "ec2":
        comps += _ec2_components(config, prices, region, segs, wanted, extra, hours, schedule_formula)
        ec2_instances = comps[0].quantity
    on_demand, on_spot = spot_split(weekly_tasks, spot) if aws.compute == "fargate" else (0.0, 0.0)
    cpu_od, gb_od = prices.get(f"fargate_{arch}_vcpu_hour", region), prices.get(f"fargate_{arch}_gb_hour", region)
    rate_od = vcpu * cpu_od.price + mem_gb * gb_od.price
    fargate = on_demand * rate_od * hours
    formula = (f"{_tasks(on_demand)} × ({vcpu:g} vCPU × {_usd(cpu_od.price)} + {mem_gb:g} GB × "
               f"{_usd(gb_od.price)}) × {hours:g} h")
    is_estimate = False
    if on_spot:
        cpu_sp = prices.get(f"fargate_spot_{arch}_vcpu_hour", region)
        gb_sp = prices.get(f"fargate_spot_{arch}_gb_hour", region)
        rate_sp = vcpu * cpu_sp.price + mem_gb * gb_sp.price
        fargate += on_spot * rate_sp * hours
        formula += (f" + {_tasks(on_spot)} on Spot × ({vcpu:g} × {_usd(cpu_sp.price)} + {mem_gb:g} × "
                    f"{_usd(gb_sp.price)}) × {hours:g} h")
        is_estimate = True
    if schedule_formula:
        formula += f"; schedule: {schedule_formula}"
    if aws.compute == "fargate":
        comps.append(Component("fargate", f"Fargate {variant_name(arch, bool(on_spot))} ({vcpu:g} vCPU, "
                               f"{mem_gb:g} GB)", weekly_tasks, "tasks", rate_od, fargate, formula, is_estimate))
    if extra and aws.compute == "fargate":  # the canary service runs on-demand (FARGATE) beside the stable one
        comps.append(Component("fargate_canary", f"Fargate canary ({canary_percent} %)", float(extra), "tasks",
                               rate_od, extra * rate_od * hours,
                               f"{_tasks(extra)} (⌈{tasks} × {canary_percent} %⌉, at least 1) × {_usd(rate_od)}/h × "
                               f"{hours:g} h"))

    # --- Application Load Balancer -------------------------------------------------------------------------------
    alb_h = prices.price("alb_hour", region)
    add("alb", "ALB hours", hours, "h", "alb_hour", f"{hours:g} h × {_usd(alb_h)}")
    lcu = lcu_for(traffic, cost.request_bytes, cost.response_bytes, cost.keepalive_requests_per_connection,
                  cost.connection_duration_s, cost.alb_rules)
    lcu_p = prices.price("alb_lcu_hour", region)
    add("alb_lcu", "ALB LCUs", lcu.billed * hours, "LCU-h", "alb_lcu_hour",
        f"{lcu.billed:.4g} LCU ({lcu.dimension.replace('_', ' ')}) × {hours:g} h × {_usd(lcu_p)}")

    # --- CloudWatch ----------------------------------------------------------------------------------------------
    sample, sample_source = log_sample_rate(config)
    logged = sample + (1 - sample) * cost.always_logged_fraction
    access_gb = traffic * logged * cost.log_bytes_per_request * seconds / GB
    emf_gb = (running if traffic > 0 else 0) * seconds / EMF_INTERVAL_S * EMF_LINE_BYTES / GB
    log_gb = access_gb + emf_gb
    ingest = prices.get("logs_ingest_gb", region)
    free_logs = ingest.free if free else 0.0
    add("logs_ingest", "CloudWatch Logs ingestion", log_gb, "GB", "logs_ingest_gb",
        f"access log {traffic:g} req/s × {logged:.4g} logged ({sample:g} sampled [{sample_source}] + "
        f"{cost.always_logged_fraction:g} errors/slow) × {cost.log_bytes_per_request} B × {seconds:,.0f} s = "
        f"{access_gb:,.2f} GB + EMF {_tasks(running if traffic > 0 else 0)} × {seconds / EMF_INTERVAL_S:,.0f} "
        f"lines × {EMF_LINE_BYTES} B = {emf_gb:,.2f} GB; {_less_free(f'{log_gb:,.2f} GB', free_logs)} × "
        f"{_usd(ingest.price)}",
        free_units=free_logs)
    days = hours / 24
    stored = log_gb / days * aws.log_retention_days
    add("logs_storage", "CloudWatch Logs storage", stored, "GB-month", "logs_storage_gb_month",
        f"{log_gb:,.2f} GB/month ÷ {days:.2f} d × {aws.log_retention_days} d retention × "
        f"{_usd(prices.price('logs_storage_gb_month', region))} (uncompressed, steady state)")
    metric = prices.get("custom_metric_month", region)
    n_metrics = custom_metric_count(config, versions)
    why = ("cost.custom_metrics" if cost.custom_metrics is not None else
           f"EMF: {EMF_METRIC_NAMES} names × (app/env + {versions} version{'s' if versions > 1 else ''})")
    add("metrics", "CloudWatch custom metrics", float(n_metrics), "metrics", "custom_metric_month",
        f"{_less_free(f'{n_metrics} metrics', metric.free if free else 0)} × {_usd(metric.price)}; {why}",
        free_units=metric.free if free else 0.0)
    dash = prices.get("dashboard_month", region)
    add("dashboards", "CloudWatch dashboards", float(DASHBOARDS), "dashboards", "dashboard_month",
        f"{_less_free(f'{DASHBOARDS} dashboard', dash.free if free else 0)} × {_usd(dash.price)}",
        free_units=dash.free if free else 0.0)
    policies = 1 + (1 if aws.autoscaling.requests_per_target > 0 else 0)  # CPU always, requests optionally
    service_metrics = SERVICE_ALARM_METRICS if aws.alarms.enabled else 0
    canary_metrics = CANARY_ALARM_METRICS if canary_percent is not None else 0
    n_alarms = service_metrics + canary_metrics + ALARMS_PER_TRACKING_POLICY * policies
    alarm = prices.get("alarm_month", region)
    add("alarms", "CloudWatch alarms", float(n_alarms), "alarm metrics", "alarm_month",
        f"{_less_free(f'{n_alarms} alarm metrics', alarm.free if free else 0)} × {_usd(alarm.price)}; "
        f"{SERVICE_ALARMS if aws.alarms.enabled else 0} service alarms ({service_metrics} metrics: the 5xx rate is "
        f"metric math over 3)" + (f" + 2 canary alarms ({canary_metrics} metrics)" if canary_metrics else "")
        + f" + {policies} scaling polic{'y' if policies == 1 else 'ies'} × {ALARMS_PER_TRACKING_POLICY}",
        free_units=alarm.free if free else 0.0)
    if aws.container_insights:
        services = 2 if extra else 1
        ci_metrics = CI_CLUSTER_METRICS + CI_SERVICE_METRICS * services + CI_TASK_FAMILY_METRICS
        left_free = max(0.0, (metric.free if free else 0.0) - n_metrics)  # the free 10 are shared
        ci_gb = running * hours * 60 * CI_LOG_BYTES_PER_TASK_MINUTE / GB
        ci_cost = max(0.0, ci_metrics - left_free) * metric.price + ci_gb * ingest.price
        comps.append(Component(
            "container_insights", "Container Insights", float(ci_metrics), "metrics", metric.price, ci_cost,
            f"{ci_metrics} metrics (cluster {CI_CLUSTER_METRICS} + {services} service{'s' if services > 1 else ''} "
            f"× {CI_SERVICE_METRICS} + task family {CI_TASK_FAMILY_METRICS}) × {_usd(metric.price)} + performance "
            f"logs {_tasks(running)} × {CI_LOG_BYTES_PER_TASK_MINUTE} B/min = {ci_gb:,.3f} GB × "
            f"{_usd(ingest.price)}", estimate=True))

    # --- ECR -------------------------------------------------------------------------------------------------------
    ecr_gb = cost.image_gb * cost.images_retained
    add("ecr", "ECR storage", ecr_gb, "GB-month", "ecr_storage_gb_month",
        f"{cost.image_gb:g} GB × {cost.images_retained} images × {_usd(prices.price('ecr_storage_gb_month', region))}")

    # --- NAT gateway (private subnets only) -------------------------------------------------------------------------
    nat = cost.nat_gateways if cost.nat_gateways is not None else (0 if aws.assign_public_ip else 1)
    if nat:
        nat_h = prices.price("nat_hour", region)
        add("nat", "NAT gateway hours", nat * hours, "h", "nat_hour", f"{nat} × {hours:g} h × {_usd(nat_h)}")
        nat_gb = log_gb + tasks * cost.image_gb
        add("nat_data", "NAT gateway data", nat_gb, "GB", "nat_gb",
            f"({log_gb:,.2f} GB logs + {_tasks(tasks)} × {cost.image_gb:g} GB image pull) × "
            f"{_usd(prices.price('nat_gb', region))}")

    # --- Public IPv4 addresses ------------------------------------------------------------------------------------
    subnets, subnet_source = alb_subnets(config, region)
    task_ips: float = running if aws.assign_public_ip else 0
    if aws.compute == "ec2":  # awsvpc tasks on EC2 get no public IP; each instance gets one
        task_ips = ec2_instances if aws.assign_public_ip else 0
    alb_ips = 0 if aws.internal else subnets
    n_ips = task_ips + alb_ips + nat
    ip_p = prices.price("public_ipv4_hour", region)
    add("public_ipv4", "Public IPv4 addresses", n_ips * hours, "address-h", "public_ipv4_hour",
        f"({_tasks(task_ips)}" + ("" if aws.assign_public_ip else " (no aws.assign_public_ip)")
        + f" + {alb_ips} ALB node{'s' if alb_ips != 1 else ''} ({'internal' if aws.internal else subnet_source})"
        f" + {nat} NAT Elastic IP{'s' if nat != 1 else ''}) = {n_ips} × {hours:g} h × {_usd(ip_p)}")

    # --- Data transfer out ------------------------------------------------------------------------------------------
    dto = prices.get("data_transfer_out_gb", region)
    out_gb = traffic * cost.response_bytes * seconds / GB
    free_out = dto.free if free else 0.0
    dto_cost = tiered_cost(out_gb, dto.tiers) - tiered_cost(min(out_gb, free_out), dto.tiers)
    tiers = " / ".join(f"{_usd(p)}" + (f" to {u / 1024:g} TB" if u else " beyond") for u, p in dto.tiers)
    add("data_transfer", "Data transfer out", out_gb, "GB", "data_transfer_out_gb",
        f"{traffic:g} req/s × {cost.response_bytes} B × {seconds:,.0f} s = {out_gb:,.2f} GB; "
        f"{_less_free(f'{out_gb:,.2f} GB', free_out)} tiered {tiers}", monthly=dto_cost)

    return Estimate(
        variant=variant_name(arch, spot.enabled), region=region, rps=traffic, tasks=tasks, tasks_needed=needed,
        saturated=saturated, capacity_rps_per_task=capacity, capacity_source=capacity_source, components=comps,
        lcu=lcu, requests_per_month=traffic * seconds, prices=f"{prices.origin} (read {prices.read})",
        assumptions={
            "hours_per_month": hours, "gb_bytes": GB, "utilization_target": utilization,
            "autoscaling": [lo, hi], "request_bytes": cost.request_bytes, "response_bytes": cost.response_bytes,
            "log_bytes_per_request": cost.log_bytes_per_request,
            "keepalive_requests_per_connection": cost.keepalive_requests_per_connection,
            "connection_duration_s": cost.connection_duration_s, "free_tier": free, "nat_gateways": nat,
            "container_insights_included": aws.container_insights, "log_sample_rate": sample,
            "log_sample_source": sample_source, "logged_fraction": logged, "custom_metrics": n_metrics,
            "alarm_metrics": n_alarms, "public_ipv4": {"tasks": task_ips, "alb": alb_ips, "nat": nat},
            "alb_subnets": subnets, "alb_subnets_source": subnet_source, "compute": aws.compute,
            **({"schedule": [{"share": round(seg.share, 4), "min": seg.min, "max": seg.max, "cron": seg.source}
                             for seg in segs], "schedule_weekly_tasks": round(weekly_tasks, 3),
                "schedule_notes": schedule_notes} if aws.autoscaling.schedule else {}),
        },
        before_traffic=rps is None, capacity_estimated=capacity_estimated, canary_percent=canary_percent,
        canary_tasks=extra,
    )


def _ec2_components(config: Config, prices: PriceTable, region: str, segs: list[Any], wanted: float, extra: int,
                    hours: float, schedule_formula: str) -> list[Component]:
    """aws.compute ec2: on-demand instances (⌈tasks ÷ tasks per instance⌉ in each scheduled range, time-weighted)
    and their gp3 root volumes. Spot instances are priced at the on-demand rate (an upper bound, stated)."""
    from mldeploy.cost import instances
    from mldeploy.cost.schedule import Segment

    aws = config.aws
    itype = aws.instance_type or ""
    table = prices.ec2_instances(region)
    if itype not in table:
        raise ConfigError(f"aws.instance_type: no bundled on-demand price for {itype} in {region} (bundled there: "
                          f"{', '.join(sorted(table)) or 'none'})",
                          hint="pick a listed type or region, or refresh prices with `mldeploy cost --live`")
    per = instances.tasks_per_instance(aws)
    if per < 1:
        problems = "; ".join(m for _, m in instances.fit_problems(config)) or f"no task fits one {itype}"
        raise ConfigError(f"aws.instance_type: {problems}")
    usd = table[itype][2]
    ranges = segs or [Segment(1.0, aws.autoscaling.min, aws.autoscaling.max, "autoscaling")]
    count = sum(seg.share * math.ceil((min(max(wanted, seg.min), seg.max) + extra) / per) for seg in ranges)
    spot = " (Spot priced at on-demand: an upper bound)" if aws.spot.enabled else ""
    tasks_txt = f"{wanted:g} tasks" + (f" + {extra} canary" if extra else "")
    formula = (f"⌈{tasks_txt} ÷ {per} per {itype}⌉ = {count:.3g} × {_usd(usd)}/h × {hours:g} h "
               f"(read {prices.ec2_source()[1]}){spot}")
    if schedule_formula:
        formula += f"; schedule: {schedule_formula}"
    ebs = prices.get("ebs_gp3_gb_month", region)
    root_gb = instances.ROOT_VOLUME_GB

    return [
        Component("ec2", f"EC2 {itype} on-demand" + (f" ({aws.gpus} GPU per task)" if aws.gpus else ""), count,
                  "instances", usd, count * usd * hours, formula),
        Component("ebs", "EBS gp3 root volumes", count * root_gb, "GB-month", ebs.price,
                  count * root_gb * ebs.price, f"{count:.3g} × {root_gb} GB × {_usd(ebs.price)}"),
    ]


def estimate_for_config(config: Config, rps: float | None = None, **kwargs: Any) -> Estimate:
    """Public entry point for ``plan``/``up``: see :func:`estimate`."""
    return estimate(config, rps, **kwargs)


def variants(config: Config) -> list[tuple[str, Arch, Spot]]:
    """x86, ARM, x86+Spot, ARM+Spot — Spot uses the config's ``aws.spot`` base/weight (enabled)."""
    spot_on = config.aws.spot.model_copy(update={"enabled": True})
    spot_off = config.aws.spot.model_copy(update={"enabled": False})
    return [(variant_name(a, s.enabled), a, s) for s in (spot_off, spot_on) for a in ("x86", "arm")]


def compare(config: Config, rps: float | None, **kwargs: Any) -> dict[str, Estimate]:
    """One estimate per variant (see :func:`variants`); Fargate variants of the same task size for compute ec2."""
    config = fargate_equivalent(config)
    return {name: estimate(config, rps, arch=arch, spot=spot, **kwargs) for name, arch, spot in variants(config)}


def fargate_equivalent(config: Config) -> Config:
    """``config`` on Fargate (same task size, no GPUs) when it uses compute ec2: what ``--compare`` sets the
    Fargate variants, ECS on EC2 and Lambda side by side from."""
    if config.aws.compute != "ec2":
        return config
    fargate = config.aws.model_copy(update={"compute": "fargate", "instance_type": None, "gpus": 0})
    return config.model_copy(update={"aws": fargate})
