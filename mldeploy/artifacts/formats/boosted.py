"""Gradient-boosted trees: XGBoost, LightGBM, CatBoost — native files, or their sklearn estimators in a pickle.

Converted to ONNX (onnxmltools for XGBoost/LightGBM, CatBoost's own exporter) when that passes parity; otherwise
served in the library's native format (XGBoost UBJ/JSON, LightGBM text, CatBoost .cbm), never as a pickle, with
``runtime.loaders.boosted``. XGBoost is served with the CPU-only ``xgboost-cpu`` wheel (plain ``xgboost`` on Linux
x86_64 depends on ``nvidia-nccl-cu12``, 469 MB).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.artifacts.detect import missing_framework
from mldeploy.artifacts.formats.base import Handler, Served, Signature, pinned, version_of
from mldeploy.errors import ArtifactError
from runtime.loaders.boosted import as_outputs, read_booster
from runtime.manifest import Tensor

ONNX_OPSET = 15  # the highest onnxmltools 1.16 supports for tree ensembles
_CLASSIFIER_LOSSES = ("Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll")
# served file name per library and content (xgboost picks JSON or UBJ by the extension; model.json is the manifest)
_NATIVE_FILE = {"xgboost": "model.ubj", "lightgbm": "model.lgb.txt", "catboost": "model.cbm"}
_DISTS = {"xgboost": ("xgboost-cpu", "xgboost"), "lightgbm": ("lightgbm",), "catboost": ("catboost",)}


def _made_up(names: list[str]) -> bool:
    """f0, f1, … (XGBoost), Column_0, … (LightGBM), 0, 1, … (CatBoost): the library's names for unnamed columns."""
    return any(all(n == f"{prefix}{i}" for i, n in enumerate(names)) for prefix in ("f", "Column_", ""))


def library_of(obj: Any) -> str | None:
    """``xgboost``/``lightgbm``/``catboost`` when ``obj`` is one of their models (sklearn wrapper or booster)."""
    root = type(obj).__module__.split(".", 1)[0]
    return root if root in _NATIVE_FILE else None


def _import(lib: str) -> Any:
    import importlib

    try:
        return importlib.import_module(lib)
    except ImportError as e:
        raise missing_framework(lib, lib, "boost") from e


def _dynamic_batch_and_no_zipmap(model: Any) -> Any:
    """Make axis 0 of every graph input/output dynamic, and replace a ZipMap (list of dicts) by its tensor."""
    import onnx
    from onnx import TensorProto, helper

    g = model.graph
    for node in list(g.node):
        if node.op_type == "ZipMap":
            if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
                model.opset_import.append(helper.make_opsetid("", ONNX_OPSET))  # for the Identity node
            out = node.output[0]
            g.node.remove(node)
            g.node.append(helper.make_node("Identity", [node.input[0]], [out], name=f"{out}_tensor"))
            for i, o in enumerate(g.output):
                if o.name == out:
                    g.output.remove(o)
                    g.output.insert(i, helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", None]))
    for vi in list(g.input) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "N"
    onnx.checker.check_model(model)
    return model


class BoostedHandler(Handler):
    """One library's model: a native file (``format`` = the library) or a loaded sklearn-API estimator."""

    library: str
    can_convert_to = ("onnx",)

    def __init__(self, path: Path, cfg: Any, root: Path, estimator: Any = None, source_format: str | None = None,
                 notes: list[str] | None = None) -> None:
        super().__init__(path, cfg, root)
        self.native_format = self.library
        self.estimator = estimator
        if source_format:
            self.format = source_format
        self.notes = list(notes or [])

    @classmethod
    def wrap(cls, estimator: Any, path: Path, cfg: Any, root: Path, source_format: str,
             notes: list[str] | None = None) -> BoostedHandler:
        """A handler for an estimator already loaded from a pickle/joblib file (or an MLflow folder)."""
        lib = library_of(estimator)
        sub = HANDLERS[lib]  # type: ignore[index]
        handler = sub(path, cfg, root, estimator=estimator, source_format=source_format, notes=notes)
        handler.lib = _import(lib)
        handler._from_estimator()
        return handler

    # -- loading ------------------------------------------------------------------------------------------
    def load(self) -> None:
        self.lib = _import(self.library)
        try:
            self.booster, self._raw = read_booster(self.library, self._native_path())
        except Exception as e:  # the libraries raise their own exception types for bad files
            raise ArtifactError(f"{self.path} is a {self.library} model file but cannot be loaded: "
                                f"{type(e).__name__}: {str(e).splitlines()[0][:300]}",
                                hint="re-save it with save_model() from the same library version") from e
        self.kind, self.n_classes = self._native_kind()
        self.n_features = self._native_features()

    def _native_path(self) -> Path:
        return self.path

    def _from_estimator(self) -> None:
        est = self.estimator
        classes = getattr(est, "classes_", None)
        if classes is not None and hasattr(est, "predict_proba"):
            self.kind, self.n_classes = "classifier", len(classes)
        else:
            self.kind, self.n_classes = "regressor", 0
        n = getattr(est, "n_features_in_", None)
        self.n_features = int(n) if n is not None else None

    # -- description --------------------------------------------------------------------------------------
    def signature(self) -> Signature:
        cfg = self.cfg
        if cfg.inputs:
            inputs = [Tensor(**t.model_dump()) for t in cfg.inputs]
        elif self.n_features:
            inputs = [Tensor(name="input", dtype="float32", shape=[None, self.n_features])]
        else:
            raise ArtifactError(f"the {self.library} model does not record its number of features",
                                hint="set model.inputs, e.g. [{name: input, shape: [null, 13]}]")
        names = cfg.feature_names or self.model_feature_names()
        if self.kind == "classifier":
            k = self.n_classes
            outputs = [Tensor(name="label", dtype="int64", shape=[None], role="label"),
                       Tensor(name="probabilities", dtype="float32", shape=[None, k], role="probabilities")]
            labels = cfg.class_labels or self._class_labels()
            if len(labels) != k:
                raise ArtifactError(f"model.class_labels has {len(labels)} entries but the model has {k} classes",
                                    hint="list one label per class, in order")
            return Signature(inputs, outputs, "classification" if cfg.task == "auto" else cfg.task, labels, names)
        outputs = [Tensor(name="variable", dtype="float32", shape=[None, 1], role="prediction")]
        return Signature(inputs, outputs, "regression" if cfg.task == "auto" else cfg.task, cfg.class_labels, names)

    def _class_labels(self) -> list[str]:
        classes = getattr(self.estimator, "classes_", None) if self.estimator is not None else None
        if classes is None and self.library == "catboost":
            classes = getattr(self.booster, "classes_", None)
        return [str(c) for c in classes] if classes is not None else [str(i) for i in range(self.n_classes)]

    def model_feature_names(self) -> list[str] | None:
        """The names the model was trained with; None for the names a library makes up for unnamed columns."""
        names = self._feature_names()
        return None if not names or _made_up(names) else names

    def _feature_names(self) -> list[str] | None:
        names = getattr(self.estimator, "feature_names_in_", None) if self.estimator is not None else None
        return [str(f) for f in names] if names is not None else None

    # -- running ------------------------------------------------------------------------------------------
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        (x,) = inputs.values()
        x = np.asarray(x, dtype=np.float32)
        if self.estimator is None:
            return self._outputs(self._raw(x), len(x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.kind == "classifier":
                p = np.asarray(self.estimator.predict_proba(x), dtype=np.float32)
                return {"label": p.argmax(axis=1).astype(np.int64), "probabilities": p}
            return {"variable": np.asarray(self.estimator.predict(x), dtype=np.float32).reshape(len(x), -1)}

    def _outputs(self, raw: np.ndarray, rows: int) -> dict[str, np.ndarray]:
        if self.kind == "classifier":
            return as_outputs(raw, rows, proba_out="probabilities", label_out="label", pred_out=None)
        return as_outputs(raw, rows, proba_out=None, label_out=None, pred_out="variable")

    def run_served(self, served: Served, folder: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if served.format != self.library:
            return super().run_served(served, folder, inputs)
        _, raw = read_booster(self.library, folder / served.file)
        (x,) = inputs.values()
        x = np.asarray(x, dtype=np.float32)
        return self._outputs(raw(x), len(x))

    # -- serving ------------------------------------------------------------------------------------------
    def write_native(self, out_dir: Path) -> Served:
        name = self._native_name()
        if self.estimator is None:
            shutil.copyfile(self._native_path(), out_dir / name)
        else:
            self._save_estimator(out_dir / name)
        return Served(format=self.library, file=name)

    def _native_name(self) -> str:
        return _NATIVE_FILE[self.library]

    def convert(self, target: str, out_dir: Path, sig: Signature) -> Served:
        if target != "onnx":
            return super().convert(target, out_dir, sig)
        (inp,) = sig.inputs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = self._to_onnx(inp.name, int(inp.shape[1]), out_dir)
        model = _dynamic_batch_and_no_zipmap(model)
        (out_dir / "model.onnx").write_bytes(model.SerializeToString())
        return Served(format="onnx", file="model.onnx")

    def _to_onnx(self, input_name: str, n_features: int, out_dir: Path) -> Any:
        try:
            import onnxmltools
            from onnxmltools.convert.common.data_types import FloatTensorType
        except ImportError as e:
            raise missing_framework(f"{self.library} (for ONNX conversion)", "onnxmltools", "boost") from e
        types = [(input_name, FloatTensorType([None, n_features]))]
        model = self.estimator if self.estimator is not None else self.booster
        if self.library == "xgboost":
            return onnxmltools.convert_xgboost(model, initial_types=types, target_opset=ONNX_OPSET)
        return onnxmltools.convert_lightgbm(model, initial_types=types, target_opset=ONNX_OPSET, zipmap=False)

    def framework_versions(self) -> dict[str, str]:
        return {k: v for k in (*_DISTS[self.library], "onnxmltools", "onnx", "numpy") if (v := version_of(k))}

    def requirements(self, served_format: str) -> list[str]:
        if served_format != self.library:
            return super().requirements(served_format)
        if self.library == "xgboost":  # the CPU-only wheel: no nvidia-nccl-cu12 in the image
            version = version_of("xgboost-cpu") or version_of("xgboost")
            return [f"xgboost-cpu=={version.split('+', 1)[0]}"] if version else ["xgboost-cpu"]
        return pinned(*_DISTS[self.library]) + pinned("numpy")


class XGBoostHandler(BoostedHandler):
    format = "xgboost"
    library = "xgboost"

    def _native_kind(self) -> tuple[str, int]:
        learner = json.loads(self.booster.save_config())["learner"]
        objective = learner["objective"]["name"]
        if objective.startswith("multi:softmax"):
            raise ArtifactError(f"{self.path.name} uses objective multi:softmax, which predicts labels without "
                                "probabilities", hint="train with objective='multi:softprob' (XGBClassifier's "
                                "default) and save the model again")
        if objective == "binary:logistic":
            return "classifier", 2
        if objective.startswith("multi:softprob"):
            return "classifier", int(learner["learner_model_param"]["num_class"])
        return "regressor", 0

    def _native_features(self) -> int | None:
        return int(self.booster.num_features()) or None

    def _feature_names(self) -> list[str] | None:
        if self.estimator is None and self.booster.feature_names:
            return [str(n) for n in self.booster.feature_names]
        return super()._feature_names()

    def _native_name(self) -> str:
        if self.estimator is None and self.path.suffix.lower() == ".json":
            return "model.xgb.json"
        return super()._native_name()

    def _save_estimator(self, target: Path) -> None:
        booster = self.estimator.get_booster() if hasattr(self.estimator, "get_booster") else self.estimator
        booster.save_model(str(target))


class LightGBMHandler(BoostedHandler):
    format = "lightgbm"
    library = "lightgbm"

    def _native_kind(self) -> tuple[str, int]:
        objective = str(self.booster.dump_model(num_iteration=1).get("objective", ""))
        if objective.startswith("multiclass"):
            return "classifier", int(self.booster.num_model_per_iteration())
        if objective.startswith(("binary", "cross_entropy")):
            return "classifier", 2
        return "regressor", 0

    def _native_features(self) -> int | None:
        return int(self.booster.num_feature()) or None

    def _feature_names(self) -> list[str] | None:
        if self.estimator is None:
            return [str(n) for n in self.booster.feature_name()]
        return super()._feature_names()

    def _save_estimator(self, target: Path) -> None:
        booster = self.estimator.booster_ if hasattr(self.estimator, "booster_") else self.estimator
        booster.save_model(str(target))


class CatBoostHandler(BoostedHandler):
    format = "catboost"
    library = "catboost"

    def _native_kind(self) -> tuple[str, int]:
        loss = str(self.booster.get_all_params().get("loss_function", ""))
        if loss in _CLASSIFIER_LOSSES:
            classes = getattr(self.booster, "classes_", None)
            return "classifier", len(classes) if classes is not None else 2
        return "regressor", 0

    def _native_features(self) -> int | None:
        return len(self.booster.feature_names_) or None

    def _from_estimator(self) -> None:
        super()._from_estimator()
        if not self.n_features:  # a CatBoost estimator loaded from a pickle reports n_features_in_ 0
            self.n_features = len(getattr(self.estimator, "feature_names_", None) or ()) or None
        if self.kind == "classifier":
            self.kind = "classifier" if str(self.estimator.get_all_params().get("loss_function")) in \
                _CLASSIFIER_LOSSES else "regressor"

    def _feature_names(self) -> list[str] | None:
        names = getattr(self.estimator if self.estimator is not None else self.booster, "feature_names_", None)
        return [str(n) for n in names] if names else None

    def _save_estimator(self, target: Path) -> None:
        self.estimator.save_model(str(target))

    def _to_onnx(self, input_name: str, n_features: int, out_dir: Path) -> Any:
        import onnx

        model = self.estimator if self.estimator is not None else self.booster
        tmp = out_dir / ".catboost.onnx"
        try:
            model.save_model(str(tmp), format="onnx")  # CatBoost's own exporter (no onnxmltools)
            onx = onnx.load(str(tmp))
        finally:
            tmp.unlink(missing_ok=True)
        for node in onx.graph.node:  # the exporter names the input "features"
            node.input[:] = [input_name if i == onx.graph.input[0].name else i for i in node.input]
        onx.graph.input[0].name = input_name
        return onx


HANDLERS: dict[str, type[BoostedHandler]] = {"xgboost": XGBoostHandler, "lightgbm": LightGBMHandler,
                                              "catboost": CatBoostHandler}
