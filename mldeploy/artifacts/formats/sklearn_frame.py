"""scikit-learn models that take a pandas DataFrame: which ones, and the typed columns model.json records.

A model fitted on a DataFrame whose ``ColumnTransformer`` picks columns by name (``["age", "income"]``, ``"city"``,
``make_column_selector``) cannot run on a numpy array, and a string column cannot be a float32 tensor. Such a model
is packaged with one input per column, named and typed like the training DataFrame's (``float64`` or ``string``),
and ``model.json`` ``dataframe: true``. It is converted to ONNX with one graph input per column where skl2onnx can
and parity holds (``sklearn_frame_onnx``; the server feeds the fields by name, ``runtime.loaders.records_onnx``),
else served as the pickle: the server builds the DataFrame (``runtime.loaders.sklearn.to_frame``).
The dtypes come from ``model.sample_input`` (a string value makes a string column), else from the fitted encoders
(a column whose ``categories_`` are strings), else ``float64``. A pandas ``category`` column the model knows as one
(``category_columns``: a HistGradientBoosting* fitted with ``categorical_features="from_dtype"``, or a
``make_column_selector(dtype_include="category")``) is a ``string`` input with the learned ``categories``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.errors import ArtifactError
from runtime.manifest import Tensor

NUMERIC, STRING = "float64", "string"


def _children(est: Any) -> Iterator[Any]:
    """The estimators inside a pipeline, column transformer, feature union or meta-estimator."""
    for attr in ("steps", "transformer_list"):
        for item in getattr(est, attr, None) or ():
            if isinstance(item, tuple) and len(item) >= 2:
                yield item[1]
    for item in getattr(est, "transformers_", None) or getattr(est, "transformers", None) or ():
        if isinstance(item, tuple) and len(item) >= 2:
            yield item[1]
    for attr in ("best_estimator_", "estimator_", "estimator", "base_estimator", "regressor_", "classifier"):
        child = getattr(est, attr, None)
        if child is not None and hasattr(child, "get_params"):
            yield child


def _walk(est: Any, depth: int = 0) -> Iterator[Any]:
    yield est
    if depth < 8 and hasattr(est, "get_params"):
        for child in _children(est):
            if not isinstance(child, str):  # "drop" / "passthrough"
                yield from _walk(child, depth + 1)


def _by_name(columns: Any) -> bool:
    """A ColumnTransformer column selector that needs a DataFrame: a name, names, or a callable."""
    if isinstance(columns, str) or callable(columns):
        return True
    if isinstance(columns, slice):
        return isinstance(columns.start, str) or isinstance(columns.stop, str)
    try:
        return any(isinstance(c, str) for c in list(columns))
    except TypeError:
        return False


def selects_by_name(model: Any) -> bool:
    """True when a ColumnTransformer inside ``model`` selects columns by name or with a callable."""
    return any(type(est).__name__ == "ColumnTransformer" and any(_by_name(t[2]) for t in est.transformers)
               for est in _walk(model) if isinstance(getattr(est, "transformers", None), list))


def _selects_category(cols: Any) -> bool:
    """A ``make_column_selector`` that picks pandas ``category`` columns."""
    inc = getattr(cols, "dtype_include", None)
    incs = list(inc) if isinstance(inc, list | tuple) else [inc]
    return any(i == "category" or getattr(i, "__name__", "") == "CategoricalDtype" for i in incs if i is not None)


def _first_categories(est: Any) -> list[Any]:
    return next((list(e.categories_) for e in _walk(est) if hasattr(e, "categories_")), [])


def category_columns(model: Any, names: list[str]) -> dict[str, list[str]]:
    """The columns of ``names`` that ``model`` takes as pandas ``category`` dtype, each with the (string) categories
    it learned: a HistGradientBoosting* whose ``categorical_features="from_dtype"`` found them (its ordinal
    encoder's ``categories_``), or an encoder behind a ``make_column_selector(dtype_include="category")``. Columns
    of non-string categories are left out (they are served as numbers, as before)."""
    found: dict[str, list[Any]] = {}
    for est in _walk(model):
        pre, mask, own = (getattr(est, a, None) for a in ("_preprocessor", "is_categorical_", "feature_names_in_"))
        if pre is not None and mask is not None and own is not None and hasattr(pre, "transformers_"):
            cols = [str(c) for c, m in zip(own, mask, strict=False) if m]
            found.update(zip(cols, _first_categories(pre), strict=False))
        for spec, fitted in zip(getattr(est, "transformers", None) or (), getattr(est, "transformers_", None) or (),
                                strict=False):
            if isinstance(spec, tuple) and len(spec) == 3 and _selects_category(spec[2]) and not isinstance(
                    fitted[1], str):
                found.update(zip(_column_names(est, fitted[2]), _first_categories(fitted[1]), strict=False))
    out = {}
    for col, cats in found.items():
        known = [c for c in np.asarray(cats, dtype=object).tolist() if not (isinstance(c, float) and c != c)]  # NaN
        if col in names and known and all(isinstance(c, str) for c in known):
            out[col] = known
    return out


def _encoded_strings(model: Any) -> set[str]:
    """Columns a fitted ColumnTransformer routes to an encoder whose ``categories_`` are strings."""
    found: set[str] = set()
    for est in _walk(model):
        for item in getattr(est, "transformers_", None) or ():
            if not (isinstance(item, tuple) and len(item) == 3) or isinstance(item[1], str):
                continue
            _, trans, cols = item
            cats = next((getattr(e, "categories_", None) for e in _walk(trans) if hasattr(e, "categories_")), None)
            if cats is None:
                continue
            names = [cols] if isinstance(cols, str) else list(cols) if isinstance(cols, list | tuple | np.ndarray) \
                else []
            found.update(c for c, cat in zip(names, cats, strict=False)
                         if isinstance(c, str) and np.asarray(cat).dtype.kind in "OUS")
    return found


def _sample_columns(path: Path | None, names: list[str]) -> dict[str, list[Any]]:
    """The sample's values per column, from records ``[{name: value}]`` or columns ``{name: [values]}``."""
    if path is None or not path.is_file() or path.suffix != ".json":
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # read_sample reports it
    if isinstance(raw, dict) and isinstance(raw.get("inputs"), list | dict):
        raw = raw["inputs"]
    if isinstance(raw, list) and all(isinstance(r, dict) for r in raw):
        return {n: [r[n] for r in raw if n in r] for n in names}
    if isinstance(raw, dict):
        return {n: v if isinstance(v, list) else [v] for n, v in raw.items() if n in names}
    return {}


def _check_categories(values: dict[str, list[Any]], categories: dict[str, list[str]]) -> None:
    for n, cats in categories.items():
        bad = next((v for v in values.get(n) or () if v is not None and v not in cats), None)
        if bad is not None:
            raise ArtifactError(f"model.sample_input: column {n!r} holds {bad!r}, which is not one of the categories "
                                f"the model was trained on {cats}", hint="use the training categories in the sample")


def column_inputs(model: Any, names: list[str], sample: Path | None) -> list[Tensor]:
    """One ``[N]`` input per DataFrame column: ``string`` if the sample has a string in it (or the column is
    one-hot/ordinal encoded from strings, or a ``category`` column: with its ``categories``), else ``float64``."""
    values = _sample_columns(sample, names)
    encoded = _encoded_strings(model)
    categories = category_columns(model, names)
    _check_categories(values, categories)
    inputs = []
    for n in names:
        col = values.get(n)
        text = n in categories or (any(isinstance(v, str) for v in col) if col else n in encoded)
        inputs.append(Tensor(name=n, dtype=STRING if text else NUMERIC, shape=[None], categories=categories.get(n)))
    strings = [t.name for t in inputs if t.dtype == STRING and t.categories is None]  # categories are generated
    if strings and not values:
        raise ArtifactError(f"the model takes a DataFrame with string columns {strings}: mldeploy needs example "
                            "rows to check it (generated strings are not the model's categories)",
                            hint="set model.sample_input to a JSON file of a few records, e.g. "
                            f"[{json.dumps(dict.fromkeys(names, '…'))}]")
    return inputs


def needs_dataframe(model: Any, names: list[str] | None, sample: Path | None) -> bool:
    """A model fitted on a DataFrame (``names``) that selects columns by name or has a string column."""
    if not names:
        return False
    if selects_by_name(model):
        return True
    values = _sample_columns(sample, names)
    return bool(_encoded_strings(model)) or bool(category_columns(model, names)) or any(
        isinstance(v, str) for col in values.values() for v in col)

IMPUTERS = ("SimpleImputer", "KNNImputer", "IterativeImputer")
NATIVE_NAN_LIBRARIES = ("xgboost", "lightgbm", "catboost")  # their trees route missing values natively


def _first_step(est: Any) -> Any:
    """The first estimator a Pipeline (or a bare estimator) applies, ``"passthrough"`` steps skipped."""
    steps = [s for _, s, *_ in getattr(est, "steps", None) or () if s not in (None, "passthrough")]
    return _first_step(steps[0]) if steps else est


def _final_step(est: Any) -> Any:
    """The estimator a Pipeline (or a meta-estimator such as a grid search) predicts with."""
    for _ in range(8):
        steps = getattr(est, "steps", None)
        inner = next((getattr(est, a) for a in ("best_estimator_", "regressor_")
                      if getattr(est, a, None) is not None), None)  # not `or`: a Pipeline has a length
        if steps:
            est = steps[-1][1]
        elif inner is not None:
            est = inner
        else:
            break
    return est


def _imputes(est: Any) -> bool:
    return type(_first_step(est)).__name__ in IMPUTERS


def native_nan(est: Any) -> bool:
    """An estimator that predicts on NaN itself: HistGradientBoosting*, XGBoost/LightGBM/CatBoost, or one whose
    scikit-learn tags say ``allow_nan`` (trees since scikit-learn 1.3/1.4)."""
    final = _final_step(est)
    if type(final).__module__.split(".", 1)[0] in NATIVE_NAN_LIBRARIES or type(final).__name__.startswith(
            "HistGradientBoosting"):
        return True
    if not hasattr(final, "predict"):
        return False
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(final).input_tags.allow_nan)
    except Exception:  # older scikit-learn, or an estimator whose tags fail: not claimed
        return False


def _column_names(ct: Any, cols: Any) -> list[str]:
    """A fitted ColumnTransformer's column selection as names (names, positions, a boolean mask, a slice)."""
    fitted = getattr(ct, "feature_names_in_", None)
    own = [str(n) for n in fitted] if fitted is not None else []
    if isinstance(cols, str):
        return [cols]
    if isinstance(cols, slice):
        return own[cols] if not isinstance(cols.start, str) else []
    try:
        items = list(cols)
    except TypeError:
        return []
    if items and all(isinstance(c, bool | np.bool_) for c in items):
        return [n for n, keep in zip(own, items, strict=False) if keep]
    return [c if isinstance(c, str) else own[int(c)] for c in items
            if isinstance(c, str) or (isinstance(c, int | np.integer) and 0 <= int(c) < len(own))]


def missing_candidates(model: Any, names: list[str]) -> dict[str, str]:
    """Columns the model should take missing values in, each with why: an imputer in front of the whole
    pipeline or on that column in a ColumnTransformer, a column the ColumnTransformer drops, or an estimator
    that handles NaN natively (``native_nan``). A claim only: ``probe_missing`` runs it."""
    if native_nan(model):
        return dict.fromkeys(names, f"{type(_final_step(model)).__name__} handles missing values")
    if _imputes(model):
        return dict.fromkeys(names, f"{type(_first_step(model)).__name__} first")
    found: dict[str, str] = {}
    for est in _walk(model):
        for item in getattr(est, "transformers_", None) or ():
            if not (isinstance(item, tuple) and len(item) == 3):
                continue
            _, trans, cols = item
            why = ("dropped by the ColumnTransformer" if isinstance(trans, str) and trans == "drop"
                   else f"{type(_first_step(trans)).__name__} on it" if not isinstance(trans, str)
                   and _imputes(trans) else None)
            if why:
                found.update((c, why) for c in _column_names(est, cols) if c in names and c not in found)
    return found


def _with_missing(x: dict[str, np.ndarray], columns: list[Tensor], which: set[str], rows: slice) -> dict[str, Any]:
    out = {}
    for t in columns:
        col = np.array(x[t.name][rows], dtype=object if t.dtype == STRING else np.float64)
        if t.name in which:
            col[0] = np.nan  # JSON null, as the server passes it in a float or a string column (to_frame)
        out[t.name] = col
    return out


def _runs(predict: Any, x: dict[str, Any]) -> bool:
    try:
        out = predict(x)
    except Exception:  # the model refused the missing value (an estimator that does not take NaN, …)
        return False
    return all(not (v.dtype.kind == "f" and not np.isfinite(v).all()) for v in map(np.asarray, out.values()))


def probe_missing(columns: list[Tensor], x: dict[str, np.ndarray], candidates: set[str], predict: Any) -> set[str]:
    """The candidate columns the model really answers for when a value is missing (finite outputs): each run on
    the sample rows with a missing value in the first row, and on that row alone (a column of nothing but
    missing values, which a request of one record is)."""
    def ok(which: set[str]) -> bool:
        return _runs(predict, _with_missing(x, columns, which, slice(None))) and _runs(
            predict, _with_missing(x, columns, which, slice(0, 1)))

    if not candidates or ok(candidates):
        return set(candidates)
    return {c for c in candidates if ok({c})}


def allow_missing(model: Any, columns: list[Tensor], x: dict[str, np.ndarray], predict: Any,
                  configured: dict[str, bool] | None = None) -> tuple[list[Tensor], list[str]]:
    """``columns`` with ``allow_missing`` set where the model claims and shows it takes a missing value (or as
    ``configured`` in ``model.inputs``, which wins: ``mldeploy.artifacts.missing`` checks a ``true``), and the
    notes for the claims the probe disproved."""
    given = configured or {}
    nullable = [t.name for t in columns if (t.dtype == STRING or t.dtype.startswith("float")) and t.name not in
                given]  # an int has no NaN
    claims = missing_candidates(model, nullable)
    ok = probe_missing(columns, x, set(claims), predict)
    notes = [f"column {c!r}: {why}, but the model failed on a missing value there: a null in it is refused"
             for c, why in claims.items() if c not in ok]
    return [t.model_copy(update={"allow_missing": given.get(t.name, t.name in ok)}) for t in columns], notes


NOTE = ("the model takes a pandas DataFrame (columns selected by name / string columns): served as {fmt} with "
        "scikit-learn and pandas in the image, not converted to ONNX")


def frame_inputs(model: Any, cfg: Any, root: Path) -> list[Tensor] | None:
    """The per-column inputs of a model that needs a DataFrame (``model.inputs`` when set), else None."""
    own = getattr(model, "feature_names_in_", None)  # a Pipeline's raises AttributeError when not fitted on one
    names = [str(n) for n in own] if own is not None else None
    sample = root / Path(cfg.sample_input).expanduser() if cfg.sample_input else None
    if not needs_dataframe(model, names, sample):
        return None
    assert names is not None
    if cfg.feature_names and list(cfg.feature_names) != names:
        raise ArtifactError(f"model.feature_names {list(cfg.feature_names)} are not the DataFrame columns the model "
                            f"was fitted on and selects by name: {names}",
                            hint="remove model.feature_names: records use the model's own column names")
    if cfg.inputs:
        given = [Tensor(**t.model_dump()) for t in cfg.inputs]
        if [t.name for t in given] != names:
            raise ArtifactError(f"model.inputs {[t.name for t in given]} must be the model's DataFrame columns "
                                f"{names}, one input per column in that order",
                                hint="e.g. inputs: [{name: age, dtype: float64, shape: [null]}, …], or remove it")
        categories = category_columns(model, names)
        if bad := next((t for t in given if t.name in categories and t.dtype != STRING), None):
            raise ArtifactError(f"model.inputs: {bad.name!r} is a category column of the model (categories "
                                f"{categories[bad.name]}), not {bad.dtype}", hint="declare it dtype: string")
        return [t.model_copy(update={"categories": categories.get(t.name)}) for t in given]
    return column_inputs(model, names, sample)


# what `mldeploy init` may unpickle to look at a model: only these libraries' classes (no user code runs)
_INIT_LOADABLE = frozenset({"sklearn", "numpy", "scipy", "pandas", "joblib", "builtins", "copyreg", "_codecs",
                            "collections"})  # builtins: only what runtime.manifest.never_trusted leaves (slice, …)


def init_columns(path: Path) -> tuple[list[str], list[str]] | None:
    """For ``mldeploy init``: the DataFrame columns (``feature_names_in_``) of a scikit-learn model in a pickle or
    joblib file that needs a DataFrame (``needs_dataframe``), and those its encoders show hold strings; else
    None. The file is loaded only when its pickle
    imports nothing but scikit-learn, numpy, scipy and pandas classes and uses a ColumnTransformer (read without
    executing it, ``pickle_scan``): init runs none of the user's code."""
    from mldeploy.artifacts.pickle_scan import pickle_globals
    from runtime.manifest import never_trusted

    found = pickle_globals(path)
    if not found or not any(name == "ColumnTransformer" for _, name in found) or any(
            mod.split(".", 1)[0] not in _INIT_LOADABLE or never_trusted(f"{mod}.{name}") for mod, name in found):
        return None
    import warnings

    import joblib

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = joblib.load(path)  # reads plain pickles too
    except Exception:  # a damaged file, another library version: package reports it
        return None
    own = getattr(model, "feature_names_in_", None) if hasattr(model, "get_params") else None
    names = [str(n) for n in own] if own is not None else None
    if not names or not needs_dataframe(model, names, None):
        return None
    strings = _encoded_strings(model) | set(category_columns(model, names))
    return names, [n for n in names if n in strings]
