"""Build-area logic without Docker: requirement pinning, CUDA refusal, Dockerfile rendering, tags, inputs, errors."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from mldeploy.errors import BuildError, MldeployError
from mldeploy.image import wheelhouse as wh
from mldeploy.image.api import docker_tag, tag_names
from mldeploy.image.dockerfile import DockerfileSpec, render_dockerfile, render_dockerignore
from tests import infra

ROOT = Path(__file__).resolve().parent.parent


def test_unpinned_requirements_pin_to_host_versions_and_keep_extras():
    assert wh.pin_requirement("numpy", "linux/amd64") == f"numpy=={metadata.version('numpy')}"
    assert wh.pin_requirement("uvicorn[standard]", "linux/amd64") == f"uvicorn[standard]=={metadata.version('uvicorn')}"
    assert wh.pin_requirement("orjson>=3", "linux/amd64") == "orjson>=3"
    assert wh.pin_requirement("not-installed-anywhere-xyz", "linux/amd64") == "not-installed-anywhere-xyz"
    with pytest.raises(BuildError, match="invalid pip requirement"):
        wh.pin_requirement("numpy >= = 1", "linux/amd64")


def test_torch_pins_become_cpu_builds_on_amd64_only():
    assert wh.pin_requirement("torch==2.13.0", "linux/amd64") == "torch==2.13.0+cpu"
    assert wh.pin_requirement("torch==2.13.0+cpu", "linux/amd64") == "torch==2.13.0+cpu"
    assert wh.pin_requirement("torch==2.13.0", "linux/arm64") == "torch==2.13.0"


def test_merge_requirements_dedupes_by_canonical_name_later_wins():
    merged = wh.merge_requirements([["Pillow==10.0.0", "numpy==1.0"], ["pillow==11.0.0"]], "linux/amd64")
    assert merged == ["numpy==1.0", "pillow==11.0.0"]


def test_cuda_wheels_are_refused_with_a_hint():
    ok = [Path("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"), Path("numpy-2.0-cp311-x.whl")]
    wh.check_no_cuda(ok)
    for bad in ("nvidia_cublas_cu12-12.4.5.8-py3-none-manylinux2014_x86_64.whl",
                "torch-2.13.0+cu124-cp311-cp311-linux_x86_64.whl", "triton-3.1.0-cp311-cp311-manylinux.whl"):
        with pytest.raises(BuildError, match="CUDA wheels") as e:
            wh.check_no_cuda([*ok, Path(bad)])
        assert "download.pytorch.org/whl/cpu" in (e.value.hint or "")


def test_platform_tags_cover_manylinux_levels():
    amd = wh.platform_tags("linux/amd64")
    assert {"manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux1_x86_64"} <= set(amd)
    arm = wh.platform_tags("linux/arm64")
    assert "manylinux2014_aarch64" in arm and not any("x86_64" in t for t in arm)
    with pytest.raises(BuildError, match="not supported"):
        wh.platform_tags("windows/amd64")


def test_dockerfile_is_multistage_nonroot_and_ordered_for_caching():
    spec = DockerfileSpec(app="iris", env="default", base="python:3.11-slim", port=8080, model_version="1.2.3",
                          model_sha256="ab" * 32, model_format="onnx", git_commit="c0ffee")
    text = render_dockerfile(spec)
    assert text.count("\nFROM python:3.11-slim") == 2 and "AS builder" in text
    assert "--no-index" in text and "--require-hashes" in text and "python3 -m venv /opt/venv" in text
    assert "USER 10001:10001" in text and "STOPSIGNAL SIGTERM" in text and "HEALTHCHECK" in text
    assert 'CMD ["python3", "-m", "runtime"' in text  # exec form: SIGTERM reaches the server
    assert "urllib.request" in text and "curl" not in text and "wget" not in text
    # layer order: deps → runtime code → model → labels
    order = [text.index(s) for s in ("COPY --from=builder /opt/venv", "COPY runtime/", "COPY model/", "LABEL ")]
    assert order == sorted(order)
    assert f'dev.mldeploy.model.sha256="{"ab" * 32}"' in text and 'revision="c0ffee"' in text
    for leak in ("PIP_CERT", "pip.conf", "ca-certificates", "--build-arg", "ARG ", "index-url"):
        assert leak not in text
    ignore = render_dockerignore()
    assert "**/.env" in ignore and "**/pip.conf" in ignore


def test_docker_tags():
    assert docker_tag("1.0.0+build.5") == "1.0.0_build.5"
    assert docker_tag(".hidden") == "v.hidden"
    assert tag_names("1.0.0", "0123456789abcdef0123") == ["1.0.0", "0123456789ab", "latest"]
    assert tag_names("1.0.0", None) == ["1.0.0", "latest"]


def test_predict_input_files(tmp_path):
    import numpy as np

    from mldeploy.local.client import file_request

    npy = tmp_path / "x.npy"
    buf = io.BytesIO()
    np.save(buf, np.ones((2, 4), dtype=np.float32))
    npy.write_bytes(buf.getvalue())
    assert file_request(str(npy)).content_type == "application/x-npy"
    js = tmp_path / "x.json"
    js.write_text(json.dumps({"inputs": [[1, 2, 3, 4]]}))
    assert file_request(str(js)).content_type == "application/json"
    assert file_request('{"inputs": [[1, 2, 3, 4]]}').source == "inline JSON"
    js.write_text("{not json")
    with pytest.raises(MldeployError, match="neither a .npy array nor valid JSON"):
        file_request(str(js))
    with pytest.raises(MldeployError, match="file not found"):
        file_request(str(tmp_path / "missing.json"))


def test_wheelhouse_downloads_for_the_target_and_is_cached(tmp_path, monkeypatch):
    """A real `pip download` through the host's pip configuration; the second call is a cache hit."""
    monkeypatch.setenv("MLDEPLOY_CACHE_DIR", str(tmp_path))
    reqs = ["six==1.17.0"]
    first = wh.ensure_wheelhouse(reqs, platform="linux/arm64", python_version="3.11")
    assert not first.cached and len(first.lock) == 1
    assert first.lock[0].startswith("six==1.17.0 --hash=sha256:")
    second = wh.ensure_wheelhouse(reqs, platform="linux/arm64", python_version="3.11")
    assert second.cached and second.dir == first.dir and second.lock == first.lock
    with pytest.raises(BuildError, match="pip could not download wheels"):
        wh.ensure_wheelhouse(["six==0.0.0.404"], platform="linux/amd64", python_version="3.11")


def _iris_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris-sklearn", dst, ignore=shutil.ignore_patterns(".mldeploy"))
    return dst


def test_build_without_docker_daemon_is_a_clear_error(tmp_path):
    proj = _iris_copy(tmp_path)
    env = {**os.environ, "DOCKER_HOST": f"tcp://127.0.0.1:{infra.free_port()}", "NO_COLOR": "1"}
    for cmd in (["build"], ["up", "--target", "local"]):
        proc = subprocess.run([sys.executable, "-m", "mldeploy", "-f", str(proj), *cmd], capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 4, proc.stderr
        assert "no Docker daemon answers at tcp://127.0.0.1" in proc.stderr
        assert "mldeploy serve" in proc.stderr and "Traceback" not in proc.stderr


def test_predict_without_server_is_a_clear_error(tmp_path):
    proj = _iris_copy(tmp_path)
    (proj / "req.json").write_text(json.dumps({"inputs": [[1, 2, 3, 4]]}))
    proc = subprocess.run([sys.executable, "-m", "mldeploy", "-f", str(proj), "predict", "--url",
                           f"http://127.0.0.1:{infra.free_port()}", "--input", str(proj / "req.json")],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 8, proc.stderr
    assert "no answer from" in proc.stderr and "Traceback" not in proc.stderr


def test_ecr_target_creates_the_repository_and_logs_in(aws, tmp_path):
    import boto3

    from mldeploy.config import load_project
    from mldeploy.image.registry import ecr_target

    project = load_project(_iris_copy(tmp_path) / "mldeploy.yaml", None)
    target = ecr_target(project, "iris")
    assert target.repository.endswith(".amazonaws.com/iris")
    assert target.auth and target.auth["username"] == "AWS" and target.auth["password"]
    repos = boto3.client("ecr").describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in repos] == ["iris"]
    again = ecr_target(project, "iris")  # existing repository: reused, not re-created
    assert again.repository == target.repository
