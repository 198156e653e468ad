"""``mldeploy package``: model file + config → verified artifact folder (``model.json`` + served model).

Steps: detect the format, load the original, read its signature, convert (ONNX by default), check parity
between original and converted outputs, and write the manifest. The result is cached on the source file's
sha256 plus the relevant config, so an unchanged model re-packages instantly and byte-identically.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mldeploy.artifacts import features, missing
from mldeploy.artifacts import sample as samples
from mldeploy.artifacts.detect import resolve_format
from mldeploy.artifacts.formats import Handler, handler_for
from mldeploy.artifacts.formats.base import Served, Signature
from mldeploy.artifacts.formats.onnx_fmt import infer_roles
from mldeploy.artifacts.hashing import sha256_path, size_bytes
from mldeploy.artifacts.parity import compare, served_single_row_ms
from mldeploy.artifacts.verify import verify
from mldeploy.errors import ArtifactError, ConfigError, Location, Problem
from mldeploy.gitinfo import git_commit
from runtime.manifest import ImageSpec, Manifest, ParityReport, Tensor

if TYPE_CHECKING:
    from mldeploy.config import Project

KEY_FILE = ".package-key"
QUANTIZE_FILE = ".quantize.json"  # the before/after figures of model.quantize, shown again on a cached package
CACHE_VERSION = "5"  # 2: feature names from the model, ONNX inputs and the sample (artifacts.features); 3: their
# source and DataFrame models (formats.sklearn_frame) in model.json; 4: allow_missing per input, classes_ dtype;
# 5: DataFrame models converted to ONNX (formats.sklearn_frame_onnx), category columns


@dataclass
class PackageResult:
    dir: Path
    manifest: Manifest
    cached: bool = False
    source_path: Path | None = None
    source_size: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. why ONNX conversion was skipped
    quantization: dict[str, Any] | None = None  # model.quantize: sizes, single-row latency, parity, kept or not

    @property
    def model_file(self) -> Path:
        return self.dir / self.manifest.file


def default_output(project: Project) -> Path:
    """``.mldeploy/<env>/artifact`` (mldeploy.workspace)."""
    from mldeploy.workspace import Workspace

    return Workspace.of(project).artifact_dir


def _cache_key(project: Project, source_sha: str) -> str:
    import hashlib

    from mldeploy import __version__

    cfg = project.config.model
    extra = {}
    if cfg.sample_input:
        p = project.resolve(cfg.sample_input)
        extra["sample"] = sha256_path(p) if p.exists() else "missing"
    if cfg.torch_class:
        extra["torch_class_file"] = _module_file_sha(project.root, cfg.torch_class.split(":")[0])
    doc = {"v": CACHE_VERSION, "mldeploy": __version__, "name": project.config.name, "source": source_sha,
           "model": cfg.model_dump(mode="json"), **extra}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _module_file_sha(root: Path, module: str) -> str:
    rel = Path(*module.split("."))
    for cand in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        if cand.is_file():
            return sha256_path(cand)
    return "unknown"


def _cached(out: Path, key: str, source: Path) -> PackageResult | None:
    key_file = out / KEY_FILE
    if not key_file.is_file() or key_file.read_text().strip() != key:
        return None
    try:
        manifest = verify(out)
    except ArtifactError:
        return None  # tampered or incomplete: rebuild
    quant = json.loads((out / QUANTIZE_FILE).read_text()) if (out / QUANTIZE_FILE).is_file() else None
    return PackageResult(dir=out, manifest=manifest, cached=True, source_path=source, source_size=size_bytes(source),
                         quantization=quant)


def _config_error(project: Project, field_name: str, message: str) -> ConfigError:
    return ConfigError([Problem(Location(str(project.path)), field_name, message)])


def package(project: Project, output_dir: Path | None = None, *, force: bool = False) -> PackageResult:
    """Build (or reuse) the artifact folder for ``project``; see the module docstring."""
    cfg = project.config.model
    source = project.resolve(cfg.path)
    if not source.exists():
        raise _config_error(project, "model.path", f"{cfg.path} does not exist (resolved to {source})")
    out = Path(output_dir) if output_dir else default_output(project)
    source_sha = sha256_path(source)
    key = _cache_key(project, source_sha)
    if not force and (hit := _cached(out, key, source)):
        return hit

    fmt = resolve_format(source, cfg.format.value)
    handler = handler_for(fmt)(source, cfg, project.root)
    handler.load()
    handler = handler.specialized()
    sig = handler.signature()
    if cfg.image and len(sig.inputs) == 1 and len(sig.inputs[0].shape) != 4:
        raise _config_error(project, "model.image", f"the model input {sig.inputs[0].name!r} has shape "
                            f"{sig.inputs[0].shape}, not an image batch (N×C×H×W or N×H×W×C)")
    sample_path = project.resolve(cfg.sample_input) if cfg.sample_input else None
    sig.feature_names = _feature_names(project, handler, sig, sample_path)
    sample = samples.read_sample(sample_path, sig.inputs, sig.feature_names) if sample_path else None
    rows = cfg.parity.samples
    x = samples.parity_inputs(sig.inputs, sample, rows)
    try:
        reference = handler.predict(x)
    except ArtifactError:
        raise
    except Exception as e:  # the user's model raised on inputs matching its own signature
        raise ArtifactError(f"running the model on {rows} inputs shaped like its signature failed: "
                            f"{type(e).__name__}: {str(e)[:300]}",
                            hint="check model.inputs / model.image / model.sample_input") from e
    sig.task = infer_roles(sig.outputs, sig.task, reference)
    if sig.task == "classification" and len(sig.inputs) == 1 and len(sig.inputs[0].shape) == 4:
        sig.task = "image-classification"
    _check_labels(project, sig, reference)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        served, parity, notes = _produce(handler, sig, tmp, x, reference, cfg.convert.value, rows, cfg.parity)
        quant = None
        if cfg.quantize == "int8":
            from mldeploy.artifacts.quantize import quantize_int8

            served, parity, quant = quantize_int8(handler, sig, tmp, x, reference, served, parity, cfg.quantize_parity)
            notes += quant.pop("notes", [])
            (tmp / QUANTIZE_FILE).write_text(json.dumps(quant, sort_keys=True) + "\n")
        if bad := missing.check_package(handler, served, tmp, cfg.inputs, sig.inputs, x):  # allow_missing: true
            raise _config_error(project, *bad)
        if parity is not None:  # the served (converted) model's single-row time: `mldeploy cost` estimates from it
            ms = served_single_row_ms(served.format, tmp / served.file, x)
            parity = parity.model_copy(update={"single_row_ms": ms})
        manifest = _manifest(project, handler, sig, served, parity, tmp, source, source_sha, sample)
        manifest.save(tmp)
        (tmp / KEY_FILE).write_text(key + "\n")
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PackageResult(dir=out, manifest=manifest, source_path=source, source_size=size_bytes(source),
                         notes=notes + handler.notes, quantization=quant)


def _feature_names(project: Project, handler: Handler, sig: Signature, sample_path: Path | None) -> list[str] | None:
    """model.feature_names, else the model's own names, else the sample's record keys; checked against the
    model's feature count and the model's own order (mldeploy.artifacts.features)."""
    keys = samples.sample_keys(sample_path, sig.inputs) if sample_path else None
    try:
        res = features.resolve(sig.inputs, project.config.model.feature_names, handler.model_feature_names(), keys)
    except features.FeatureNamesError as e:
        raise _config_error(project, e.field, e.message) from None
    handler.notes.extend(res.notes)
    handler.feature_names_source = res.source if res.names else None  # type: ignore[attr-defined]
    return res.names


def _check_labels(project: Project, sig: Signature, reference: dict[str, np.ndarray]) -> None:
    if not sig.class_labels:
        return
    for t in sig.outputs:
        v = reference.get(t.name)
        if t.role in ("probabilities", "logits") and v is not None and v.ndim == 2 and v.shape[1] != len(
                sig.class_labels):
            raise _config_error(project, "model.class_labels", f"{len(sig.class_labels)} labels given but output "
                                f"{t.name!r} has {v.shape[1]} classes")


def _produce(handler: Handler, sig: Signature, folder: Path, x: dict[str, np.ndarray],
             reference: dict[str, np.ndarray], convert: str, rows: int,
             tolerance: object) -> tuple[Served, ParityReport | None, list[str]]:
    """Write the served model into ``folder``; run parity when it differs from the original."""
    notes: list[str] = []
    if convert == "torchscript" and "torchscript" not in handler.can_convert_to + (handler.native_format,):
        raise ArtifactError(f"model.convert is 'torchscript' but a {handler.format} model cannot become "
                            "TorchScript", hint="use convert: onnx, auto or none")
    targets: list[str] = []
    if convert in ("onnx", "torchscript"):
        targets = [convert]
    elif convert == "auto" and "onnx" in handler.can_convert_to:
        targets = ["onnx"]
    for target in targets:
        if target == handler.native_format:
            break
        try:
            served = handler.convert(target, folder, sig)
        except ArtifactError:
            raise
        except Exception as e:  # converters raise many types for unsupported models/operators
            msg = f"conversion {handler.format} → {target} failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
            if convert != "auto":
                raise ArtifactError(msg, hint="set model.convert: none (or auto) to serve the original format") from e
            notes.append(msg + f"; serving {handler.native_format}")
            break
        report = compare(reference, handler.run_served(served, folder, x), sig.outputs, tolerance, rows)
        if report.passed:
            return served, report, notes
        msg = (f"parity check failed for {handler.format} → {target}: max abs error {report.max_abs_error:.3g}, "
               f"max rel error {report.max_rel_error:.3g}, argmax agreement {report.argmax_agreement}")
        if convert != "auto":
            raise ArtifactError(msg, hint="loosen model.parity (atol/rtol/min_argmax_agreement) if the difference "
                                "is acceptable, or set model.convert: none")
        notes.append(msg + f"; serving {handler.native_format}")
        (folder / served.file).unlink(missing_ok=True)
        break
    served = handler.write_native(folder)
    report = None
    if served.format != handler.format:  # e.g. an nn.Module traced to TorchScript: check the trace too
        report = compare(reference, handler.run_served(served, folder, x), sig.outputs, tolerance, rows)
        if not report.passed:
            raise ArtifactError(f"parity check failed for {handler.format} → {served.format}: max abs error "
                                f"{report.max_abs_error:.3g}, argmax agreement {report.argmax_agreement}",
                                hint="the model may have data-dependent control flow that tracing cannot capture")
    return served, report, notes


def _merge(original: list[Tensor], served: list[Tensor] | None) -> list[Tensor]:
    """The served model's tensors (names/dtypes the server sees) with the original's roles and shapes."""
    if not served:
        return original
    by_name = {t.name: t for t in original}
    merged = []
    for i, t in enumerate(served):
        ref = by_name.get(t.name) or (original[i] if i < len(original) else None)
        merged.append(Tensor(name=t.name, dtype=t.dtype, shape=ref.shape if ref else t.shape,
                             role=ref.role if ref else t.role, allow_missing=bool(ref and ref.allow_missing),
                             categories=ref.categories if ref else None))
    return merged


def _manifest(project: Project, handler: Handler, sig: Signature, served: Served, parity: ParityReport | None,
              folder: Path, source: Path, source_sha: str, sample: dict[str, np.ndarray] | None) -> Manifest:
    cfg = project.config.model
    inputs = _merge(sig.inputs, served.inputs)
    layout = cfg.image.layout if cfg.image else None
    image = ImageSpec(**cfg.image.model_dump()) if cfg.image else None
    return Manifest(
        name=project.config.name, version=cfg.version, format=served.format, source_format=handler.format,
        source_sha256=source_sha, file=served.file, sha256=sha256_path(folder / served.file),
        size_bytes=size_bytes(folder / served.file), task=sig.task if sig.task != "auto" else "other",
        inputs=inputs, outputs=_merge(sig.outputs, served.outputs), class_labels=sig.class_labels,
        feature_names=sig.feature_names, image=image, sample_input=samples.embeddable(sample),
        feature_names_source=getattr(handler, "feature_names_source", None),
        dataframe=getattr(handler, "frame_columns", None) is not None,  # sklearn_frame: one input per column
        baseline=samples.baseline(sample, layout), parity=parity, framework_versions=handler.framework_versions(),
        requirements=handler.requirements(served.format),
        trusted_types=handler.trusted_types if served.format == "skops" else None,
        created_at=datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        git_commit=git_commit(project.root),
    )


def _replace(tmp: Path, out: Path) -> None:
    """Swap the new folder into place (rename is atomic on one filesystem)."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
