"""The summary ``mldeploy package`` prints (stderr): format in → served, sizes, parity, int8, the signature."""

from __future__ import annotations

from mldeploy.artifacts.packager import PackageResult
from mldeploy.artifacts.summary import features_text, human_size, shape_text


def render(result: PackageResult) -> None:
    """Print format in → format served, sizes, parity figures and the signature (stderr)."""
    from rich.markup import escape
    from rich.table import Table

    from mldeploy import console

    m = result.manifest
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    conv = f"{m.source_format} → {m.format}" if m.source_format != m.format else f"{m.format} (served as is)"
    table.add_row("model", f"{m.name} {m.version}  [dim]{m.task}[/dim]")
    table.add_row("format", conv)
    table.add_row("size", f"{human_size(result.source_size)} → {human_size(m.size_bytes)}  [dim]{m.file}[/dim]")
    table.add_row("sha256", m.sha256)
    if m.parity:
        p = m.parity
        agree = f", argmax agreement {p.argmax_agreement:.1%}" if p.argmax_agreement is not None else ""
        mark = "[green]passed[/green]" if p.passed else "[red]FAILED[/red]"
        table.add_row("parity", f"{mark} on {p.samples} inputs: max abs {p.max_abs_error:.2e}, "
                                f"max rel {p.max_rel_error:.2e}{agree}")
    if (q := result.quantization) and "int8_bytes" in q:
        verdict = "[green]kept[/green]" if q["kept"] else "[yellow]not kept[/yellow]"
        qp = q["parity"]
        agree = f", argmax agreement {qp['argmax_agreement']:.1%}" if qp.get("argmax_agreement") is not None else ""
        table.add_row("int8", f"{verdict}: size {human_size(q['fp32_bytes'])} → {human_size(q['int8_bytes'])}, "
                              f"single-row latency {q['fp32_latency_ms']:.3f} ms → {q['int8_latency_ms']:.3f} ms; "
                              f"parity max abs {qp['max_abs_error']:.2e}{agree}")
    if line := features_text(m):
        table.add_row("features", line)
    for t in m.inputs:
        cats = t.categories or []  # a category column: what it takes
        table.add_row("input", f"{t.name}: {t.dtype}[{shape_text(t.shape)}]" + (
            f"  [dim]categories {escape(', '.join(cats[:8]))}{' …' if len(cats) > 8 else ''}[/dim]" if cats else ""))
    for t in m.outputs:
        table.add_row("output", f"{t.name}: {t.dtype}[{shape_text(t.shape)}]" + (f"  [dim]{t.role}[/dim]" if t.role
                                                                               else ""))
    if m.class_labels:
        labels = ", ".join(m.class_labels[:8]) + (f" … ({len(m.class_labels)})" if len(m.class_labels) > 8 else "")
        table.add_row("classes", labels)
    table.add_row("server needs", ", ".join(m.requirements) or "-")
    console.console.print(table)
    for note in result.notes:
        console.warn(note)
    verb = "reused" if result.cached else "packaged"
    console.success(f"{verb} {result.dir}")
