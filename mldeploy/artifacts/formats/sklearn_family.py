"""scikit-learn-style estimators in pickle, joblib or skops files; conversion to ONNX with skl2onnx."""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.artifacts import code_paths, missing, skops_trust
from mldeploy.artifacts.formats import sklearn_frame
from mldeploy.artifacts.formats.base import Handler, Served, Signature, on_path, pinned, version_of
from mldeploy.artifacts.pickle_scan import pickle_globals
from mldeploy.artifacts.pickle_scan import pickle_modules as scanned_modules
from mldeploy.errors import ArtifactError
from runtime.manifest import Tensor


def pickle_modules(path: Path) -> set[str] | None:
    """The modules a pickle imports (GLOBAL/STACK_GLOBAL), without executing it; None if unreadable."""
    return scanned_modules(path)


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
    can_convert_to: tuple[str, ...] = ("onnx",)
    frame_columns: list[Tensor] | None = None  # a model that takes a pandas DataFrame: its columns (sklearn_frame)
    frame_rows: dict[str, np.ndarray] | None = None  # its sample rows (the missing-value parity of the ONNX graph)

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
        shipped = code_paths.resolve(self.root, self.cfg.code_paths)
        try:
            with warnings.catch_warnings(), on_path(self.root), code_paths.importable(shipped):
                warnings.simplefilter("ignore")
                if self.format == "skops":
                    self.model = self._load_skops()
                else:
                    self.model = joblib.load(self.path)  # reads plain pickles too; executes the file's code
        except ArtifactError:
            raise
        except Exception as e:  # unpickling raises anything: UnpicklingError, EOFError, KeyError, …
            raise self._load_error(e) from e
        if not (hasattr(self.model, "predict") or hasattr(self.model, "transform")):
            raise ArtifactError(f"{self.path} holds a {type(self.model).__name__}, not an estimator with predict()",
                                hint="save the fitted model/pipeline itself")

    def _load_error(self, e: Exception) -> ArtifactError:
        """What a failed load means: a class from ``__main__``, a module or class that is missing, else damage."""
        globals_ = pickle_globals(self.path) if self.format != "skops" else None
        if main := code_paths.main_module_diagnosis(globals_):
            return ArtifactError(f"{self.path} cannot be loaded: {main[0]}", hint=main[1])
        if isinstance(e, ModuleNotFoundError):
            return ArtifactError(f"{self.path} needs the Python module {e.name!r}, which is not installed or "
                                 "importable here", hint=f"if {e.name!r} is your own code, list its file or package "
                                 f"in model.code_paths (e.g. `code_paths: [{(e.name or 'x').split('.')[0]}.py]`); if it"
                                 " is a library, pip install it (the server will need it too: add it to "
                                 "image.pip_packages)")
        text = str(e)
        if isinstance(e, AttributeError) and text.startswith("Can't get attribute"):  # pickle's find_class
            return ArtifactError(f"{self.path} cannot be loaded: {text[:200]} (the class was renamed or moved since "
                                 "the model was saved)", hint="restore the class under that name in that module, or "
                                 "save the model again with the current code")
        return ArtifactError(f"{self.path} is a {self.format} file but cannot be loaded ({type(e).__name__}: "
                             f"{text[:200]}); it looks corrupt or truncated",
                             hint="re-save the model with the same library versions")

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
        if (columns := sklearn_frame.frame_inputs(m, self.cfg, self.root)) is not None:
            self.frame_columns = columns
            inputs = self.frame_columns = self._missing_values(columns)
        elif self.cfg.inputs:
            inputs = [Tensor(**t.model_dump()) for t in self.cfg.inputs]
        elif n is not None:
            inputs = [Tensor(name="input", dtype="float32", shape=[None, int(n)])]
        else:
            raise ArtifactError(f"{type(m).__name__} does not record its number of features",
                                hint="set model.inputs in mldeploy.yaml, e.g. [{name: input, shape: [null, 4]}]")
        names = self.cfg.feature_names or self.model_feature_names()
        classes = getattr(m, "classes_", None)
        if classes is not None and hasattr(m, "predict_proba"):
            k = len(classes)
            found = np.asarray(classes).dtype  # predict() answers values of classes_: their dtype (float, bool, …)
            label_dtype = "string" if found.kind in "USO" else found.name
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

    def _missing_values(self, columns: list[Tensor]) -> list[Tensor]:
        """The DataFrame columns with ``allow_missing`` where an imputer or the estimator takes a missing value,
        run on the sample's rows (else generated ones) with one (``sklearn_frame.allow_missing``)."""
        from mldeploy.artifacts import sample as samples

        path = self.root / Path(self.cfg.sample_input).expanduser() if self.cfg.sample_input else None
        given = samples.read_sample(path, columns, [t.name for t in columns]) if path else None
        x = self.frame_rows = samples.parity_inputs(columns, given, 8)
        columns, notes = sklearn_frame.allow_missing(self.model, columns, x, self.predict,
                                                     missing.configured(self.cfg.inputs))
        self.notes.extend(notes)
        return columns

    def model_feature_names(self) -> list[str] | None:
        """``feature_names_in_``: the DataFrame columns an estimator or pipeline was fitted on."""
        names = getattr(self.model, "feature_names_in_", None)  # a Pipeline's raises AttributeError: None then
        return [str(f) for f in names] if names is not None else None

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.frame_columns is not None:
            from runtime.loaders.sklearn import to_frame

            x: Any = to_frame(inputs, self.frame_columns)  # the DataFrame the server builds
        else:
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
        if self.frame_columns is not None:
            self.notes.append(sklearn_frame.NOTE.format(fmt=fmt))
        shutil.copyfile(self.path, out_dir / name)
        return Served(format=fmt, file=name)

    def convert(self, target: str, out_dir: Path, sig: Signature) -> Served:
        if target == "onnx" and self.frame_columns is not None:  # one graph input per column
            from mldeploy.artifacts.formats import sklearn_frame_onnx

            return sklearn_frame_onnx.convert(self.model, self.frame_columns, out_dir, sig, self.predict,
                                              self.frame_rows, self.cfg.parity)
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

    def run_served(self, served: Served, folder: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if served.format == "onnx" and self.frame_columns is not None:  # fed as the server feeds the fields
            from mldeploy.artifacts.formats import sklearn_frame_onnx

            out, served.outputs = sklearn_frame_onnx.run(folder / served.file, self.frame_columns, inputs)
            return out  # served.inputs stay the DataFrame's columns: the contract is the same as the pickle's
        return super().run_served(served, folder, inputs)

    def framework_versions(self) -> dict[str, str]:
        dists = ("scikit-learn", "numpy", "joblib", "skl2onnx") + (("skops",) if self.format == "skops" else ())
        return {k: v for k in dists if (v := version_of(k))}

    def _modules(self) -> set[str] | None:
        if not hasattr(self, "_mods"):
            self._mods = pickle_modules(self.path) if self.format in ("pickle", "joblib") else None
        return self._mods

    def requirements(self, served_format: str) -> list[str]:
        if served_format == "onnx":
            return pinned("onnxruntime")
        reqs = set(pinned("scikit-learn", "joblib", "numpy", "scipy"))
        if self.frame_columns is not None:  # only these models: pandas is ~12 MB of wheel plus its deps
            reqs.update(pinned("pandas"))
        if served_format == "skops":
            reqs.update(pinned("skops"))
        mods = self._modules()
        if mods:
            dists, local = distributions_for(mods)
            reqs.update(dists)
            self._check_shipped(local)
        return sorted(reqs, key=str.lower)


    def _check_shipped(self, local: list[str]) -> None:
        """Every top-level module the served pickle imports that no installed package provides must be in
        ``model.code_paths``: else it packages here (the project folder is on sys.path) and the server dies."""
        shipped = code_paths.module_names(code_paths.resolve(self.root, self.cfg.code_paths))
        if missing := [m for m in local if m not in shipped and m != "__main__"]:
            classes = sorted(f"{mod}.{name}" for mod, name in pickle_globals(self.path) or ()
                             if mod.split(".", 1)[0] in missing)
            listed = ", ".join(f"{m}.py" if (self.root / f"{m}.py").is_file() else m for m in missing)
            raise ArtifactError(f"{self.path.name} is served as {self.format} and unpickles "
                                f"{', '.join(classes) or ', '.join(missing)} from {', '.join(missing)}, which is your "
                                "own code (no installed package provides it): the server could not import it",
                                hint=f"add `code_paths: [{listed}]` under `model:` in mldeploy.yaml: the image then "
                                f"ships it in {code_paths.IMAGE_DIR}, on the server's sys.path")


class PickleHandler(SklearnHandler):
    format = "pickle"


class JoblibHandler(SklearnHandler):
    format = "joblib"


class SkopsHandler(SklearnHandler):
    format = "skops"


HANDLERS = {"pickle": PickleHandler, "joblib": JoblibHandler, "skops": SkopsHandler}
