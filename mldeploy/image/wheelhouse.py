"""Resolve the image's Python dependencies into a wheelhouse **on the host** (the proxy/CA design).

Why on the host: behind a TLS-intercepting proxy (this machine, many companies) ``pip install`` only works with
the host's CA bundle and pip configuration (index, extra indexes, find-links). Copying that CA or ``pip.conf``
into the image would leak it into a layer, and build args leak into ``docker history``. Instead:

1. The host's own pip (``python -m pip download``) resolves and downloads wheels for the *target* platform and
   Python version (``--only-binary=:all: --platform manylinux…_<arch> --python-version 3.11``). The host's
   pip config, ``PIP_CERT`` and proxy apply naturally, because it is the user's pip doing what it always does.
2. The wheels and a fully pinned, hash-checked lock file go into the build context; the Dockerfile's builder
   stage runs ``pip install --no-index --no-deps --require-hashes`` — no network, no CA, no pip config inside
   the build at all. The runtime stage copies only the finished venv.
3. Wheelhouses are cached on the host, keyed by a hash of the requirements, platform and Python version, so a
   rebuild never re-downloads.

Fargate has no GPU: for ``linux/amd64`` an exact ``torch==X`` pin is rewritten to ``torch==X+cpu`` (the CPU
build, from a find-links folder or the PyTorch CPU index in the user's pip config); ``xgboost`` (≥ 2.1, whose
Linux x86_64 wheel depends on ``nvidia-nccl-cu12``, 469 MB) becomes ``xgboost-cpu`` at the same version; and any
CUDA wheel (``nvidia-*``, ``triton``, ``torch…+cu…``) in the result is refused with the package that pulled it in
and the fix.

GPU deployments (``aws.gpus > 0``, ECS on GPU instances) take the CUDA builds instead: ``onnxruntime`` becomes
``onnxruntime-gpu`` at the same version (onnxruntime's install docs: the CUDA execution provider ships in the
``onnxruntime-gpu`` package), ``torch`` keeps PyPI's default Linux wheel (the CUDA build, with its ``nvidia-*``
dependencies) and the CUDA-wheel refusal does not apply.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mldeploy.errors import BuildError

LOCK_FILE = "requirements.lock"
_DONE = ".complete"
_CUDA_WHEEL = re.compile(r"^(nvidia[_-]|triton-|triton_|cuda[_-])", re.IGNORECASE)
# packages with a CPU-only twin on PyPI (same module, no CUDA dependencies), from the first version that has it
CPU_TWINS = {"xgboost": ("xgboost-cpu", (2, 1, 1))}
GPU_TWINS = {"onnxruntime": "onnxruntime-gpu"}
"""CPU package → its CUDA build (same module, same versions) for ``aws.gpus > 0``."""
_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


@dataclass(frozen=True)
class Wheelhouse:
    """A folder of wheels plus the lock file (``name==version --hash=sha256:…`` per wheel)."""

    dir: Path
    lock: list[str]
    cached: bool

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("*.whl"))


def cache_root() -> Path:
    """``$MLDEPLOY_CACHE_DIR/wheelhouse``, else ``$XDG_CACHE_HOME/mldeploy/wheelhouse`` (``~/.cache``)."""
    if os.environ.get("MLDEPLOY_CACHE_DIR"):
        return Path(os.environ["MLDEPLOY_CACHE_DIR"]) / "wheelhouse"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mldeploy" / "wheelhouse"


def platform_tags(platform: str) -> list[str]:
    """pip ``--platform`` tags for a Docker platform: every manylinux level a glibc ≥ 2.28 base can load.

    pip matches ``--platform`` values exactly, so the compatible older tags must be listed explicitly.
    """
    arch = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}.get(platform)
    if arch is None:
        raise BuildError(f"image.platform {platform!r} is not supported", hint="use linux/amd64 or linux/arm64")
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(36, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += [f"manylinux_2_{minor}_{arch}" for minor in range(16, 4, -1)]
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return tags


def _host_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pin_requirement(line: str, platform: str, gpu: bool = False) -> str:
    """Pin an unpinned requirement to the host's installed version; force the CPU torch build on amd64 (the CUDA
    builds with ``gpu``: ``GPU_TWINS``, PyPI's default torch)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(line)
    except InvalidRequirement as e:
        raise BuildError(f"invalid pip requirement {line!r}: {e}") from e
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker else ""
    if req.url:
        return line
    spec = str(req.specifier)
    if not spec:
        host = _host_version(req.name)
        spec = f"=={host}" if host else ""
    if req.name.lower() == "torch" and gpu:
        spec = re.sub(r"\+cpu$", "", spec)  # the host's CPU build → the same version's default (CUDA) wheel
    elif req.name.lower() == "torch" and platform == "linux/amd64":
        m = re.fullmatch(r"==([0-9][0-9a-z.]*)", spec)
        if m:
            spec = f"=={m.group(1)}+cpu"
    name = req.name
    if gpu and (gpu_name := GPU_TWINS.get(name.lower())):
        name = gpu_name
    elif not gpu and (twin := CPU_TWINS.get(name.lower())):
        name, spec = _cpu_twin(name, twin, spec)
    return f"{name}{extras}{spec}{marker}"


def _cpu_twin(name: str, twin: tuple[str, tuple[int, ...]], spec: str) -> tuple[str, str]:
    """``xgboost==X`` → ``xgboost-cpu==X`` when X has a CPU twin (older versions keep their name: they have no CUDA
    dependency); an unpinned name gets the host's version; other specifiers carry over to the twin."""
    cpu_name, first = twin
    if not spec:
        host = _host_version(cpu_name) or _host_version(name)
        return cpu_name, f"=={host.split('+', 1)[0]}" if host else ""
    m = re.fullmatch(r"===?(\d+(?:\.\d+)*)", spec)
    if m and tuple(int(p) for p in m.group(1).split(".")) < first:
        return name, spec
    return cpu_name, spec


def read_requirements(path: Path) -> list[str]:
    """Requirement lines of a requirements file (comments, blanks and pip options dropped)."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def merge_requirements(groups: list[list[str]], platform: str, gpu: bool = False) -> list[str]:
    """Pinned, de-duplicated requirements (later groups win for the same project name; ``gpu``: CUDA builds)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    merged: dict[str, str] = {}
    for group in groups:
        for line in group:
            pinned = pin_requirement(line, platform, gpu)
            merged[canonicalize_name(Requirement(pinned).name)] = pinned
    return [merged[k] for k in sorted(merged)]


def _key(requirements: list[str], platform: str, python_version: str, find_links: list[Path],
         gpu: bool = False) -> str:
    from mldeploy.image.wheelstrip import can_strip

    # can_strip is part of the key: a wheelhouse made where wheels could not be stripped is not reused where
    # they can ("strip-2" versions the post-processing itself)
    blob = json.dumps([requirements, platform, python_version, [str(p) for p in find_links],
                       "strip-2" if can_strip(platform) else "as-downloaded", *(["gpu"] if gpu else [])],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_TORCH_HINT = ("pin the CPU build (torch==X.Y.Z+cpu) and add https://download.pytorch.org/whl/cpu as an extra "
               "index in your pip configuration, or put the CPU wheel in image.wheelhouse")


def _requires(wheel: Path) -> tuple[str, str, list[str]]:
    """(project, version, required project names) from a wheel's METADATA."""
    import zipfile

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    m = _WHEEL_NAME.match(wheel.name)
    name, version = (m["name"], m["version"]) if m else (wheel.name, "")
    needs: list[str] = []
    try:
        with zipfile.ZipFile(wheel) as zf:
            meta = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
            text = zf.read(meta).decode("utf-8", "replace") if meta else ""
    except (OSError, zipfile.BadZipFile):
        text = ""
    for line in text.splitlines():
        if line.startswith("Requires-Dist:"):
            try:
                needs.append(canonicalize_name(Requirement(line.split(":", 1)[1].strip()).name))
            except InvalidRequirement:
                continue
    return canonicalize_name(name), version, needs


def _fix_for(requirer: str) -> str:
    if requirer == "torch":
        return _TORCH_HINT
    if twin := CPU_TWINS.get(requirer):
        return (f"use the CPU-only wheel {twin[0]} instead of {requirer} (mldeploy does this for the requirements "
                f"it writes; replace {requirer!r} with {twin[0]!r} in image.pip_packages, or pin {requirer} "
                f"to a version that has {twin[0]})")
    return (f"{requirer} pulls in CUDA wheels: pin a CPU-only build of {requirer} (or one without the GPU extra), "
            "or remove it from image.pip_packages")


def cuda_error(bad: list[str], requirers: dict[str, list[str]]) -> BuildError:
    """The refusal: the CUDA wheels, which packages require them, and the fix for each of those packages."""
    who = sorted({r for rs in requirers.values() for r in rs})
    listed = ", ".join(sorted(bad)[:8]) + (f" (required by {', '.join(who)})" if who else "")
    hints = [_fix_for(r.split(" ", 1)[0]) for r in who] or [_TORCH_HINT]
    return BuildError("the resolved dependencies contain CUDA wheels, but a CPU deployment (Fargate has no GPU) "
                      f"must not carry them: {listed}", hint="; ".join(dict.fromkeys(hints)))


def check_no_cuda(wheels: list[Path]) -> None:
    """Refuse CUDA wheels: Fargate has no GPU and they add gigabytes. The error names who requires them."""
    bad = [w for w in wheels if _CUDA_WHEEL.match(w.name) or re.match(r"torch-[^-]*\+cu\d", w.name)]
    if not bad:
        return
    from packaging.utils import canonicalize_name

    bad_names = {canonicalize_name(_WHEEL_NAME.match(w.name)["name"]) if _WHEEL_NAME.match(w.name) else w.name: w.name
                 for w in bad}
    requirers: dict[str, list[str]] = {}
    for w in wheels:
        if w in bad:
            if w.name.startswith("torch-"):
                requirers.setdefault(w.name, []).append("torch")
            continue
        name, version, needs = _requires(w)
        for n in needs:
            if n in bad_names:
                requirers.setdefault(bad_names[n], []).append(f"{name} {version}".strip())
    raise cuda_error([w.name for w in bad], requirers)


_PIP_CUDA = re.compile(r"(?:requirement|distribution found for) (?P<dep>(?:nvidia|triton|cuda)[\w.-]*)[^\n]*?\(from "
                       r"(?P<by>[A-Za-z0-9_.-]+)", re.IGNORECASE)


def _cuda_in_pip_failure(output: str) -> BuildError | None:
    """pip failed on a CUDA dependency (e.g. no ``nvidia-nccl-cu12`` wheel on the index): say who wants it."""
    found = {m["dep"]: m["by"] for m in _PIP_CUDA.finditer(output)}
    if not found:
        return None
    from packaging.utils import canonicalize_name

    return cuda_error(sorted(found), {dep: [canonicalize_name(by)] for dep, by in found.items()})


def _lock_lines(folder: Path) -> list[str]:
    lines = []
    for wheel in sorted(folder.glob("*.whl")):
        m = _WHEEL_NAME.match(wheel.name)
        if not m:
            raise BuildError(f"unexpected wheel file name {wheel.name} in {folder}")
        lines.append(f"{m['name']}=={m['version']} --hash=sha256:{_sha256(wheel)}")
    return lines


def _host_constraints() -> list[str]:
    """``name==version`` of every distribution installed on the host: transitive deps match what was tested."""
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name and dist.version and not name.startswith("mldeploy"):
            seen[name.lower()] = f"{name}=={dist.version}"
    return sorted(seen.values())


def _pip_download(args: list[str], log: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "download", "--progress-bar", "off", "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}", encoding="utf-8")
    return proc


def ensure_wheelhouse(requirements: list[str], *, platform: str, python_version: str,
                      find_links: list[Path] | None = None, status=None, gpu: bool = False) -> Wheelhouse:
    """Download (or reuse from the cache) wheels for ``requirements`` on the target platform (``gpu``: CUDA
    wheels allowed; otherwise refused, ``check_no_cuda``)."""
    find_links = [p.resolve() for p in (find_links or [])]
    for p in find_links:
        if not p.is_dir():
            raise BuildError(f"image.wheelhouse folder {p} does not exist")
    target = cache_root() / _key(requirements, platform, python_version, find_links, gpu)
    if (target / _DONE).exists():
        return Wheelhouse(target, (target / LOCK_FILE).read_text(encoding="utf-8").splitlines(), cached=True)

    if status:
        status(f"downloading wheels for {platform} / Python {python_version} ({len(requirements)} requirements)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        req_file = tmp / "requirements.in"
        req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        constraints = tmp / "constraints.txt"
        constraints.write_text("\n".join(_host_constraints()) + "\n", encoding="utf-8")
        wheels = tmp / "wheels"
        args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
                "--abi", f"cp{python_version.replace('.', '')}", "-d", str(wheels), "-r", str(req_file)]
        for tag in platform_tags(platform):
            args += ["--platform", tag]
        for p in find_links:
            args += ["--find-links", str(p)]
        log = tmp / "pip-download.log"
        # First with the host's versions as constraints (the image runs what was tested); if the target platform
        # lacks some of those wheels, resolve freely.
        proc = _pip_download([*args, "-c", str(constraints)], log)
        if proc.returncode != 0:
            shutil.rmtree(wheels, ignore_errors=True)
            proc = _pip_download(args, log)
        if proc.returncode != 0:
            if not gpu and (cuda := _cuda_in_pip_failure(proc.stderr + proc.stdout)):
                raise cuda
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise BuildError(
                f"pip could not download wheels for {platform} / Python {python_version}:\n{tail}",
                hint="every requirement needs a binary wheel for the target platform (sdists are not built); "
                "check the requirement pins, image.platform and your pip index configuration",
            )
        found = sorted(wheels.glob("*.whl"))
        if not gpu:
            check_no_cuda(found)
        from mldeploy.image.wheelstrip import strip_wheels

        saved = strip_wheels(found, platform)
        if status and saved:
            status(f"stripped debug info from the wheels: {saved / 1e6:.1f} MB less in the image")
        lock = _lock_lines(wheels)
        (wheels / LOCK_FILE).write_text("\n".join(lock) + "\n", encoding="utf-8")
        (wheels / "requirements.in").write_text(req_file.read_text(encoding="utf-8"), encoding="utf-8")
        (wheels / _DONE).write_text("ok\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        wheels.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Wheelhouse(target, lock, cached=False)
