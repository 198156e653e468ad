"""Supply chain and secrets: the build context is scanned before the build (secrets refuse the build naming the
file, clutter such as ``.git``/``.env`` is excluded with a warning), the rules do not fire on what mldeploy ships,
the ECS task definition runs with a read-only root filesystem (read back from moto), pickles are hash-verified.
Layer scans of a real image and the read-only container run live in ``test_hardening_container.py``."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml

from benchmarks import models as ex
from benchmarks.hardening_summary import record
from mldeploy.errors import BuildError
from mldeploy.image import scan

ROOT = Path(__file__).resolve().parent.parent
AWS_KEY = "AKIA" + "QWERTYUIOPASDFGH"  # split: this file must not trip scanners itself
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
PRIVATE = "-----BEGIN OPENSSH " + "PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def _project(tmp: Path):
    from mldeploy.config import load_project

    (tmp / "model.onnx").write_bytes(b"x")
    (tmp / "mldeploy.yaml").write_text(yaml.safe_dump({"name": "scan", "model": {"path": "model.onnx"}}))
    return load_project(tmp / "mldeploy.yaml", None)


@pytest.fixture
def artifact(tmp_path):
    folder = tmp_path / "artifact"
    manifest = ex.iris_onnx(folder, n_estimators=3)
    return folder, manifest


@pytest.mark.parametrize("name, content, rule", [
    ("id_rsa", PRIVATE, "SSH private key"),
    ("deploy.pem", "whatever", "PEM key/certificate file"),
    (".aws/credentials", f"[default]\naws_access_key_id = {AWS_KEY}\n", "AWS credentials file"),
    (".netrc", "machine x login y password z", "netrc credentials"),
    ("notes/readme.txt", f"line one\nkey = {AWS_KEY}\n", "AWS access key id"),
    ("config.json", json.dumps({"aws_secret_access_key": SECRET}), "AWS secret access key"),
    ("assets/vocab.txt", "a\nb\n" + PRIVATE, "private key"),
])
def test_secrets_in_the_artifact_refuse_the_build_naming_the_file(tmp_path, artifact, name, content, rule):
    from mldeploy.image.context import assemble

    folder, manifest = artifact
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    with pytest.raises(BuildError) as err:
        assemble(_project(tmp_path), folder, manifest, tmp_path / "ctx")
    msg = err.value.message
    assert str(path) in msg and rule in msg and "refusing to build" in msg, msg
    assert "aws.secrets" in (err.value.hint or "")
    if rule in ("AWS access key id", "private key"):
        assert f"{path}:{content[:content.index(AWS_KEY if 'AKIA' in content else '-----BEGIN')].count(chr(10)) + 1}"\
            in msg
    assert not (tmp_path / "ctx").exists()  # refused before anything was written or downloaded
    record("secrets", f"planted {name} in the artifact", {"finding": rule, "build": "refused"})


def test_secret_in_sample_input_is_refused_through_model_json(tmp_path, artifact):
    """A credential pasted into the sample (``model.sample_input``) is copied into model.json by ``package``."""
    from mldeploy.image.context import assemble

    folder, manifest = artifact
    doc = json.loads((folder / "model.json").read_text())
    doc["description"] = f"token {AWS_KEY}"
    (folder / "notes.json").write_text(json.dumps(doc, indent=1))
    with pytest.raises(BuildError, match=r"notes\.json:\d+: AWS access key id"):
        assemble(_project(tmp_path), folder, manifest, tmp_path / "ctx")


def test_clutter_is_reported_and_excluded_not_refused(tmp_path):
    root = tmp_path / "a"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("[core]")
    (root / ".env").write_text(f"AWS_SECRET_ACCESS_KEY={SECRET}")  # excluded wholesale: never read
    (root / ".env.prod").write_text("X=1")
    (root / "model.onnx").write_bytes(os.urandom(4096))
    warnings = []
    scan.check_tree(root, "model artifact", warn=warnings.append)
    assert warnings and all(n in warnings[0] for n in (".git", ".env", ".env.prod"))
    assert scan.copy_ignore(str(root), [".git", ".env", ".env.prod", "model.onnx"]) == {".git", ".env", ".env.prod"}


def test_no_false_positives_on_what_mldeploy_ships(tmp_path):
    """The runtime package, templates, examples (their model files and sample inputs) and a packaged artifact with
    sha256 digests and float arrays scan clean."""
    folders = [ROOT / "runtime", ROOT / "templates", *(p for p in (ROOT / "examples").iterdir() if p.is_dir())]
    ex.iris_onnx(tmp_path / "onnx")
    ex.iris_sklearn(tmp_path / "pkl", "pickle")
    folders += [tmp_path / "onnx", tmp_path / "pkl"]
    files = 0
    for folder in folders:
        _, secrets = scan.scan_tree(folder)
        assert secrets == [], secrets
        files += sum(1 for p in folder.rglob("*") if p.is_file())
    record("secrets", "scan of runtime/, templates/, examples/, artifacts (false positives)",
           {"files": files, "findings": 0})


def test_layer_scan_finds_secrets_in_a_tarball_and_skips_whiteouts():
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [("app/model/model.json", b'{"sha256": "' + b"a" * 64 + b'"}'),
                           ("app/model/.wh.old", b""), ("root/.aws/credentials", b"[default]"),
                           ("opt/venv/x.py", b"k = '" + AWS_KEY.encode() + b"'")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    found = scan.scan_layer(buf.getvalue())
    assert {(f.path, f.rule) for f in found} == {("root/.aws/credentials", "AWS credentials file"),
                                                 ("opt/venv/x.py", "AWS access key id")}
    assert scan.name_rule(PurePosixPath("a/b/id_ed25519")) == "SSH private key"


# ------------------------------------------------------------------------------------------ pickle integrity


def test_tampered_pickle_is_refused_before_unpickling(tmp_path):
    """A pickle swapped after packaging never runs: the runtime checks model.json's sha256 first."""
    folder = tmp_path / "pkl"
    ex.iris_sklearn(folder, "pickle")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    model_file = next(p for p in folder.iterdir() if p.suffix in (".pkl", ".pickle"))
    model_file.write_bytes(pickle.dumps(Evil()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLDEPLOY_")}
    proc = subprocess.run([sys.executable, "-m", "runtime", "--model-dir", str(folder), "--port", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "does not match model.json" in out, out[-2000:]
    assert not marker.exists()


# ------------------------------------------------------------------------------- read-only root filesystem


def test_task_definition_has_read_only_root_and_writable_tmp(tmp_path, aws, moto_server):
    from tests.test_aws_helpers import Project

    project = Project(tmp_path, aws)
    r = project.run("up", "--image", "registry.example/demo:1", "--no-wait")
    assert r.rc == 0, r.stderr
    ecs = moto_server.client("ecs")
    td = ecs.describe_task_definition(taskDefinition="demo")["taskDefinition"]
    (c,) = td["containerDefinitions"]
    assert c["readonlyRootFilesystem"] is True
    assert {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False} in c["mountPoints"]
    assert {"name": "tmp"} in [{"name": v["name"]} for v in td["volumes"]]
    assert project.run("plan", "--json").json["changes"] == 0  # read back equal: no perpetual diff
    record("secrets", "task definition (moto read-back)",
           {"readonlyRootFilesystem": True, "writable": "/tmp volume"})
