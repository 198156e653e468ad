"""``model:``: the artifact, its format and conversion, tensors, image decoding and parity gates."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from mldeploy.config.schema.common import Strict
from runtime.manifest import never_trusted


class ModelFormat(StrEnum):
    auto = "auto"
    pickle = "pickle"
    joblib = "joblib"
    skops = "skops"
    onnx = "onnx"
    torchscript = "torchscript"
    savedmodel = "savedmodel"
    torch = "torch"
    xgboost = "xgboost"  # native XGBoost JSON/UBJ (Booster.save_model)
    lightgbm = "lightgbm"  # LightGBM text model (Booster.save_model)
    catboost = "catboost"  # CatBoost .cbm
    mlflow = "mlflow"  # an MLflow model folder (MLmodel file)
    transformers = "transformers"  # a Hugging Face save_pretrained folder (config.json + weights + tokenizer)


class ConvertTarget(StrEnum):
    auto = "auto"  # ONNX where conversion succeeds and passes parity, else serve natively
    onnx = "onnx"  # ONNX or fail
    torchscript = "torchscript"
    none = "none"  # serve the original format


class TensorSpec(Strict):
    """One named input or output tensor; ``-1``/``null`` in ``shape`` marks a dynamic axis."""

    name: str
    dtype: Literal["float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool", "string"] = "float32"
    shape: list[int | None] = Field(default_factory=lambda: [None])
    # inputs only; when set it wins over what `package` detects (mldeploy.artifacts.missing)
    allow_missing: bool = Field(default=False, description="Inputs only: JSON null (NaN) is accepted. When set, it "
                                "wins over detection; true is checked at package by running the model on one.")


class ImageInput(Strict):
    """Decoding of uploaded JPEG/PNG images for image models."""

    width: Annotated[int, Field(gt=0, le=8192)] = 224
    height: Annotated[int, Field(gt=0, le=8192)] = 224
    channels: Literal[1, 3] = 3
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    scale: float = 1 / 255.0
    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225])


class Parity(Strict):
    """Tolerances for the original-vs-converted output comparison."""

    atol: Annotated[float, Field(ge=0)] = 1e-4
    rtol: Annotated[float, Field(ge=0)] = 1e-3
    min_argmax_agreement: Annotated[float, Field(ge=0, le=1)] = 0.99
    samples: Annotated[int, Field(gt=0, le=10000)] = 64


def _int8_parity() -> Parity:
    # int8 weights move outputs by ~1e-2: the gate is on agreement, with a loose numeric bound
    return Parity(atol=0.05, rtol=0.05, min_argmax_agreement=0.98)


class ModelSection(Strict):
    path: str
    format: ModelFormat = ModelFormat.auto
    convert: ConvertTarget = ConvertTarget.auto
    version: str = "0.1.0"
    task: Literal["auto", "classification", "regression", "image-classification", "other"] = "auto"
    class_labels: list[str] | None = None
    feature_names: list[str] | None = None
    inputs: list[TensorSpec] | None = None
    outputs: list[TensorSpec] | None = None
    sample_input: str | None = Field(default=None, description="A .json or .npy file with example inputs.")
    image: ImageInput | None = None
    torch_class: str | None = Field(
        default=None, description="'module:Class' for a PyTorch state dict (format: torch)."
    )
    torch_class_kwargs: dict[str, Any] = Field(default_factory=dict)
    parity: Parity = Field(default_factory=Parity)
    quantize: Literal["none", "int8"] = Field(
        default="none", description="int8: onnxruntime dynamic quantization of the served ONNX model (weights int8), "
        "kept only if it passes model.quantize_parity against the original model.")
    quantize_parity: Parity = Field(
        default_factory=_int8_parity, description="The gate for model.quantize: max abs/rel error and argmax "
        "agreement of the quantized model against the original (defaults: atol 0.05, rtol 0.05, agreement 0.98).")
    store: Literal["image", "s3"] = Field(
        default="image", description="Where the served model lives: 'image' (baked into the container image) or "
        "'s3' (uploaded by `up` to the account's mldeploy bucket and downloaded by each task at start into its "
        "ephemeral storage, every file's sha256 verified before the task reports ready; the image holds only the "
        "runtime).")
    trusted_types: list[str] = Field(
        default_factory=list,
        description="skops only: fully qualified types or functions (as `skops.io.get_untrusted_types` names them, "
        "e.g. 'mypkg.features.Scaler') that the model file may construct beyond scikit-learn, NumPy and SciPy "
        "estimators and containers. Each one runs with the file's data at `mldeploy package` and at server start: "
        "list only code you have read.",
    )
    code_paths: list[str] = Field(
        default_factory=list,
        description="Your own Python modules (`features.py`) or package folders (`src/mypkg`), relative to "
        "mldeploy.yaml, that define classes a pickle/joblib model needs: importable at `mldeploy package`, copied "
        "into the image (/app/code, on the server's sys.path) and on `mldeploy serve`'s sys.path.",
    )

    @field_validator("code_paths")
    @classmethod
    def _code_paths(cls, v: list[str]) -> list[str]:
        for entry in v:
            p = PurePosixPath(entry.replace("\\", "/").rstrip("/"))
            module = p.name[:-3] if p.name.endswith(".py") else p.name
            if p.is_absolute() or ".." in p.parts or not module.isidentifier():
                raise ValueError(f"{entry!r} must be a relative path to a module file (name.py) or a package "
                                 "folder whose name is a Python identifier, inside the project folder")
        return v

    @field_validator("trusted_types")
    @classmethod
    def _trusted_types(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", name):
                raise ValueError(f"{name!r} is not a fully qualified name like 'package.module.Class'")
            if never_trusted(name):
                raise ValueError(f"{name!r} can run arbitrary code or reach files, processes or the network; "
                                 "mldeploy never trusts it")
        return sorted(set(v))

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not re.fullmatch(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?", v):
            raise ValueError(f"{v!r} is not a semantic version like 1.2.3")
        return v

    @field_validator("torch_class")
    @classmethod
    def _torch_class(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", v):
            raise ValueError(f"{v!r} must look like 'package.module:ClassName'")
        return v
