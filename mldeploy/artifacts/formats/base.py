"""The interface every format module implements: load the original, describe it, run it, convert it."""

from __future__ import annotations

import contextlib
import importlib.metadata
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mldeploy.config.schema import ModelSection
from runtime.manifest import Tensor


@dataclass
class Signature:
    inputs: list[Tensor]
    outputs: list[Tensor]
    task: str = "other"
    class_labels: list[str] | None = None
    feature_names: list[str] | None = None


@dataclass
class Served:
    """A model file written into the artifact folder, and how to run it for the parity check."""

    format: str  # runtime.manifest.ServedFormat
    file: str  # relative to the artifact folder
    outputs: list[Tensor] | None = None  # when names differ from the original's
    inputs: list[Tensor] | None = None
    notes: list[str] = field(default_factory=list)


def version_of(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def pinned(*dists: str) -> list[str]:
    """``dist==installed-version`` for each installed distribution (local labels such as ``+cpu`` dropped:
    ``torch==2.13.0`` still matches ``2.13.0+cpu`` under PEP 440, and also a wheel from another index)."""
    return [f"{d}=={v.split('+', 1)[0]}" for d in dists if (v := version_of(d))]


@contextlib.contextmanager
def on_path(root: Path) -> Iterator[None]:
    """Make modules next to mldeploy.yaml importable (model classes referenced by pickles/state dicts)."""
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(root))


class Handler(ABC):
    """Load a model of one source format (on the CLI side, for conversion and parity)."""

    format: str
    native_format: str  # what the server loads when no conversion is done
    can_convert_to: tuple[str, ...] = ()

    def __init__(self, path: Path, cfg: ModelSection, root: Path) -> None:
        self.path = path
        self.cfg = cfg
        self.root = root
        self.notes: list[str] = []  # warnings for the package summary
        self.trusted_types: list[str] | None = None  # skops: the audited types, recorded in model.json

    @abstractmethod
    def load(self) -> None:
        """Load the model; raise ArtifactError for a corrupt file or a missing framework."""

    def specialized(self) -> Handler:
        """After ``load``: the handler that should package this model (e.g. an XGBoost estimator found in a
        pickle is served as ONNX or native XGBoost, not as a pickle); ``self`` by default."""
        return self

    @abstractmethod
    def signature(self) -> Signature:
        """Inputs/outputs (batch axis dynamic), task and class labels, from the model or the config."""

    def model_feature_names(self) -> list[str] | None:
        """After ``load``: the feature names the model itself records (e.g. ``feature_names_in_``), in column
        order; None when it has none (``mldeploy.artifacts.features`` picks the names model.json records)."""
        return None

    @abstractmethod
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the original model; outputs keyed like ``signature().outputs``."""

    @abstractmethod
    def write_native(self, out_dir: Path) -> Served:
        """Copy/serialize the model in its servable native form into ``out_dir``."""

    def convert(self, target: str, out_dir: Path, sig: Signature) -> Served:
        raise NotImplementedError(f"{self.format} cannot be converted to {target}")

    def run_served(self, served: Served, folder: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the written model (ONNX here; subclasses add their own served formats) for the parity check."""
        if served.format != "onnx":
            raise NotImplementedError(served.format)
        from mldeploy.artifacts.formats.onnx_fmt import OnnxRunner

        runner = OnnxRunner(folder / served.file)
        served.inputs, served.outputs = runner.tensors()
        names = [t.name for t in served.inputs]
        if set(names) != set(inputs):  # converter renamed the inputs: map by position
            inputs = dict(zip(names, inputs.values(), strict=True))
        return runner.run(inputs)

    @abstractmethod
    def framework_versions(self) -> dict[str, str]: ...

    def requirements(self, served_format: str) -> list[str]:
        """Pinned pip requirements the server needs to load ``served_format``."""
        if served_format == "onnx":
            return pinned("onnxruntime")
        return []
