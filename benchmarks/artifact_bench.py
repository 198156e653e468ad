"""Package every example (ONNX vs native) and report sizes, parity and single-row latency.

    python benchmarks/artifact_bench.py            # markdown table on stdout, JSON in benchmarks/results/

Each example's model is rebuilt in a temporary folder with its own ``make_model.py`` (no downloads).
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mldeploy.artifacts import package  # noqa: E402
from mldeploy.artifacts.summary import human_size  # noqa: E402
from tests.artifact_helpers import edit_config, example, project  # noqa: E402

EXAMPLES = ["iris-sklearn", "cnn-torch", "keras-tf"]


def dist_footprint(requirements: list[str]) -> int:
    """Installed bytes of the distributions the server needs (not their dependencies)."""
    total = 0
    for req in requirements:
        dist = importlib.metadata.distribution(req.split("==")[0])
        total += sum((f.size or 0) for f in dist.files or [])
    return total


_LATENCY = """
import json, statistics, sys, time
from pathlib import Path
import numpy as np
from runtime.loaders import load_model
from runtime.manifest import Manifest
folder = Path(sys.argv[1]); m = Manifest.load(folder); model = load_model(m, folder, threads=1)
spec = m.inputs[0]
if m.sample_input:
    x = np.asarray(m.sample_input[spec.name][:1], dtype=spec.dtype)
else:
    x = np.zeros([1] + [d or 1 for d in spec.shape[1:]], dtype=spec.dtype)
model.predict({spec.name: x})
times = []
for _ in range(200):
    t = time.perf_counter(); model.predict({spec.name: x}); times.append(time.perf_counter() - t)
print(json.dumps(statistics.median(times) * 1000))
"""


def latency_ms(folder: Path) -> float:
    """Median single-row predict() latency with the server's own loader, in a fresh process."""
    import subprocess

    res = subprocess.run([sys.executable, "-c", _LATENCY, str(folder)], capture_output=True, text=True, cwd=ROOT,
                         check=True, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return float(res.stdout.strip().splitlines()[-1])


def run(name: str, work: Path) -> list[dict[str, Any]]:
    folder = example(name, work / name)
    rows = []
    for convert in ("auto", "none"):
        edit_config(folder, convert=convert)
        t = time.perf_counter()
        result = package(project(folder), force=True)
        elapsed = time.perf_counter() - t
        m = result.manifest
        shape = "×".join(str(d) for d in m.inputs[0].shape[1:])
        rows.append({
            "example": name, "convert": convert, "source": f"{m.source_format} ({human_size(result.source_size)})",
            "input": f"{m.inputs[0].dtype}[{shape}]", "served": m.format, "artifact_bytes": m.size_bytes,
            "server_deps_bytes": dist_footprint(m.requirements), "requirements": m.requirements,
            "parity_max_abs": m.parity.max_abs_error if m.parity else None,
            "parity_max_rel": m.parity.max_rel_error if m.parity else None,
            "argmax_agreement": m.parity.argmax_agreement if m.parity else None,
            "package_s": round(elapsed, 2), "latency_ms": round(latency_ms(result.dir), 3),
        })
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| example | input (per row) | source | served | artifact | server deps | parity max abs / rel | argmax "
            "| 1-row latency | package |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        parity = (f"{r['parity_max_abs']:.1e} / {r['parity_max_rel']:.1e}" if r["parity_max_abs"] is not None
                  else "— (served as is)")
        agree = f"{r['argmax_agreement']:.0%}" if r["argmax_agreement"] is not None else "—"
        lines.append(f"| {r['example']} | {r['input']} | {r['source']} | {r['served']} | "
                     f"{human_size(r['artifact_bytes'])} | {human_size(r['server_deps_bytes'])} | {parity} | {agree} "
                     f"| {r['latency_ms']:.3f} ms | {r['package_s']:.1f} s |")
    return "\n".join(lines)


def main() -> None:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in EXAMPLES:
            rows.extend(run(name, Path(tmp)))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "artifact_bench.json").write_text(json.dumps(rows, indent=2))
    print(markdown(rows))
    shutil.rmtree(out / "tmp", ignore_errors=True)


if __name__ == "__main__":
    main()
