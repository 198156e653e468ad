"""Cost estimates and capacity planning (``mldeploy cost``, ``mldeploy bench``).

Public API for other areas (import lazily, inside functions):

- ``estimate_for_config(config, rps=None, **kw) -> Estimate`` — the monthly bill of a validated ``Config`` at
  ``rps`` requests/s; ``rps=None`` is what ``up`` creates before traffic (``desired_count`` tasks, ALB, alarms…).
  ``Estimate.components`` (name, monthly, formula), ``.total``, ``.per_million``, ``.to_dict()``.
- ``plan_line(config) -> str`` — a one-line summary for ``plan``/``up`` output.
- ``load_prices(live=False)`` — the unit price table (bundled ``prices.json`` or the AWS Pricing API).
"""

from __future__ import annotations

from mldeploy.cost.model import Component, Estimate, compare, estimate, estimate_for_config
from mldeploy.cost.prices import PriceTable
from mldeploy.cost.prices import load as load_prices

__all__ = ["Component", "Estimate", "PriceTable", "compare", "estimate", "estimate_for_config", "load_prices",
           "plan_line"]


def plan_line(config, region: str | None = None) -> str:  # noqa: ANN001 - Config, imported lazily by callers
    """``≈ $123.45/month before traffic (2 × 0.5 vCPU/1 GB x86 tasks, ALB, logs, alarms, ECR)``."""
    est = estimate_for_config(config, None, region=region)
    fg = est.component("fargate")
    return (f"≈ ${est.total:,.2f}/month in {est.region} before traffic ({est.tasks} × {fg.name}; ALB, CloudWatch, "
            f"ECR) — traffic adds LCUs, logs and data transfer: `mldeploy cost --rps …`")
