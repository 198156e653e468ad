"""Train a scikit-learn pipeline on the bundled iris data (no downloads) and write it as an **MLflow model
folder** ``model/`` next to this file: ``MLmodel`` (flavors + signature) and the model file it names.

With mlflow installed (``pip install mlflow-skinny``) the folder comes from ``mlflow.sklearn.save_model``; without
it, the same layout is written by hand in MLflow's documented format (``MLmodel`` YAML, ``sklearn`` flavor with
``pickled_model``, a column signature). mldeploy reads either without importing mlflow.

    python examples/mlflow-sklearn/make_model.py && mldeploy -f examples/mlflow-sklearn package
"""

from __future__ import annotations

import json
import pickle
import platform
import shutil
from pathlib import Path

import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent


def _by_hand(model: object, folder: Path, columns: list[str]) -> None:
    """The folder ``mlflow.sklearn.save_model(model, folder, signature=…, serialization_format="pickle")``
    writes (MLmodel format: https://mlflow.org/docs/latest/models.html#storage-format)."""
    import yaml

    folder.mkdir(parents=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(model, protocol=5))
    inputs = [{"type": "double", "name": c, "required": True} for c in columns]
    mlmodel = {
        "flavors": {
            "python_function": {"env": {"virtualenv": "python_env.yaml"}, "loader_module": "mlflow.sklearn",
                                "model_path": "model.pkl", "predict_fn": "predict",
                                "python_version": platform.python_version()},
            "sklearn": {"code": None, "pickled_model": "model.pkl", "serialization_format": "pickle",
                        "sklearn_version": sklearn.__version__},
        },
        "signature": {"inputs": json.dumps(inputs),
                      "outputs": json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]),
                      "params": None},
    }
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False))
    (folder / "requirements.txt").write_text(f"scikit-learn=={sklearn.__version__}\n")


def main(out: Path = HERE, use_mlflow: bool = True) -> Path:
    iris = load_iris(as_frame=True)
    x, y = iris.data, iris.target
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    folder = out / "model"
    shutil.rmtree(folder, ignore_errors=True)
    try:
        if not use_mlflow:
            raise ImportError("mlflow not wanted")
        import mlflow.sklearn
        from mlflow.models import infer_signature
    except ImportError:
        _by_hand(model, folder, list(x.columns))
    else:
        mlflow.sklearn.save_model(model, str(folder), signature=infer_signature(x, model.predict(x)))
    rows = x.values[::5].round(2).tolist()
    (out / "sample.json").write_text(json.dumps({"input": rows}) + "\n")
    return folder


if __name__ == "__main__":
    print(f"wrote {main()}")
