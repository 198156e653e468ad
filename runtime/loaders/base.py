"""The interface every loader returns: a thread-safe batch ``predict`` on named numpy arrays."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class ModelLoadError(Exception):
    """The model could not be loaded; the message names the file and the cause."""


class LoadedModel(Protocol):
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch (axis 0) and return every output by its manifest name."""
        ...
