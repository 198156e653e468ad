"""Build a tiny Keras classifier (wine recognition, scikit-learn's bundled data; a few epochs) and export it
as a TensorFlow SavedModel to ``saved_model/``, plus ``sample.json``. No downloads; a few seconds after TF
has imported.

    python examples/keras-tf/make_model.py && mldeploy -f examples/keras-tf package
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent


def main(out: Path = HERE, epochs: int = 30) -> Path:
    import keras
    import numpy as np
    from sklearn.datasets import load_wine

    keras.utils.set_random_seed(0)
    data = load_wine()
    x = data.data.astype("float32")
    mean, std = x.mean(axis=0), x.std(axis=0)
    model = keras.Sequential([
        keras.Input((x.shape[1],), name="features"),
        keras.layers.Normalization(mean=mean, variance=std**2),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["acc"])
    hist = model.fit(x, data.target, epochs=epochs, batch_size=32, verbose=0)
    path = out / "saved_model"
    model.export(str(path), verbose=False)
    (out / "sample.json").write_text(json.dumps({"features": np.round(data.data[::6], 3).tolist()}) + "\n")
    print(f"training accuracy {hist.history['acc'][-1]:.0%}")
    return path


if __name__ == "__main__":
    print(f"wrote {main()}")
