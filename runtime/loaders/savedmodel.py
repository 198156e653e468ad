"""TensorFlow SavedModel folders through their ``serving_default`` signature."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import tensorflow as tf

from runtime.loaders.base import ModelLoadError
from runtime.manifest import Manifest


class SavedModel:
    def __init__(self, fn, manifest: Manifest) -> None:
        self.fn = fn
        self.output_names = [o.name for o in manifest.outputs]

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.fn(**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in out.items()}


def load(manifest: Manifest, path: Path, threads: int) -> SavedModel:
    with contextlib.suppress(RuntimeError):  # TensorFlow already initialised in this process
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    try:
        loaded = tf.saved_model.load(str(path))
        fn = loaded.signatures["serving_default"]
    except (OSError, KeyError, ValueError) as e:
        raise ModelLoadError(f"{path}: cannot load SavedModel 'serving_default': {e}") from None
    return SavedModel(fn, manifest)
