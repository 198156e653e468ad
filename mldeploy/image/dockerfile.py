"""Render the Dockerfile and .dockerignore of the build context from ``templates/``."""

from __future__ import annotations

from dataclasses import dataclass, field

from mldeploy.templating import render

APP_UID = 10001

# Paths under site-packages that serving never imports: model tooling, C++ headers and test binaries.
# (torch/include + torch/test + torch/bin's test tools are ~190 MB of the CPU wheel; onnxruntime's tooling ~9 MB.)
# onnxruntime/capi/libonnxruntime.so.* (~35 MB) is the C API library for native embedders: the Python binding
# (onnxruntime_pybind11_state) links the runtime statically and does not load it.
PRUNE = [
    "onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/tools",
    "onnxruntime/capi/libonnxruntime.so.*",
    "torch/include", "torch/test", "torch/share/cmake", "torch/bin/*Test", "torch/bin/test_*", "torch/bin/protoc*",
]


# Installed as dependencies but never imported when the server runs an ONNX model (protobuf is only used by
# onnxruntime's tooling); uninstalled in the builder stage so they never reach the image.
UNUSED_FOR_ONNX = ["protobuf"]
# tokenizers depends on huggingface-hub (downloads) and its chain; the runtime only loads tokenizer.json from disk
UNUSED_FOR_TEXT = ["huggingface-hub", "hf-xet", "fsspec", "filelock", "httpx2", "httpcore2", "tqdm", "pyyaml",
                   "protobuf"]


@dataclass(frozen=True)
class DockerfileSpec:
    """Everything the Dockerfile template needs (no secrets: it is visible in the image history)."""

    app: str
    env: str
    base: str
    port: int
    model_version: str
    model_sha256: str
    model_format: str
    git_commit: str = "unknown"
    uninstall: list[str] = field(default_factory=lambda: ["pip", "setuptools"])
    system_packages: list[str] = field(default_factory=list)
    uid: int = APP_UID
    prune: list[str] = field(default_factory=lambda: list(PRUNE))
    code: bool = False
    """``model.code_paths``: the context's ``code/`` goes to /app/code, on PYTHONPATH."""
    python: str = "python3"
    """The interpreter that makes the venv: ``python3`` of a Python base image, ``python3.X`` installed from the
    distribution on a CUDA base (``cuda``)."""
    cuda: bool = False
    """``aws.gpus > 0``: a CUDA runtime base (``image.cuda_base``) without Python; the runtime stage installs the
    interpreter (the venv links to it) and NVIDIA's container runtime mounts the driver."""


def render_dockerfile(spec: DockerfileSpec) -> str:
    from mldeploy import __version__

    return render("Dockerfile.j2", mldeploy_version=__version__, **spec.__dict__)


def render_dockerignore() -> str:
    return render("dockerignore.j2")
