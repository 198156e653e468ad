"""The reference article's serving pattern, reproduced for the benchmark (do not use in production):
pydantic nested-list JSON → ``np.array`` → ``run_in_executor(None, ...)``, one request per inference.

Models: NAIVE_IRIS_JOBLIB (the scikit-learn random forest itself, as the article serves it) and NAIVE_CNN_TS (the
same TorchScript file the runtime loads).
"""

from __future__ import annotations

import asyncio
import os

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()
_models: dict = {}


class TabularRequest(BaseModel):
    data: list[list[float]]


class ImageRequest(BaseModel):
    image_data: list[list[list[float]]]  # [height, width, channels], as in the article
    top_k: int = 5


def _iris():
    if "iris" not in _models:
        import joblib

        _models["iris"] = joblib.load(os.environ["NAIVE_IRIS_JOBLIB"])
    return _models["iris"]


def _cnn():
    if "cnn" not in _models:
        import torch

        _models["cnn"] = torch.jit.load(os.environ["NAIVE_CNN_TS"]).eval()
    return _models["cnn"]


@app.post("/predict")
async def predict(request: TabularRequest) -> dict:
    x = np.array(request.data, dtype=np.float32)
    loop = asyncio.get_event_loop()
    proba = await loop.run_in_executor(None, _iris().predict_proba, x)
    return {"predictions": proba.argmax(1).tolist(), "probabilities": proba.tolist()}


@app.post("/predict/image")
async def predict_image(request: ImageRequest) -> dict:
    import torch

    arr = np.array(request.image_data, dtype=np.float32)
    t = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    t = (t - mean) / std

    def run():
        with torch.no_grad():
            return torch.softmax(_cnn()(t), dim=1).numpy()

    proba = await asyncio.get_event_loop().run_in_executor(None, run)
    top = np.argsort(proba[0])[::-1][: request.top_k]
    return {"predictions": [{"class_id": int(i), "confidence": float(proba[0][i])} for i in top]}
