"""``mldeploy cost`` and ``mldeploy bench`` end to end: real CLI processes, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mldeploy.config.schema import Config
from mldeploy.cost import estimate_for_config
from mldeploy.cost.bench import endpoint, percentile, run
from mldeploy.errors import ExitCode, MldeployError
from tests.infra import free_port

CONFIG = """\
name: demo
model:
  path: model.onnx
aws:
  region: us-east-1
  cpu: 1024
  memory: 2048
  autoscaling: {min: 2, max: 100}
"""

SERVER = textwrap.dedent("""\
    import asyncio
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def predict(request):
        body = await request.json()
        await asyncio.sleep(0.005)
        return JSONResponse({"outputs": body["inputs"]})

    async def fail(request):
        return JSONResponse({"detail": "boom"}, status_code=500)

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/fail", fail, methods=["POST"])])
""")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160", "XDG_CACHE_HOME": str(cwd / ".cache")}
    env.pop("GITHUB_ACTIONS", None)
    return subprocess.run([sys.executable, "-m", "mldeploy", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "mldeploy.yaml").write_text(CONFIG + "cost:\n  capacity_rps_per_task: 100\n")
    (tmp_path / "model.onnx").write_bytes(b"x")
    return tmp_path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tiny Starlette app under uvicorn on a free loopback port (5 ms per prediction)."""
    folder = tmp_path_factory.mktemp("server")
    (folder / "bench_app.py").write_text(SERVER)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench_app:app", "--port", str(port), "--host",
                             "127.0.0.1", "--log-level", "warning"], cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.post(url + "/predict", json={"inputs": [1]}, timeout=1, trust_env=False)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("test server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cost_json_matches_the_library_and_reports_every_level(project: Path):
    proc = cli("cost", "--rps", "100,1k,10000", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (ests,) = doc["variants"].values()
    assert [e["rps"] for e in ests] == [100, 1000, 10000]
    cfg = Config.model_validate({"name": "demo", "model": {"path": "model.onnx"},
                                 "aws": {"region": "us-east-1", "cpu": 1024, "memory": 2048,
                                         "autoscaling": {"min": 2, "max": 100}},
                                 "cost": {"capacity_rps_per_task": 100}})
    for e in ests:
        ref = estimate_for_config(cfg, e["rps"])
        assert e["total"] == round(ref.total, 2) and e["tasks"] == ref.tasks
    # 10,000 req/s at 60 req/s per task needs 167 tasks: capped at max 100 and reported
    assert ests[2]["saturated"] is True and ests[2]["tasks"] == 100
    assert any("aws.autoscaling.max" in n for n in doc["notes"])


def test_cost_table_compare_and_terminal_chart(project: Path):
    proc = cli("cost", "--rps", "100,1000", "--compare", "--plot", "--explain", cwd=project)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Total per month" in out and "Cost per 1M requests" in out and "ALB LCUs" in out
    assert "x86+spot / month" in out and "arm+spot / month" in out
    assert "█" in out and "Monthly cost by request rate" in out
    assert "2 tasks × (1 vCPU × $0.04048 + 2 GB × $0.004445) × 730 h" in out  # --explain


def test_cost_plot_png(project: Path):
    proc = cli("cost", "--rps", "100,1000,10000", "--compare", "--plot", "out/cost.png", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    png = project / "out" / "cost.png"
    assert json.loads(proc.stdout)["plot"] == str(Path("out/cost.png"))
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000


def in_process(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The CLI's own entry point in this process (no interpreter start-up): exit code, stdout, stderr."""
    from mldeploy.cli.main import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cost_bad_input_is_a_clear_error(project: Path, capsys: pytest.CaptureFixture[str]):
    cfg = str(project / "mldeploy.yaml")
    code, _, err = in_process("cost", "-f", cfg, "--rps", "100,lots", capsys=capsys)
    assert code != 0 and "--rps: 'lots' is not a number" in err and "Traceback" not in err
    code, out, err = in_process("cost", "-f", cfg, "--rps", "100,1000", "--plot", "--json", capsys=capsys)
    assert code == 0 and len(json.loads(out)["variants"]["x86"]) == 2 and "█" in err  # chart kept off stdout
    code, _, err = in_process("cost", "-f", cfg, "--rps", "100", "--plott", capsys=capsys)
    assert code == ExitCode.USAGE and "--plott" in err
    (project / "mldeploy.yaml").write_text(CONFIG)  # no capacity anywhere
    code, _, err = in_process("cost", "-f", cfg, "--rps", "100", capsys=capsys)
    assert code == ExitCode.CONFIG and "capacity_rps_per_task" in err
    assert "mldeploy bench" in err and "Traceback" not in err
    code, _, err = in_process("cost", "-f", cfg, capsys=capsys)  # no --rps, no capacity: the bill before traffic
    assert code == 0 and "before traffic only" in err


def test_percentiles_and_endpoint():
    values = [float(i) for i in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([], 50) is None and percentile([7.0], 99) == 7.0
    assert endpoint("http://h:1") == "http://h:1/predict" and endpoint("http://h:1/v2/x") == "http://h:1/v2/x"
    with pytest.raises(MldeployError):
        endpoint("h:1")
    with pytest.raises(MldeployError, match="--duration"):
        run("http://127.0.0.1:9/predict", duration=0)


def test_bench_measures_a_real_server(server: str):
    result = run(server + "/predict", body=b'{"inputs": [[1, 2]]}', duration=1.0, concurrency=4, warmup=0.3)
    assert result.errors == 0 and result.ok == result.requests > 20
    assert result.status == {"200": result.ok}
    assert 5.0 <= result.p50_ms <= result.p95_ms <= result.p99_ms <= result.max_ms
    assert result.rps == pytest.approx(result.ok / result.duration_s, rel=2e-3)  # duration_s is rounded to ms
    assert result.rps < 4 / 0.005  # 4 in flight, ≥ 5 ms each: a bound the server enforces
    assert 0.9 <= result.duration_s <= 1.5
    bounded = run(server + "/predict", body=b'{"inputs": [1]}', duration=5, concurrency=2, warmup=0, max_requests=15)
    assert bounded.requests == 15
    failing = run(server + "/fail", body=b"{}", duration=0.5, concurrency=2, warmup=0)
    assert failing.ok == 0 and failing.errors == failing.requests > 0 and failing.status == {"500": failing.requests}
    assert failing.error_samples[0].startswith("500") and failing.p50_ms is None


def test_bench_cli_stores_capacity_used_by_cost(project: Path, server: str):
    (project / "mldeploy.yaml").write_text(CONFIG)  # no configured capacity: the measurement is used
    (project / "body.json").write_text('{"inputs": [[1.0, 2.0]]}')
    proc = cli("bench", "--url", server, "--input", "body.json", "--duration", "1", "--warmup", "0.2",
               "--concurrency", "4", "--tasks", "2", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    stored = json.loads((project / ".mldeploy" / "default" / "capacity.json").read_text())
    assert stored["capacity_rps_per_task"] == pytest.approx(doc["rps"] / 2, rel=1e-3)
    assert stored["task_size"] == {"cpu": 1024, "memory": 2048} and stored["bench"]["errors"] == 0
    proc = cli("cost", "--rps", "100", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    (est,) = json.loads(proc.stdout)["variants"]["x86"]
    assert est["capacity_source"].startswith("bench")
    assert est["capacity_rps_per_task"] == stored["capacity_rps_per_task"]
    # an unreachable endpoint: a clear error, no capacity overwritten
    proc = cli("bench", "--url", f"http://127.0.0.1:{free_port()}", "--input", "body.json", "--duration", "0.3",
               "--warmup", "0", cwd=project)
    assert proc.returncode != 0 and "no successful request" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads((project / ".mldeploy" / "default" / "capacity.json").read_text()) == stored


@pytest.mark.slow
def test_bench_local_serves_the_packaged_model_with_the_real_runtime(tmp_path: Path):
    """``bench --local``: package the iris example, start ``python -m runtime`` pinned to one core, measure."""
    example = Path(__file__).resolve().parent.parent / "examples" / "iris-sklearn"
    (tmp_path / "mldeploy.yaml").write_text((example / "mldeploy.yaml").read_text())  # cpu 256 = 0.25 vCPU
    train = f"import pathlib, runpy; runpy.run_path({str(example / 'make_model.py')!r})['main'](pathlib.Path('.'))"
    subprocess.run([sys.executable, "-c", train], check=True, timeout=60, cwd=tmp_path, capture_output=True)
    proc = cli("bench", "--local", "--duration", "1", "--warmup", "0.3", "--concurrency", "4", "--json",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["errors"] == 0 and doc["ok"] > 0 and doc["p50_ms"] > 0
    assert doc["capacity"]["source"] == "local" and doc["capacity"]["scale"] == pytest.approx(0.25)
    assert doc["capacity"]["capacity_rps_per_task"] == pytest.approx(doc["rps"] * 0.25, rel=1e-3)
    with pytest.raises(httpx.HTTPError):  # the server is gone afterwards
        httpx.get(doc["url"].replace("/predict", "/ready"), timeout=1, trust_env=False)


def test_cost_after_package_uses_the_recorded_inference_time_as_an_estimate(tmp_path: Path):
    (tmp_path / "mldeploy.yaml").write_text(CONFIG)  # no capacity, no bench
    (tmp_path / "model.onnx").write_bytes(b"x")
    artifact = tmp_path / ".mldeploy" / "default" / "artifact"
    artifact.mkdir(parents=True)
    (artifact / "model.json").write_text(json.dumps({"name": "demo", "parity": {"single_row_ms": 3.0}}))
    proc = cli("cost", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (est, *_) = json.loads(proc.stdout)["variants"]["x86"]
    # 1 vCPU ÷ (3 ms + 2 ms HTTP) = 200 req/s per task, labelled an estimate with the hint to run bench
    assert est["capacity_rps_per_task"] == 200 and est["capacity_estimated"] is True
    assert "ESTIMATE" in proc.stderr and "mldeploy bench" in proc.stderr


def test_cost_right_after_package_estimates_from_the_real_artifact(tmp_path: Path):
    """No bench, no configured capacity: ``package`` alone records the timing ``cost`` needs, labelled an estimate."""
    from mldeploy.cost.capacity import from_inference_time

    example = Path(__file__).resolve().parent.parent / "examples" / "iris-sklearn"
    (tmp_path / "mldeploy.yaml").write_text((example / "mldeploy.yaml").read_text())  # cpu 256 = 0.25 vCPU
    train = f"import pathlib, runpy; runpy.run_path({str(example / 'make_model.py')!r})['main'](pathlib.Path('.'))"
    subprocess.run([sys.executable, "-c", train], check=True, timeout=60, cwd=tmp_path, capture_output=True)
    proc = cli("package", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / ".mldeploy" / "default" / "artifact" / "model.json").read_text())
    ms = manifest["parity"]["single_row_ms"]
    assert isinstance(ms, float) and ms > 0
    proc = cli("cost", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (est, *_) = json.loads(proc.stdout)["variants"]["x86"]
    assert est["capacity_estimated"] is True
    assert est["capacity_rps_per_task"] == pytest.approx(round(from_inference_time(ms, 256), 1))
    assert "ESTIMATE" in proc.stderr and "mldeploy bench" in proc.stderr


def test_overloaded_level_and_compare_marks(project: Path):
    proc = cli("cost", "--rps", "100,10000", "--compare", cwd=project)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "overloaded" in out  # 10,000 req/s needs 167 tasks, max is 100
    assert "x86+spot / month*" in out and "estimated at 30 % of on-demand" in out
    assert "ECS on EC2" in out and "Lambda" in out and "lambda/pricing" in proc.stderr


def test_live_without_network_falls_back_to_bundled_prices(project: Path):
    env_proxy = {"HTTPS_PROXY": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                 "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160", "XDG_CACHE_HOME": str(project / ".cache"), **env_proxy}
    env.pop("GITHUB_ACTIONS", None)
    proc = subprocess.run([sys.executable, "-m", "mldeploy", "cost", "--rps", "100", "--live", "--json"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "unreachable" in proc.stderr and "bundled prices" in proc.stderr
    assert json.loads(proc.stdout)["prices"].startswith("bundled")


def test_plot_uses_dollar_ticks_and_marks_overload():
    from mldeploy.cost.plot import dollars, rate

    assert [dollars(x) for x in (10, 100, 1000, 10000, 1.5e6)] == ["$10", "$100", "$1k", "$10k", "$1.5M"]
    assert [rate(x) for x in (10, 100, 1000, 10000)] == ["10", "100", "1k", "10k"]
