"""``mldeploy serve`` (the runtime in-process, no Docker) + ``mldeploy predict`` against it, as subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import infra

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_serve_in_process_then_predict(tmp_path):
    proj = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris-sklearn", proj, ignore=shutil.ignore_patterns(".mldeploy"))
    subprocess.run([sys.executable, "make_model.py"], cwd=proj, check=True, capture_output=True)
    port = infra.free_port()
    env = {**os.environ, "NO_COLOR": "1", "DOCKER_HOST": f"tcp://127.0.0.1:{infra.free_port()}"}  # no Docker
    server = subprocess.Popen([sys.executable, "-m", "mldeploy", "-f", str(proj), "serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read().decode()
            time.sleep(0.2)
        else:
            pytest.fail("mldeploy serve did not become ready")
        # predict finds the server through .mldeploy/default/local.json and sends the manifest's sample
        pred = subprocess.run([sys.executable, "-m", "mldeploy", "-f", str(proj), "predict", "--json"],
                              capture_output=True, text=True, env=env, timeout=60)
        assert pred.returncode == 0, pred.stderr
        body = json.loads(pred.stdout)
        assert body["version"] == "1.0.0" and set(body["predictions"]) <= {"setosa", "versicolor", "virginica"}
        assert (proj / ".mldeploy" / "default" / "serve" / "runtime.json").is_file()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            assert server.wait(timeout=30) == 0
        finally:
            if server.poll() is None:
                server.kill()


@pytest.mark.slow
def test_predict_without_sample_input_and_with_an_api_key(tmp_path):
    """The user's first run: no model.sample_input → `predict` failed with "invalid configuration"; with auth on it
    could not send a key (401). Now it sends rows generated from the signature, and --api-key (never echoed)."""
    from tests.test_release_local import iris_project

    proj = iris_project(tmp_path / "iris", "1.0.0", c=1.0)
    with (proj / "mldeploy.yaml").open("a") as f:
        f.write("runtime:\n  auth: {mode: api_key}\n")
    key = "k-" + "7" * 30
    port = infra.free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLDEPLOY_")} | {
        "NO_COLOR": "1", "DOCKER_HOST": f"tcp://127.0.0.1:{infra.free_port()}"}
    server = subprocess.Popen([sys.executable, "-m", "mldeploy", "-f", str(proj), "serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env={**base, "MLDEPLOY_API_KEYS": key})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read().decode()
            time.sleep(0.2)
        else:
            pytest.fail("mldeploy serve did not become ready")

        def predict(*args: str, env: dict[str, str] = base) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "mldeploy", "-f", str(proj), "predict", *args],
                                  capture_output=True, text=True, env=env, timeout=60)

        denied = predict()
        assert denied.returncode == 1 and "401" in denied.stderr and "--api-key" in denied.stderr
        assert "invalid configuration" not in denied.stderr
        for proc in (predict("--api-key", key), predict(env={**base, "MLDEPLOY_API_KEY": key})):
            assert proc.returncode == 0, proc.stderr
            assert "generated from the signature float32[N×4]" in " ".join(proc.stderr.split())
            assert key not in proc.stdout + proc.stderr
        body = json.loads(predict("--api-key", key, "--json").stdout)
        assert len(body["predictions"]) == 2 and set(body["predictions"]) <= {"setosa", "versicolor", "virginica"}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
