"""Serving benchmark: the article's naive server vs BentoML vs the mldeploy runtime, same models, same machine.

    python benchmarks/serve_bench.py [--duration 10] [--concurrency 1,8,32,64] [--workers 2] [--skip-bentoml]

Scenarios: ``iris`` (one 100-tree random forest, one JSON row per request: the naive server calls scikit-learn
as the article does, BentoML and the runtime serve its ONNX conversion — what ``mldeploy package`` produces), and
``cnn`` (224×224×3 TorchScript CNN): naive nested-list JSON vs the runtime's binary tensor body. All servers of a
scenario run at once and are measured in turn at each concurrency, so background load on a shared machine hits
them alike. Load comes from Debian's
``wrk`` (one thread, so it does not starve the servers' CPU) with ``post.lua``. BentoML runs from its own
virtualenv, ``benchmarks/.venv-bentoml`` (``python -m venv benchmarks/.venv-bentoml &&
benchmarks/.venv-bentoml/bin/pip install bentoml onnxruntime``). Results: a table on stdout with ratios, and
``benchmarks/results/serve_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
BENTO_VENV = HERE / ".venv-bentoml"
sys.path.insert(0, str(REPO))


@dataclass
class Point:
    scenario: str
    server: str
    concurrency: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, ready_path: str, cwd: Path) -> None:
        self.name, self.port, self.ready_path = name, port, ready_path
        self.log = (RESULTS / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=cwd, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.log.name}")

    def cpu_seconds(self) -> float:
        """CPU time of every process in the server's session (its workers included), from /proc."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.proc.pid:  # session id (the server was started in its own session)
                total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        return total / os.sysconf("SC_CLK_TCK")

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until the server has worked off requests that wrk abandoned (so it does not slow the next run)."""
        deadline = time.monotonic() + timeout
        last = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.cpu_seconds()
            if now - last < 0.05:
                return
            last = now

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def wrk(url: str, body: Path, ctype: str, concurrency: int, duration: float, headers: str = "") -> dict:
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
           "-s", str(HERE / "post.lua"), url]
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_CTYPE": ctype, "BENCH_HEADERS": headers}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    line = next((li for li in out.stdout.splitlines() if li.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    return json.loads(line.removeprefix("BENCH_JSON "))


@dataclass
class Target:
    server: Server
    path: str
    body: Path
    ctype: str
    headers: str = ""

    def run(self, c: int, duration: float) -> dict:
        return wrk(f"http://127.0.0.1:{self.server.port}{self.path}", self.body, self.ctype, c, duration, self.headers)


def measure(scenario: str, targets: list[Target], conc: list[int], duration: float) -> list[Point]:
    """All servers are up; each concurrency level is measured on each server in turn (interleaved)."""
    for t in targets:
        t.server.wait_ready()
    for t in targets:
        t.run(8, 3)  # warm-up (lets adaptive batchers settle)
        t.server.settle()
    points = []
    for c in conc:
        for t in targets:
            r = t.run(c, duration)
            t.server.settle()
            errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
            p = Point(scenario, t.server.name, c, r["requests"] / (r["duration_us"] / 1e6), r["p50_us"] / 1000,
                      r["p95_us"] / 1000, r["p99_us"] / 1000, errors, r["requests"])
            print(f"  {scenario:5} {p.server:8} c={c:<3} {p.rps:9.1f} req/s  p50 {p.p50_ms:8.2f}  "
                  f"p95 {p.p95_ms:8.2f}  p99 {p.p99_ms:8.2f} ms  errors {p.errors}", flush=True)
            points.append(p)
    return points


def build_models(work: Path) -> tuple[Path, Path | None]:
    from benchmarks import models

    iris = work / "iris"
    if not (iris / "model.json").exists():
        models.iris_onnx(iris, n_estimators=100)
    if not (work / "iris_rf.joblib").exists():  # the same forest (same data and seed) for the naive server
        import joblib
        from sklearn.datasets import load_iris
        from sklearn.ensemble import RandomForestClassifier

        x, y = load_iris(return_X_y=True)
        rf = RandomForestClassifier(n_estimators=100, random_state=0).fit(x.astype("float32"), y)
        joblib.dump(rf, work / "iris_rf.joblib")
    cnn: Path | None = work / "cnn"
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed (pip install torch==2.13.0): skipping the CNN scenario")
        return iris, None
    if not (cnn / "model.json").exists():
        models.cnn_torchscript(cnn)
    return iris, cnn


def write_bodies(work: Path) -> dict[str, Path]:
    import numpy as np

    row = [[5.1, 3.5, 1.4, 0.2]]
    bodies = {
        "iris_naive": json.dumps({"data": row}),
        "iris_ours": json.dumps({"inputs": row}),
        "iris_bento": json.dumps({"input": row}),
    }
    paths = {}
    for k, v in bodies.items():
        paths[k] = work / f"{k}.body"
        paths[k].write_text(v)
    img = np.random.default_rng(0).random((224, 224, 3), dtype=np.float32)
    paths["cnn_naive"] = work / "cnn_naive.body"
    paths["cnn_naive"].write_text(json.dumps({"image_data": img.tolist(), "top_k": 5}))
    paths["cnn_ours"] = work / "cnn_ours.body"
    paths["cnn_ours"].write_bytes(np.ascontiguousarray(img.transpose(2, 0, 1)[None]).tobytes())
    return paths


def ours(model_dir: Path, workers: int) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "runtime", "--model-dir", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers)]
    env = {k: "" for k in os.environ if k.startswith("MLDEPLOY_")}
    return Server("ours", cmd, env, port, "/ready", REPO)





def naive(iris: Path, cnn: Path | None, workers: int) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "naive_server:app", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    env = {"NAIVE_IRIS_JOBLIB": str(iris.parent / "iris_rf.joblib"),
           "NAIVE_CNN_TS": str(cnn / "model.pt") if cnn else ""}
    return Server("naive", cmd, env, port, "/docs", HERE)


def bento(iris: Path, workers: int) -> Server | None:
    exe = BENTO_VENV / "bin" / "bentoml"
    if not exe.exists():
        print(f"BentoML is not installed in {BENTO_VENV} (see this file's docstring): skipping it")
        return None
    port = free_port()
    cmd = [str(exe), "serve", "bento_service:IrisService", "--host", "127.0.0.1", "--port", str(port)]
    env = {"BENTO_IRIS_ONNX": str(iris / "model.onnx"), "BENTO_WORKERS": str(workers),
           "BENTOML_HOME": str(RESULTS / "bentoml-home"), "BENTOML_DO_NOT_TRACK": "true"}
    return Server("bentoml", cmd, env, port, "/readyz", HERE)


def run_scenario(scenario: str, targets: list[Target], conc: list[int], duration: float) -> list[Point]:
    try:
        return measure(scenario, targets, conc, duration)
    finally:
        for t in targets:
            t.server.stop()


def table(points: list[Point]) -> str:
    by = {(p.scenario, p.server, p.concurrency): p for p in points}
    lines = ["| scenario | server | conc | req/s | p50 ms | p95 ms | p99 ms | errors | vs naive | vs BentoML |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in points:
        base = by.get((p.scenario, "naive", p.concurrency))
        peer = by.get((p.scenario, "bentoml", p.concurrency))
        vs_naive = f"{p.rps / base.rps:.2f}×" if base and p.server != "naive" and base.rps else ""
        vs_bento = f"{p.rps / peer.rps:.2f}×" if peer and p.server == "ours" and peer.rps else ""
        lines.append(f"| {p.scenario} | {p.server} | {p.concurrency} | {p.rps:,.0f} | {p.p50_ms:.2f} | "
                     f"{p.p95_ms:.2f} | {p.p99_ms:.2f} | {p.errors} | {vs_naive} | {vs_bento} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    ap.add_argument("--concurrency", default="1,8,32,64")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scenarios", default="iris,cnn")
    ap.add_argument("--skip-bentoml", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    conc = [int(c) for c in args.concurrency.split(",")]
    scenarios = set(args.scenarios.split(","))
    work = RESULTS / "work"
    work.mkdir(parents=True, exist_ok=True)
    iris, cnn = build_models(work)
    bodies = write_bodies(work)
    d, w = args.duration, args.workers
    points: list[Point] = []
    print(f"# {os.cpu_count()} CPUs, {w} workers per server, {d:g}s per point, wrk -t1")
    js = "application/json"
    if "iris" in scenarios:
        targets = [Target(naive(iris, cnn, w), "/predict", bodies["iris_naive"], js)]
        peer = None if args.skip_bentoml else bento(iris, w)
        if peer:
            targets.append(Target(peer, "/predict", bodies["iris_bento"], js))
        targets.append(Target(ours(iris, w), "/predict", bodies["iris_ours"], js))
        points += run_scenario("iris", targets, conc, d)
    if "cnn" in scenarios and cnn is not None:
        targets = [Target(naive(iris, cnn, w), "/predict/image", bodies["cnn_naive"], js),
                   Target(ours(cnn, w), "/predict", bodies["cnn_ours"], "application/octet-stream",
                          "X-Tensor-Shape: 1,3,224,224;X-Tensor-Dtype: float32")]
        points += run_scenario("cnn", targets, conc, d)
    print()
    print(table(points))
    (RESULTS / "serve_bench.json").write_text(json.dumps([asdict(p) for p in points], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
