"""CUDA images (``aws.gpus > 0``), tested as data (no CUDA base image can be pulled here and there is no GPU): the
wheel selection (onnxruntime-gpu, the CUDA torch; CPU deployments still refuse CUDA wheels, a real ``pip
download`` of a small CUDA wheel both ways), the CUDA base and Python install in the Dockerfile, the runtime's
provider choice and its report in ``/ready`` and the startup log, and ``benchmarks/gpu_check.sh``'s skip line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mldeploy.errors import BuildError
from mldeploy.image import wheelhouse as wh
from mldeploy.image.dockerfile import DockerfileSpec, render_dockerfile
from tests.unit.fakes import project

ROOT = Path(__file__).resolve().parent.parent
GPU_YAML = ("name: demo\nmodel:\n  path: model.onnx\n  version: 1.0.0\n"
            "aws:\n  compute: ec2\n  instance_type: g5.xlarge\n  gpus: 1\n  cpu: 2048\n  memory: 8192\n")
CPU_YAML = "name: demo\nmodel:\n  path: model.onnx\n  version: 1.0.0\n"
CUDA_BASE = "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"


def test_gpu_requirements_take_the_cuda_builds_and_cpu_keeps_the_cpu_ones() -> None:
    reqs = [["onnxruntime==1.20.1", "torch==2.5.1+cpu", "xgboost==2.1.3", "numpy==2.1.0"]]
    assert wh.merge_requirements(reqs, "linux/amd64", gpu=True) == [
        "numpy==2.1.0", "onnxruntime-gpu==1.20.1", "torch==2.5.1", "xgboost==2.1.3"]
    assert wh.merge_requirements(reqs, "linux/amd64") == [
        "numpy==2.1.0", "onnxruntime==1.20.1", "torch==2.5.1+cpu", "xgboost-cpu==2.1.3"]


def test_the_image_base_is_the_cuda_runtime_for_gpus_unless_set() -> None:
    gpu = project(GPU_YAML).config
    assert gpu.image.base_for(gpu.aws.gpus) == CUDA_BASE
    assert project(CPU_YAML).config.image.base_for(0) == "python:3.11-slim"
    pinned = project(GPU_YAML + "image:\n  base: my/cuda-python:1\n").config
    assert pinned.image.base_for(pinned.aws.gpus) == "my/cuda-python:1"
    custom = project(GPU_YAML + "image:\n  cuda_base: nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04\n").config
    assert custom.image.base_for(1) == "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04"


def _spec(**kw: object) -> DockerfileSpec:
    return DockerfileSpec(app="cnn", env="gpu", port=8080, model_version="0.1.0", model_sha256="ab" * 32,
                          model_format="onnx", **kw)  # type: ignore[arg-type]


def test_dockerfile_on_a_cuda_base_installs_python_in_both_stages() -> None:
    text = render_dockerfile(_spec(base=CUDA_BASE, python="python3.11", cuda=True))
    assert text.count(f"\nFROM {CUDA_BASE}") == 2
    builder, runtime = text.split("\n# Stage 2", 1)
    assert "apt-get install -y --no-install-recommends python3.11 python3.11-venv" in builder
    assert "RUN python3.11 -m venv /opt/venv" in builder
    assert "apt-get install -y --no-install-recommends python3.11" in runtime  # the venv links to it
    assert "USER 10001:10001" in runtime and 'CMD ["python3", "-m", "runtime"' in runtime
    cpu = render_dockerfile(_spec(base="python:3.11-slim"))
    assert "apt-get" not in cpu and "RUN python3 -m venv /opt/venv" in cpu


def test_requirements_for_a_gpu_project(tmp_path: Path) -> None:
    from mldeploy.image.context import requirements_for
    from runtime.manifest import Manifest, Tensor

    manifest = Manifest(name="demo", version="1.0.0", format="onnx", source_format="onnx", file="model.onnx",
                        sha256="0" * 64, size_bytes=1, inputs=[Tensor(name="x")], outputs=[Tensor(name="y")],
                        requirements=["onnxruntime==1.20.1"], created_at="now")
    names = [r.split("=")[0].split("[")[0] for r in requirements_for(project(GPU_YAML), manifest)]
    assert "onnxruntime-gpu" in names and "onnxruntime" not in names
    assert "boto3" not in names  # model.store: image: the runtime never downloads from S3
    s3 = project(CPU_YAML.replace("version: 1.0.0", "version: 1.0.0\n  store: s3"))
    cpu_names = [r.split("=")[0].split("[")[0] for r in requirements_for(s3, manifest)]
    assert "onnxruntime" in cpu_names and "boto3" in cpu_names


def test_a_real_cuda_wheel_is_refused_for_cpu_and_taken_for_gpu(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``pip download`` of nvidia-nvtx-cu12 (a ~100 KB CUDA wheel) for linux/amd64, through the host's pip."""
    monkeypatch.setenv("MLDEPLOY_CACHE_DIR", str(tmp_path))
    reqs = ["nvidia-nvtx-cu12==12.4.127"]
    with pytest.raises(BuildError, match="CUDA wheels, but a CPU deployment"):
        wh.ensure_wheelhouse(reqs, platform="linux/amd64", python_version="3.11")
    gpu = wh.ensure_wheelhouse(reqs, platform="linux/amd64", python_version="3.11", gpu=True)
    assert [line.split(" ")[0] for line in gpu.lock] == ["nvidia_nvtx_cu12==12.4.127"]


def test_onnx_asks_for_cuda_first_when_onnxruntime_has_it_and_reports_what_it_got(tmp_path: Path) -> None:
    from benchmarks import models as ex
    from runtime.loaders import load_model
    from runtime.loaders import onnx as onnx_loader
    from runtime.manifest import Manifest

    cuda, cpu = "CUDAExecutionProvider", "CPUExecutionProvider"
    assert onnx_loader.providers([cuda, cpu]) == [cuda, cpu]
    assert onnx_loader.providers([cpu]) == [cpu]
    ex.iris_onnx(tmp_path / "iris")
    model = load_model(Manifest.load(tmp_path / "iris"), tmp_path / "iris", 1)
    assert model.provider == cpu  # this machine's onnxruntime has no CUDA provider


def test_torchscript_runs_on_cuda_only_when_torch_sees_a_gpu() -> None:
    torch = pytest.importorskip("torch")
    from runtime.loaders import torchscript

    assert torchscript.device() == ("cuda" if torch.cuda.is_available() else "cpu")


def test_ready_and_the_startup_log_say_where_the_model_runs(tmp_path: Path) -> None:
    from benchmarks import models as ex
    from tests.infra import http_request, runtime_server

    ex.iris_onnx(tmp_path / "iris")
    with runtime_server(tmp_path, tmp_path / "iris") as proc:
        status, _, body = http_request(proc.url + "/ready")
        logs = proc.logs()
    assert status == 200 and json.loads(body)["providers"] == {"1.0.0": "CPUExecutionProvider"}
    assert "on CPUExecutionProvider" in logs, logs


def test_gpu_check_prints_one_skip_line_without_a_gpu(tmp_path: Path) -> None:
    script = ROOT / "benchmarks" / "gpu_check.sh"
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    no_gpu = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                            env={**env, "PATH": "/usr/bin:/bin"}, check=False)
    assert no_gpu.returncode == 0 and no_gpu.stdout.splitlines() == [
        "skipped: no NVIDIA GPU visible (nvidia-smi not found or lists no GPU); the GPU check needs a GPU machine"]
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'No devices were found'\nexit 6\n")
    (fake / "nvidia-smi").chmod(0o755)
    no_device = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                               env={**env, "PATH": f"{fake}:/usr/bin:/bin"}, check=False)
    assert no_device.returncode == 0 and no_device.stdout.startswith("skipped: no NVIDIA GPU visible")
    assert len(no_device.stdout.splitlines()) == 1
