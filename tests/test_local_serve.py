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
