"""Model folders with symlinks (real files): copying a SavedModel folder (``model.path``) or a packaged artifact
folder into the build context follows symlinks, so a link inside either to ``~/.aws`` or ``/`` would ship the
target's files in the image. Each is refused (exit 3) naming the folder, the link and its target — the rule and the
code of ``model.code_paths`` (``mldeploy.artifacts.safe_copy``); links that stay inside are copied as plain files.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from mldeploy.artifacts.formats.tensorflow_fmt import SavedModelHandler
from mldeploy.errors import ArtifactError, ExitCode
from tests.artifact_helpers import cli, edit_config, example


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(project, outside): a project with a (file-level) SavedModel folder and, beside it, a folder of secrets."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    sm = project / "saved_model"
    (sm / "variables").mkdir(parents=True)
    (sm / "saved_model.pb").write_bytes(b"\x08\x01")
    (sm / "variables" / "variables.index").write_bytes(b"idx")
    (project / "vocab.txt").write_text("a\nb\n")
    outside.mkdir()
    (outside / "credentials").write_text("[default]\nnot-for-the-image\n")
    return project, outside


def _native(project: Path, folder: Path, out: Path) -> Path:
    """What ``package`` does with ``convert: none``: the handler copies the folder into the artifact."""
    SavedModelHandler(folder, SimpleNamespace(), project).write_native(out)  # type: ignore[arg-type]
    return out / "saved_model"


def _refused(project: Path, words: str, folder: Path | None = None) -> ArtifactError:
    with pytest.raises(ArtifactError, match=words) as err:
        _native(project, folder or project / "saved_model", project.parent / "artifact")
    assert err.value.exit_code == ExitCode.CONFIG and err.value.message.startswith("model.path: ")
    assert not (project.parent / "artifact" / "saved_model").exists()  # refused before anything is copied
    return err.value


def test_a_link_to_a_file_outside_the_project_is_refused(layout: tuple[Path, Path]) -> None:
    project, outside = layout
    (project / "saved_model" / "assets").mkdir()
    (project / "saved_model" / "assets" / "keys").symlink_to(outside / "credentials")
    _refused(project, r"^model.path: .*/saved_model: the symlink .*/saved_model/assets/keys points to "
                      r".*/outside/credentials, outside the project folder .*/project$")


def test_a_link_to_a_folder_outside_the_project_is_refused(layout: tuple[Path, Path]) -> None:
    project, outside = layout
    (project / "saved_model" / "home").symlink_to(outside, target_is_directory=True)
    _refused(project, r"the symlink .*/saved_model/home points to .*/outside, outside the project folder")


def test_dangling_and_looping_links_are_refused(layout: tuple[Path, Path]) -> None:
    project, _ = layout
    sm = project / "saved_model"
    (sm / "gone").symlink_to(project / "nothing-here")
    _refused(project, r"the symlink .*/saved_model/gone points to .*/nothing-here, which does not exist")
    (sm / "gone").unlink()
    (sm / "variables" / "up").symlink_to(sm, target_is_directory=True)
    _refused(project, r"the symlink .*/variables/up points back to .*/saved_model, a folder it is in \(a loop\)")
    (sm / "variables" / "up").unlink()
    (sm / "self").symlink_to(sm / "self")  # a → a: resolving it loops
    _refused(project, r"the symlink .*/saved_model/self (loops|points to .*/self, which does not exist)")


def test_links_inside_the_project_are_copied_as_plain_files(layout: tuple[Path, Path], tmp_path: Path) -> None:
    project, _ = layout
    sm = project / "saved_model"
    (sm / "assets").mkdir()
    (sm / "assets" / "vocab.txt").symlink_to(Path("../../vocab.txt"))
    copied = _native(project, sm, tmp_path / "artifact")
    assert (copied / "assets" / "vocab.txt").read_text() == "a\nb\n"
    assert not (copied / "assets" / "vocab.txt").is_symlink()
    assert (copied / "variables" / "variables.index").read_bytes() == b"idx"


def test_a_savedmodel_outside_the_project_may_only_link_inside_itself(layout: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    """``model.path`` may name a folder outside the project (an absolute path): its links stay inside it."""
    project, outside = layout
    elsewhere = tmp_path / "models" / "sm"
    (elsewhere / "variables").mkdir(parents=True)
    (elsewhere / "saved_model.pb").write_bytes(b"\x08\x01")
    (elsewhere / "variables" / "data").write_text("w")
    (elsewhere / "same").symlink_to(elsewhere / "variables" / "data")
    assert (_native(project, elsewhere, tmp_path / "ok") / "same").read_text() == "w"
    (elsewhere / "keys").symlink_to(outside / "credentials")
    _refused(project, r"the symlink .*/models/sm/keys points to .*/outside/credentials, outside the SavedModel "
                      r"folder .*/models/sm$", folder=elsewhere)


def test_an_artifact_folder_linking_out_is_refused_before_the_build(layout: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    """``build`` of an artifact folder (``mldeploy package`` writes no links; a hand-edited one may hold one)."""
    from mldeploy.config import load_project
    from mldeploy.image.context import assemble

    project, outside = layout
    (project / "mldeploy.yaml").write_text("name: linked\nmodel:\n  path: saved_model\n")
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "model.json").write_text("{}")
    (artifact / "extra").symlink_to(outside, target_is_directory=True)
    p = load_project(project / "mldeploy.yaml", environ={"AWS_REGION": "us-east-1"})
    with pytest.raises(ArtifactError, match=r"^model artifact .*/artifact: the symlink .*/artifact/extra points to "
                                            r".*/outside, outside the artifact folder") as err:
        assemble(p, artifact, SimpleNamespace(), tmp_path / "ctx", warn=lambda _: None)  # type: ignore[arg-type]
    assert err.value.exit_code == ExitCode.CONFIG
    assert not (tmp_path / "ctx" / "wheels").exists()  # before minutes of wheels


@pytest.mark.slow
def test_mldeploy_package_refuses_a_linked_savedmodel_with_exit_3(tmp_path: Path) -> None:
    """The real CLI on a real (tiny Keras) SavedModel served natively, one link in its assets to outside."""
    pytest.importorskip("tensorflow")
    project = example("keras-tf", tmp_path / "project", epochs=1)
    edit_config(project, convert="none")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "credentials").write_text("[default]\nnot-for-the-image\n")
    (project / "saved_model" / "assets").mkdir(exist_ok=True)
    (project / "saved_model" / "assets" / "aws").symlink_to(outside, target_is_directory=True)
    proc = cli("-f", str(project / "mldeploy.yaml"), "package")
    assert proc.returncode == ExitCode.CONFIG == 3, proc.stderr
    assert "model.path: " in proc.stderr and "the symlink" in proc.stderr
    assert "outside the project folder" in proc.stderr
    assert not any("not-for-the-image" in f.read_text(errors="ignore")
                   for f in (project / ".mldeploy").rglob("*") if f.is_file() and not f.is_symlink())


def test_an_artifact_folder_linking_out_is_refused_before_the_s3_upload(layout: tuple[Path, Path],
                                                                       tmp_path: Path) -> None:
    """``model.store: s3`` hashes and uploads the artifact folder's files: the same rule (``index_artifact``)."""
    from mldeploy.aws import model_upload

    _, outside = layout
    artifact = tmp_path / "artifact"
    (artifact / "weights").mkdir(parents=True)
    (artifact / "model.json").write_text("{}")
    (artifact / "weights" / "keys").symlink_to(outside / "credentials")
    with pytest.raises(ArtifactError, match=r"^model artifact .*/artifact: the symlink .*/weights/keys points to "
                                            r".*/outside/credentials, outside the artifact folder") as err:
        model_upload.index_artifact(artifact)
    assert err.value.exit_code == ExitCode.CONFIG
