"""The first hour of a new user (issue 20), command by command as they typed them: local canary through the
``up --target local`` container, first-run ``predict`` without a sample input, the printed curl, help output,
interactive ``init``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests import infra

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLDEPLOY_")}
    return {**env, "NO_COLOR": "1", "COLUMNS": "200", "MLDEPLOY_BASE_IMAGE": infra.base_image(), **extra}


def _cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "mldeploy", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _ok(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = _cli(args, cwd, env)
    assert proc.returncode == 0, f"{args} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _iris(root: Path, name: str, *, trees: int, seed: int, version: str) -> Path:
    """The iris example (RandomForest pickle → ONNX) with ``trees``/``seed``, named ``name`` at ``version``."""
    if not root.exists():
        shutil.copytree(ROOT / "examples" / "iris-sklearn", root, ignore=shutil.ignore_patterns(".mldeploy",
                                                                                                   "__pycache__"))
    code = ("import pickle, sys; from sklearn.datasets import load_iris; "
            "from sklearn.ensemble import RandomForestClassifier as R; d = load_iris(); "
            f"m = R(n_estimators={trees}, random_state={seed}, n_jobs=1).fit(d.data, d.target); "
            "open('model.pkl', 'wb').write(pickle.dumps(m, protocol=5))")
    subprocess.run([sys.executable, "make_model.py"], cwd=root, check=True, capture_output=True)  # sample.json
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, capture_output=True)
    cfg = root / "mldeploy.yaml"
    text = re.sub(r"(?m)^name: .*$", f"name: {name}", cfg.read_text())
    cfg.write_text(re.sub(r"(?m)^  version: .*$", f"  version: {version}", text))
    return root


def _versions(url: str, n: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    with httpx.Client(timeout=10) as http:
        for _ in range(n):
            resp = http.post(f"{url}/predict", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]})
            assert resp.status_code == 200, resp.text
            version = resp.json()["version"]
            assert resp.headers.get("x-model-version", version) == version
            seen[version] += 1
    return seen


@pytest.mark.slow
def test_local_canary_moves_the_traffic_of_the_up_container(tmp_path: Path, docker_client):
    """up → retrain without a new version (refused, nothing registered as stable) → bump → canary 30 % splits the
    container's traffic 30 ± 8 % over 300 requests → up again gives the new version 100 % through the release
    target (recorded)."""
    name = "fh-canary"
    project = _iris(tmp_path / "wine", name, trees=20, seed=0, version="0.1.0")
    env = _env()
    port = infra.free_port()
    local = ["--target", "local"]
    try:
        up = json.loads(_ok(["up", *local, "--port", str(port), "--json"], project, env).stdout)
        url = up["local"]["url"]
        assert up["local"]["versions"] == ["0.1.0"]
        mounts = docker_client.containers.get(f"mldeploy-{name}").attrs["Mounts"]
        assert [(m["Destination"], m["RW"]) for m in mounts] == [("/app/models", False)]
        assert _versions(url, 20) == {"0.1.0": 20}
        models = project / ".mldeploy" / "default" / "models"
        registered = json.loads((models / "0.1.0" / "model.json").read_text())["source_sha256"]

        _iris(project, name, trees=5, seed=7, version="0.1.0")  # retrained, version not bumped
        proc = _cli(["canary", "--percent", "30", *local], project, env)
        assert proc.returncode != 0
        err = " ".join(proc.stderr.split())
        assert "0.1.0 is already the stable version" in err and "bump model.version" in err
        assert json.loads((models / "0.1.0" / "model.json").read_text())["source_sha256"] == registered
        state = json.loads((project / ".mldeploy" / "default" / "release-local.json").read_text())
        assert state["stable"] == "0.1.0" and state["canary"] is None

        _iris(project, name, trees=5, seed=7, version="0.2.0")
        proc = _ok(["canary", "--percent", "30", *local], project, env)
        assert "restarted container mldeploy-fh-canary" in " ".join(proc.stderr.split())
        split = _versions(url, 300)
        assert set(split) == {"0.1.0", "0.2.0"}
        assert 22 <= 100 * split["0.2.0"] / 300 <= 38, split

        container_id = docker_client.containers.get(f"mldeploy-{name}").id
        _ok(["canary", "--percent", "50", *local], project, env)  # weights only: the same container follows
        assert docker_client.containers.get(f"mldeploy-{name}").id == container_id
        time.sleep(1.3)  # the runtime re-reads routing.json at most once a second
        assert set(_versions(url, 60)) == {"0.1.0", "0.2.0"}

        up = json.loads(_ok(["up", *local, "--port", str(port), "--json"], project, env).stdout)
        assert _versions(up["local"]["url"], 50) == {"0.2.0": 50}  # up: the current model takes 100 %
        assert json.loads((models / "routing.json").read_text())["weights"] == {"0.2.0": 100}
        records = json.loads(_ok(["history", "--json", *local], project, env).stdout)["deployments"]
        assert (records[0]["action"], records[0]["version"], records[0]["outcome"]) == ("up", "0.2.0", "succeeded")
        assert {r["outcome"] for r in records if r["action"] == "canary"} == {"promoted"}
    finally:
        with contextlib.suppress(Exception):
            docker_client.containers.get(f"mldeploy-{name}").remove(force=True)


def test_help_shows_no_value_placeholder_for_flags():
    """`mldeploy --help` showed `--json <bool>`; flags take no value. Options with values keep their type."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    for args in (["--help"], ["up", "--help"], ["canary", "--help"], ["predict", "--help"], ["logs", "--help"]):
        out = subprocess.run([sys.executable, "-m", "mldeploy", *args], capture_output=True, text=True, env=env,
                             timeout=60).stdout
        assert "<bool>" not in out, (args, out)
    out = subprocess.run([sys.executable, "-m", "mldeploy", "--help"], capture_output=True, text=True, env=env,
                         timeout=60).stdout
    assert re.search(r"--config\s+-f\s+<path>", out) and re.search(r"--json\s+Machine-readable", out)


def test_interactive_init_checks_the_app_name_when_it_is_typed(tmp_path: Path):
    """The user typed `Wine Classifier`, answered the next question, then init failed and wrote nothing. Now the
    answer is refused at once with the slug offered as the new default."""
    import pexpect

    (tmp_path / "model.onnx").write_bytes(b"x")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")} | {"NO_COLOR": "1",
                                                                                      "COLUMNS": "120"}
    child = pexpect.spawn(sys.executable, ["-m", "mldeploy", "init"], cwd=str(tmp_path), env=env, encoding="utf-8",
                          timeout=60)
    try:
        child.expect(r"Which model\?")
        child.sendline("")
        child.expect(r"App name")
        child.sendline("Wine Classifier")
        child.expect(r"must be lowercase letters")
        child.expect(r"'wine-classifier'")
        child.expect(r"App name")
        child.sendline("")  # take the offered slug
        child.expect(r"Model format")
        child.sendline("")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    assert "name: wine-classifier" in (tmp_path / "mldeploy.yaml").read_text()


def test_init_name_flag_is_checked_before_anything_else(tmp_path: Path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    proc = _cli(["init", "--name", "Wine Classifier", "--model", "model.onnx"], tmp_path, _env())
    assert proc.returncode == 3 and "try --name wine-classifier" in " ".join(proc.stderr.split())
    assert not (tmp_path / "mldeploy.yaml").exists()


def test_logs_says_when_there_are_no_events(tmp_path: Path, aws: dict[str, str]):
    """`logs --since 10m` printed nothing at all (rc 0)."""
    import boto3

    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "mldeploy.yaml").write_text("name: quiet\nmodel:\n  path: model.onnx\n")
    boto3.client("logs", region_name="us-east-1").create_log_group(logGroupName="/mldeploy/quiet/default")
    proc = _cli(["logs", "--since", "10m"], tmp_path, {**aws, "NO_COLOR": "1", "COLUMNS": "200"})
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert "no log events in /mldeploy/quiet/default in the last 10m" in proc.stderr


def test_piped_history_table_is_not_cut_at_80_columns(tmp_path: Path):
    from tests.release_helpers import write_project

    project = write_project(tmp_path / "p", version="1.0.0")
    models = tmp_path / "models"
    (models / "1.0.0").mkdir(parents=True)
    (models / "1.0.0" / "model.json").write_text(json.dumps({"version": "1.0.0"}))
    env = {k: v for k, v in _env(MLDEPLOY_MODELS_DIR=str(models)).items() if k != "COLUMNS"}
    _cli(["canary", "--percent", "10", "--target", "local"], project, env)  # 1.0.0 becomes stable
    out = _ok(["history", "--target", "local"], project, env).stdout
    assert "succeeded" in out and "first version" not in out and "…" not in out, out
