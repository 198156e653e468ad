"""``image:``: the base image, Python version, platform and the packages baked in."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from mldeploy.config.schema.common import Strict


class ImageSection(Strict):
    base: str = "python:3.11-slim"
    python_version: str = "3.11"
    platform: Literal["linux/amd64", "linux/arm64"] = "linux/amd64"
    pip_packages: list[str] = Field(default_factory=list)
    system_packages: list[str] = Field(default_factory=list)
    wheelhouse: str | None = Field(default=None, description="A folder of wheels to install from (offline).")
    cuda_base: str = Field(
        default="nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04", description="The base image when aws.gpus > 0 and "
        "image.base is not set: a CUDA runtime image (CUDA 12 + cuDNN 9, what onnxruntime-gpu and the CUDA torch "
        "wheels load); Python is installed on it from the distribution (python3-venv).")

    def base_for(self, gpus: int) -> str:
        """The base image: ``base`` when set (or for CPU), else ``cuda_base`` for a GPU deployment."""
        return self.cuda_base if gpus > 0 and "base" not in self.model_fields_set else self.base

    @field_validator("python_version")
    @classmethod
    def _py(cls, v: str) -> str:
        if not re.fullmatch(r"3\.(9|1[0-9])", str(v)):
            raise ValueError(f"{v!r} is not a supported Python version (3.9 … 3.19)")
        return str(v)
