"""Monthly cost against request rate: a matplotlib PNG, or a bar chart in the terminal.

The terminal chart is a few lines of rich markup rather than a plotting dependency (plotext & co.): it only needs
one horizontal bar per traffic level and variant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from rich.table import Table

from mldeploy.cost.model import Estimate
from mldeploy.cost.report import money, rps_label
from mldeploy.errors import MldeployError

COLOURS = {"x86": "cyan", "arm": "green", "x86+spot": "magenta", "arm+spot": "yellow"}
BAR = 40


class MatplotlibMissing(MldeployError):
    """``--plot FILE`` without matplotlib: ``cost`` falls back to the terminal chart."""


def sweep_points(levels: list[float], n: int = 40) -> list[float]:
    """``n`` log-spaced request rates spanning ``levels`` (plus the levels themselves)."""
    positive = [x for x in levels if x > 0]
    if not positive:
        return sorted(set(levels))
    lo, hi = min(positive), max(positive)
    if hi / lo < 10:
        lo, hi = lo / 3, hi * 3
    step = (math.log10(hi) - math.log10(lo)) / (n - 1)
    return sorted({*(10 ** (math.log10(lo) + i * step) for i in range(n)), *positive})


def dollars(x: float) -> str:
    """An axis tick: $1, $10, $100, $1k, $10k, $1.5M."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"${x / div:,.3g}{suffix}"
    return f"${x:,.3g}"


def rate(x: float) -> str:
    """An axis tick for requests/s: 10, 100, 1k, 10k."""
    return f"{x / 1e3:,.3g}k" if x >= 1e3 else f"{x:,.3g}"


def png(curves: dict[str, list[Estimate]], levels: list[float], path: Path, title: str) -> Path:
    """Write a PNG of monthly cost (log-log) per variant: dollar ticks, the requested levels annotated inside the
    axes, overloaded points (more tasks needed than autoscaling.max) marked with a red ✕ and a shaded band."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise MatplotlibMissing("--plot FILE needs matplotlib", hint="pip install 'mldeploy[plot]', or use --plot "
                                "without a file for a terminal chart") from e
    from matplotlib.ticker import FuncFormatter, LogLocator

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    first = next(iter(curves))
    overloaded_from: float | None = None
    for name, ests in curves.items():
        xs = [e.rps for e in ests if e.rps > 0]
        ys = [e.total for e in ests if e.rps > 0]
        line, = ax.plot(xs, ys, label=name, linewidth=2)
        marks = [e for e in ests if e.rps in levels]
        ok = [e for e in marks if not e.overloaded]
        ax.scatter([e.rps for e in ok], [e.total for e in ok], color=line.get_color(), zorder=3)
        bad = [e for e in ests if e.overloaded and e.rps > 0]
        if bad:
            overloaded_from = min(overloaded_from or math.inf, bad[0].rps)
        over_marks = [e for e in marks if e.overloaded]
        ax.scatter([e.rps for e in over_marks], [e.total for e in over_marks], color="red", marker="x", s=60,
                   zorder=4, label="overloaded (> autoscaling.max)" if name == first and over_marks else None)
        if name == first:
            for e in marks:  # labels point inwards: left of the point, below it near the top edge
                ax.annotate(money(e.total) + (" overloaded" if e.overloaded else ""), (e.rps, e.total),
                            textcoords="offset points", xytext=(-8, -14 if e is marks[-1] else 8), ha="right",
                            fontsize=8, color="red" if e.overloaded else "black",
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_xscale("log")
    ax.set_yscale("log")
    if overloaded_from is not None:
        ax.axvspan(overloaded_from, ax.get_xlim()[1], color="red", alpha=0.06, zorder=0)
    ax.yaxis.set_major_locator(LogLocator(base=10))
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: dollars(y)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: dollars(y)))  # $200, $500 between decades
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: rate(x)))
    ax.margins(x=0.08, y=0.12)  # the end points and their labels stay inside the axes
    ax.set_xlabel("requests per second (steady)")
    ax.set_ylabel("USD per month")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path)
    except OSError as e:
        raise MldeployError(f"--plot: cannot write {path}: {e.strerror or e}") from e
    finally:
        plt.close(fig)
    return path


def terminal(curves: dict[str, list[Estimate]]) -> Table:
    """Horizontal bars: one row per traffic level and variant, scaled to the largest total."""
    top = max((e.total for ests in curves.values() for e in ests), default=0.0) or 1.0
    table = Table(title="Monthly cost by request rate", title_justify="left", box=None, show_header=False)
    table.add_column("traffic", justify="right")
    table.add_column("variant")
    table.add_column("bar", no_wrap=True, min_width=BAR + 1)
    table.add_column("cost", justify="right")
    names = list(curves)
    for i, est in enumerate(curves[names[0]]):
        for j, name in enumerate(names):
            e = curves[name][i]
            width = max(1, round(BAR * e.total / top))
            colour = COLOURS.get(name, "white")
            table.add_row(rps_label(est.rps) if j == 0 else "", name, f"[{colour}]{'█' * width}[/{colour}]",
                          money(e.total) + (" [red]overloaded[/red]" if e.overloaded else ""))
    return table


def curves_for(estimate_at: Callable[[float, str], Estimate], variants: list[str],
               points: list[float]) -> dict[str, list[Estimate]]:
    """``{variant: [estimate at each point]}`` from a callable ``(rps, variant) -> Estimate``."""
    return {v: [estimate_at(x, v) for x in points] for v in variants}
