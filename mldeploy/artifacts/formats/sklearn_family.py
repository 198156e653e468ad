"""scikit-learn-style estimators in pickle, joblib or skops files; conversion to ONNX with skl2onnx."""

from __future__ import annotations

import pickletools
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.artifacts import skops_trust
from mldeploy.artifacts.formats.base import Handler, Served, Signature, on_path, pinned, version_of
from mldeploy.errors import ArtifactError
from runtime.manifest import Tensor


def pickle_modules(path: Path, limit: int = 256 * 1024 * 1024) -> set[str] | None:
    """Top-level modules a plain pickle imports (GLOBAL/STACK_GLOBAL), without executing it; None if unreadable."""
    if path.stat().st_size > limit:
        return None
    modules: set[str] = set()
    strings: list[str] = []
    try:
        with path.open("rb") as fh:
            for op, arg, _ in pickletools.genops(fh):
                if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                    strings.append(arg)
                elif op.name == "GLOBAL":
                    modules.add(str(arg).split(" ", 1)[0])
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    modules.add(strings[-2])
                elif op.name == "STOP":
                    break
    except (ValueError, EOFError):
        return modules or None
    return modules


def distributions_for(modules: set[str]) -> tuple[list[str], list[str]]:
    """Pinned installed distributions providing these modules (stdlib excluded), and the top-level modules that
    no installed distribution provides (local code the server would also need)."""
    import importlib.metadata

    mapping = importlib.metadata.packages_distributions()
    dists: set[str] = set()
    local: set[str] = set()
    for mod in modules:
        root = mod.split(".", 1)[0]
        if root in sys.stdlib_module_names:
            continue
        if root in mapping:
            dists.update(mapping[root])
        else:
            local.add(root)
    return sorted(pinned(*sorted(dists))), sorted(local)


class SklearnHandler(Handler):
    native_format = "pickle"
    can_convert_to = ("onnx",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.native_format = self.format

    def load(self) -> None:
        try:
            import joblib
        except ImportError as e:  # a core dependency of mldeploy: only a broken install gets here
            raise ArtifactError(f"this is a {self.format} model but joblib is not installed",
                                hint="pip install joblib scikit-learn") from e
        if self.format == "skops":  # before anything in the file is constructed
            self.trusted_types = skops_trust.audit(self.path, self.cfg.trusted_types)
        try:
            with warnings.catch_warnings(), on_path(self.root):
                warnings.simplefilter("ignore")
                if self.format == "skops":
                    self.model = self._load_skops()
                else:
                    self.model = joblib.load(self.path)  # reads plain pickles too; executes the file's code
        except ArtifactError:
            raise
        except ModuleNotFoundError as e:
            raise ArtifactError(f"{self.path} needs the Python module {e.name!r}, which is not installed",
                                hint=f"pip install the package that provides {e.name!r} (the server will need it "
                                "too: add it to image.pip_packages)") from e
        except Exception as e:  # unpickling raises anything: UnpicklingError, EOFError, KeyError, …
            raise ArtifactError(f"{self.path} is a {self.format} file but cannot be loaded ({type(e).__name__}: "
                                f"{str(e)[:200]}); it looks corrupt or truncated",
                                hint="re-save the model with the same library versions") from e
        if not (hasattr(self.model, "predict") or hasattr(self.model, "transform")):
            raise ArtifactError(f"{self.path} holds a {type(self.model).__name__}, not an estimator with predict()",
                                hint="save the fitted model/pipeline itself")

    def specialized(self) -> Handler:
        """XGBoost/LightGBM/CatBoost estimators: ONNX via onnxmltools, else their native format (not pickle)."""
        from mldeploy.artifacts.formats.boosted import BoostedHandler, library_of

        if library_of(self.model) is None:
            return self
        return BoostedHandler.wrap(self.model, self.path, self.cfg, self.root, self.format, self.notes)

    def _load_skops(self) -> Any:
        import skops.io as sio  # importable: audit() checked

        return sio.load(self.path, trusted=self.trusted_types)  # exactly the audited types

    # -- description --------------------------------------------------------------------------------------
    def signature(self) -> Signature:
        m = self.model
        n = getattr(m, "n_features_in_", None)
        if self.cfg.inputs:
            inputs = [Tensor(**t.model_dump()) for t in self.cfg.inputs]
        elif n is not None:
            inputs = [Tensor(name="input", dtype="float32", shape=[None, int(n)])]
        else:
            raise ArtifactError(f"{type(m).__name__} does not record its number of features",
                                hint="set model.inputs in mldeploy.yaml, e.g. [{name: input, shape: [null, 4]}]")
        names = self.cfg.feature_names or (
            [str(f) for f in m.feature_names_in_] if hasattr(m, "feature_names_in_") else None)
        classes = getattr(m, "classes_", None)
        if classes is not None and hasattr(m, "predict_proba"):
            k = len(classes)
            label_dtype = "string" if np.asarray(classes).dtype.kind in "USO" else "int64"
            outputs = [Tensor(name="label", dtype=label_dtype, shape=[None], role="label"),
                       Tensor(name="probabilities", dtype="float32", shape=[None, k], role="probabilities")]
            labels = self.cfg.class_labels or [str(c) for c in classes]
            if len(labels) != k:
                raise ArtifactError(f"model.class_labels has {len(labels)} entries but the model has {k} classes "
                                    f"({', '.join(map(str, classes))})", hint="list one label per class, in order")
            task = "classification" if self.cfg.task == "auto" else self.cfg.task
            return Signature(inputs, outputs, task, labels, names)
        outputs = [Tensor(name="variable", dtype="float32", shape=[None, 1], role="prediction")]
        task = "regression" if self.cfg.task == "auto" else self.cfg.task
        return Signature(inputs, outputs, task, self.cfg.class_labels, names)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        (x,) = inputs.values()
        # trees compare float32 thresholds: cast like the ONNX runtime will, so parity measures the conversion
        x = x.astype(np.float32).astype(np.float64) if x.dtype.kind == "f" else x
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # feature-name warnings for models fitted on DataFrames
            if hasattr(self.model, "predict_proba") and hasattr(self.model, "classes_"):
                return {"label": np.asarray(self.model.predict(x)), "probabilities": self.model.predict_proba(x)}
            return {"variable": np.asarray(self.model.predict(x)).reshape(len(x), -1)}

    # -- serving ------------------------------------------------------------------------------------------
    def write_native(self, out_dir: Path) -> Served:
        fmt = self.format
        if fmt == "pickle" and any(m.split(".")[0] == "joblib" for m in self._modules() or ()):
            fmt = "joblib"  # joblib wrappers inside: the server must load it with joblib
        name = {"pickle": "model.pkl", "joblib": "model.joblib", "skops": "model.skops"}[fmt]
        shutil.copyfile(self.path, out_dir / name)
        return Served(format=fmt, file=name)

    def convert(self, target: str, out_dir: Path, sig: Signature) -> Served:
        if target != "onnx":
            return super().convert(target, out_dir, sig)
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType

        (inp,) = sig.inputs
        options: dict[Any, Any] = {}
        if hasattr(self.model, "predict_proba"):
            options = {id(self.model): {"zipmap": False}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onx = to_onnx(self.model, initial_types=[(inp.name, FloatTensorType([None, inp.shape[1]]))],
                          options=options, target_opset={"": 17, "ai.onnx.ml": 3})
        (out_dir / "model.onnx").write_bytes(onx.SerializeToString())
        return Served(format="onnx", file="model.onnx")

    def framework_versions(self) -> dict[str, str]:
        dists = ("scikit-learn", "numpy", "joblib", "skl2onnx") + (("skops",) if self.format == "skops" else ())
        return {k: v for k in dists if (v := version_of(k))}

    def _modules(self) -> set[str] | None:
        if not hasattr(self, "_mods"):
            self._mods = pickle_modules(self.path) if self.format == "pickle" else None
        return self._mods

    def requirements(self, served_format: str) -> list[str]:
        if served_format == "onnx":
            return pinned("onnxruntime")
        reqs = set(pinned("scikit-learn", "joblib", "numpy", "scipy"))
        if served_format == "skops":
            reqs.update(pinned("skops"))
        mods = self._modules()
        if mods:
            dists, local = distributions_for(mods)
            reqs.update(dists)
            if local:
                self.notes.append(f"{self.path.name} unpickles classes from {', '.join(local)}, which no installed "
                                  "package provides: the server image must contain that code too")
        return sorted(reqs, key=str.lower)


class PickleHandler(SklearnHandler):
    format = "pickle"


class JoblibHandler(SklearnHandler):
    format = "joblib"


class SkopsHandler(SklearnHandler):
    format = "skops"


HANDLERS = {"pickle": PickleHandler, "joblib": JoblibHandler, "skops": SkopsHandler}
