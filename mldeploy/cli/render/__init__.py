"""Human output of the commands: tables and summaries on stderr (``--json`` documents are written by the
commands through :func:`mldeploy.console.emit_json`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def print_table(target: Console, table: Table) -> None:
    """Print ``table`` on ``target``; piped or redirected (no terminal, no ``$COLUMNS``), at its natural width
    rather than rich's 80-column default, so cells are not cut (``--json`` stays the format for machines)."""
    import os

    if target.is_terminal or os.environ.get("COLUMNS"):
        target.print(table)
        return
    from rich.console import Console
    from rich.measure import Measurement

    natural = Measurement.get(target, target.options.update(width=10_000), table).maximum
    if natural <= target.width:
        target.print(table)
        return
    # Console.print caps `width` at the console's own width: a wider console on the same stream
    Console(file=target.file, width=natural, no_color=target.no_color, color_system=target.color_system,
            highlight=False).print(table)
