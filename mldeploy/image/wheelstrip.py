"""Strip debug information from the shared libraries of downloaded wheels (smaller images).

Some wheels ship extension modules built with debug info (uvloop's ``loop.so``: 13.6 MB, 1.6 MB stripped).
Serving never needs it. The base images have no ``strip`` (no binutils) and the build has no network, so this
runs on the host, on the wheelhouse, before the hash lock is written: ``wheel unpack`` → ``strip --strip-debug``
(debug sections only; symbols stay) → ``wheel pack`` (which rewrites RECORD). It only runs when the host can
strip the target's machine code (same architecture) and ``strip`` exists; otherwise wheels are left as they are.
Wheels repaired by auditwheel with vendored libraries (a ``<name>.libs/`` folder: numpy, scipy…) are left alone:
their files were rewritten by patchelf, and stripping such files breaks them ("ELF load command … not
page-aligned").
"""

from __future__ import annotations

import platform as host_platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MIN_GAIN_BYTES = 1 << 20  # repack a wheel only when stripping saves at least 1 MiB
_ARCH = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


def can_strip(target_platform: str) -> bool:
    return shutil.which("strip") is not None and _ARCH.get(target_platform) == host_platform.machine()


def _debug_gain(so: Path) -> int:
    """Bytes saved by ``strip --strip-debug`` (0 when there is nothing to strip or strip fails)."""
    out = so.with_suffix(".stripped")
    proc = subprocess.run(["strip", "--strip-debug", "-o", str(out), str(so)], capture_output=True, check=False)
    if proc.returncode != 0 or not out.exists():
        return 0
    gain = so.stat().st_size - out.stat().st_size
    out.unlink()
    return max(gain, 0)


def strip_wheel(wheel: Path) -> int:
    """Strip ``wheel`` in place when that saves ≥ 1 MiB; returns the bytes saved (uncompressed)."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        if any(n.split("/", 1)[0].endswith(".libs") for n in names):
            return 0  # patchelf'd by auditwheel: see the module docstring
        libs = [i for i in zf.infolist() if i.filename.endswith(".so") and i.file_size >= MIN_GAIN_BYTES]
        targets: list[str] = []
        gain = 0
        with tempfile.TemporaryDirectory() as probe_dir:
            for info in libs:
                g = _debug_gain(Path(zf.extract(info, probe_dir)))
                if g >= MIN_GAIN_BYTES:
                    targets.append(info.filename)
                    gain += g
    if not targets:
        return 0
    with tempfile.TemporaryDirectory() as work:
        subprocess.run([sys.executable, "-m", "wheel", "unpack", "-d", work, str(wheel)], check=True,
                       capture_output=True)
        (root,) = Path(work).iterdir()
        for name in targets:
            subprocess.run(["strip", "--strip-debug", str(root / name)], check=True, capture_output=True)
        packed = Path(work) / "packed"
        packed.mkdir()
        subprocess.run([sys.executable, "-m", "wheel", "pack", "-d", str(packed), str(root)], check=True,
                       capture_output=True)
        (new,) = packed.glob("*.whl")
        wheel.unlink()
        shutil.move(str(new), wheel.parent / new.name)
    return gain


def strip_wheels(wheels: list[Path], target_platform: str) -> int:
    """Strip every wheel that carries debug info; returns the total bytes saved."""
    if not can_strip(target_platform):
        return 0
    return sum(strip_wheel(w) for w in wheels)
