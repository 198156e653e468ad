"""``model.code_paths`` with symlinks (real files): copying into the image follows symlinks, so a link inside a
package folder (or an entry that is itself a link) to somewhere outside the project would ship the target's files —
``~/.aws``, a home folder, ``/`` — in the image. Each is refused naming the entry, the link and its target; links
that stay inside the project are copied as before. The refusal is the CLI's too (``mldeploy package``: exit 3)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from mldeploy.artifacts import code_paths
from mldeploy.errors import ArtifactError, ExitCode


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(project, outside): a project with the package ``src/mypkg`` and, beside the project, a folder of secrets."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    (project / "src" / "mypkg").mkdir(parents=True)
    (project / "src" / "mypkg" / "__init__.py").write_text("X = 1\n")
    (project / "common").mkdir()
    (project / "common" / "shared.py").write_text("Y = 2\n")
    outside.mkdir()
    (outside / "credentials.txt").write_text("aws_secret=not-for-the-image\n")
    (outside / "features.py").write_text("Z = 3\n")
    return project, outside


def _refused(project: Path, entries: list[str], words: str) -> ArtifactError:
    with pytest.raises(ArtifactError, match=words) as err:
        code_paths.resolve(project, entries)
    assert err.value.exit_code == ExitCode.CONFIG and err.value.message.startswith("model.code_paths: ")
    return err.value


def test_a_link_inside_a_package_to_a_file_outside_the_project_is_refused(layout: tuple[Path, Path]) -> None:
    project, outside = layout
    (project / "src" / "mypkg" / "data.txt").symlink_to(outside / "credentials.txt")
    _refused(project, ["src/mypkg"], r"^model.code_paths: src/mypkg: the symlink .*/src/mypkg/data.txt points to "
                                     r".*/outside/credentials.txt, outside the project folder")


def test_a_link_inside_a_package_to_a_folder_outside_the_project_is_refused(layout: tuple[Path, Path]) -> None:
    project, outside = layout
    (project / "src" / "mypkg" / "sub").mkdir()
    (project / "src" / "mypkg" / "sub" / "home").symlink_to(outside, target_is_directory=True)
    _refused(project, ["src/mypkg"], r"the symlink .*/sub/home points to .*/outside, outside the project folder")


def test_an_entry_that_links_outside_the_project_is_refused(layout: tuple[Path, Path]) -> None:
    project, outside = layout
    (project / "features.py").symlink_to(outside / "features.py")
    _refused(project, ["features.py"], r"^model.code_paths: features.py: resolves to .*/outside/features.py, "
                                       r"outside the project folder .* \(a symlink\)")


def test_dangling_and_looping_links_are_refused_not_copied_forever(layout: tuple[Path, Path]) -> None:
    project, _ = layout
    pkg = project / "src" / "mypkg"
    (pkg / "gone.py").symlink_to(project / "nothing-here.py")
    _refused(project, ["src/mypkg"], r"the symlink .*/gone.py points to .*/nothing-here.py, which does not exist")
    (pkg / "gone.py").unlink()
    (pkg / "again").symlink_to(pkg, target_is_directory=True)
    _refused(project, ["src/mypkg"], r"the symlink .*/mypkg/again points back to .*/mypkg, a folder it is in")


def test_links_inside_the_project_are_copied_as_files(layout: tuple[Path, Path], tmp_path: Path) -> None:
    project, _ = layout
    pkg = project / "src" / "mypkg"
    (pkg / "shared.py").symlink_to(Path("../../common/shared.py"))
    (pkg / "common").symlink_to(project / "common", target_is_directory=True)
    (pkg / ".env").symlink_to(Path("/nonexistent/.env"))  # never copied (SKIP), so not checked either
    paths = code_paths.resolve(project, ["src/mypkg", "common/shared.py"])
    code_paths.copy_into(paths, tmp_path / "image-code")
    copied = tmp_path / "image-code" / "mypkg"
    assert (copied / "shared.py").read_text() == "Y = 2\n" and not (copied / "shared.py").is_symlink()
    assert (copied / "common" / "shared.py").read_text() == "Y = 2\n"
    assert not (copied / ".env").exists() and (tmp_path / "image-code" / "shared.py").is_file()


def test_mldeploy_package_refuses_the_link_with_exit_3(layout: tuple[Path, Path]) -> None:
    from sklearn.linear_model import LinearRegression

    project, outside = layout
    (project / "model.pkl").write_bytes(pickle.dumps(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])))
    (project / "mldeploy.yaml").write_text("name: linked\nmodel:\n  path: model.pkl\n  convert: none\n"
                                           "  code_paths: [src/mypkg]\n")
    (project / "src" / "mypkg" / "keys").symlink_to(outside, target_is_directory=True)
    proc = subprocess.run([sys.executable, "-m", "mldeploy", "-f", str(project / "mldeploy.yaml"), "package"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == ExitCode.CONFIG == 3, proc.stderr
    assert "model.code_paths: src/mypkg: the symlink" in proc.stderr and "outside the project folder" in proc.stderr
    assert "copy the file there instead of linking to it" in " ".join(proc.stderr.split())  # CI wraps at 120
