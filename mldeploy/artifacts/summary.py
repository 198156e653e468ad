"""What ``mldeploy package`` produced, as data: the ``--json`` document and sizes (``cli/render/package`` prints)."""

from __future__ import annotations

from typing import Any

from mldeploy.artifacts.packager import PackageResult
from runtime.manifest import Manifest


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def shape_text(shape: list[int | None]) -> str:
    return "×".join("N" if d is None else str(d) for d in shape) or "scalar"


_SOURCES = {"model": "from the model", "config": "from model.feature_names", "sample": "from model.sample_input"}


def features_text(m: Manifest, limit: int = 8) -> str | None:
    """One line: the feature names records use, where they came from, and whether the model takes a DataFrame."""
    names = m.feature_names
    if not names:
        return None
    shown = ", ".join(names[:limit]) + (f", … ({len(names)})" if len(names) > limit else "")
    where = _SOURCES.get(m.feature_names_source or "", "from model.json")
    frame = ("; one ONNX input per column" if m.format == "onnx" else "; passed as a pandas DataFrame") \
        if m.dataframe else ""
    return f"{shown}  ({where}{frame})"


def as_dict(result: PackageResult) -> dict[str, Any]:
    m = result.manifest
    return {
        "dir": str(result.dir), "cached": result.cached, "source": str(result.source_path),
        "source_format": m.source_format, "format": m.format, "file": m.file, "sha256": m.sha256,
        "size_bytes": m.size_bytes, "source_size_bytes": result.source_size, "task": m.task,
        "parity": m.parity.model_dump() if m.parity else None, "requirements": m.requirements,
        "inputs": [t.model_dump() for t in m.inputs], "outputs": [t.model_dump() for t in m.outputs],
        "class_labels": m.class_labels, "version": m.version, "notes": result.notes,
        "quantization": result.quantization, "feature_names": m.feature_names,
        "feature_names_source": m.feature_names_source, "dataframe": m.dataframe,
    }
