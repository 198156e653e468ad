"""skops files are audited before anything in them is constructed (issue 15, item 1).

The attack: a skops file whose estimator attribute dict holds a ``ConstructorFromReduceNode`` calling
``builtins.exec``. Before the fix it passed ``validate``, ran during ``mldeploy package`` (which trusted every
``builtins.*`` type) and again at server start (which trusted every type in the file).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from mldeploy.artifacts import package
from mldeploy.artifacts.skops_trust import audit, is_safe
from mldeploy.errors import ArtifactError, ConfigError, ExitCode
from runtime.loaders import ModelLoadError, load_model
from runtime.manifest import Manifest
from tests.artifact_helpers import cli, project

sio = pytest.importorskip("skops.io")


def _iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, y


def evil_skops(dest: Path, marker: Path) -> Path:
    """A valid LogisticRegression skops file plus an ``_evil`` attribute that ``exec``s code writing ``marker``
    (the node from the security review)."""
    from sklearn.linear_model import LogisticRegression

    src = io.BytesIO(sio.dumps(LogisticRegression(max_iter=500).fit(*_iris())))
    out = io.BytesIO()
    code = f"open({str(marker)!r}, 'a').write('code ran')"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "schema.json":
                schema = json.loads(data)
                attrs = schema["content"]
                attrs["content"]["_evil"] = {
                    "__class__": "exec", "__module__": "builtins", "__loader__": "ConstructorFromReduceNode",
                    "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                                "content": [{"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
                                             "content": json.dumps(code), "is_json": True}]}}
                attrs["key_types"]["content"].append(
                    {"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"})
                data = json.dumps(schema).encode()
            zout.writestr(name, data)
    dest.write_bytes(out.getvalue())
    return dest


def write_config(folder: Path, path: str = "model.skops", **model: object) -> None:
    doc = {"name": "skt", "model": {"path": path, "format": "skops", "convert": "none", **model}}
    (folder / "mldeploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def rf_pipeline() -> object:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5, random_state=0)).fit(*_iris())


def rewrite_manifest(folder: Path, **changes: object) -> Manifest:
    m = Manifest.load(folder).model_copy(update={"sha256": hashlib.sha256((folder / "model.skops").read_bytes())
                                                 .hexdigest(), **changes})
    m.save(folder)
    return m


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """(project folder with the malicious model.skops, the marker file its payload would write)."""
    marker = tmp_path / "PWNED"
    evil_skops(tmp_path / "model.skops", marker)
    write_config(tmp_path)
    return tmp_path, marker


def test_the_reproduction_really_executes_without_the_audit(tmp_path: Path) -> None:
    """Guard for the fixture: plain skops, trusting what the file lists (the old runtime), runs the payload."""
    marker = tmp_path / "PWNED"
    path = evil_skops(tmp_path / "model.skops", marker)
    assert sio.get_untrusted_types(file=path) == ["builtins.exec"]
    sio.load(path, trusted=sio.get_untrusted_types(file=path))
    assert marker.read_text() == "code ran"


def test_package_refuses_the_exec_payload_before_loading(evil: tuple[Path, Path]) -> None:
    folder, marker = evil
    with pytest.raises(ArtifactError, match=r"model\.skops is a skops file that would call builtins\.exec") as e:
        package(project(folder))
    assert "model.trusted_types cannot allow" in (e.value.hint or "")
    assert not marker.exists() and not (folder / ".mldeploy" / "default" / "artifact").exists()


def test_cli_validate_and_package_refuse_it(evil: tuple[Path, Path]) -> None:
    folder, marker = evil
    for command in ("validate", "package"):
        res = cli(command, cwd=folder)
        assert res.returncode == ExitCode.BUILD, (command, res.stdout, res.stderr)
        assert "model.skops" in res.stderr and "builtins.exec" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
        assert not marker.exists(), command


def test_listing_exec_in_trusted_types_is_a_config_error(evil: tuple[Path, Path]) -> None:
    folder, marker = evil
    for bad, why in [("builtins.exec", "mldeploy never trusts it"), ("os.system", "never trusts"),
                     ("operator.attrgetter", "never trusts"), ("builtins.__import__", "never trusts"),
                     ("not a name", "not a fully qualified name")]:
        write_config(folder, trusted_types=[bad])
        with pytest.raises(ConfigError, match=r"model\.trusted_types") as e:
            project(folder)
        assert why in str(e.value), (bad, str(e.value))
    assert not marker.exists()


def test_unknown_custom_type_is_refused_then_works_when_listed(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "skt_custom_mod.py").write_text(
        "from sklearn.base import BaseEstimator, TransformerMixin\n\n\n"
        "class Shift(TransformerMixin, BaseEstimator):\n"
        "    def fit(self, X, y=None):\n        self.n_features_in_ = X.shape[1]\n        return self\n\n"
        "    def transform(self, X):\n        return X + 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import skt_custom_mod  # type: ignore[import-not-found]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    x, y = _iris()
    model = make_pipeline(skt_custom_mod.Shift(), LogisticRegression(max_iter=500)).fit(x, y)
    sio.dump(model, tmp_path / "model.skops")
    monkeypatch.delitem(sys.modules, "skt_custom_mod")
    write_config(tmp_path)
    with pytest.raises(ArtifactError, match=r"types mldeploy does not trust: skt_custom_mod\.Shift") as e:
        package(project(tmp_path))
    assert "trusted_types:\n    - skt_custom_mod.Shift" in (e.value.hint or "")

    write_config(tmp_path, trusted_types=["skt_custom_mod.Shift"])
    result = package(project(tmp_path))
    m = result.manifest
    assert (m.format, m.trusted_types) == ("skops", ["skt_custom_mod.Shift"])
    served = load_model(m, result.dir, threads=1)
    out = served.predict({"input": x[:10].astype(np.float32)})
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(x[:10]), atol=1e-6)


def test_sklearn_pipeline_packages_and_serves_with_its_recorded_types(tmp_path: Path) -> None:
    model = rf_pipeline()
    sio.dump(model, tmp_path / "model.skops")
    write_config(tmp_path)
    result = package(project(tmp_path))
    m = result.manifest
    assert m.format == "skops" and m.trusted_types == ["sklearn.tree._tree.Tree"]
    assert json.loads((result.dir / "model.json").read_text())["trusted_types"] == ["sklearn.tree._tree.Tree"]
    x, _ = _iris()
    out = load_model(m, result.dir, threads=1).predict({"input": x.astype(np.float32)})
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(x.astype(np.float32)), atol=1e-6)
    assert (out["label"] == model.predict(x.astype(np.float32))).all()


def test_runtime_refuses_an_artifact_whose_trusted_list_does_not_cover_the_file(tmp_path: Path) -> None:
    sio.dump(rf_pipeline(), tmp_path / "model.skops")
    write_config(tmp_path)
    art = package(project(tmp_path)).dir

    m = rewrite_manifest(art, trusted_types=[])  # the list no longer covers the file's Tree
    with pytest.raises(ModelLoadError, match=r"contains types that model\.json does not trust "
                                             r"\(sklearn\.tree\._tree\.Tree\)"):
        load_model(m, art, threads=1)

    marker = tmp_path / "PWNED"  # file swapped and its sha256 rewritten, but not the trusted list
    evil_skops(art / "model.skops", marker)
    m = rewrite_manifest(art, trusted_types=["sklearn.tree._tree.Tree"])
    with pytest.raises(ModelLoadError, match=r"does not trust \(builtins\.exec\)"):
        load_model(m, art, threads=1)
    m = rewrite_manifest(art, trusted_types=["builtins.exec"])  # and with the list rewritten too
    with pytest.raises(ModelLoadError, match=r"model\.json trusts types that run code .*builtins\.exec"):
        load_model(m, art, threads=1)
    assert not marker.exists()


def test_artifacts_without_a_recorded_list_load_only_skops_defaults(tmp_path: Path) -> None:
    """model.json files written before ``trusted_types`` existed: plain estimators still load, others do not."""
    from sklearn.linear_model import LogisticRegression

    sio.dump(LogisticRegression(max_iter=500).fit(*_iris()), tmp_path / "model.skops")
    write_config(tmp_path)
    art = package(project(tmp_path)).dir
    m = rewrite_manifest(art, trusted_types=None)
    assert load_model(m, art, threads=1).predict({"input": _iris()[0][:2].astype(np.float32)})["label"].shape == (2,)
    sio.dump(rf_pipeline(), art / "model.skops")
    with pytest.raises(ModelLoadError, match=r"does not trust \(sklearn\.tree\._tree\.Tree\)"):
        load_model(rewrite_manifest(art, trusted_types=None), art, threads=1)


@pytest.mark.parametrize("name", [
    "sklearn.tree._tree.Tree", "sklearn.utils._bunch.Bunch", "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", "numpy.dtype",
    "scipy.sparse._csr.csr_matrix", "builtins.frozenset", "collections.OrderedDict",
])
def test_safe_set_holds_estimator_internals_and_containers(name: str) -> None:
    assert is_safe(name)


@pytest.mark.parametrize("name", [
    "builtins.exec", "builtins.eval", "builtins.getattr", "builtins.__import__", "builtins.compile",
    "builtins.open", "os.system", "subprocess.Popen", "operator.attrgetter", "functools.partial",
    "collections.namedtuple", "numpy.load", "json.dumps",
    "sklearn.base.clone",  # a function
    "sklearn.base.defaultdict", "sklearn.utils.validation.Parameter",  # names sklearn merely imports
    "sklearn.base.BaseEstimator.__reduce__", "sklearn.utils._testing.TempMemmap", "sklearn.no_such.Thing",
])
def test_safe_set_excludes_callables_and_system_access(name: str) -> None:
    assert not is_safe(name)


def test_audit_accepts_user_listed_types_only(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "f.skops"
    sio.dump(FunctionTransformer(func=json.dumps), path)
    with pytest.raises(ArtifactError, match=r"f\.skops is a skops file with types mldeploy does not trust: "
                                            r"json\.dumps"):
        audit(path)
    assert audit(path, ["json.dumps"]) == ["json.dumps"]
    (tmp_path / "bad.skops").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match=r"bad\.skops is not a readable skops file"):
        audit(tmp_path / "bad.skops")
