"""Shadow-evaluation benchmark: the stable version's latency with shadowing off and on, same server, same run.

    python benchmarks/shadow_bench.py [--duration 10] [--concurrency 8] [--repeat 3] [--sample 1.0] [--queue 64]

One ``python -m runtime --models-dir`` serves two iris logistic regressions (1.0.0 stable at 100 %, 1.1.0 the
candidate at 0 %). Each round measures the stable ``/predict`` (one JSON row, Debian's ``wrk`` with ``post.lua``)
twice: with routing.json's ``shadow`` off, then on (``--sample`` of the stable answers offered to the candidate
after they are sent). Rounds alternate so background load on a shared machine hits both alike; the table shows the
median round. The shadow side's own figures (offered, evaluated, dropped) come from ``GET /shadow`` on the metrics
port. Results: a table on stdout and ``benchmarks/results/shadow_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(REPO))

ROW = {"inputs": [[5.9, 3.0, 5.1, 1.8]]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_models(root: Path) -> None:
    """models/1.0.0 (C=1) and models/1.1.0 (C=0.02): iris logistic regressions that disagree on ~5 % of rows."""
    import joblib
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from benchmarks.models import IRIS_FEATURES, IRIS_LABELS, _manifest
    from runtime.manifest import Tensor

    x, y = load_iris(return_X_y=True)
    for version, c in (("1.0.0", 1.0), ("1.1.0", 0.02)):
        folder = root / version
        folder.mkdir(parents=True)
        joblib.dump(LogisticRegression(C=c, max_iter=1000).fit(x.astype(np.float32), y), folder / "model.joblib")
        _manifest(folder, "model.joblib", name="iris", version=version, format="joblib", source_format="joblib",
                  task="classification", class_labels=IRIS_LABELS, feature_names=IRIS_FEATURES,
                  inputs=[Tensor(name="input", dtype="float32", shape=[None, 4])],
                  outputs=[Tensor(name="label", dtype="int64", shape=[None], role="label"),
                           Tensor(name="probabilities", dtype="float32", shape=[None, 3], role="probabilities")])


def set_shadow(models: Path, shadow: dict | None) -> None:
    doc: dict = {"weights": {"1.0.0": 100, "1.1.0": 0}}
    if shadow:
        doc["shadow"] = shadow
    tmp = models / ".routing.tmp"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, models / "routing.json")
    time.sleep(1.3)  # the runtime re-reads routing.json at most once a second


def wrk(url: str, body: Path, concurrency: int, duration: float) -> dict:
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
           "-s", str(HERE / "post.lua"), url]
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_CTYPE": "application/json"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    line = next((li for li in out.stdout.splitlines() if li.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    r = json.loads(line.removeprefix("BENCH_JSON "))
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return {"rps": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1000,
            "p99_ms": r["p99_us"] / 1000, "errors": errors, "requests": r["requests"]}


def shadow_stats(metrics_url: str) -> dict:
    with urllib.request.urlopen(metrics_url + "/shadow", timeout=5) as r:  # noqa: S310 - 127.0.0.1
        doc = json.loads(r.read())
    pair = doc["pairs"][0] if doc["pairs"] else {}
    return {**doc["queue"], "evaluated": pair.get("requests", 0), "agreement": pair.get("agreement"),
            "candidate_p99_ms": (pair.get("candidate_latency_ms") or {}).get("p99")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sample", type=float, default=1.0)
    ap.add_argument("--queue", type=int, default=64)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = root / "models"
        make_models(models)
        set_shadow(models, None)
        body = root / "body.json"
        body.write_text(json.dumps(ROW))
        port, mport = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLDEPLOY_")}
        env.update(MLDEPLOY_METRICS_PORT=str(mport), MLDEPLOY_ACCESS_LOG="false")
        log = (root / "server.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "runtime", "--host", "127.0.0.1", "--port", str(port),
                                 "--models-dir", str(models)], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        url, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(url + "/ready", timeout=1) as r:  # noqa: S310
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit((root / "server.log").read_text())
                time.sleep(0.1)
            wrk(url + "/predict", body, args.concurrency, 2)  # warm-up
            rounds: dict[str, list[dict]] = {"off": [], "on": []}
            for _ in range(args.repeat):
                set_shadow(models, None)
                rounds["off"].append(wrk(url + "/predict", body, args.concurrency, args.duration))
                set_shadow(models, {"version": "1.1.0", "sample": args.sample, "queue": args.queue})
                before = shadow_stats(metrics_url)
                point = wrk(url + "/predict", body, args.concurrency, args.duration)
                after = shadow_stats(metrics_url)
                point.update(offered=after["offered"] - before["offered"],
                             dropped=after["dropped"] - before["dropped"],
                             evaluated=after["evaluated"] - before["evaluated"],
                             agreement=after["agreement"], candidate_p99_ms=after["candidate_p99_ms"])
                rounds["on"].append(point)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
            log.close()

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in rounds[mode])

    summary = {m: {k: median(m, k) for k in ("rps", "p50_ms", "p99_ms", "errors")} for m in rounds}
    on = rounds["on"]
    summary["on"].update(offered=sum(r["offered"] for r in on), dropped=sum(r["dropped"] for r in on),
                         evaluated=sum(r["evaluated"] for r in on))
    ratio = summary["on"]["p99_ms"] / summary["off"]["p99_ms"] if summary["off"]["p99_ms"] else float("nan")
    print(f"stable /predict, concurrency {args.concurrency}, {args.duration:.0f}s × {args.repeat} rounds "
          f"(median), shadow sample {args.sample}, queue {args.queue}")
    print(f"{'shadow':8} {'rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for mode in ("off", "on"):
        s = summary[mode]
        print(f"{mode:8} {s['rps']:9.0f} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} {s['errors']:7.0f}")
    print(f"p99 on/off: {ratio:.2f}×; shadow offered {summary['on']['offered']}, evaluated "
          f"{summary['on']['evaluated']}, dropped {summary['on']['dropped']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shadow_bench.json").write_text(json.dumps(
        {"args": vars(args), "summary": summary, "p99_ratio": ratio, "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
