"""Detect a model's format from its content (magic bytes, zip layout, ``saved_model.pb``), not its name."""

from __future__ import annotations

import json
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


def _boosted_format(head: bytes) -> str | None:
    """XGBoost JSON/UBJ (``{"learner":`` / UBJSON ``{L…learner``), LightGBM text (``tree\nversion=``), CatBoost."""
    if head.startswith(b"CBM1"):
        return "catboost"
    if head.startswith(b"tree\nversion=") or head.startswith(b"tree\r\nversion="):
        return "lightgbm"
    if head[:1] == b"{" and (head[1:40].lstrip().startswith(b'"learner"') or b"learner" in head[1:24]):
        return "xgboost"
    return None


_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def transformers_config(path: Path) -> dict | None:
    """The ``config.json`` of a Hugging Face ``save_pretrained`` folder (a ``model_type`` and weights), else None."""
    if not path.is_dir() or not (path / "config.json").is_file() or not any((path / w).is_file()
                                                                           for w in _HF_WEIGHTS):
        return None
    try:
        doc = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("model_type"), str) else None


def detect_format(path: Path) -> str:
    """Return one of pickle, joblib, skops, onnx, torchscript, torch, savedmodel, xgboost, lightgbm, catboost,
    mlflow, transformers (or ``keras`` to reject).

    Raises ArtifactError for a missing, empty or unrecognised file.
    """
    if not path.exists():
        raise ArtifactError(f"model file not found: {path}", hint="check model.path in mldeploy.yaml")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        if (path / "MLmodel").is_file():
            return "mlflow"
        if transformers_config(path) is not None:
            return "transformers"
        raise ArtifactError(f"{path} is a folder without saved_model.pb, MLmodel or a transformers config.json with "
                            "weights; only TensorFlow SavedModel, MLflow and Hugging Face save_pretrained folders are "
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
    if boosted := _boosted_format(head):
        return boosted
    if head[:1] in (b"(", b"]", b"}", b"c"):  # protocol 0/1 pickles have no PROTO opcode
        return "pickle"
    raise ArtifactError(
        f"cannot tell the format of {path}: it is not pickle/joblib, skops, ONNX, TorchScript, torch.save, an "
        "XGBoost/LightGBM/CatBoost model file, a SavedModel or an MLflow model folder",
        hint="re-export the model in one of these formats")


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
    ".ubj": "xgboost", ".xgb": "xgboost", ".cbm": "catboost",
}
_SNIFFED_SUFFIXES = (".json", ".txt", ".model", ".bin")  # native boosted-tree files, told apart by content
# "transformers" is not a model.format value: ``init`` writes ``auto`` for a save_pretrained folder (detected by
# content) and describe_model says what it is
_GUESSABLE = {"pickle", "joblib", "skops", "onnx", "torchscript", "torch", "savedmodel", "xgboost", "lightgbm",
              "catboost", "mlflow"}


def guess_format(path: Path) -> str:
    """A cheap guess for ``init``: the first bytes (or the folder layout), else the name (``package`` detects
    for real)."""
    try:
        fmt = detect_format(path)
    except ArtifactError:
        fmt = "auto"
    if fmt in _GUESSABLE:
        return fmt
    if path.is_dir():
        return "auto"
    return MODEL_SUFFIXES.get(path.suffix.lower(), "auto")


_BOOSTED_MODULES = {"xgboost": "XGBoost", "lightgbm": "LightGBM", "catboost": "CatBoost"}


def describe_model(path: Path, fmt: str) -> str | None:
    """A short note for ``init`` about how the model will be served, without loading it (None: nothing to add)."""
    if fmt in ("pickle", "joblib") and path.is_file():
        from mldeploy.artifacts.formats.sklearn_family import pickle_modules

        roots = sorted({m.split(".", 1)[0] for m in pickle_modules(path) or ()})
        lib = next((_BOOSTED_MODULES[m] for m in roots if m in _BOOSTED_MODULES), None)
        if lib:
            return f"a {lib} model in a {fmt} file: served as ONNX if it converts with parity, else in {lib}'s " \
                   "native format (not pickle)"
    if fmt in _BOOSTED_MODULES:
        return f"a native {_BOOSTED_MODULES[fmt]} model: served as ONNX if it converts with parity, else as is"
    if fmt in ("auto", "transformers") and (hf := transformers_config(path)) is not None:
        from mldeploy.artifacts.formats.transformers_fmt import describe

        return describe(hf)
    if fmt == "mlflow":
        from mldeploy.artifacts.formats.mlflow_fmt import read_mlmodel

        try:
            flavor = read_mlmodel(path).flavor
        except ArtifactError as e:
            return f"an MLflow model folder ({e.message})"
        return f"an MLflow model folder, flavor {flavor}"
    return None


def _is_model_candidate(p: Path) -> bool:
    if p.is_dir():
        return (p / "saved_model.pb").exists() or (p / "MLmodel").exists() or transformers_config(p) is not None
    suffix = p.suffix.lower()
    return suffix in MODEL_SUFFIXES or suffix in _SNIFFED_SUFFIXES and guess_format(p) in _BOOSTED_MODULES


def find_model_files(folder: Path) -> list[Path]:
    """Model files, SavedModel, MLflow and transformers folders in ``folder`` (one level deep, then
    ``models/``/``model/``)."""
    found: list[Path] = []
    for base in (folder, folder / "model", folder / "models"):
        if not base.is_dir():
            continue
        for p in sorted(base.iterdir()):
            if _is_model_candidate(p):
                found.append(p)
    return found
