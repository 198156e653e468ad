"""Train a loan-approval classifier on a synthetic mixed-type DataFrame (numbers and a string column) and write
``model.pkl`` and ``sample.json`` next to this file. No downloads; takes about a second.

The pipeline is the usual tabular one: a ``ColumnTransformer`` that picks columns by name (scaling the numbers,
one-hot encoding the city) in front of a classifier, fitted on a pandas DataFrame. It cannot run on a numpy array,
so mldeploy converts it to ONNX with one input per column (or, with ``convert: none``, serves the pickle with pandas
and passes it a DataFrame built from the request's records).

    python examples/tabular-mixed/make_model.py && mldeploy -f examples/tabular-mixed package
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HERE = Path(__file__).resolve().parent
NUMERIC, CATEGORICAL = ["age", "income"], ["city"]
CITIES = ["Lyon", "Paris", "Nice", "Lille", "Nantes"]


def data(rows: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Applicants (age, yearly income, city) and whether the loan was approved."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"age": rng.integers(18, 75, rows), "income": rng.normal(42_000, 14_000, rows).round(-2),
                      "city": rng.choice(CITIES, rows)})
    score = (x["income"] - 40_000) / 10_000 + (x["age"] - 40) / 25 + x["city"].map(
        {"Paris": 0.8, "Lyon": 0.3, "Nice": 0.0, "Lille": -0.3, "Nantes": -0.5})
    return x, (score + rng.normal(0, 0.5, rows) > 0).to_numpy().astype(int)


def pipeline() -> Pipeline:
    columns = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),  # a new city: all zeros, no error
    ])
    return Pipeline([("columns", columns), ("classifier", LogisticRegression(max_iter=1000))])


def main(out: Path = HERE) -> Path:
    x, y = data()
    model = pipeline().fit(x, y)
    path = out / "model.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    records = x.iloc[::20].astype({"age": int}).to_dict(orient="records")  # 30 mixed-type records
    (out / "sample.json").write_text(json.dumps({"inputs": records}) + "\n")
    return path


if __name__ == "__main__":
    print(f"wrote {main()}")
