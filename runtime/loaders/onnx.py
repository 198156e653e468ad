"""ONNX models via onnxruntime, with thread counts from the container's CPU quota; on the CUDA execution provider
when this onnxruntime has it (``onnxruntime-gpu``, ``aws.gpus > 0``) and a GPU is visible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime.loaders.base import ModelLoadError
from runtime.manifest import Manifest

try:
    from onnxruntime.capi.onnxruntime_pybind11_state import EPFail as _EP_FAIL
except ImportError:  # another onnxruntime layout: no direct binding calls (``OnnxModel._run`` stays None)
    _EP_FAIL = None

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def providers(available: list[str] | None = None) -> list[str]:
    """Execution providers to ask for, best first: CUDA when onnxruntime offers it (``get_available_providers``),
    then the CPU. onnxruntime-gpu lists CUDA even without a visible GPU; the session then runs on the CPU
    (``OnnxModel.provider`` says which one it got)."""
    have = ort.get_available_providers() if available is None else available
    return [CUDA, CPU] if CUDA in have else [CPU]


class OnnxModel:
    def __init__(self, session: ort.InferenceSession, manifest: Manifest) -> None:
        self.session = session
        self.provider = session.get_providers()[0]
        """The execution provider the session runs on (reported by /ready and the startup log)."""
        self.output_names = [o.name for o in session.get_outputs()]
        self.input_types = {i.name: i.type for i in session.get_inputs()}
        # ``InferenceSession.run`` re-checks the feed on every call (missing inputs, OrtValue ownership, graph
        # capture) before calling the binding; ``load`` checked the input names once and the data plane only feeds
        # numpy arrays of them, so the binding is called directly — and ``session.run`` again on an EPFail, for its
        # fallback to the CPU provider, which replaces the binding
        self._run = getattr(getattr(session, "_sess", None), "run", None) if _EP_FAIL is not None else None

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.output_names
        run = self._run
        if run is not None:
            try:
                values = run(names, inputs, None)
            except _EP_FAIL:
                values = self.session.run(names, inputs)  # falls back (a new binding session) or raises
                self._run = self.session._sess.run
        else:
            values = self.session.run(names, inputs)
        return dict(zip(names, values, strict=True))


def load(manifest: Manifest, path: Path, threads: int) -> OnnxModel:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # don't burn CPU between requests
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers())
    except Exception as e:  # onnxruntime raises its own untyped exceptions
        raise ModelLoadError(f"{path}: onnxruntime cannot load it: {e}") from None
    have = {i.name for i in session.get_inputs()}
    want = {t.name for t in manifest.inputs}
    if have != want:
        raise ModelLoadError(f"{path}: model inputs {sorted(have)} differ from model.json inputs {sorted(want)}")
    outs = {o.name for o in session.get_outputs()}
    missing = [t.name for t in manifest.outputs if t.name not in outs]
    if missing:
        raise ModelLoadError(f"{path}: model.json outputs {missing} are not outputs of the model ({sorted(outs)})")
    return OnnxModel(session, manifest)
