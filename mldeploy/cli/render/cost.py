"""``mldeploy cost`` and ``mldeploy bench`` on a terminal: estimate tables, notes, plots and the bench table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mldeploy import console

if TYPE_CHECKING:
    from mldeploy.cost.bench import BenchResult
    from mldeploy.cost.capacity import Capacity
    from mldeploy.cost.model import Estimate


def measured_size_warning(capacity: Capacity, cpu: int, memory: int) -> None:
    """Warn when the bench measured a task size other than aws.cpu/aws.memory."""
    if capacity.measured_size is not None:
        m_cpu, m_mem = capacity.measured_size
        console.warn(f"the bench measured a {m_cpu}/{m_mem} task but aws.cpu/"
                     f"memory are {cpu}/{memory}; re-run `mldeploy bench`")


def no_capacity_warning() -> None:
    console.warn("no per-task capacity known: showing the cost before traffic only; run `mldeploy bench` or "
                 "set cost.capacity_rps_per_task for costs per traffic level")


def estimated_capacity_warning(capacity: Capacity) -> None:
    console.warn(f"per-task capacity {capacity.rps_per_task:g} req/s is an ESTIMATE ({capacity.source}); run "
                 "`mldeploy bench --local` to measure it")


def print_estimates(by_variant: dict[str, list[Estimate]], *, explain: bool, compare: bool,
                    alternatives: list[tuple[Estimate, list[Any]]] | None = None) -> None:
    """The estimates of the first variant (+ arithmetic with ``explain``), the comparisons, then the notes."""
    from mldeploy.cost import report

    first = next(iter(by_variant.values()))
    console.out.print(report.estimates_table(first))
    if explain:
        for est in first:
            console.out.print(report.arithmetic_table(est))
    if compare:
        console.out.print(report.compare_table(by_variant))
    if alternatives:
        console.out.print(report.alternatives_table(alternatives))
        if explain:
            for est, alts in alternatives:
                for alt in alts:
                    for comp in alt.components:
                        console.info(f"[dim]{report.rps_label(est.rps)} {alt.name}: {comp.name} "
                                     f"{report.money(comp.monthly)} = {comp.formula}[/dim]")
    for note in report.notes(first) + (report.alternative_notes(alternatives) if alternatives else []):
        console.info(f"[dim]{note}[/dim]")


def print_bench(target: str, result: BenchResult) -> None:
    """req/s, percentiles, errors and status codes of one bench run, then sample errors."""
    from rich.table import Table

    def ms(x: float | None) -> str:
        return "—" if x is None else f"{x:,.1f} ms"

    t = Table(title=f"bench {target}", title_justify="left")
    for col in ("req/s", "p50", "p95", "p99", "requests", "errors", "status"):
        t.add_column(col, justify="right")
    t.add_row(f"{result.rps:,.1f}", ms(result.p50_ms), ms(result.p95_ms), ms(result.p99_ms), str(result.requests),
              f"{result.errors} ({result.error_rate:.1%})", " ".join(f"{k}×{v}" for k, v in result.status.items()))
    console.out.print(t)
    for sample in result.error_samples:
        console.warn(sample)
