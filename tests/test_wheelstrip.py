"""Debug info is stripped from downloaded wheels on the host, and the stripped wheel still installs and runs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mldeploy.image.wheelstrip import can_strip, strip_wheel, strip_wheels


@pytest.fixture(scope="module")
def uvloop_wheel(tmp_path_factory) -> Path:
    """uvloop's manylinux wheel ships loop.so with debug info (~13 MB of 14)."""
    if not can_strip("linux/amd64"):
        pytest.skip("needs binutils' strip on an x86_64 host")
    d = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(d),
                    "uvloop==0.23.0"], check=True, capture_output=True, timeout=300)
    (wheel,) = d.glob("uvloop-*.whl")
    return wheel


def _so_size(wheel: Path) -> int:
    with zipfile.ZipFile(wheel) as zf:
        return sum(i.file_size for i in zf.infolist() if i.filename.endswith(".so"))


def test_strip_shrinks_uvloop_and_it_still_runs(uvloop_wheel: Path, tmp_path: Path):
    before = _so_size(uvloop_wheel)
    saved = strip_wheel(uvloop_wheel)
    (stripped,) = uvloop_wheel.parent.glob("uvloop-*.whl")
    assert stripped.name == uvloop_wheel.name  # same file name: the lock and pip see the same wheel
    assert saved > 8_000_000 and _so_size(stripped) == before - saved
    assert strip_wheel(stripped) == 0  # idempotent: nothing left to strip
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(stripped)], check=True,
                   capture_output=True)
    r = subprocess.run([str(py), "-c", "import asyncio, uvloop; print(uvloop.run(asyncio.sleep(0, 'ran')))"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "ran"


def test_auditwheel_repaired_wheels_are_left_alone(tmp_path: Path):
    """numpy vendors OpenBLAS (numpy.libs/, patchelf'd): stripping it breaks the import, so it is skipped."""
    if not can_strip("linux/amd64"):
        pytest.skip("needs binutils' strip on an x86_64 host")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d",
                    str(tmp_path), "numpy==2.4.6"], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("numpy-*.whl")
    digest = wheel.read_bytes()
    assert strip_wheel(wheel) == 0 and wheel.read_bytes() == digest


def test_no_strip_for_another_architecture(uvloop_wheel: Path):
    assert not can_strip("linux/arm64")  # x86_64 binutils do not rewrite aarch64 code
    assert strip_wheels([uvloop_wheel], "linux/arm64") == 0
