"""Step outputs and markdown summaries for GitHub Actions, on top of :mod:`mldeploy.console`.

Commands call :func:`report` once with what they produced; outside GitHub Actions it does nothing
(``console.set_outputs``/``add_summary`` are no-ops without ``$GITHUB_OUTPUT``/``$GITHUB_STEP_SUMMARY``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mldeploy import console


def md(value: Any) -> str:
    """A value as one markdown table cell (pipes escaped, newlines flattened, None as a dash)."""
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        value = f"{value:,.2f}"
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", "<br>")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(md(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def key_values(values: Mapping[str, Any]) -> str:
    """A two-column markdown table of the non-empty ``values``."""
    return table(["", ""], [(f"**{md(k)}**", v) for k, v in values.items() if v is not None])


def report(title: str, *, outputs: Mapping[str, Any] | None = None, facts: Mapping[str, Any] | None = None,
           body: str = "") -> None:
    """Write ``outputs`` to ``$GITHUB_OUTPUT`` and a ``### title`` section (facts table + body) to the summary."""
    if outputs:
        console.set_outputs(dict(outputs))
    parts = [f"### {title}"]
    if facts:
        parts.append(key_values(facts))
    if body:
        parts.append(body.strip())
    console.add_summary("\n\n".join(parts))
