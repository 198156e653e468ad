"""Packaging of PyTorch models: class + state dict, full torch.save, TorchScript → ONNX / TorchScript."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from mldeploy.artifacts import package
from mldeploy.errors import ArtifactError
from tests.artifact_helpers import edit_config, example, project

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # TorchScript is deprecated in 2.13


@pytest.fixture(scope="module")
def cnn_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example("cnn-torch", tmp_path_factory.mktemp("cnn-src"), steps=3)


@pytest.fixture
def cnn(cnn_src: Path, tmp_path: Path) -> Path:
    for f in cnn_src.iterdir():
        if f.is_file():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    return tmp_path


def _module(folder: Path) -> torch.nn.Module:
    sys.path.insert(0, str(folder))
    try:
        from net import SmallCNN
    finally:
        sys.path.remove(str(folder))
    m = SmallCNN()
    m.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    return m.eval()


def test_cnn_state_dict_is_served_as_onnx_with_dynamic_batch(cnn: Path) -> None:
    import onnxruntime as ort

    result = package(project(cnn))
    m = result.manifest
    assert (m.source_format, m.format, m.task) == ("torch", "onnx", "image-classification")
    assert [(t.name, t.dtype, t.shape) for t in m.inputs] == [("input", "float32", [None, 3, 224, 224])]
    assert [(t.name, t.shape, t.role) for t in m.outputs] == [("logits", [None, 3], "logits")]
    assert m.class_labels == ["red", "green", "blue"] and m.image and m.image.layout == "NCHW"
    assert m.parity and m.parity.passed and m.parity.samples == 16
    assert m.parity.max_abs_error < 1e-4 and m.parity.argmax_agreement == 1.0
    assert m.requirements == [f"onnxruntime=={ort.__version__}"]  # no torch in the image
    assert m.framework_versions["torch"] == torch.__version__
    assert m.sample_input is None and m.baseline is None  # images are not embedded in model.json
    assert m.sha256 == hashlib.sha256((result.dir / "model.onnx").read_bytes()).hexdigest()

    sess = ort.InferenceSession(str(result.dir / "model.onnx"), providers=["CPUExecutionProvider"])
    original = _module(cnn)
    for batch in (1, 5):  # the batch axis is dynamic
        x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224)).astype(np.float32)
        (logits,) = sess.run(None, {"input": x})
        np.testing.assert_allclose(logits, original(torch.from_numpy(x)).detach().numpy(), atol=1e-4)


def test_convert_torchscript_and_full_torch_save(cnn: Path) -> None:
    edit_config(cnn, convert="torchscript")
    m = package(project(cnn)).manifest
    assert (m.format, m.file) == ("torchscript", "model.pt")
    assert m.requirements == [f"torch=={torch.__version__.split('+')[0]}"]
    assert m.parity and m.parity.passed and m.parity.max_abs_error < 1e-5
    scripted = torch.jit.load(str(cnn / ".mldeploy" / "default" / "artifact" / "model.pt"))
    assert scripted(torch.zeros(2, 3, 224, 224)).shape == (2, 3)

    # a full torch.save of the module needs no torch_class (its class must still be importable)
    torch.save(_module(cnn), cnn / "full.pt")
    edit_config(cnn, path="full.pt", torch_class=None, torch_class_kwargs=None, convert="auto")
    m = package(project(cnn)).manifest
    assert (m.source_format, m.format) == ("torch", "onnx") and m.parity and m.parity.passed


def test_torchscript_file_converts_to_onnx_or_is_served_as_is(cnn: Path) -> None:
    traced = torch.jit.trace(_module(cnn), torch.zeros(1, 3, 224, 224))
    torch.jit.save(traced, str(cnn / "scripted.pt"))
    edit_config(cnn, path="scripted.pt", format="auto", torch_class=None, torch_class_kwargs=None)
    m = package(project(cnn)).manifest
    assert (m.source_format, m.format) == ("torchscript", "onnx") and m.parity and m.parity.passed
    edit_config(cnn, convert="none")
    m = package(project(cnn)).manifest
    assert (m.format, m.parity) == ("torchscript", None)
    assert m.sha256 == m.source_sha256 == hashlib.sha256((cnn / "scripted.pt").read_bytes()).hexdigest()


def test_torch_errors_name_the_missing_piece(cnn: Path) -> None:
    edit_config(cnn, torch_class=None)
    with pytest.raises(ArtifactError, match=r"model\.pt is a state dict \(weights only\)") as err:
        package(project(cnn))
    assert "model.torch_class" in (err.value.hint or "")
    edit_config(cnn, torch_class="net:SmallCNN", torch_class_kwargs={"num_classes": 5})
    with pytest.raises(ArtifactError, match=r"the state dict in model\.pt does not fit net:SmallCNN"):
        package(project(cnn))
    edit_config(cnn, torch_class="nosuchmodule:Net", torch_class_kwargs={})
    with pytest.raises(ArtifactError, match=r"model\.torch_class: cannot import nosuchmodule:Net"):
        package(project(cnn))
    edit_config(cnn, torch_class="net:SmallCNN", image=None, task="auto")
    with pytest.raises(ArtifactError, match="does not record its input shape") as err:
        package(project(cnn))
    assert "model.image" in (err.value.hint or "")
    (cnn / "model.pt").write_bytes((cnn / "model.pt").read_bytes()[:2000])
    with pytest.raises(ArtifactError, match=r"model\.pt starts like a zip archive but cannot be read .*corrupt or "
                                            r"truncated"):
        package(project(cnn))
