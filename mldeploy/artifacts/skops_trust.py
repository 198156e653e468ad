"""Which types a skops file may construct, decided before anything in it is loaded.

skops constructs only the types it trusts by default (primitives, containers, public scikit-learn estimators,
NumPy/SciPy ufuncs) plus the ones passed as ``trusted``. ``audit`` reads the file's other types with skops' own
``get_untrusted_types`` (which builds no object) and accepts each only if it is in mldeploy's safe set below or
in ``model.trusted_types``; the accepted list is recorded in ``model.json`` and the server loads with exactly it.
"""

from __future__ import annotations

import functools
import importlib
import zipfile
from collections.abc import Iterable
from pathlib import Path

from mldeploy.errors import ArtifactError
from runtime.manifest import never_trusted

# Value and container types (no callables: constructing one with any arguments only builds data).
_SAFE_EXACT = frozenset({
    "builtins.bytearray", "builtins.bytes", "builtins.complex", "builtins.frozenset", "builtins.range",
    "builtins.slice", "collections.Counter", "collections.OrderedDict", "collections.defaultdict",
    "collections.deque", "numpy.dtype", "numpy.ndarray", "numpy.ma.core.MaskedArray",
    "numpy.random.mtrand.RandomState", "numpy.random._generator.Generator",
})
# sklearn modules whose classes are test, build or vendored helpers, not parts of a fitted model.
_SKLEARN_EXCLUDED = ("tests", "_testing", "externals", "_build_utils", "conftest", "__check_build")


@functools.cache
def _scipy_sparse_types() -> frozenset[str]:
    """SciPy's sparse matrix/array classes (``scipy.sparse._csr.csr_matrix`` …)."""
    try:
        import scipy.sparse as sp
        from scipy.sparse import spmatrix
    except ImportError:
        return frozenset()
    bases = tuple(b for b in (spmatrix, getattr(sp, "sparray", None)) if isinstance(b, type))
    return frozenset(f"{obj.__module__}.{obj.__qualname__}" for name in dir(sp)
                     if isinstance(obj := getattr(sp, name), type) and issubclass(obj, bases))


@functools.cache
def _numpy_dtype_types() -> frozenset[str]:
    """``numpy.dtypes.Float64DType`` and friends (the classes of dtype objects)."""
    import numpy as np

    module = getattr(np, "dtypes", None)
    if module is None:
        return frozenset()
    return frozenset(f"{obj.__module__}.{obj.__qualname__}" for name in dir(module)
                     if isinstance(obj := getattr(module, name), type) and issubclass(obj, np.dtype))


@functools.cache
def _sklearn_class(name: str) -> bool:
    """A class defined in scikit-learn under exactly ``name`` (``sklearn.tree._tree.Tree``), never a function,
    method or a name that a sklearn module merely imports (``sklearn.utils.something.Popen``)."""
    module, _, attr = name.rpartition(".")
    parts = module.split(".")
    if parts[0] != "sklearn" or len(parts) < 2 or any(p in _SKLEARN_EXCLUDED for p in parts):
        return False
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except Exception:  # noqa: BLE001 - not importable here: not trusted
        return False
    return isinstance(obj, type) and f"{obj.__module__}.{obj.__qualname__}" == name


def is_safe(name: str) -> bool:
    """True if mldeploy trusts ``name`` without the user listing it."""
    if never_trusted(name):
        return False
    return (name in _SAFE_EXACT or name in _scipy_sparse_types() or name in _numpy_dtype_types()
            or _sklearn_class(name))


def untrusted_types(path: Path) -> list[str]:
    """The types in the skops file that skops does not trust by default; reads the schema, builds nothing."""
    try:
        import skops.io as sio
    except ImportError as e:
        from mldeploy.artifacts.detect import missing_framework

        raise missing_framework("skops", "skops", "skops") from e
    try:
        return sorted(sio.get_untrusted_types(file=path))
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as e:
        raise ArtifactError(f"{path} is not a readable skops file ({type(e).__name__}: {str(e)[:200]})",
                            hint="re-save the model with skops.io.dump") from e


def audit(path: Path, user_trusted: Iterable[str] = ()) -> list[str]:
    """The file's untrusted types (to record in model.json) if each is safe or in ``user_trusted``; otherwise
    raise ArtifactError naming the file, the refused types and ``model.trusted_types``."""
    listed = set(user_trusted)
    found = untrusted_types(path)
    forbidden = [t for t in found if never_trusted(t)]
    if forbidden:
        raise ArtifactError(
            f"{path} is a skops file that would call {', '.join(forbidden)} while loading: that runs arbitrary "
            "code or reaches files, processes or the network; refusing it before anything is loaded",
            hint="do not deploy this file (model.trusted_types cannot allow these); if you made it, re-save the "
                 "fitted estimator itself with skops.io.dump")
    refused = [t for t in found if t not in listed and not is_safe(t)]
    if refused:
        listing = "\n".join(f"    - {t}" for t in refused)
        raise ArtifactError(
            f"{path} is a skops file with types mldeploy does not trust: {', '.join(refused)}; loading it would "
            "construct or call them with the file's data, so nothing was loaded",
            hint="if you have read that code and trust it, list the types in mldeploy.yaml:\n"
                 f"  model:\n    trusted_types:\n{listing}")
    return found
