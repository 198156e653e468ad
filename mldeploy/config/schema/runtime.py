"""``runtime:``: the model server's settings, declared once in ``runtime.contract``."""

from __future__ import annotations

from pydantic import ConfigDict

# The serving contract is declared once, in the runtime (which reads runtime.json and cannot import this package).
from runtime.contract.serving import ServingConfig


class RuntimeSection(ServingConfig):
    """Settings of the model server, written to runtime.json in the image (declared in runtime.contract)."""

    model_config = ConfigDict(validate_default=True)
