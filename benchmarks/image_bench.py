"""Image benchmark: per example, cold build, model-only rebuild (and ratio), size added over the base, start→ready.

    python benchmarks/image_bench.py [--examples iris-sklearn cnn-torch cnn-torch:torchscript] [--runs 3]
    python benchmarks/image_bench.py --cold-start [--runs 5] [--against HEAD]   # only docker run → ready

"Cold" means an empty wheelhouse cache (wheels are downloaded through the host's pip configuration) and
``docker build --no-cache``; the model-only rebuild retrains/perturbs the model and rebuilds with the cache.
Start→ready is measured from ``docker run`` to the first 200 from ``/ready`` (median of ``--runs``; ``/ready`` is
polled every 50 ms). ``--cold-start`` builds each example with the usual caches (no cold build, no rebuild) and
measures only that, against the goals (iris ONNX ≤ 1 s, TorchScript ≤ 2 s); defaults to iris-sklearn and
cnn-torch:torchscript; results in benchmarks/results/cold_start.json. Besides the wall times it reports the CPU
time the container used until ``/ready`` (its cgroup's usage): far less sensitive than wall time to what else runs
on the machine. ``--against REF`` also builds each example with the ``mldeploy/``, ``runtime/`` and ``templates/``
of a git revision (``git archive``, the same model files) and alternates the two images run by run, so before and
after are measured under the same load; the table gives the ratios.
Needs the Docker daemon and the base image from scripts/test-infra.sh (``MLDEPLOY_BASE_IMAGE`` overrides).
Results also go to benchmarks/results/image_bench.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GOALS_MB = {"onnx": 120, "torchscript": 900}
READY_GOALS_S = {"onnx": 1.0, "torchscript": 2.0}  # container run → ready


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(example: str, workdir: Path) -> Path:
    """Copy ``examples/<name>`` (``name:torchscript`` forces TorchScript serving) and create its model."""
    name, _, variant = example.partition(":")
    dst = workdir / example.replace(":", "-")
    shutil.copytree(ROOT / "examples" / name, dst, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    cfg = dst / "mldeploy.yaml"
    text = cfg.read_text()
    app = text.split("name: ", 1)[1].split()[0]
    text = text.replace(f"name: {app}", f"name: bench-{app}{'-ts' if variant else ''}", 1)
    if variant:
        text = text.replace("convert: auto", f"convert: {variant}")
    # A port of its own gives the bench image a runtime-stage layer chain of its own: the classic builder picks an
    # arbitrary chain when several match (e.g. after this script's --no-cache builds) and may then miss the cache.
    port = 20000 + random.randrange(10000)
    text = text.replace("port: 8080", f"port: {port}") if "port: 8080" in text else text + f"runtime:\n  port: {port}\n"
    cfg.write_text(text)
    subprocess.run([sys.executable, "make_model.py"], cwd=dst, check=True, capture_output=True)
    return dst


def change_model(folder: Path) -> None:
    """A model-only change: retrain the sklearn model / perturb the torch weights."""
    if (folder / "model.pkl").exists():
        from sklearn.datasets import load_iris
        from sklearn.ensemble import RandomForestClassifier

        data = load_iris()
        model = RandomForestClassifier(n_estimators=100, random_state=7).fit(data.data, data.target)
        (folder / "model.pkl").write_bytes(pickle.dumps(model, protocol=5))
    elif (folder / "model.pt").exists():
        import torch

        state = torch.load(folder / "model.pt")
        for tensor in state.values():
            if tensor.is_floating_point():
                tensor.add_(1e-3)
        torch.save(state, folder / "model.pt")
    else:
        raise SystemExit(f"do not know how to change the model in {folder}")


def added_gzip_bytes(image_id: str, base: str) -> int:
    """gzip size of the layers the image adds over ``base``: roughly what a registry stores and Fargate pulls."""
    import io
    import tarfile
    import zlib

    from mldeploy.image.docker_client import client

    api = client().api
    base_layers = set(api.inspect_image(base)["RootFS"]["Layers"])
    total = 0
    with tarfile.open(fileobj=io.BytesIO(b"".join(api.get_image(image_id)))) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        config = json.load(outer.extractfile(manifest["Config"]))
        for path, diff_id in zip(manifest["Layers"], config["rootfs"]["diff_ids"], strict=True):
            if diff_id not in base_layers:
                total += len(zlib.compress(outer.extractfile(path).read(), 6))
    return total


def container_cpu_s(container_id: str) -> float | None:
    """CPU seconds the container's processes used so far (its cgroup: v1 cgroupfs, v2 cgroupfs or systemd)."""
    root = Path("/sys/fs/cgroup")
    for path, scale in ((root / "cpuacct" / "docker" / container_id / "cpuacct.usage", 1e-9),
                        (root / "docker" / container_id / "cpu.stat", 1e-6),
                        (root / "system.slice" / f"docker-{container_id}.scope" / "cpu.stat", 1e-6)):
        with contextlib.suppress(OSError, ValueError, KeyError):
            text = path.read_text()
            value = dict(line.split() for line in text.splitlines())["usage_usec"] if path.name == "cpu.stat" \
                else text
            return int(value) * scale
    return None


def start_once(project, image_id: str) -> tuple[float, float, float | None]:
    """(``docker run`` call → /ready 200, container process start → /ready 200, container CPU s until then)."""
    from datetime import datetime

    from mldeploy.image.docker_client import client
    from mldeploy.local import container as local

    t0 = time.monotonic()
    result = local.run(project, image_id, port=free_port())
    ready_wall = time.time()
    total = time.monotonic() - t0
    cpu = container_cpu_s(result.container_id)
    container = client().containers.get(result.container)
    started = container.attrs["State"]["StartedAt"]  # RFC 3339 with nanoseconds, UTC
    started_s = datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00").timestamp()
    with contextlib.suppress(Exception):
        container.remove(force=True)
    return total, ready_wall - started_s, cpu


def start_to_ready(project, image_id: str, runs: int) -> tuple[list[float], list[float]]:
    """(``docker run`` call → /ready 200, container process start → /ready 200) per run."""
    total, process = [], []
    for _ in range(runs):
        t, p, _cpu = start_once(project, image_id)
        total.append(t)
        process.append(p)
    return total, process


def bench(example: str, workdir: Path, runs: int) -> dict:
    from mldeploy.config import load_project
    from mldeploy.image.api import build_image
    from runtime.manifest import Manifest

    folder = prepare(example, workdir)
    project = load_project(folder / "mldeploy.yaml", None)
    t0 = time.monotonic()
    cold = build_image(project, no_cache=True)
    cold_total = time.monotonic() - t0
    manifest = Manifest.load(Path(cold.context_dir) / "model")
    change_model(folder)
    t0 = time.monotonic()
    re = build_image(load_project(folder / "mldeploy.yaml", None))
    re_total = time.monotonic() - t0
    ready, process = start_to_ready(project, re.image_id, runs)
    return {
        "example": example, "format": manifest.format,
        "cold_build_s": round(cold.build_seconds, 1), "cold_total_s": round(cold_total, 1),
        "rebuild_s": round(re.build_seconds, 2), "rebuild_total_s": round(re_total, 1),
        "rebuild_ratio": round(re.build_seconds / cold.build_seconds, 3),
        "rebuilt_steps": re.steps - re.cached_steps, "steps": re.steps,
        "size_mb": round(cold.size / 1e6, 1), "added_mb": round((cold.added_size or 0) / 1e6, 1),
        "added_gzip_mb": round(added_gzip_bytes(re.image_id, project.config.image.base) / 1e6, 1),
        "start_to_ready_s": round(statistics.median(ready), 2), "start_to_ready_runs": [round(x, 2) for x in ready],
        "process_to_ready_s": round(statistics.median(process), 2),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def build_at(ref: str, folder: Path, workdir: Path) -> str:
    """Build the project in ``folder`` with the ``mldeploy/``, ``runtime/`` and ``templates/`` of git revision
    ``ref`` (exported with ``git archive``, run in a subprocess); returns the image id."""
    tree = workdir / f"tree-{ref.replace('/', '_')}"
    if not tree.exists():
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "mldeploy", "runtime",
                                  "templates"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    script = ("import json, sys; from pathlib import Path; import mldeploy, runtime\n"
              f"assert Path(mldeploy.__file__).is_relative_to({str(tree)!r}), mldeploy.__file__\n"
              "from mldeploy.config import load_project; from mldeploy.image.api import build_image\n"
              "print(json.dumps(build_image(load_project(Path(sys.argv[1]), None)).image_id))")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", script, str(folder / "mldeploy.yaml")], cwd=tree, env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _copy_as(folder: Path, suffix: str) -> Path:
    """The prepared example (same model files) as an app of its own (``name: …-<suffix>``), without workspace."""
    dst = folder.with_name(f"{folder.name}-{suffix}")
    shutil.copytree(folder, dst, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    cfg = dst / "mldeploy.yaml"
    text = cfg.read_text()
    app = text.split("name: ", 1)[1].split()[0]
    cfg.write_text(text.replace(f"name: {app}", f"name: {app}-{suffix}", 1))
    return dst


def _summary(runs: list[tuple[float, float, float | None]]) -> dict:
    total, process = [r[0] for r in runs], [r[1] for r in runs]
    cpu = [r[2] for r in runs if r[2] is not None]
    return {"start_to_ready_s": round(statistics.median(total), 2),
            "start_to_ready_runs": [round(x, 2) for x in total],
            "process_to_ready_s": round(statistics.median(process), 2),
            "process_to_ready_runs": [round(x, 2) for x in process],
            "cpu_to_ready_s": round(statistics.median(cpu), 3) if cpu else None,
            "cpu_to_ready_runs": [round(x, 3) for x in cpu]}


def cold_start(example: str, workdir: Path, runs: int, against: str | None = None) -> list[dict]:
    """Build ``example`` with the caches, then time ``docker run`` → ``/ready`` 200 ``runs`` times; with
    ``against``, also the image that revision builds, the two alternating (ABBA) run by run."""
    from mldeploy.config import load_project
    from mldeploy.image.api import build_image
    from runtime.manifest import Manifest

    folder = prepare(example, workdir)
    images: dict[str, tuple[object, str]] = {}
    if against:  # first, so its copy of the model is the one this tree's build packages too
        ref_folder = _copy_as(folder, "ref")
        images[against] = (load_project(ref_folder / "mldeploy.yaml", None), build_at(against, ref_folder, workdir))
    project = load_project(folder / "mldeploy.yaml", None)
    built = build_image(project)
    images["this tree"] = (project, built.image_id)
    fmt = Manifest.load(Path(built.context_dir) / "model").format
    order = list(images)
    measured: dict[str, list] = {name: [] for name in order}
    loads = []
    for i in range(runs):
        for name in order if i % 2 == 0 else order[::-1]:
            proj, image = images[name]
            measured[name].append(start_once(proj, image))
            loads.append(os.getloadavg()[0])
    rows = []
    for name in order:
        rows.append({"example": example, "format": fmt, "build": name, "goal_s": READY_GOALS_S.get(fmt),
                     **_summary(measured[name]), "load_avg_1m": round(statistics.median(loads), 1),
                     "load_avg_1m_range": [round(min(loads), 1), round(max(loads), 1)]})
    return rows


def _uptime() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    return f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"


def main_cold_start(examples: list[str], runs: int, against: str | None = None) -> None:
    began = _uptime()
    with tempfile.TemporaryDirectory(prefix="mldeploy-cold-start-") as tmp:
        rows = [row for example in examples for row in cold_start(example, Path(tmp), runs, against)]
    print("| example | served | build | docker run → ready (median) | runs | process start → ready | CPU until "
          "ready | load (1 min) | goal |")
    print("|---|---|---|---:|---|---:|---:|---|---:|")
    for r in rows:
        goal = f"≤ {r['goal_s']:.0f} s" if r["goal_s"] else ""
        cpu = f"{r['cpu_to_ready_s']:.2f} s" if r["cpu_to_ready_s"] is not None else "n/a"
        lo, hi = r["load_avg_1m_range"]
        print(f"| {r['example']} | {r['format']} | {r['build']} | {r['start_to_ready_s']:.2f} s | "
              f"{', '.join(f'{x:.2f}' for x in r['start_to_ready_runs'])} | {r['process_to_ready_s']:.2f} s | "
              f"{cpu} | {lo}–{hi} | {goal} |")
    if against:
        print()
        print(f"| example | this tree ÷ {against}: docker run → ready | process start → ready | CPU until ready |")
        print("|---|---:|---:|---:|")
        for example in examples:
            new, old = (next(r for r in rows if r["example"] == example and r["build"] == b)
                        for b in ("this tree", against))
            cpu = f"{new['cpu_to_ready_s'] / old['cpu_to_ready_s']:.2f}" if new["cpu_to_ready_s"] and \
                old["cpu_to_ready_s"] else "n/a"
            print(f"| {example} | {new['start_to_ready_s'] / old['start_to_ready_s']:.2f} | "
                  f"{new['process_to_ready_s'] / old['process_to_ready_s']:.2f} | {cpu} |")
    print(f"uptime before: {began}")
    print(f"uptime after:  {_uptime()} ({os.cpu_count()} CPUs)")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cold_start.json").write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", nargs="+", help="default: iris-sklearn cnn-torch cnn-torch:torchscript "
                                                  "(--cold-start: iris-sklearn cnn-torch:torchscript)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cold-start", action="store_true", help="only container run → ready, cached builds")
    ap.add_argument("--against", metavar="REF", help="--cold-start: also measure the images git revision REF "
                                                     "builds (e.g. HEAD), alternating with this tree's")
    args = ap.parse_args()
    os.environ.setdefault("MLDEPLOY_BASE_IMAGE", os.environ.get("MLDEPLOY_TEST_BASE_IMAGE",
                                                                "mldeploy-test/python:3.11-bookworm"))
    if args.cold_start:
        main_cold_start(args.examples or ["iris-sklearn", "cnn-torch:torchscript"], args.runs, args.against)
        return
    args.examples = args.examples or ["iris-sklearn", "cnn-torch", "cnn-torch:torchscript"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mldeploy-image-bench-") as tmp:
        os.environ["MLDEPLOY_CACHE_DIR"] = str(Path(tmp) / "cache")  # cold: no wheelhouse yet
        for example in args.examples:
            print(f"== {example}", file=sys.stderr, flush=True)
            rows.append(bench(example, Path(tmp), args.runs))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mldeploy image build (base {os.environ['MLDEPLOY_BASE_IMAGE']})")
    for col in ("example", "served", "cold build", "model-only rebuild", "ratio", "image", "added over base",
                "goal", "added, gzip", "docker run→ready", "process start→ready"):
        table.add_column(col, justify="left" if col in ("example", "served") else "right")
    for r in rows:
        goal = GOALS_MB.get(r["format"])
        table.add_row(r["example"], r["format"], f"{r['cold_build_s']:.1f}s (total {r['cold_total_s']:.0f}s)",
                      f"{r['rebuild_s']:.2f}s ({r['rebuilt_steps']}/{r['steps']} steps)",
                      f"{r['rebuild_ratio'] * 100:.1f}%", f"{r['size_mb']:.0f} MB", f"{r['added_mb']:.0f} MB",
                      f"≤ {goal} MB" if goal else "", f"{r['added_gzip_mb']:.0f} MB", f"{r['start_to_ready_s']:.2f}s",
                      f"{r['process_to_ready_s']:.2f}s")
    Console(width=200).print(table)
    print(f"load average during the runs: {', '.join(str(r['load_avg_1m']) for r in rows)} "
          f"({os.cpu_count()} CPUs)")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "image_bench.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
