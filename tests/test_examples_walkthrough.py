"""Each example's README walk-through, for real: init → build → run → up → canary → promote → rollback.

The CLI runs as a subprocess under GITHUB_ACTIONS=true (fresh $GITHUB_OUTPUT/$GITHUB_STEP_SUMMARY per step, as in
a workflow) against the local Docker engine, a local registry and the moto server. What differs from the README,
and why:

* moto cannot take image pushes (its ECR token names a host that does not exist), so where the README lets
  `up`/`canary` build and push to ECR, the test pushes to the local registry (`push --registry`) and passes the
  pushed digest with `--image`.
* moto runs no tasks: `up --no-wait`, and the release commands' health waits are skipped
  (MLDEPLOY_SKIP_HEALTH_WAIT=1). Serving is checked on the local container instead (`run` + `predict`).

The test also checks that every `mldeploy` command of the README's walk-through is one the test runs, so the
README cannot drift from what is tested.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import infra
from tests.ci_helpers import GhRun, actionlint, clean_env, require_linter, run_gh

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/mldeploy.yaml"))
MODEL_FILES = {"iris-sklearn": "model.pkl", "cnn-torch": "model.pt", "keras-tf": "saved_model"}
pytestmark = [pytest.mark.docker, pytest.mark.aws, pytest.mark.slow]


def readme_commands(example: str) -> list[str]:
    """The ``mldeploy`` sub-commands in the README's shell blocks, in order."""
    readme = ROOT / "examples" / example / "README.md"
    if not readme.exists():
        return []
    blocks = re.findall(r"```(?:bash|sh|shell)\n(.*?)```", readme.read_text(), re.S)
    return [m for block in blocks for m in re.findall(r"^\s*mldeploy\s+([a-z-]+)", block, re.M)]


def _prepare(example: str, dst: Path) -> Path:
    """A git-committed copy of the example named ``w-<app>`` (no clash with other tests' containers/images)."""
    src = ROOT / "examples" / example
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__", "README.md"))
    cfg = dst / "mldeploy.yaml"
    text = cfg.read_text()
    name = re.search(r"^name:\s*(\S+)", text, re.M).group(1)
    cfg.write_text(text.replace(f"name: {name}", f"name: w-{name}", 1))
    model = MODEL_FILES.get(example)
    if model is None or not (dst / model).exists():  # a fresh clone has no model files (git-ignored)
        subprocess.run([sys.executable, "make_model.py"], cwd=dst, check=True, capture_output=True, timeout=600)
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", "-C", str(dst)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "example"], check=True)
    return dst


def _predict_input(project: Path) -> list[str]:
    """Nothing when the config names a sample input; else a random image tensor (as the README shows)."""
    from mldeploy.config import load_project

    model = load_project(project / "mldeploy.yaml").config.model
    if model.sample_input:
        return []
    import numpy as np

    image = model.image
    shape = (1, image.channels, image.height, image.width) if image.layout == "NCHW" else \
        (1, image.height, image.width, image.channels)
    np.save(project / "sample.npy", np.random.default_rng(0).random(shape, dtype=np.float32))
    return ["--input", "sample.npy"]


def _bump_version(project: Path) -> str:
    cfg = project / "mldeploy.yaml"
    text = cfg.read_text()
    old = re.search(r"^\s+version:\s*(\d+)\.(\d+)\.(\d+)", text, re.M)
    new = f"{old.group(1)}.{int(old.group(2)) + 1}.0"
    cfg.write_text(text[:old.start(1)] + new + text[old.end(3):])
    return new


@pytest.fixture
def untag_afterwards(docker_client):
    """Remove the image tags a walk-through created (``…/w-<app>:…``); shared base/dependency layers stay cached."""
    apps: list[str] = []
    yield apps
    for image in docker_client.images.list():
        for tag in image.tags:
            if any(f"/w-{app}:" in tag for app in apps):
                with contextlib.suppress(Exception):
                    docker_client.images.remove(tag)


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_walkthrough(example: str, tmp_path: Path, aws: dict[str, str], base_image: str, registry,
                             docker_client, untag_afterwards: list[str]) -> None:
    project = _prepare(example, tmp_path / example)
    untag_afterwards.append(re.search(r"^name:\s*w-(\S+)", (project / "mldeploy.yaml").read_text(), re.M).group(1))
    env = clean_env({**aws, "MLDEPLOY_BASE_IMAGE": base_image, "MLDEPLOY_SKIP_HEALTH_WAIT": "1",
                     "MLDEPLOY_POLL_S": "0.2", "COLUMNS": "200"})
    ran: list[str] = []
    timings: list[tuple[str, float]] = []

    def step(*args: str, ok: bool = True) -> GhRun:
        ran.append(args[0])
        t0 = time.monotonic()
        run = run_gh(list(args), project, tmp_path / "gh", env=env, timeout=900)
        timings.append((" ".join(args[:2]), round(time.monotonic() - t0, 1)))
        if ok:
            assert run.code == 0, f"mldeploy {' '.join(args)} failed ({run.code}):\n{run.stderr[-4000:]}"
            assert "Traceback" not in run.stderr
        assert "\x1b[" not in run.stderr + run.stdout, f"colour/cursor codes in CI output of {args[0]}"
        return run

    # init: the example has its mldeploy.yaml, so `init --ci github` only adds the workflow
    step("init", "--ci", "github")
    workflow = project / ".github" / "workflows" / "mldeploy.yml"
    assert workflow.exists()
    if require_linter():  # else the workflow is linted by tests/test_ci.py when the linter is there
        assert actionlint(workflow) == []
    step("validate")
    step("package")

    # serve: the same server in this process (no Docker), until /ready answers and one prediction comes back
    ran.append("serve")
    serve_port = infra.free_port()
    server = subprocess.Popen([sys.executable, "-m", "mldeploy", "serve", "--port", str(serve_port)], cwd=project,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"mldeploy serve exited: {server.stderr.read()[-2000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{serve_port}/ready", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "mldeploy serve never became ready"
            time.sleep(0.2)
        served = step("predict", "--json", "--url", f"http://127.0.0.1:{serve_port}", *_predict_input(project))
        assert json.loads(served.stdout), served.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)

    # build → run → predict, on the local Docker engine
    built = step("build", "--json")
    version = built.outputs["version"]
    assert json.loads(built.stdout)["image_id"] == built.outputs["image_id"]  # --json: one document on stdout
    assert built.outputs["image"].endswith(f":{version}") and int(built.outputs["image_size"]) > 0
    assert built.summary.startswith("### mldeploy build")
    port = infra.free_port()
    container = None
    try:
        run = step("run", "--port", str(port))
        container = re.search(r"docker rm -f (\S+)", run.stderr).group(1)
        sample = _predict_input(project)
        answer = step("predict", "--json", *sample)
        body = json.loads(answer.stdout)
        assert body.get("predictions") or body.get("outputs"), body
        bench = json.loads(step("bench", "--duration", "1", "--warmup", "0.2", "--concurrency", "2", "--no-save",
                                "--json", *sample).stdout)
        assert bench, "bench --json printed nothing"
    finally:
        if container:
            with contextlib.suppress(Exception):
                docker_client.containers.get(container).remove(force=True)

    # up on AWS (moto): the pushed digest, then plan/status
    pushed = step("push", "--registry", registry.host)
    assert pushed.outputs["image_uri"].startswith(registry.host)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", pushed.outputs["image_digest"])
    v1 = pushed.outputs["image_ref"]
    plan = step("plan", "--image", v1)
    assert int(plan.outputs["changes"]) > 0 and "Estimated cost" in plan.summary
    up = step("up", "--image", v1, "--no-wait")
    assert up.outputs["task_definition_arn"].endswith(":1") and up.outputs["image_digest"] == \
        pushed.outputs["image_digest"]
    url = up.outputs["url"]
    status = step("status")
    assert status.outputs["deployed"] == "true" and status.outputs["url"] == url

    # a new model version: build + push it, canary 10 %, promote, roll back
    v2_version = _bump_version(project)
    rebuilt = step("build")  # only the model layer changes: seconds
    assert rebuilt.outputs["version"] == v2_version != version
    v2 = step("push", "--registry", registry.host).outputs["image_ref"]
    assert v2 != v1
    canary = step("canary", "--percent", "10", "--image", v2)
    assert canary.outputs["canary_state"] == "active" and canary.outputs["canary_percent"] == "10"
    assert canary.outputs["version"] == v2_version
    history = json.loads(step("history", "--json").stdout)["deployments"]
    assert history[0]["action"] == "canary" and history[0]["percent"] == 10
    promoted = step("promote", "--yes")
    assert promoted.outputs["canary_state"] == "none" and promoted.outputs["task_definition_arn"].endswith(":2")
    rolled = step("rollback", "--yes")
    assert rolled.outputs["task_definition_arn"].endswith(":1")
    step("down", "--yes")
    assert step("status").outputs["deployed"] == "false"

    print(f"{example} step timings (s): {timings}")
    documented = readme_commands(example)
    assert documented, f"examples/{example}/README.md has no walk-through"
    assert set(documented) <= set(ran), f"README commands not exercised: {set(documented) - set(ran)}"
