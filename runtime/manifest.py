"""``model.json``: the manifest written by ``mldeploy package`` and read by the server.

This module is the contract between the CLI (which writes it) and the runtime (which reads it); it uses
pydantic only, so it can live inside the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FILE = "model.json"
SCHEMA_VERSION = 1

ServedFormat = Literal["onnx", "torchscript", "pickle", "joblib", "skops", "savedmodel", "xgboost", "lightgbm",
                       "catboost", "transformers-onnx"]  # transformers-onnx: a folder, ONNX + tokenizer (runtime.text)
OutputRole = Literal["label", "probabilities", "logits", "prediction", "other"]


class Tensor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    dtype: str = "float32"  # numpy dtype name
    shape: list[int | None] = Field(default_factory=lambda: [None])  # None = dynamic (batch axis first)
    role: OutputRole | None = None  # outputs only: how the server presents it
    # inputs only: JSON null is accepted (NaN in a float column, a missing value in a string column), because
    # `mldeploy package` found an imputer or a NaN-native estimator for it and ran the model on a missing value
    allow_missing: bool = False
    # string inputs only: the categories a `category` DataFrame column was trained on; any other value is a 422
    categories: list[str] | None = None


class ImageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = 224
    height: int = 224
    channels: int = 3
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    scale: float = 1 / 255.0
    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225])


class Baseline(BaseModel):
    """Per-feature statistics of the sample input, for drift checks at serving time."""

    model_config = ConfigDict(extra="forbid")

    mean: list[float]
    std: list[float]
    count: int


class ParityReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: int
    max_abs_error: float
    max_rel_error: float
    argmax_agreement: float | None = None  # classifiers only
    passed: bool
    single_row_ms: float | None = None  # served model, one row, one thread (median); feeds `mldeploy cost`


# Names that construct or call code from data, or touch files, processes or the network. No skops file may use them,
# whoever lists them (mldeploy's safe set, model.trusted_types, a model.json): a backstop, not the allow-list.
_NEVER_TRUSTED_MODULES = (
    "os", "posix", "nt", "subprocess", "sys", "importlib", "runpy", "pickle", "_pickle", "copyreg", "marshal",
    "shelve", "dill", "cloudpickle", "joblib", "shutil", "tempfile", "pathlib", "io", "_io", "ctypes", "socket",
    "ssl", "http", "urllib", "webbrowser", "code", "codeop", "pty", "multiprocessing", "threading", "_thread",
    "asyncio", "signal", "inspect", "types", "gc", "ast", "pdb", "bdb", "timeit", "trace", "cProfile", "profile",
)
_NEVER_TRUSTED = frozenset({
    "builtins.exec", "builtins.eval", "builtins.compile", "builtins.__import__", "builtins.getattr",
    "builtins.setattr", "builtins.delattr", "builtins.open", "builtins.input", "builtins.breakpoint",
    "builtins.globals", "builtins.locals", "builtins.vars", "builtins.exit", "builtins.quit", "builtins.help",
    "builtins.type", "builtins.object", "builtins.memoryview", "builtins.print", "operator.attrgetter",
    "operator.methodcaller", "_operator.attrgetter", "_operator.methodcaller", "functools.partial",
    "functools.reduce", "_functools.partial", "_functools.reduce", "collections.namedtuple",
    "numpy.load", "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt", "numpy.loadtxt",
    "numpy.genfromtxt", "numpy.fromfile", "numpy.memmap", "numpy.fromregex",
})


def never_trusted(type_name: str) -> bool:
    """True for a type or function that no skops file may construct or call, e.g. ``builtins.exec``."""
    root, *rest = type_name.split(".")
    return (type_name in _NEVER_TRUSTED or root in _NEVER_TRUSTED_MODULES
            or any(part.startswith("__") for part in rest))  # __import__, __reduce__, __globals__, …


class Manifest(BaseModel):
    """Everything the server needs to load, verify, describe and serve one model version."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: int = SCHEMA_VERSION
    name: str
    version: str
    format: ServedFormat  # what the server loads
    source_format: str  # what the user gave us
    source_sha256: str | None = None  # of the user's original model file/folder (provenance, package cache)
    file: str  # model file or folder, relative to the manifest's folder
    sha256: str  # of the file (of a folder: of its sorted file list + contents)
    size_bytes: int
    task: Literal["classification", "regression", "image-classification", "feature-extraction", "other"] = "other"
    inputs: list[Tensor]
    outputs: list[Tensor]
    class_labels: list[str] | None = None
    feature_names: list[str] | None = None
    feature_names_source: Literal["config", "model", "sample"] | None = None  # where feature_names came from
    # scikit-learn models fitted on a pandas DataFrame that select columns by name or have string columns: one
    # input per column (float64 or string), and the server passes them as a DataFrame (runtime.loaders.sklearn)
    dataframe: bool = False
    image: ImageSpec | None = None
    sample_input: dict[str, Any] | None = None  # {input name: nested list}, a few rows for docs/predict/warm-up
    baseline: Baseline | None = None
    parity: ParityReport | None = None
    framework_versions: dict[str, str] = Field(default_factory=dict)
    requirements: list[str] = Field(default_factory=list)  # pip requirements the server needs for this model
    # skops only: the exact types beyond skops' defaults that `mldeploy package` vetted in this file; the server
    # loads with exactly these and refuses a file holding any other (None, as in older artifacts: skops' defaults)
    trusted_types: list[str] | None = None
    created_at: str
    git_commit: str | None = None

    @classmethod
    def load(cls, folder: str | Path) -> Manifest:
        path = Path(folder) / MANIFEST_FILE
        return cls.model_validate_json(path.read_bytes())

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=2, exclude_none=False), encoding="utf-8")
        return path
