"""Cost estimates and capacity planning (``mldeploy cost``, ``mldeploy bench``).

Public API for other areas (import lazily, inside functions):

- ``estimate_for_config(config, rps=None, **kw) -> Estimate`` — the monthly bill of a validated ``Config`` at
  ``rps`` requests/s; ``rps=None`` is what ``up`` creates before traffic (``desired_count`` tasks, ALB, alarms…).
  ``Estimate.components`` (name, monthly, formula), ``.total``, ``.per_million``, ``.to_dict()``.
- ``plan_line(config, budget=None) -> str`` — a one-line summary for ``plan``/``up`` output.
- ``budget.check(config, deployed=…) -> BudgetCheck`` / ``budget.enforce(check, ignore=…)`` — the budget gate
  (``OverBudgetError``, exit code 9).
- ``load_prices(live=False)`` — the unit price table (bundled ``prices.json`` or the AWS Pricing API).
"""

from __future__ import annotations

from mldeploy.cost.model import Component, Estimate, compare, estimate, estimate_for_config
from mldeploy.cost.prices import PriceTable
from mldeploy.cost.prices import load as load_prices

__all__ = ["Component", "Estimate", "PriceTable", "compare", "estimate", "estimate_for_config", "load_prices",
           "plan_line"]


def plan_line(config, region: str | None = None, budget=None) -> str:  # noqa: ANN001 - Config; BudgetCheck
    """``≈ $123.45/month in us-east-1 before traffic (2 × Fargate …; ALB, public IPv4, CloudWatch, ECR) …``; with a
    ``budget`` check (``mldeploy.cost.budget.check``) also the delta against what is deployed and the budget."""
    est = estimate_for_config(config, None, region=region)
    compute = next(c for c in est.components if c.key in ("fargate", "ec2"))
    ips = est.component("public_ipv4")
    what = (f"{compute.quantity:g} × {compute.name} for {est.tasks} tasks" if compute.key == "ec2"
            else f"{est.tasks} × {compute.name}")
    line = (f"≈ ${est.total:,.2f}/month in {est.region} before traffic ({what}; ALB, "
            f"{ips.quantity / est.assumptions['hours_per_month']:.0f} public IPv4 ${ips.monthly:,.2f}, CloudWatch, "
            f"ECR) — traffic adds LCUs, logs and data transfer: `mldeploy cost --rps …`")
    if budget is not None:
        line += f"; budget: {budget.message}"
    return line
