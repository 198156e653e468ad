"""Serving benchmark: the mldeploy runtime against reference servers, same models, same machine, same run.

    python benchmarks/serve_bench.py [--duration 10] [--concurrency 1,8,32,64] [--workers 2] [--repeat 3]
        [--servers thin,ours,litserve,bentoml,naive] [--scenarios iris,cnn] [--before DIR] [--side-by-side]
    python benchmarks/serve_bench.py --calls [--calls-concurrency 32]   # Python calls per request, in process
    python benchmarks/serve_bench.py --inproc   # µs per request in process, thin vs ours (no sockets)

Servers (``iris``: one 100-tree random forest, one JSON row per request):

* ``thin`` — the yardstick: a plain ASGI app (no framework) under uvicorn, orjson, one onnxruntime call per request
  on the same ONNX file, no features at all. Every ratio in the table is to this server.
* ``ours`` — the mldeploy runtime as production runs it: batching on, metrics on (own port), request ids, API-key
  auth on, the default access-log sampling.
* ``litserve`` — LitServe with batching (32 rows / 2 ms), from ``benchmarks/.venv-litserve``
  (``python -m venv benchmarks/.venv-litserve && benchmarks/.venv-litserve/bin/pip install litserve onnxruntime``).
* ``bentoml`` — BentoML, batchable, from ``benchmarks/.venv-bentoml``
  (``python -m venv benchmarks/.venv-bentoml && benchmarks/.venv-bentoml/bin/pip install bentoml onnxruntime``).
* ``naive`` — the article's pattern (FastAPI + pydantic + scikit-learn in the default executor).
* ``before`` — with ``--before DIR``: the runtime from another checkout's ``DIR/runtime`` (A/B in the same run).

``cnn`` (224×224×3 TorchScript CNN): naive nested-list JSON vs the runtime's binary tensor body.

All servers of a scenario run at once and are measured in turn at each concurrency (and each ``--repeat`` round, the
order reversed every other round — ABBA — since the server measured second reads slower), so background load on a
shared machine hits them alike; the table shows each server's median round and, as its ratio to the thin server, the
median of its per-round ratios. With ``--side-by-side`` every server is loaded at the same time instead (one wrk
each): absolute figures are lower (they share the CPUs) but each round's ratios come from the same moments, steadier
while other work comes and goes on the machine. Load comes from Debian's ``wrk`` (one thread, so it does not starve
the servers' CPU) with ``post.lua``. CPU per request is the servers' CPU seconds (utime + stime of every process in
the server's session, from ``/proc/<pid>/stat``, read before and after the run) ÷ requests answered. Results: a
table on stdout and ``benchmarks/results/serve_bench.json``.
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
LITSERVE_VENV = HERE / ".venv-litserve"
API_KEY = "bench-key-0123456789"
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
    cpu_ms_per_request: float = 0.0
    round: int = 0


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
        """CPU time of the server's processes — every process in its session or below it in the process tree
        (workers included; BentoML's start their own sessions) — from /proc/<pid>/stat (utime + stime)."""
        stats: dict[int, tuple[int, int, int]] = {}  # pid -> (ppid, session, ticks)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(stat.parent.name)] = (int(fields[1]), int(fields[3]), int(fields[11]) + int(fields[12]))
        root = self.proc.pid
        ours = {pid for pid, (_, sid, _) in stats.items() if sid == root} | {root}
        grew = True
        while grew:
            below = {pid for pid, (ppid, _, _) in stats.items() if ppid in ours} - ours
            grew = bool(below)
            ours |= below
        return sum(stats[pid][2] for pid in ours if pid in stats) / os.sysconf("SC_CLK_TCK")

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


def _point(scenario: str, t: Target, c: int, r: dict, cpu: float, rnd: int) -> Point:
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    p = Point(scenario, t.server.name, c, r["requests"] / (r["duration_us"] / 1e6), r["p50_us"] / 1000,
              r["p95_us"] / 1000, r["p99_us"] / 1000, errors, r["requests"], cpu * 1000 / max(1, r["requests"]), rnd)
    print(f"  {scenario:5} {p.server:8} c={c:<3} {p.rps:9.1f} req/s  p50 {p.p50_ms:8.2f}  "
          f"p95 {p.p95_ms:8.2f}  p99 {p.p99_ms:8.2f} ms  cpu {p.cpu_ms_per_request:6.3f} ms/req  "
          f"errors {p.errors}", flush=True)
    return p


def measure_side_by_side(scenario: str, targets: list[Target], c: int, duration: float, rnd: int) -> list[Point]:
    """One round with every server under load at the same time (one wrk each): on a machine shared with other
    work, each ratio then comes from the same moments (the servers compete for the CPUs alike)."""
    import threading

    results: dict[str, dict] = {}
    cpu0 = {t.server.name: t.server.cpu_seconds() for t in targets}

    def load(t: Target) -> None:
        results[t.server.name] = t.run(c, duration)

    order = targets if rnd % 2 == 0 else targets[::-1]  # the one started first reads faster: ABBA again
    threads = [threading.Thread(target=load, args=(t,)) for t in order]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    points = [_point(scenario, t, c, results[t.server.name], t.server.cpu_seconds() - cpu0[t.server.name], rnd)
              for t in targets]
    for t in targets:
        t.server.settle()
    return points


def measure(scenario: str, targets: list[Target], conc: list[int], duration: float, repeat: int = 1,
            side_by_side: bool = False) -> list[Point]:
    """All servers are up; each concurrency level is measured on each server in turn (interleaved, the order
    reversed every other round: ABBA), ``repeat`` rounds — or, ``side_by_side``, on all of them at once."""
    for t in targets:
        t.server.wait_ready()
    for t in targets:
        t.run(8, 3)  # warm-up (lets adaptive batchers settle)
        t.server.settle()
    points = []
    for rnd in range(repeat):
        for c in conc:
            if side_by_side:
                points += measure_side_by_side(scenario, targets, c, duration, rnd)
                continue
            # ABBA: the order alternates per round (and concurrency), as the server measured second reads slower
            # (the first one's connections and CPU heat are still winding down)
            for t in (targets if (rnd + conc.index(c)) % 2 == 0 else targets[::-1]):
                cpu0 = t.server.cpu_seconds()
                r = t.run(c, duration)
                cpu1 = t.server.cpu_seconds()  # before settling: abandoned requests are not this run's
                t.server.settle()
                points.append(_point(scenario, t, c, r, cpu1 - cpu0, rnd))
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


def ours(model_dir: Path, workers: int, name: str = "ours", tree: Path = REPO) -> Server:
    """The runtime as production runs it: batching, metrics (own port), request ids, API-key auth, sampled
    access log — every knob at its default except auth, which a deployment turns on."""
    port = free_port()
    cmd = [sys.executable, "-m", "runtime", "--model-dir", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers)]
    env = {k: "" for k in os.environ if k.startswith("MLDEPLOY_")}
    env.update({"MLDEPLOY_AUTH_MODE": "api_key", "MLDEPLOY_API_KEYS": API_KEY,
                "MLDEPLOY_METRICS_PORT": str(free_port()), "PYTHONPATH": str(tree)})
    return Server(name, cmd, env, port, "/ready", tree)


def thin(iris: Path, workers: int) -> Server:
    """The yardstick: ``thin_app`` below under uvicorn (same workers, same event loop and HTTP parser)."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "serve_bench:thin_app", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    return Server("thin", cmd, {"THIN_ONNX": str(iris / "model.onnx")}, port, "/ready", HERE)


class _ThinApp:
    """A plain ASGI app: orjson body → one onnxruntime call per request (on the event loop) → orjson answer.

    No framework, no validation beyond what orjson/numpy do, no metrics, no logs, no auth: the speed of serving
    this model over HTTP with nothing else. The session is opened at import (each uvicorn worker)."""

    def __init__(self) -> None:
        self.session = None

    def _load(self):
        import numpy as np
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.np = np
        self.session = ort.InferenceSession(os.environ["THIN_ONNX"], sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    self._load()
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        import orjson

        if scope["path"] == "/ready":
            await _answer(send, 200, b'{"ready":true}')
            return
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        x = self.np.asarray(orjson.loads(body)["inputs"], dtype=self.np.float32)
        label, proba = self.session.run(None, {self.input: x})
        await _answer(send, 200, orjson.dumps({"predictions": label.tolist(), "probabilities": proba},
                                              option=orjson.OPT_SERIALIZE_NUMPY))


async def _answer(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


thin_app = _ThinApp()


def litserve(iris: Path, workers: int) -> Server | None:
    exe = LITSERVE_VENV / "bin" / "python"
    if not exe.exists():
        print(f"LitServe is not installed in {LITSERVE_VENV} (see this file's docstring): skipping it")
        return None
    port = free_port()
    cmd = [str(exe), str(Path(__file__).resolve()), "--litserve-child", str(port)]
    env = {"THIN_ONNX": str(iris / "model.onnx"), "LITSERVE_WORKERS": str(workers), "SERVE_BENCH_LITSERVE": "1"}
    return Server("litserve", cmd, env, port, "/health", HERE)


if os.environ.get("SERVE_BENCH_LITSERVE"):  # inside benchmarks/.venv-litserve (at module level: it is pickled)
    import litserve as ls
    import numpy as np

    class IrisAPI(ls.LitAPI):
        """The iris ONNX model behind LitServe's batching."""

        def setup(self, device):
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            self.session = ort.InferenceSession(os.environ["THIN_ONNX"], sess_options=opts,
                                                providers=["CPUExecutionProvider"])

        def decode_request(self, request):
            return np.asarray(request["inputs"], dtype=np.float32)

        def batch(self, inputs):
            return np.concatenate(inputs)

        def predict(self, x):
            return self.session.run(None, {"input": x})

        def unbatch(self, output):
            label, proba = output
            return [(label[i:i + 1], proba[i:i + 1]) for i in range(len(label))]

        def encode_response(self, output):
            label, proba = output
            return {"predictions": label.tolist(), "probabilities": proba.tolist()}


def litserve_child(port: int) -> int:
    """Runs inside benchmarks/.venv-litserve: batching 32 rows / 2 ms, ``workers`` inference workers and as many
    API server processes."""
    workers = int(os.environ.get("LITSERVE_WORKERS", "2"))
    server = ls.LitServer(IrisAPI(max_batch_size=32, batch_timeout=0.002), accelerator="cpu",
                          workers_per_device=workers)
    server.run(host="127.0.0.1", port=port, num_api_servers=workers, log_level="warning",
               generate_client_file=False)
    return 0


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


def run_scenario(scenario: str, targets: list[Target], conc: list[int], duration: float,
                 repeat: int, side_by_side: bool = False) -> list[Point]:
    try:
        return measure(scenario, targets, conc, duration, repeat, side_by_side)
    finally:
        for t in targets:
            t.server.stop()


def medians(points: list[Point]) -> list[Point]:
    """Per (scenario, server, concurrency): the round with the median throughput (its p99 and CPU with it)."""
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault((p.scenario, p.server, p.concurrency), []).append(p)
    out = []
    for runs in groups.values():
        out.append(sorted(runs, key=lambda p: p.rps)[(len(runs) - 1) // 2])
    return out


def round_ratios(points: list[Point]) -> dict[tuple, float]:
    """Per (scenario, server, concurrency): the median over rounds of its req/s ÷ the thin server's req/s in the
    same round — each ratio from back-to-back measurements, so a slow round on a shared machine cancels out."""
    thin_rps = {(p.scenario, p.concurrency, p.round): p.rps for p in points if p.server == "thin"}
    ratios: dict[tuple, list[float]] = {}
    for p in points:
        base = thin_rps.get((p.scenario, p.concurrency, p.round))
        if base:
            ratios.setdefault((p.scenario, p.server, p.concurrency), []).append(p.rps / base)
    return {k: sorted(v)[(len(v) - 1) // 2] for k, v in ratios.items()}


def table(points: list[Point]) -> str:
    """Markdown table of the median round of each server (req/s, latency, CPU) and its ratio to the thin server
    (``round_ratios``: the median of per-round ratios)."""
    ratios = round_ratios(points)
    lines = ["| scenario | server | conc | req/s | vs thin | p50 ms | p99 ms | CPU ms/req | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for p in medians(points):
        ratio = ratios.get((p.scenario, p.server, p.concurrency))
        lines.append(f"| {p.scenario} | {p.server} | {p.concurrency} | {p.rps:,.0f} | "
                     f"{'' if ratio is None else f'{ratio:.2f}×'} | {p.p50_ms:.2f} | "
                     f"{p.p99_ms:.2f} | {p.cpu_ms_per_request:.3f} | {p.errors} |")
    return "\n".join(lines)


def _inproc_app(model_dir: Path):
    """Our app as ``ours`` runs it (API-key auth, metrics, access log sampled but written nowhere), in process."""
    import logging

    from runtime.http.app import create_app
    from runtime.settings import load_settings

    env = {"MLDEPLOY_MODEL_DIR": str(model_dir), "MLDEPLOY_AUTH_MODE": "api_key", "MLDEPLOY_API_KEYS": API_KEY,
           "MLDEPLOY_METRICS_PORT": "0", "MLDEPLOY_THREADS": "1"}
    app = create_app(load_settings(environ=env), env)
    logging.getLogger("mldeploy.access").handlers[:] = [logging.NullHandler()]
    logging.getLogger("mldeploy.access").propagate = False
    return app


def _driver(app, path: str = "/predict"):
    """``one()``: a coroutine that sends one iris predict request to the ASGI ``app`` and returns its status."""
    import asyncio

    body = b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
    headers = [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), (b"x-api-key", API_KEY.encode())]

    async def one() -> int:
        sent, status = False, []

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)

        async def send(m):
            if m["type"] == "http.response.start":
                status.append(m["status"])

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "root_path": "", "headers": headers, "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8080)}
        await app(scope, receive, send)
        return status[0]

    return one


def calls_per_request(model_dir: Path, n: int, concurrency: int, top: int = 0) -> float:
    """Python function calls per request on the event loop, from cProfile over an in-process ASGI driver (no
    sockets, no uvicorn): a noise-free figure for the runtime's own per-request work (inference thread excluded)."""
    import asyncio
    import cProfile
    import pstats

    app = _inproc_app(model_dir)
    one = _driver(app)

    async def drive(count: int) -> set[int]:
        seen: set[int] = set()
        for _ in range(0, count, concurrency):
            seen |= set(await asyncio.gather(*[one() for _ in range(concurrency)]))
        return seen

    async def run() -> float:
        async with app.router.lifespan_context(app):
            assert await drive(10 * concurrency) == {200}
            prof = cProfile.Profile()
            prof.enable()
            seen = await drive(n)
            prof.disable()
            assert seen == {200}, seen
            stats = pstats.Stats(prof)
            if top:
                stats.sort_stats("tottime").print_stats(top)
            return stats.total_calls / n

    return asyncio.run(run())


def inproc_us(model_dir: Path, rounds: int = 7, n: int = 3000) -> dict[str, float]:
    """Microseconds per request in process (no sockets, no uvicorn), one request at a time: the thin app and ours,
    interleaved, best of ``rounds`` — the app's own cost, steadier than req/s on a shared machine."""
    import asyncio

    os.environ.setdefault("THIN_ONNX", str(model_dir / "model.onnx"))
    app = _inproc_app(model_dir)
    bare = _ThinApp()
    bare._load()
    drivers = {"thin": _driver(bare), "ours": _driver(app)}

    async def timed(one) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await one()
        return (time.perf_counter() - t0) / n * 1e6

    async def run() -> dict[str, float]:
        async with app.router.lifespan_context(app):
            for one in drivers.values():
                assert {await one() for _ in range(200)} == {200}
            best = dict.fromkeys(drivers, float("inf"))
            for _ in range(rounds):
                for name, one in drivers.items():
                    best[name] = min(best[name], await timed(one))
            return best

    return asyncio.run(run())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    ap.add_argument("--concurrency", default="1,8,32,64")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds; the table shows the median")
    ap.add_argument("--side-by-side", action="store_true",
                    help="load every server at the same time (one wrk each): steadier ratios on a shared machine")
    ap.add_argument("--scenarios", default="iris,cnn")
    ap.add_argument("--servers", default="thin,ours,litserve,bentoml,naive")
    ap.add_argument("--before", type=Path, help="also serve the runtime of DIR/runtime as 'before' (A/B)")
    ap.add_argument("--skip-bentoml", action="store_true")
    ap.add_argument("--calls", action="store_true", help="only count Python calls per request (in process)")
    ap.add_argument("--calls-concurrency", type=int, default=32)
    ap.add_argument("--calls-top", type=int, default=0, help="also print the top N functions by own time")
    ap.add_argument("--inproc", action="store_true",
                    help="only time thin vs ours in process (µs per request, no sockets)")
    ap.add_argument("--litserve-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.litserve_child:
        return litserve_child(args.litserve_child)
    work = RESULTS / "work"
    work.mkdir(parents=True, exist_ok=True)
    if args.inproc:
        iris, _ = build_models(work)
        us = inproc_us(iris)
        print(f"in process, µs per request: thin {us['thin']:.1f}, ours {us['ours']:.1f} "
              f"(ours costs {us['ours'] / us['thin']:.1f}× thin's app; sockets and HTTP parsing excluded)")
        return 0
    if args.calls:
        iris, _ = build_models(work)
        for c in sorted({1, args.calls_concurrency}):
            print(f"calls per request (c={c}): {calls_per_request(iris, 100 * max(c, 32), c, args.calls_top):.1f}")
        return 0
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    conc = [int(c) for c in args.concurrency.split(",")]
    scenarios = set(args.scenarios.split(","))
    servers = set(args.servers.split(","))
    if args.skip_bentoml:
        servers.discard("bentoml")
    iris, cnn = build_models(work)
    bodies = write_bodies(work)
    d, w = args.duration, args.workers
    points: list[Point] = []
    print(f"# {os.cpu_count()} CPUs, {w} workers per server, {d:g}s per point, {args.repeat} round(s), wrk -t1")
    js = "application/json"
    auth = f"X-API-Key: {API_KEY}"
    if "iris" in scenarios:
        targets = []
        if "thin" in servers:
            targets.append(Target(thin(iris, w), "/predict", bodies["iris_ours"], js))
        if "naive" in servers:
            targets.append(Target(naive(iris, cnn, w), "/predict", bodies["iris_naive"], js))
        for peer in (litserve(iris, w) if "litserve" in servers else None,
                     bento(iris, w) if "bentoml" in servers else None):
            if peer:
                targets.append(Target(peer, "/predict", bodies["iris_bento" if peer.name == "bentoml" else
                                                            "iris_ours"], js))
        if args.before:
            targets.append(Target(ours(iris, w, "before", args.before.resolve()), "/predict", bodies["iris_ours"],
                                  js, auth))
        if "ours" in servers:
            targets.append(Target(ours(iris, w), "/predict", bodies["iris_ours"], js, auth))
        points += run_scenario("iris", targets, conc, d, args.repeat, args.side_by_side)
    if "cnn" in scenarios and cnn is not None:
        raw = ("application/octet-stream", f"X-Tensor-Shape: 1,3,224,224;X-Tensor-Dtype: float32;{auth}")
        targets = []
        if "naive" in servers:
            targets.append(Target(naive(iris, cnn, w), "/predict/image", bodies["cnn_naive"], js))
        if args.before:
            targets.append(Target(ours(cnn, w, "before", args.before.resolve()), "/predict", bodies["cnn_ours"],
                                  *raw))
        if "ours" in servers:
            targets.append(Target(ours(cnn, w), "/predict", bodies["cnn_ours"], *raw))
        points += run_scenario("cnn", targets, conc, d, args.repeat, args.side_by_side)
    print()
    print(table(points))
    (RESULTS / "serve_bench.json").write_text(json.dumps([asdict(p) for p in points], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
