"""Detect a model's format from its content (magic bytes, zip layout, ``saved_model.pb``), not its name."""

from __future__ import annotations

import zipfile
from pathlib import Path

from mldeploy.errors import ArtifactError

PICKLE_FAMILY = {"pickle", "joblib"}
# Formats that can be told apart by content; pickle and joblib share a byte stream, so one stands for the other.
_COMPATIBLE = {"pickle": {"pickle", "joblib"}, "joblib": {"pickle", "joblib"}}
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZ": "bz2", b"\xfd7zXZ": "xz", b"\x04\x22\x4d\x18": "lz4"}


def _zip_format(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise ArtifactError(f"{path} starts like a zip archive but cannot be read ({e}); the file looks corrupt "
                            "or truncated", hint="re-export the model and check the copy is complete") from e
    tops = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if "schema.json" in names:
        return "skops"
    if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
        return "keras"
    if "data.pkl" in tops and any(t.startswith("code/") for t in tops):
        return "torchscript"
    if "data.pkl" in tops:
        return "torch"
    raise ArtifactError(f"{path} is a zip archive that is not a known model format (skops, TorchScript, torch.save)")


def _is_zlib(head: bytes) -> bool:
    """RFC 1950 header: deflate method, valid check bits (joblib's default compressor)."""
    return len(head) > 1 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and (head[0] * 256 + head[1]) % 31 == 0


def _looks_like_onnx(head: bytes) -> bool:
    # ModelProto starts with field 1 (ir_version, varint: tag 0x08) in every exporter we know of.
    return len(head) > 2 and head[0] == 0x08 and 0 < head[1] < 32


def detect_format(path: Path) -> str:
    """Return one of pickle, joblib, skops, onnx, torchscript, torch, savedmodel (or ``keras`` to reject).

    Raises ArtifactError for a missing, empty or unrecognised file.
    """
    if not path.exists():
        raise ArtifactError(f"model file not found: {path}", hint="check model.path in mldeploy.yaml")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ArtifactError(f"{path} is a folder without saved_model.pb; only TensorFlow SavedModel folders are "
                            "accepted as a model directory", hint="point model.path at the model file")
    with path.open("rb") as fh:
        head = fh.read(4096)
    if not head:
        raise ArtifactError(f"{path} is empty (0 bytes)", hint="re-export the model")
    if head.startswith(b"PK\x03\x04"):
        return _zip_format(path)
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:  # pickle PROTO opcode
        return "joblib" if b"joblib.numpy_pickle" in head or path.suffix == ".joblib" else "pickle"
    if _is_zlib(head) or head.startswith(b"ZF") or any(head.startswith(m) for m in _COMPRESSED):
        return "joblib"  # joblib.dump(..., compress=N)
    if _looks_like_onnx(head):
        return "onnx"
    if head[:1] in (b"(", b"]", b"}", b"c"):  # protocol 0/1 pickles have no PROTO opcode
        return "pickle"
    raise ArtifactError(
        f"cannot tell the format of {path}: it is not pickle/joblib, skops, ONNX, TorchScript, torch.save or a "
        "SavedModel folder", hint="set model.format in mldeploy.yaml if the file is valid")


def resolve_format(path: Path, configured: str) -> str:
    """The detected format, checked against ``model.format`` when that is not ``auto``."""
    detected = detect_format(path)
    if detected == "keras":
        raise ArtifactError(f"{path} is a Keras v3 .keras archive; serve it as a SavedModel",
                            hint="in Python: model.export('saved_model'), then set model.path: saved_model")
    if configured in ("auto", detected) or detected in _COMPATIBLE.get(configured, ()):
        return detected if configured == "auto" else configured
    if configured == "torch" and detected == "torchscript":
        return "torchscript"  # a scripted module is a torch model too; serve it as such
    raise ArtifactError(f"model.format is {configured!r} but {path.name} looks like a {detected} file",
                        hint=f"set model.format: {detected} (or auto) in mldeploy.yaml, or point model.path at "
                        f"the {configured} file")


def missing_framework(fmt: str, module: str, extra: str) -> ArtifactError:
    """The error for a known format whose framework is not installed."""
    return ArtifactError(f"this is a {fmt} model but {module} is not installed",
                         hint=f"pip install 'mldeploy[{extra}]'")


# --------------------------------------------------------------------------- guesses by name (``init``, CI)

MODEL_SUFFIXES = {
    ".pkl": "pickle", ".pickle": "pickle", ".joblib": "joblib", ".skops": "skops", ".onnx": "onnx",
    ".pt": "torchscript", ".pth": "torch", ".torchscript": "torchscript", ".keras": "savedmodel",
}


def guess_format(path: Path) -> str:
    """A cheap guess by name for ``init`` (``package`` detects for real by content)."""
    if path.is_dir():
        return "savedmodel" if (path / "saved_model.pb").exists() else "auto"
    return MODEL_SUFFIXES.get(path.suffix.lower(), "auto")


def find_model_files(folder: Path) -> list[Path]:
    """Model files and SavedModel folders in ``folder`` (one level deep, then ``models/``/``model/``)."""
    found: list[Path] = []
    for base in (folder, folder / "model", folder / "models"):
        if not base.is_dir():
            continue
        for p in sorted(base.iterdir()):
            if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES or p.is_dir() and (p / "saved_model.pb").exists():
                found.append(p)
    return found
