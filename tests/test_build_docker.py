"""Real Docker builds of the examples: serve, non-root, clean layers, layer reuse, push/pull via a real registry.

Each example image is built once per session (session fixtures); the wheelhouse cache makes re-runs fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from tests import infra

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _project_copy(tmp: Path, example: str, name: str, base: str) -> Path:
    """A git-committed copy of ``examples/<example>`` named ``name`` using the local test base image."""
    src = ROOT / "examples" / example
    dst = tmp / name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    cfg = dst / "mldeploy.yaml"
    text = cfg.read_text()
    text = text.replace(f"name: {text.split('name: ', 1)[1].split()[0]}", f"name: {name}", 1)
    cfg.write_text(text)
    if (dst / "make_model.py").exists():
        subprocess.run([sys.executable, "make_model.py"], cwd=dst, check=True, capture_output=True)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(dst)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return dst


def _load(path: Path):
    from mldeploy.config import load_project

    return load_project(path / "mldeploy.yaml", None)


@pytest.fixture(scope="session")
def base_env(base_image: str):
    old = os.environ.get("MLDEPLOY_BASE_IMAGE")
    os.environ["MLDEPLOY_BASE_IMAGE"] = base_image
    yield base_image
    if old is None:
        os.environ.pop("MLDEPLOY_BASE_IMAGE", None)
    else:
        os.environ["MLDEPLOY_BASE_IMAGE"] = old


@pytest.fixture(scope="session")
def iris(tmp_path_factory, base_env):
    from mldeploy.image.api import build_image

    proj = _load(_project_copy(tmp_path_factory.mktemp("iris"), "iris-sklearn", "t-iris", base_env))
    return proj, build_image(proj)


@pytest.fixture(scope="session")
def cnn(tmp_path_factory, base_env):
    from mldeploy.image.api import build_image

    proj = _load(_project_copy(tmp_path_factory.mktemp("cnn"), "cnn-torch", "t-cnn", base_env))
    return proj, build_image(proj)


@pytest.fixture
def running(docker_client):
    """Start a built image with mldeploy.local.container.run on a free port; removes the container afterwards."""
    from mldeploy.local import container as local

    started = []

    def start(project, built):
        result = local.run(project, built.image_id, port=infra.free_port())
        started.append(result.container)
        return result

    yield start
    for name in started:
        with contextlib.suppress(Exception):
            docker_client.containers.get(name).remove(force=True)


def _manifest(built):
    from runtime.manifest import Manifest

    return Manifest.load(Path(built.context_dir) / "model")


def test_iris_image_serves_as_non_root_with_labels(iris, running, docker_client):
    project, built = iris
    manifest = _manifest(built)
    assert manifest.format == "onnx"
    # tags: model version, git sha, a unique build tag (never moves), latest
    assert built.tag_names[0] == "1.0.0" and built.tag_names[-1] == "latest" and len(built.tag_names) == 4
    attrs = docker_client.api.inspect_image(built.image_id)
    cfg = attrs["Config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Labels"]["dev.mldeploy.model.sha256"] == manifest.sha256
    assert cfg["Labels"]["org.opencontainers.image.version"] == "1.0.0"
    assert cfg["Labels"]["dev.mldeploy.git-commit"].startswith(built.tag_names[1])
    assert cfg["Cmd"][:3] == ["python3", "-m", "runtime"] and cfg["StopSignal"] == "SIGTERM"
    assert cfg["Healthcheck"]["Test"][0] == "CMD"
    assert not any(e.startswith(("PIP_INDEX", "PIP_EXTRA", "PIP_FIND_LINKS")) for e in cfg["Env"])

    run = running(project, built)
    assert run.ready_seconds is not None
    r = httpx.post(f"{run.url}/predict", json={"inputs": manifest.sample_input}, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(json.dumps(body).split('"')) & {"setosa", "versicolor", "virginica"}

    container = docker_client.containers.get(run.container)
    uid = container.exec_run(["id", "-u"]).output.decode().strip()
    assert uid == "10001"
    # the app cannot modify its own code or model
    res = container.exec_run(["sh", "-c", "touch /app/model/x || touch /app/runtime/x"])
    assert res.exit_code != 0
    # the HEALTHCHECK command itself succeeds inside the container (stdlib only)
    hc = container.exec_run(cfg["Healthcheck"]["Test"][1:])
    assert hc.exit_code == 0, hc.output
    # exec-form CMD: SIGTERM reaches the server, which drains and exits 0 well within the stop timeout
    t0 = time.monotonic()
    container.stop(timeout=30)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0 and time.monotonic() - t0 < 20


def _added_layer_files(docker_client, image_id: str, base: str) -> dict[str, bytes | None]:
    """path → content (small files) of every file in the layers the image adds over ``base``."""
    base_layers = set(docker_client.api.inspect_image(base)["RootFS"]["Layers"])
    raw = io.BytesIO(b"".join(docker_client.api.get_image(image_id)))
    files: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=raw) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        config = json.load(outer.extractfile(manifest["Config"]))
        for layer_path, diff_id in zip(manifest["Layers"], config["rootfs"]["diff_ids"], strict=True):
            if diff_id in base_layers:
                continue
            with tarfile.open(fileobj=outer.extractfile(layer_path)) as layer:
                for member in layer:
                    if member.isfile():
                        small = member.size < 2_000_000
                        files[member.name] = layer.extractfile(member).read() if small else None
    return files


def _host_extra_cas() -> list[bytes]:
    """Base64 bodies of the locally added CA certificates (the TLS-intercepting proxy's CA among them)."""
    bodies = []
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        lines = [ln for ln in crt.read_bytes().splitlines() if ln and not ln.startswith(b"-----")]
        if lines:
            bodies.append(b"".join(lines[1:4]))  # a distinctive slice of the DER base64
    return bodies


def test_added_layers_hold_no_ca_pip_config_or_secrets(iris, docker_client, base_env):
    _, built = iris
    files = _added_layer_files(docker_client, built.image_id, base_env)
    assert any(p.startswith("opt/venv/") for p in files) and any(p.startswith("app/model/") for p in files)
    forbidden = [p for p in files if Path(p).name in {"pip.conf", "pip.ini", ".netrc", ".env", "credentials",
                                                      "ca-certificates.crt", "requirements.lock"}
                 or p.startswith(("etc/ssl/", "usr/local/share/ca-certificates/", "root/", "wheels/",
                                  "etc/pip"))]
    assert forbidden == []
    cas = _host_extra_cas()
    for path, content in files.items():
        if content is None:
            continue
        for body in cas:
            assert body not in content, f"{path} contains a host CA certificate"
        assert b"aws_secret_access_key" not in content.lower() or path.endswith((".py", ".pyc")), path


def test_model_only_change_reuses_dependency_layers(iris, tmp_path, base_env, docker_client):
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    from mldeploy.image.api import build_image

    project, first = iris
    # same app, a retrained model: only the model layer (and metadata) may change
    dst = tmp_path / "t-iris"
    shutil.copytree(project.root, dst, ignore=shutil.ignore_patterns(".mldeploy"))
    data = load_iris()
    model = RandomForestClassifier(n_estimators=20, random_state=1).fit(data.data, data.target)
    (dst / "model.pkl").write_bytes(pickle.dumps(model))
    second = build_image(_load(dst))
    assert second.image_id != first.image_id and second.model_sha256 != first.model_sha256
    a = docker_client.api.inspect_image(first.image_id)["RootFS"]["Layers"]
    b = docker_client.api.inspect_image(second.image_id)["RootFS"]["Layers"]
    assert len(a) == len(b) and a[:-1] == b[:-1] and a[-1] != b[-1]
    assert second.steps - second.cached_steps <= 4  # COPY model + LABEL (+ the two FROM lines)
    assert second.build_seconds < max(10.0, first.build_seconds * 0.5)


def test_push_to_local_registry_and_pull_digest_back(iris, registry, docker_client):
    from mldeploy.image.api import push_image
    from mldeploy.workspace import PUSH_RECORD, Workspace

    project, built = iris
    pushed = push_image(project, built, registry=registry.url)
    assert pushed.uri == f"{registry.host}/t-iris:1.0.0" and pushed.digest.startswith("sha256:")
    assert registry.manifest_digest("t-iris", "1.0.0") == pushed.digest
    assert set(registry.tags("t-iris")) == set(built.tag_names)
    assert Workspace.of(project).record(PUSH_RECORD)["digest"] == pushed.digest
    docker_client.api.remove_image(pushed.ref.split("@")[0] + ":latest", force=True)
    pulled = docker_client.images.pull(pushed.ref)
    assert pulled.id == built.image_id


def test_cnn_image_serves_binary_tensors(cnn, running, docker_client):
    import numpy as np

    project, built = cnn
    manifest = _manifest(built)
    run = running(project, built)
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 3, 224, 224), dtype=np.float32))
    r = httpx.post(f"{run.url}/predict", content=buf.getvalue(), headers={"Content-Type": "application/x-npy"},
                   timeout=30)
    assert r.status_code == 200, r.text
    assert any(label in r.text for label in manifest.class_labels)


def test_up_local_cli_and_predict(iris, docker_client):
    """The README's main-job command, as a subprocess (the image is cached from the fixture)."""
    project, built = iris
    port = infra.free_port()
    env = {**os.environ, "NO_COLOR": "1"}
    up = subprocess.run([sys.executable, "-m", "mldeploy", "-f", str(project.path), "up", "--target", "local",
                         "--port", str(port), "--json"], capture_output=True, text=True, env=env, timeout=300)
    try:
        assert up.returncode == 0, up.stderr
        doc = json.loads(up.stdout)
        assert doc["local"]["url"] == f"http://127.0.0.1:{port}"
        assert doc["image"]["image_id"] == built.image_id  # nothing changed → same image
        pred = subprocess.run([sys.executable, "-m", "mldeploy", "-f", str(project.path), "predict", "--json"],
                              capture_output=True, text=True, env=env, timeout=60)
        assert pred.returncode == 0, pred.stderr
        assert "setosa" in pred.stdout or "virginica" in pred.stdout
    finally:
        with contextlib.suppress(Exception):
            docker_client.containers.get("mldeploy-t-iris").remove(force=True)


def test_failed_build_shows_the_build_log_tail(tmp_path, base_env):
    from mldeploy.errors import BuildError
    from mldeploy.image.api import build_image

    dst = _project_copy(tmp_path, "iris-sklearn", "t-iris-bad", base_env)
    cfg = dst / "mldeploy.yaml"
    cfg.write_text(cfg.read_text().replace("${MLDEPLOY_BASE_IMAGE:-python:3.11-slim}", "mldeploy-test/nope:0"))
    with pytest.raises(BuildError) as e:
        build_image(_load(dst))
    assert "last build log lines" in e.value.message and "mldeploy-test/nope:0" in e.value.message


def test_build_output_writes_an_inspectable_context(iris, tmp_path):
    from mldeploy.image.api import build_image

    project, built = iris
    out = tmp_path / "ctx"
    again = build_image(project, output=out)
    assert again.image_id == built.image_id  # same inputs, fully cached
    assert (out / "Dockerfile").read_text().startswith("# syntax=docker/dockerfile:1")
    lock = (out / "wheels" / "requirements.lock").read_text()
    assert "onnxruntime==" in lock and "--hash=sha256:" in lock and "scikit-learn" not in lock  # ONNX: no sklearn
    assert json.loads((out / "model" / "runtime.json").read_text())["port"] == project.config.runtime.port
    assert (out / "build.log").is_file() and not any(out.rglob(".env"))
