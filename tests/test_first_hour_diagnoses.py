"""The first hour of a new user (issue 20, items 1, 5 and 6), as they typed it: a TorchScript MLP from `init`,
pickled classes from `__main__` or a local module, a text model with a sample, Fargate sizes, a one-letter app
name, a second rollback, `cost --plot` without matplotlib and `bench --api-key`."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests import infra
from tests.test_first_hour import _cli, _env, _ok

TORCH_MODELS = textwrap.dedent("""
    import sys, torch, torch.nn as nn
    torch.manual_seed(0)
    kind = sys.argv[1]
    if kind == "mlp":  # the walkthrough's wine MLP: 13 features → 3 classes
        m = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))
    elif kind == "cnn":
        m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    else:  # no layer with a `weight`: nothing tells the input shape
        class Bare(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.randn(13, 3))

            def forward(self, x):
                return x @ self.w
        m = Bare()
    torch.jit.script(m.eval()).save("model.pt")
""")

TRANSFORMER = textwrap.dedent("""
    import numpy as np
    from sklearn.base import BaseEstimator, TransformerMixin


    class LogAbs(BaseEstimator, TransformerMixin):
        def fit(self, X, y=None):
            return self

        def transform(self, X):
            return np.log1p(np.abs(X))
""")


def _torch_model(folder: Path, kind: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "make.py").write_text(TORCH_MODELS)
    subprocess.run([sys.executable, "make.py", kind], cwd=folder, check=True, capture_output=True, timeout=120)
    return folder / "model.pt"


def _wait_ready(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited with {server.returncode}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready within {timeout} s")


def _err(proc: subprocess.CompletedProcess[str]) -> str:
    return " ".join(proc.stderr.split())


# ------------------------------------------------------------------------------------------- 1. torch from init


def test_init_reads_a_torchscript_mlps_input_from_its_first_layer_and_package_works(tmp_path: Path):
    """Before: init wrote an active 224×224 image block and package died "unexpected RuntimeError … mat1 and mat2
    shapes cannot be multiplied (1344x224 and 13x32)". Now init writes model.inputs [null, 13] and it packages."""
    project = tmp_path / "wine-torch"
    _torch_model(project, "mlp")
    env = _env()
    _ok(["init", "--model", "model.pt", "--name", "wine-torch"], project, env)
    text = (project / "mldeploy.yaml").read_text()
    assert "- {name: input, dtype: float32, shape: [null, 13]}" in text and "Linear 13 → 32" in text
    assert "\n  image:" not in text
    _ok(["package"], project, env)
    manifest = json.loads((project / ".mldeploy" / "default" / "artifact" / "model.json").read_text())
    assert manifest["inputs"][0]["shape"] == [None, 13] and manifest["format"] == "onnx"


def test_a_shape_the_model_refuses_names_model_inputs_and_its_first_layer(tmp_path: Path):
    """The walkthrough's yaml (the old template's image block) on the MLP: a configuration error (exit 3) that says
    what the first layer takes and what to write, never "unexpected"."""
    project = tmp_path / "p"
    _torch_model(project, "mlp")
    (project / "mldeploy.yaml").write_text("name: wine-torch\nmodel:\n  path: model.pt\n  image:\n    width: 224\n"
                                           "    height: 224\n    layout: NCHW\n")
    proc = _cli(["package"], project, _env())
    err = _err(proc)
    assert proc.returncode == 3, err
    assert "unexpected" not in err and "mat1 and mat2 shapes cannot be multiplied" in err
    assert "model.inputs: the model cannot run on input 'input' shaped N×3×224×224 float32 (from model.image)" in err
    assert "layer '0' (Linear 13 → 32) takes 13 features per row" in err
    assert "set model.inputs: [{name: input, dtype: float32, shape: [null, 13]}]" in err and "remove model.image" in err


def test_init_on_a_cnn_writes_an_image_block_with_its_channels(tmp_path: Path):
    project = tmp_path / "cnn"
    _torch_model(project, "cnn")
    _ok(["init", "--model", "model.pt", "--name", "cnn"], project, _env())
    text = (project / "mldeploy.yaml").read_text()
    assert "  image:\n    channels: 3\n    # width: 224" in text and "Conv2d 3 → 4 channels, kernel 3×3" in text
    assert "\n  inputs:" not in text
    _ok(["validate"], project, _env())


def test_init_without_a_shape_leaves_model_inputs_commented_and_package_asks_for_it(tmp_path: Path):
    project = tmp_path / "bare"
    _torch_model(project, "bare")
    env = _env()
    proc = _ok(["init", "--model", "model.pt", "--name", "bare"], project, env)
    assert "set model.inputs in mldeploy.yaml before `mldeploy package`" in _err(proc)
    text = (project / "mldeploy.yaml").read_text()
    assert "  # inputs:\n  #   - {name: input, dtype: float32, shape: [null, 13]}" in text
    proc = _cli(["package"], project, env)
    assert proc.returncode == 3 and "model.inputs is not set" in _err(proc) and "unexpected" not in _err(proc)
    assert "set model.inputs in mldeploy.yaml to the input of one request row" in _err(proc)
    uncommented = text.replace("  # inputs:\n  #   - {", "  inputs:\n    - {")  # the example, as is
    assert uncommented != text
    (project / "mldeploy.yaml").write_text(uncommented)
    _ok(["validate"], project, env)


def test_interactive_init_asks_the_input_shape_and_checks_the_answer(tmp_path: Path):
    import pexpect

    _torch_model(tmp_path, "bare")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")} | {"NO_COLOR": "1",
                                                                                      "COLUMNS": "160"}
    child = pexpect.spawn(sys.executable, ["-m", "mldeploy", "init", "--name", "bare", "--format", "torchscript"],
                          cwd=str(tmp_path), env=env, encoding="utf-8", timeout=60)
    try:
        child.expect(r"Which model\?")
        child.sendline("")
        child.expect(r"does not tell its input shape")
        child.expect(r"Input shape of one request row")
        child.sendline("13, abc")
        child.expect(r"not a list of positive whole numbers")
        child.expect(r"Input shape of one request row")
        child.sendline("13")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    assert "- {name: input, dtype: float32, shape: [null, 13]}" in (tmp_path / "mldeploy.yaml").read_text()


def test_interactive_init_asks_a_cnns_image_size(tmp_path: Path):
    import pexpect

    _torch_model(tmp_path, "cnn")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")} | {"NO_COLOR": "1",
                                                                                      "COLUMNS": "160"}
    child = pexpect.spawn(sys.executable, ["-m", "mldeploy", "init", "--model", "model.pt", "--name", "cnn",
                                           "--format", "torchscript"], cwd=str(tmp_path), env=env,
                          encoding="utf-8", timeout=60)
    try:
        child.expect(r"Image size the model was trained on \(WIDTHxHEIGHT\)")
        child.sendline("64")
        child.expect(r"is not WIDTHxHEIGHT")
        child.sendline("96x64")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    assert "  image:\n    channels: 3\n    width: 96\n    height: 64\n" in (tmp_path / "mldeploy.yaml").read_text()


# ------------------------------------------------------------------------------------ 6a/6b. pickled classes


def _custom_pipeline(project: Path, *, in_main: bool) -> None:
    """A wine pipeline with a custom transformer: defined in the training script, or in features.py."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "features.py").write_text(TRANSFORMER)
    header = TRANSFORMER if in_main else "from features import LogAbs\n"
    (project / "train.py").write_text(header + textwrap.dedent("""
        import json, pickle
        from sklearn.datasets import load_wine
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        d = load_wine()
        m = make_pipeline(LogAbs(), LogisticRegression(max_iter=1000)).fit(d.data, d.target)
        pickle.dump(m, open("model.pkl", "wb"), protocol=5)
        json.dump({"inputs": d.data[:8].tolist()}, open("sample.json", "w"))
    """))
    subprocess.run([sys.executable, "train.py"], cwd=project, check=True, capture_output=True, timeout=120)
    (project / "mldeploy.yaml").write_text("name: wine-custom\nmodel:\n  path: model.pkl\n  sample_input: sample.json\n"
                                           "  inputs: [{name: input, shape: [null, 13]}]\n")


def test_a_class_pickled_from_main_is_named_with_how_to_ship_it(tmp_path: Path):
    """Before: "cannot be loaded (AttributeError: Can't get attribute 'LogProline' on <module '__main__' …>); it
    looks corrupt or truncated / hint: re-save the model with the same library versions"."""
    project = tmp_path / "main"
    _custom_pipeline(project, in_main=True)
    proc = _cli(["package"], project, _env())
    err = _err(proc)
    assert proc.returncode == 4, err
    assert "corrupt" not in err and "references class LogAbs from module __main__" in err
    assert "must live in an importable module" in err and "`code_paths: [features.py]`" in err


def test_a_class_from_a_local_module_is_caught_at_package_time_and_code_paths_ships_it(tmp_path: Path):
    """Before: package succeeded, then `serve` died with "No module named 'wine_features'". Now package names the
    module and model.code_paths; with it, `serve` (run from another folder, so the project is not on sys.path)
    loads the pickle and answers."""
    project = tmp_path / "mod"
    _custom_pipeline(project, in_main=False)
    env = _env()
    proc = _cli(["package"], project, env)
    err = _err(proc)
    assert proc.returncode == 4, err
    assert "unpickles features.LogAbs from features, which is your own code" in err
    assert "add `code_paths: [features.py]` under `model:`" in err

    cfg = project / "mldeploy.yaml"
    cfg.write_text(cfg.read_text() + "  code_paths: [features.py]\n  convert: none\n")  # (skl2onnx cannot)
    _ok(["package"], project, env)
    port = infra.free_port()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "mldeploy", "-f", str(cfg), "serve", "--port", str(port)],
                              cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/ready", server)
        body = json.loads((project / "sample.json").read_text())
        resp = httpx.post(f"http://127.0.0.1:{port}/predict", json=body, timeout=10)
        assert resp.status_code == 200 and len(resp.json()["predictions"]) == 8, resp.text
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_code_paths_are_in_the_image(tmp_path: Path, docker_client):
    """`up --target local`: the container (no project folder mounted) imports features from /app/code."""
    project = tmp_path / "img"
    _custom_pipeline(project, in_main=False)
    cfg = project / "mldeploy.yaml"
    cfg.write_text(cfg.read_text().replace("wine-custom", "fh-code") + "  code_paths: [features.py]\n"
                   "  convert: none\nimage:\n  base: ${MLDEPLOY_BASE_IMAGE}\n")
    env = _env()
    try:
        up = json.loads(_ok(["up", "--target", "local", "--port", str(infra.free_port()), "--json"], project,
                            env).stdout)
        body = json.loads((project / "sample.json").read_text())
        resp = httpx.post(f"{up['local']['url']}/predict", json=body, timeout=10)
        assert resp.status_code == 200 and len(resp.json()["predictions"]) == 8, resp.text
        container = docker_client.containers.get("mldeploy-fh-code")
        assert "/app/code" in next(e for e in container.attrs["Config"]["Env"] if e.startswith("PYTHONPATH="))
    finally:
        with contextlib.suppress(Exception):
            docker_client.containers.get("mldeploy-fh-code").remove(force=True)


# ------------------------------------------------------------------------------------------ 6c–6e. messages


def test_a_text_model_with_a_sample_is_not_told_to_set_the_sample(tmp_path: Path):
    """Before: "cannot generate inputs for the string input 'input' / hint: set model.sample_input", while it was
    set. The sample's texts now fill the parity rows: one text per row packages; [N, 1] gets the model's own
    complaint."""
    code = ("import json, pickle; from sklearn.pipeline import make_pipeline; "
            "from sklearn.feature_extraction.text import TfidfVectorizer as T; "
            "from sklearn.linear_model import LogisticRegression as L; "
            "X = ['good product', 'bad product', 'great quality', 'terrible support', 'love it', 'hate it']; "
            "m = make_pipeline(T(), L()).fit(X, [1, 0, 1, 0, 1, 0]); pickle.dump(m, open('model.pkl', 'wb')); "
            "json.dump({'inputs': X[:3]}, open('sample.json', 'w')); "
            "json.dump({'inputs': [[x] for x in X[:3]]}, open('sample2d.json', 'w'))")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    base = "name: text\nmodel:\n  path: model.pkl\n  sample_input: sample.json\n  convert: none\n"
    env = _env()
    (tmp_path / "mldeploy.yaml").write_text(base.replace("sample.json", "sample2d.json")
                                            + "  inputs: [{name: input, dtype: string, shape: [null, 1]}]\n")
    proc = _cli(["package"], tmp_path, env)
    assert proc.returncode != 0 and "set model.sample_input" not in _err(proc) and "lower" in _err(proc)
    (tmp_path / "mldeploy.yaml").write_text(base + "  inputs: [{name: input, dtype: string, shape: [null]}]\n")
    _ok(["package"], tmp_path, env)


def test_a_fargate_size_error_names_the_values_the_cpu_takes(tmp_path: Path):
    """Before: "allowed: 512–2048 MiB in steps of 512", a range that includes the refused 1536."""
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    base = "name: sizes\nmodel:\n  path: model.onnx\naws:\n"
    env = _env()
    (tmp_path / "mldeploy.yaml").write_text(base + "  cpu: 256\n  memory: 1536\n")
    proc = _cli(["validate"], tmp_path, env)
    err = _err(proc)
    assert proc.returncode == 3 and "cpu 256 takes 512, 1024 or 2048 MiB" in err and "steps" not in err, err
    (tmp_path / "mldeploy.yaml").write_text(base + "  cpu: 2048\n  memory: 3072\n")
    assert "cpu 2048 takes 4096–16384 MiB in increments of 1024" in _err(_cli(["validate"], tmp_path, env))


def test_a_one_letter_app_name_is_refused_by_the_rule_it_breaks(tmp_path: Path):
    """Before: 'a' "must be lowercase letters, digits and hyphens, start with a letter and not end with '-'" —
    all of which it is. The rule it breaks: the ECR repository named after the app needs 2 characters."""
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"\x08\x07")
    env = _env()
    proc = _cli(["init", "--name", "a", "--model", "model.onnx"], folder, env)
    err = _err(proc)
    assert proc.returncode == 3 and "'a' is 1 character; app names need at least 2" in err and "ECR" in err, err
    assert "must be lowercase" not in err and "try --name a-app" in err
    proc = _ok(["init", "--model", "model.onnx"], folder, env)  # the folder's name, made valid and said so
    assert "name: a-app" in (folder / "mldeploy.yaml").read_text()
    assert "app name 'a-app', from the folder name 'a'" in _err(proc)


def test_a_second_rollback_on_aws_says_what_it_can_go_back_to(tmp_path: Path, aws: dict[str, str]):
    """up 1.0.0 → canary 1.1.0 → promote → rollback → rollback. Before: "(the history has only 1.0.0)"."""
    from tests.release_helpers import REGISTRY, cli_env, up, write_project

    project = write_project(tmp_path / "proj")
    env = cli_env(aws)
    up(project, env)
    write_project(project, version="1.1.0")
    _ok(["canary", "--percent", "10", "--image", f"{REGISTRY}:1.1.0"], project, env)
    _ok(["promote", "--yes"], project, env)
    _ok(["rollback", "--yes"], project, env)
    proc = _cli(["rollback", "--yes"], project, env)
    err = _err(proc)
    assert proc.returncode == 10 and "no earlier version of app to roll back to" in err
    assert "has only" not in err and "1.0.0 (task definition revision 1) is the oldest stable version" in err
    assert "the history also holds 1.1.0 (task definition revision 2), which a rollback already left" in err
    assert "`mldeploy rollback --to 1.1.0` deploys it again" in err


# ------------------------------------------------------------------------------------------- 5. first runs


def test_cost_plot_without_matplotlib_draws_in_the_terminal(tmp_path: Path):
    """Before: the table, then "error: --plot FILE needs matplotlib" with exit 1."""
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    (tmp_path / "mldeploy.yaml").write_text("name: costly\nmodel:\n  path: model.onnx\n")
    shadow = tmp_path / "no-matplotlib"
    (shadow / "matplotlib").mkdir(parents=True)
    (shadow / "matplotlib" / "__init__.py").write_text("raise ImportError('matplotlib is not installed')\n")
    env = _env(PYTHONPATH=os.pathsep.join([str(shadow), str(Path(__file__).resolve().parent.parent)]))
    out = tmp_path / "cost.png"
    proc = _ok(["cost", "--rps", "10,100", "--capacity", "200", "--plot", str(out)], tmp_path, env)
    err = _err(proc)
    assert "--plot FILE needs matplotlib" in err and "not written; the terminal chart follows" in err
    assert "pip install 'mldeploy[plot]'" in err
    assert not out.exists() and "$" in proc.stdout and "█" in proc.stdout, proc.stdout


def test_bench_sends_the_api_key(tmp_path: Path):
    """`bench --url` against a server with auth on: 401s without a key, capacity measured with --api-key."""
    root = tmp_path / "iris"
    from tests.test_first_hour import _iris

    _iris(root, "benched", trees=5, seed=0, version="1.0.0")
    cfg = root / "mldeploy.yaml"
    cfg.write_text(cfg.read_text().replace("runtime:\n", "runtime:\n  auth: {mode: api_key}\n", 1))
    env = _env()
    _ok(["package"], root, env)
    port = infra.free_port()
    server = subprocess.Popen([sys.executable, "-m", "mldeploy", "serve", "--port", str(port)], cwd=root,
                              env={**env, "MLDEPLOY_API_KEYS": "k-123"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    args = ["bench", "--url", url, "--duration", "1", "--warmup", "0", "--concurrency", "2", "--no-save"]
    try:
        _wait_ready(f"{url}/ready", server)
        proc = _cli(args, root, env)
        assert proc.returncode != 0 and "401" in proc.stdout + proc.stderr
        proc = _ok([*args, "--api-key", "k-123", "--json"], root, env)
        result = json.loads(proc.stdout)
        assert result["requests"] > 0 and result["errors"] == 0, result
    finally:
        server.terminate()
        server.wait(timeout=30)


# ------------------------------------------------------------------------------------ units under the above


def test_pickle_globals_follow_memoized_module_names() -> None:
    """Protocol 4+ memoizes a module name and BINGETs it for the next class from that module: the old scan took
    whatever string came two before STACK_GLOBAL ("_reconstruct, mean_" in the walkthrough)."""
    import collections
    import pickle
    import tempfile

    from mldeploy.artifacts.pickle_scan import pickle_globals

    data = pickle.dumps({"a": collections.OrderedDict(x=1), "mean_": collections.Counter("ab"),
                         "c": collections.deque([1])}, protocol=5)
    with tempfile.NamedTemporaryFile(suffix=".pkl") as fh:
        fh.write(data)
        fh.flush()
        found = pickle_globals(Path(fh.name))
    assert found is not None and {m for m, _ in found} == {"collections"}
    assert {n for _, n in found} >= {"OrderedDict", "Counter", "deque"}


def test_code_paths_modules_and_main_diagnosis(tmp_path: Path) -> None:
    from mldeploy.artifacts import code_paths
    from mldeploy.errors import ArtifactError

    (tmp_path / "features.py").write_text("")
    (tmp_path / "src" / "mypkg").mkdir(parents=True)
    (tmp_path / "src" / "mypkg" / "__init__.py").write_text("")
    paths = code_paths.resolve(tmp_path, ["features.py", "src/mypkg"])
    assert code_paths.module_names(paths) == {"features", "mypkg"}
    assert code_paths.import_dirs(paths) == [tmp_path.resolve(), (tmp_path / "src").resolve()]
    with pytest.raises(ArtifactError, match=r"model.code_paths: nope.py does not exist") as err:
        code_paths.resolve(tmp_path, ["nope.py"])
    assert err.value.exit_code == 3
    problem, hint = code_paths.main_module_diagnosis([("sklearn.pipeline", "Pipeline"), ("__main__", "LogProline")])
    assert "class LogProline from module __main__" in problem and "code_paths: [features.py]" in hint
    assert code_paths.main_module_diagnosis([("sklearn.pipeline", "Pipeline")]) is None


def test_fargate_memory_rule_follows_the_task_size_table() -> None:
    from mldeploy.config.schema import FARGATE_SIZES, fargate_memory_rule

    assert fargate_memory_rule(256) == "512, 1024 or 2048 MiB"
    assert fargate_memory_rule(1024) == "2048, 3072, 4096, 5120, 6144, 7168 or 8192 MiB"
    assert fargate_memory_rule(8192) == "16384–61440 MiB in increments of 4096"
    for cpu, allowed in FARGATE_SIZES.items():  # every allowed value is named by the rule, no other
        rule = fargate_memory_rule(cpu)
        if "increments" in rule:
            step = int(rule.rsplit(" ", 1)[1])
            assert allowed == list(range(allowed[0], allowed[-1] + 1, step))
        else:
            assert rule.replace(" or", ",").removesuffix(" MiB").split(", ") == [str(m) for m in allowed]


def test_parse_shape_accepts_rows_and_refuses_the_rest() -> None:
    from mldeploy.cli.commands.config import parse_shape, slug

    assert parse_shape("13") == [13] and parse_shape("3, 224, 224") == [3, 224, 224]
    assert parse_shape("[3x224x224]") == [3, 224, 224]
    assert isinstance(parse_shape("13, abc"), str) and isinstance(parse_shape("0"), str)
    assert isinstance(parse_shape("1,2,3,4,5"), str) and isinstance(parse_shape(""), str)
    assert slug("a") == "a-app" and slug("Wine Classifier") == "wine-classifier"


def test_second_rollback_names_the_versions_it_left() -> None:
    from mldeploy.release import ops
    from mldeploy.release.history import Outcome, Record
    from mldeploy.release.state import TransitionError
    from mldeploy.ui import NULL_UI
    from tests.unit.release.fakes import FakeTarget, MemoryHistory

    history = MemoryHistory([Record(id=1, action="up", version="1.0.0", image="img:v1", task_definition="td:1",
                                    revision=1, outcome=Outcome.succeeded)])
    target = FakeTarget()
    ops.canary(target, history, NULL_UI, percent=10, image="img:v2", version="1.1.0")
    ops.promote(target, history, NULL_UI)
    ops.rollback(target, history, NULL_UI)
    with pytest.raises(TransitionError) as err:
        ops.rollback(target, history, NULL_UI)
    assert "1.0.0 (rev td:1) is the oldest stable version still in line" in err.value.message
    assert "the history also holds 1.1.0 (rev td:2), which a rollback already left" in err.value.message
    assert "rollback --to 1.1.0" in (err.value.hint or "")
