"""Train gradient-boosted tree classifiers on scikit-learn's bundled wine data (no downloads, a few seconds) and
write them next to this file:

- ``model.pkl``: a pickled ``xgboost.XGBClassifier`` (what most people have) — ``mldeploy.yaml`` serves it;
- ``xgb_model.ubj``: the same booster in XGBoost's native format (``save_model``);
- ``lgbm_model.txt``: a ``lightgbm.LGBMClassifier`` as a LightGBM text model;
- ``catboost_model.cbm``: a ``catboost.CatBoostClassifier`` (only when catboost is installed);
- ``sample.json``: 36 rows for the parity check, the drift baseline and ``mldeploy predict``.

    pip install 'mldeploy[boost]'
    python examples/boosted-trees/make_model.py && mldeploy -f examples/boosted-trees package
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine

HERE = Path(__file__).resolve().parent


def main(out: Path = HERE, catboost: bool = True) -> Path:
    import lightgbm as lgb
    import xgboost as xgb

    wine = load_wine()
    x, y = wine.data.astype(np.float32), wine.target
    model = xgb.XGBClassifier(n_estimators=40, max_depth=3, learning_rate=0.3, random_state=0, n_jobs=1).fit(x, y)
    path = out / "model.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    model.save_model(str(out / "xgb_model.ubj"))
    lgbm = lgb.LGBMClassifier(n_estimators=40, num_leaves=8, random_state=0, n_jobs=1, verbose=-1).fit(x, y)
    lgbm.booster_.save_model(str(out / "lgbm_model.txt"))
    if catboost:
        try:
            import catboost as cb
        except ImportError:
            pass
        else:
            cb.CatBoostClassifier(iterations=40, depth=4, random_seed=0, verbose=0, thread_count=1,
                                  allow_writing_files=False).fit(x, y).save_model(str(out / "catboost_model.cbm"))
    (out / "sample.json").write_text(json.dumps({"input": x[::5].round(3).tolist()}) + "\n")
    return path


if __name__ == "__main__":
    print(f"wrote {main()}")
