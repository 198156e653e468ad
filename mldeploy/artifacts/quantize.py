"""``model.quantize: int8``: onnxruntime dynamic quantization of the served ONNX model, behind a parity gate.

Weights of MatMul/Gemm (and Conv, Attention, …) become int8; activations are quantized per batch at run time, so
no calibration data is needed. The quantized model replaces the float one only if its outputs pass
``model.quantize_parity`` against the *original* model's outputs; size and single-row latency are measured
before and after either way.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.artifacts.formats.base import Handler, Served, Signature
from mldeploy.artifacts.parity import compare, onnx_single_row
from mldeploy.config.schema import Parity
from mldeploy.errors import ArtifactError
from runtime.manifest import ParityReport

INT8_FILE = "model.int8.onnx"
_QUANTIZED_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                  "QLinearMatMul", "QLinearConv", "DynamicQuantizeLSTM", "QAttention", "MatMulIntegerToFloat"}


def single_row_latency_ms(path: Path, x: dict[str, np.ndarray], runs: int = 200) -> float:
    """Median wall time of one single-row ``session.run`` (one thread, after a warm-up), in milliseconds."""
    run = onnx_single_row(path, x)
    for _ in range(20):
        run()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 4)


def _has_weights(path: Path) -> bool:
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    return bool(ops & {"MatMul", "Gemm", "Conv", "ConvTranspose", "Attention", "LSTM", "GRU",
                       "EmbedLayerNormalization"})


def _quantized_nodes(path: Path) -> int:
    import onnx

    return sum(n.op_type in _QUANTIZED_OPS for n in onnx.load(str(path)).graph.node)


def quantize_int8(handler: Handler, sig: Signature, folder: Path, x: dict[str, np.ndarray],
                  reference: dict[str, np.ndarray], served: Served, parity: ParityReport | None,
                  gate: Parity) -> tuple[Served, ParityReport | None, dict[str, Any]]:
    """Quantize ``folder/served.file``; return what to serve, its parity report and the before/after figures
    (``notes``: warnings for the package summary)."""
    if served.format != "onnx":
        raise ArtifactError(f"model.quantize is int8 but the model is served as {served.format}; int8 "
                            "quantization applies to ONNX models",
                            hint="set model.convert: auto or onnx (the conversion must pass parity), or remove "
                            "model.quantize")
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:  # pragma: no cover - part of the onnxruntime wheel
        raise ArtifactError("onnxruntime.quantization is not available", hint="pip install onnxruntime") from e
    src, dst = folder / served.file, folder / INT8_FILE
    if not _has_weights(src):
        return served, parity, {"mode": "int8", "kept": False, "quantized_nodes": 0, "notes": [
            "int8 quantization found no MatMul/Gemm/Conv weights to quantize (tree ensembles have none); serving "
            "the float model"]}
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)  # quantize_dynamic logs pre-processing advice
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    except Exception as e:  # onnxruntime raises many types for unsupported graphs
        raise ArtifactError(f"int8 quantization failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}",
                            hint="remove model.quantize to serve the float model") from e
    finally:
        root_logger.setLevel(level)
    q_served = Served(format="onnx", file=INT8_FILE)
    report = compare(reference, handler.run_served(q_served, folder, x), sig.outputs, gate, parity.samples if
                     parity else len(next(iter(x.values()))))
    stats: dict[str, Any] = {
        "mode": "int8", "fp32_bytes": src.stat().st_size, "int8_bytes": dst.stat().st_size,
        "fp32_latency_ms": single_row_latency_ms(src, x), "int8_latency_ms": single_row_latency_ms(dst, x),
        "parity": report.model_dump(), "fp32_parity": parity.model_dump() if parity else None,
        "quantized_nodes": _quantized_nodes(dst), "kept": False, "notes": [],
    }
    gate_text = (f"max abs error {report.max_abs_error:.3g} (atol {gate.atol}), argmax agreement "
                 f"{report.argmax_agreement if report.argmax_agreement is not None else '-'} "
                 f"(min {gate.min_argmax_agreement})")
    if stats["quantized_nodes"] == 0:
        stats["notes"].append("int8 quantization found no MatMul/Gemm/Conv weights to quantize (tree ensembles "
                              "have none); serving the float model")
    elif not report.passed:
        stats["notes"].append(f"int8 model failed the parity gate (model.quantize_parity): {gate_text}; serving "
                              "the float model")
    else:
        stats["kept"] = True
        src.unlink()
        return q_served, report, stats
    dst.unlink()
    return served, parity, stats
