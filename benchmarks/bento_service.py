"""BentoML peer for the benchmark: the same ONNX iris model behind ``@bentoml.api(batchable=True)``.

Runs in its own virtualenv (benchmarks/.venv-bentoml); model path from BENTO_IRIS_ONNX, workers from BENTO_WORKERS.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np


@bentoml.service(workers=int(os.environ.get("BENTO_WORKERS", "2")), traffic={"timeout": 60})
class IrisService:
    def __init__(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(os.environ["BENTO_IRIS_ONNX"], sess_options=opts,
                                            providers=["CPUExecutionProvider"])

    # generous max latency so the adaptive batcher never sheds load
    @bentoml.api(batchable=True, max_batch_size=32,
                 max_latency_ms=int(os.environ.get("BENTO_MAX_LATENCY_MS", "10000")))
    def predict(self, input: np.ndarray) -> np.ndarray:
        _, proba = self.session.run(None, {"input": input.astype(np.float32)})
        return proba
