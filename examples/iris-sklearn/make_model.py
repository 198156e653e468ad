"""Train the iris classifier (100-tree RandomForest on scikit-learn's bundled data) and write
``model.pkl`` and ``sample.json`` next to this file. No downloads; takes about a second.

    python examples/iris-sklearn/make_model.py && mldeploy -f examples/iris-sklearn package
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

HERE = Path(__file__).resolve().parent


def main(out: Path = HERE) -> Path:
    iris = load_iris()
    model = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(iris.data, iris.target)
    path = out / "model.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    rows = iris.data[::5].round(2).tolist()  # 30 rows, all three classes: parity + drift baseline
    (out / "sample.json").write_text(json.dumps({"input": rows}) + "\n")
    return path


if __name__ == "__main__":
    print(f"wrote {main()}")
