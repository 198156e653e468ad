"""Train a multi-layer perceptron on scikit-learn's bundled 8×8 digits (no downloads, a few seconds) and write
``model.pkl`` and ``sample.json`` next to this file. ``mldeploy.yaml`` sets ``model.quantize: int8``: the ONNX
model's weights are quantized to int8 and kept only if the quantized model passes the parity gate.

    python examples/int8-mlp/make_model.py && mldeploy -f examples/int8-mlp package
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent


def main(out: Path = HERE) -> Path:
    digits = load_digits()
    x = digits.data / 16.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a fixed, short training budget
        model = MLPClassifier(hidden_layer_sizes=(512, 256), max_iter=60, random_state=0).fit(x, digits.target)
    path = out / "model.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    (out / "sample.json").write_text(json.dumps({"input": x[::7][:200].round(4).tolist()}) + "\n")
    return path


if __name__ == "__main__":
    print(f"wrote {main()}")
