"""Start-up of the server process: the garbage collector stays off until the models are ready, then what start-up
created is frozen; the phase log says where the time went. Real ``python -m runtime`` subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import runtime
from benchmarks import models as ex
from tests.infra import runtime_server

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("argv", "server"), [
    (["python3", "-m", "runtime", "--model-dir", "/app/model"], True),
    (["python3", "-X", "importtime", "-m", "runtime"], True),
    (["python3", "-W", "ignore", "-u", "-mruntime"], True),
    (["python3", "-m", "runtime.cli"], False),
    (["python3", "-m", "pytest", "tests"], False),
    (["python3", "-c", "import runtime"], False),
    (["python3", "script.py", "-m", "runtime"], False),
    (["/usr/bin/mldeploy", "serve"], False),
    (["python3"], False),
    (["python3", "-m"], False),
])
def test_server_process_is_only_python_dash_m_runtime(argv, server):
    assert runtime._server_process(argv) is server


@pytest.mark.parametrize(("argv", "env", "worker"), [
    (["python3", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()", "--multiprocessing-fork"],
     {"MLDEPLOY_STARTUP_GC_OFF": "1"}, True),
    (["python3", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()", "--multiprocessing-fork"],
     {}, False),  # another program's multiprocessing child
    (["python3", "-c", "import runtime"], {"MLDEPLOY_STARTUP_GC_OFF": "1"}, False),
])
def test_server_worker_is_a_spawned_child_of_the_server(argv, env, worker):
    assert runtime._server_worker(argv, env) is worker


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_defer_then_resume_freezes_and_reenables():
    done = _python("""
        import gc
        from runtime import lifecycle
        assert gc.isenabled() and gc.get_freeze_count() == 0
        lifecycle.defer_gc(60)
        assert not gc.isenabled() and lifecycle.server_process()
        lifecycle.resume_gc()
        assert gc.isenabled() and gc.get_freeze_count() > 1000, gc.get_freeze_count()
        assert not lifecycle._StartupGC.timer.is_alive() or lifecycle._StartupGC.timer.finished.is_set()
        print("ok")
    """)
    assert done.stdout.strip() == "ok", done.stderr


def test_the_collector_comes_back_when_ready_never_comes():
    done = _python("""
        import gc, time
        from runtime import lifecycle
        lifecycle.defer_gc(0.05)
        assert not gc.isenabled()
        time.sleep(0.5)
        assert gc.isenabled() and gc.get_freeze_count() == 0  # back on, nothing frozen: never got ready
        print("ok")
    """)
    assert done.stdout.strip() == "ok", done.stderr


def test_resume_does_nothing_where_defer_never_ran():
    import gc

    from runtime import lifecycle

    frozen = gc.get_freeze_count()
    lifecycle.resume_gc()  # a test process / the CLI's in-process server: no freeze of the caller's objects
    assert gc.isenabled() and gc.get_freeze_count() == frozen and not lifecycle.server_process()


def test_importing_the_package_leaves_the_collector_alone():
    done = _python("import gc, runtime.http.app; print(gc.isenabled())")
    assert done.stdout.strip() == "True", done.stderr


def _lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


def test_server_logs_its_start_up_phases_and_freezes_at_ready(tmp_path):
    ex.iris_onnx(tmp_path / "onnx")
    with runtime_server(tmp_path, tmp_path / "onnx") as proc:
        pass
    lines = _lines(proc.logs())
    loaded = next(r for r in lines if r["msg"].startswith("loaded "))
    assert "warm-up" in loaded["msg"] and loaded["load_s"] > 0 and loaded["warmup_s"] >= 0
    ready = next(r for r in lines if r["msg"].startswith("models ready"))
    assert 0 < ready["before_models_s"] <= ready["process_age_s"] < 60, ready
    assert 0 < ready["cpu_s"] < 60 and ready["gc_frozen"] > 10_000, ready  # the modules + model, frozen


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_torchscript_loader_lets_openmp_threads_sleep_unless_told_otherwise(given, expected):
    pytest.importorskip("torch")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": given} if given
                                                                             else {})
    done = subprocess.run([sys.executable, "-c", "import os, sys, runtime.loaders.torchscript as t; "
                           "print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == [expected, "True"], done.stderr


_SPAWN = """
import multiprocessing as mp, os, sys


def child(q):
    import gc, runtime
    q.put(gc.isenabled())


if __name__ == "__main__":
    if sys.argv[1] == "server":
        os.environ["MLDEPLOY_STARTUP_GC_OFF"] = "1"  # what `python -m runtime` sets for uvicorn's workers
    ctx = mp.get_context("spawn")  # as uvicorn starts its workers
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    print(q.get(timeout=60))
    p.join()
"""


@pytest.mark.parametrize(("parent", "enabled"), [("server", "False"), ("other", "True")])
def test_workers_spawned_by_the_server_defer_too(tmp_path, parent, enabled):
    script = tmp_path / "spawner.py"
    script.write_text(_SPAWN)
    env = {k: v for k, v in os.environ.items() if k != "MLDEPLOY_STARTUP_GC_OFF"} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script), parent], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == enabled, done.stderr
