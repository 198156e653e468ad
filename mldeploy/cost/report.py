"""Rich tables and JSON documents for ``mldeploy cost``."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from mldeploy.cost.model import Estimate


def money(x: float | None) -> str:
    if x is None:
        return "—"
    return f"${x:,.2f}" if abs(x) >= 0.01 or x == 0 else f"${x:.4f}"


def rps_label(rps: float) -> str:
    return f"{rps:,.0f} req/s" if rps == int(rps) else f"{rps:,.3g} req/s"


def estimates_table(estimates: list[Estimate]) -> Table:
    """One column per traffic level, one row per component, then tasks, total and cost per 1M requests."""
    first = estimates[0]
    table = Table(title=f"Monthly cost — {first.variant}, {first.region}, prices {first.prices}",
                  title_justify="left")
    table.add_column("Component")
    for est in estimates:
        table.add_column("before traffic" if est.before_traffic else rps_label(est.rps), justify="right")
    for comp in first.components:
        marks = "*" if any(e.component(comp.key).estimate for e in estimates) else ""
        table.add_row(comp.name + marks, *(money(e.component(comp.key).monthly) for e in estimates))
    table.add_section()
    table.add_row("Tasks (needed → billed)", *(
        f"{e.tasks_needed} → {e.tasks}" + (" [red]max![/red]" if e.saturated else "") for e in estimates))
    table.add_row("ALB LCU (billed dimension)", *(f"{e.lcu.billed:.3g} ({e.lcu.dimension.split('_')[0]})"
                                                  for e in estimates))
    table.add_row("[bold]Total per month", *(f"[bold]{money(e.total)}" for e in estimates))
    table.add_row("Cost per 1M requests", *(per_million(e) for e in estimates))
    return table


def per_million(est: Estimate) -> str:
    """The cost per 1M requests, or "overloaded" when the tasks cannot serve the rate (no cheap figure)."""
    return "[red]overloaded[/red]" if est.overloaded else money(est.per_million)


def arithmetic_table(est: Estimate) -> Table:
    """How every component of one estimate was computed."""
    table = Table(title=f"Arithmetic at {rps_label(est.rps)} ({est.variant}, {est.region})", title_justify="left")
    table.add_column("Component")
    table.add_column("Monthly", justify="right")
    table.add_column("How", overflow="fold")
    for comp in est.components:
        table.add_row(comp.name, money(comp.monthly), comp.formula)
    table.add_row("[bold]Total", f"[bold]{money(est.total)}", "")
    return table


def compare_table(by_variant: dict[str, list[Estimate]]) -> Table:
    """Monthly totals of every variant side by side, with the saving against the first (x86 on-demand)."""
    names = list(by_variant)
    base = by_variant[names[0]]
    first = base[0]
    table = Table(title=f"x86 vs ARM vs Spot — {first.region}, prices {first.prices}", title_justify="left")
    table.add_column("Traffic")
    table.add_column("Tasks", justify="right")
    for name in names:
        table.add_column(f"{name} / month" + ("*" if "spot" in name else ""), justify="right")  # Spot: estimate
    for i, est in enumerate(base):
        cells = [rps_label(est.rps), str(est.tasks)]
        for name in names:
            other = by_variant[name][i]
            saving = (1 - other.total / est.total) * 100 if est.total else 0.0
            cells.append(("[red]overloaded[/red] " if other.overloaded else "") + money(other.total)
                         + (f" ([green]−{saving:.0f} %[/green])" if saving >= 0.5 else ""))
        table.add_row(*cells)
    table.caption = "* Fargate Spot prices float: estimated at 30 % of on-demand (see prices.json)"
    table.caption_justify = "left"
    table.add_section()
    table.add_row(f"Fargate alone @ {rps_label(first.rps)}", "",
                  *(money(by_variant[n][0].component("fargate").monthly) for n in names))
    return table


def alternatives_table(rows: list[tuple[Estimate, list[Any]]]) -> Table:
    """Fargate against ECS on EC2 and Lambda at each traffic level (``rows``: estimate + its Alternatives)."""
    first = rows[0][0]
    table = Table(title=f"Fargate vs ECS on EC2 vs Lambda — {first.region}, same load", title_justify="left")
    table.add_column("Traffic")
    table.add_column(f"Fargate {first.variant} / month", justify="right")
    for alt in rows[0][1]:
        table.add_column(f"{alt.name} / month", justify="right")
    for est, alts in rows:
        cells = [rps_label(est.rps) if not est.before_traffic else "before traffic",
                 ("[red]overloaded[/red] " if est.overloaded else "") + money(est.total)]
        for alt in alts:
            if alt.total is None:
                cells.append("—")
                continue
            diff = (alt.total / est.total - 1) * 100 if est.total else 0.0
            colour = "green" if diff < 0 else "red"
            cells.append(f"{money(alt.total)} ([{colour}]{diff:+.0f} %[/{colour}])")
        table.add_row(*cells)
    return table


def alternative_notes(rows: list[tuple[Estimate, list[Any]]]) -> list[str]:
    """Sources and caveats of the alternatives (once each)."""
    out: list[str] = []
    for est, alts in rows:
        for alt in alts:
            if alt.source and f"{alt.name}: prices {alt.source}" not in out:
                out.append(f"{alt.name}: prices {alt.source}")
        for alt in alts:
            out += [f"{rps_label(est.rps)} {alt.key}: {n}" for n in alt.notes]
    return out


def notes(estimates: list[Estimate]) -> list[str]:
    """Warnings a reader must see next to the numbers."""
    out: list[str] = []
    for est in estimates:
        if est.saturated:
            uncapped = est.component("fargate").monthly / est.tasks * est.tasks_needed if est.tasks else 0.0
            out.append(f"{rps_label(est.rps)} needs {est.tasks_needed} tasks (Fargate ≈ {money(uncapped)}/month) but "
                       f"aws.autoscaling.max is {est.tasks}: the service would be overloaded; raise the maximum or "
                       f"the task size")
    starred = {c.key for e in estimates for c in e.components if c.estimate}
    if "fargate" in starred:
        out.append("* Fargate Spot prices float; the Spot figure is an estimate (see prices.json)")
    if "container_insights" in starred:
        out.append("* Container Insights: metric and log-event counts are estimates (standard Container Insights)")
    if starred - {"fargate", "container_insights"}:
        out.append("* priced as in us-east-1: the Pricing API had no figure for this region")
    first = estimates[0]
    if first.capacity_rps_per_task:
        out.append(f"capacity {first.capacity_rps_per_task:g} req/s per task ({first.capacity_source}), autoscaled "
                   f"to {first.assumptions['utilization_target'] * 100:g} % → "
                   f"{first.capacity_rps_per_task * first.assumptions['utilization_target']:g} req/s per task")
    if first.capacity_estimated:
        out.append("the capacity is an ESTIMATE from the packaged model's inference time, not a load test: run "
                   "`mldeploy bench --local` to measure it")
    return out


def to_json(by_variant: dict[str, list[Estimate]]) -> dict[str, Any]:
    first = next(iter(by_variant.values()))[0]
    return {
        "region": first.region,
        "prices": first.prices,
        "variants": {name: [e.to_dict() for e in ests] for name, ests in by_variant.items()},
    }
