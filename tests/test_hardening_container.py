"""The real container: a bounded soak against ``mldeploy run`` (wrk), then ``docker stop`` during load (no accepted
request may fail), overload far beyond capacity (503 + Retry-After, no timeouts, no OOM), non-root + read-only
root filesystem, and a secret scan of every layer the image adds over its base.

``MLDEPLOY_SOAK_S`` sets the soak length (CI default 15 s; the benchmark runs 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path, PurePosixPath

import httpx
import pytest

from benchmarks.hardening_summary import record
from tests import infra

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SOAK_S = int(os.environ.get("MLDEPLOY_SOAK_S", "15"))
SOAK_CONCURRENCY = 64
ROWS = {"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
LEAKED = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY\n"


def _cli(project_root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "mldeploy", *args], cwd=project_root, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image(tmp_path_factory, base_image, docker_client):
    """The iris example built from an artifact folder that also holds a ``.env`` and a ``.git`` (excluded)."""
    from mldeploy.artifacts.packager import package
    from mldeploy.config import load_project
    from mldeploy.image.api import build_from_artifact

    root = tmp_path_factory.mktemp("hardening") / "h-iris"
    shutil.copytree(ROOT / "examples" / "iris-sklearn", root, ignore=shutil.ignore_patterns(".mldeploy"))
    subprocess.run([sys.executable, "make_model.py"], cwd=root, check=True, capture_output=True, timeout=600)
    cfg = root / "mldeploy.yaml"
    # every accepted request must leave an access-log line (the soak counts them): no sampling here
    cfg.write_text(cfg.read_text().replace("name: iris", "name: h-iris", 1).replace(
        "  port: 8080\n", "  port: 8080\n  access_log: {sample_rate: 1.0}\n", 1))
    old = os.environ.get("MLDEPLOY_BASE_IMAGE")
    os.environ["MLDEPLOY_BASE_IMAGE"] = base_image
    try:
        project = load_project(cfg, None)
        result = package(project)
        art = root / "artifact-with-clutter"
        shutil.copytree(result.dir, art)
        (art / ".env").write_text(LEAKED)
        (art / ".git").mkdir()
        (art / ".git" / "config").write_text("[remote \"origin\"]\n\turl = https://user:token@example.com/x.git\n")
        built = build_from_artifact(project, art, result.manifest)
    finally:
        if old is None:
            os.environ.pop("MLDEPLOY_BASE_IMAGE", None)
        else:
            os.environ["MLDEPLOY_BASE_IMAGE"] = old
    yield project, built
    with contextlib.suppress(Exception):
        docker_client.containers.get("mldeploy-h-iris").remove(force=True)


@pytest.fixture
def running(image, docker_client):
    """``mldeploy run --port P`` (the CLI, detached container ``mldeploy-h-iris``); yields (url, container)."""
    project, _ = image
    port = infra.free_port()
    proc = _cli(project.root, "run", "--port", str(port))
    assert proc.returncode == 0, proc.stderr
    container = docker_client.containers.get("mldeploy-h-iris")
    yield f"http://127.0.0.1:{port}", container
    with contextlib.suppress(Exception):
        container.remove(force=True)


def _server_rss_mb(container) -> float:
    container.reload()
    pid = container.attrs["State"]["Pid"]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _wrk(url: str, seconds: int, connections: int, body: Path) -> dict:
    env = dict(os.environ, BENCH_BODY=str(body), BENCH_CTYPE="application/json")
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
                          "-s", str(ROOT / "benchmarks" / "post.lua"), f"{url}/predict"], env=env,
                         capture_output=True, text=True, timeout=seconds + 60)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON"))
    return json.loads(line.split(" ", 1)[1])


# ------------------------------------------------------------------------------------------------ image


def test_image_layers_hold_no_secrets_and_no_clutter(image, docker_client, base_image):
    from mldeploy.image import scan
    from tests.test_build_docker import _added_layer_files

    _, built = image
    files = _added_layer_files(docker_client, built.image_id, base_image)
    assert any(p.startswith("app/model/") for p in files)
    findings = []
    for path, content in files.items():
        rel = PurePosixPath(path)
        if content is None:
            findings += [scan.Finding(path, r) for r in [scan.name_rule(rel)] if r]
        else:
            findings += scan.scan_file(rel, content, len(content))
    clutter = [p for p in files if p.startswith("app/model/") and scan.excluded(PurePosixPath(p))]
    record("secrets", "image layers over the base (docker save)", {"files": len(files), "findings": len(findings),
                                                                    "clutter": len(clutter)})
    assert findings == [], findings
    assert clutter == [], clutter  # .env and .git of the artifact folder were excluded
    assert not any(LEAKED.encode() in (c or b"") for c in files.values())


def test_container_is_non_root_with_read_only_root(running):
    url, container = running
    assert httpx.post(f"{url}/predict", json=ROWS).status_code == 200

    def sh(cmd: str) -> tuple[int, str]:
        code, out = container.exec_run(["sh", "-c", cmd])
        return code, out.decode(errors="replace")

    code, uid = sh("id -u")
    assert code == 0 and uid.strip() != "0"
    for path in ("/app/model/x", "/app/runtime/x", "/x", "/opt/venv/x"):
        assert sh(f"touch {path}")[0] != 0, path  # read-only root: even root-owned dirs aside, nothing writes
    assert sh("touch /tmp/x && rm /tmp/x")[0] == 0
    attrs = container.attrs["HostConfig"]
    assert attrs["ReadonlyRootfs"] is True and "/tmp" in attrs["Tmpfs"]
    record("secrets", "container: non-root, read-only root, writable /tmp", {"uid": int(uid), "read_only": True})


# ------------------------------------------------------------------------------------------ soak + drain


def test_soak_then_docker_stop_during_load(running, tmp_path):
    url, container = running
    body = tmp_path / "body.json"
    body.write_text(json.dumps(ROWS))
    _wrk(url, 2, 8, body)  # warm-up
    rss_before = _server_rss_mb(container)
    soak = _wrk(url, SOAK_S, SOAK_CONCURRENCY, body)
    rss_after = _server_rss_mb(container)
    errors = soak["connect"] + soak["read"] + soak["write"] + soak["status"] + soak["timeout"]
    rps = soak["requests"] / (soak["duration_us"] / 1e6)

    # drain: 32 clients with request ids; `docker stop` (SIGTERM) while they run
    outcomes: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(timeout=30) as c:
            i = 0
            while not stop.is_set():
                rid = f"c{n}-{i}"
                i += 1
                try:
                    r = c.post(f"{url}/predict", json=ROWS, headers={"X-Request-ID": rid})
                    outcome = str(r.status_code)
                except httpx.HTTPError as e:
                    outcome = type(e).__name__
                with lock:
                    outcomes[rid] = outcome
                if outcome != "200":
                    time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(32)]
    for t in threads:
        t.start()
    time.sleep(2)
    t0 = time.monotonic()
    container.stop(timeout=30)
    stop_s = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join(40)
    container.reload()
    exit_code = container.attrs["State"]["ExitCode"]
    logs = container.logs().decode(errors="replace").splitlines()
    accepted: dict[str, int] = {}
    for line in logs:
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if doc.get("logger") == "mldeploy.access" and doc.get("request_id") in outcomes:  # not wrk's
                accepted[doc["request_id"]] = doc["status"]
    failed_accepted = {rid: outcomes.get(rid) for rid, status in accepted.items() if outcomes.get(rid) != str(status)}
    not_200 = [s for s in accepted.values() if s != 200]
    rejected = [o for o in outcomes.values() if o != "200"]
    record("soak", f"mldeploy run, wrk c={SOAK_CONCURRENCY} {SOAK_S}s then docker stop under load", {
        "req_per_s": round(rps), "errors": errors, "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_after, 1), "rss_drift_mb": round(rss_after - rss_before, 1),
        "drain_requests": len(outcomes), "accepted": len(accepted), "failed_accepted": len(failed_accepted),
        "refused_after_stop": len(rejected), "stop_s": round(stop_s, 1), "exit_code": exit_code})
    assert errors == 0, soak
    assert soak["requests"] > SOAK_S * 100, soak
    assert rss_after - rss_before < 50, (rss_before, rss_after)
    assert len(accepted) > 100 and failed_accepted == {}, list(failed_accepted.items())[:10]
    assert not_200 == [], not_200[:10]  # the server never answered an accepted request with an error
    assert not [o for o in rejected if o.isdigit()], rejected[:10]  # unaccepted ones: refused connections, no 5xx
    assert exit_code == 0 and stop_s < 25  # drained and exited on its own, not SIGKILLed at the timeout


# ---------------------------------------------------------------------------------------------- overload


def test_overload_gets_503_with_retry_after_not_timeouts(image, docker_client):
    """A quarter of a CPU and a queue of 4, 256 concurrent clients: excess load is shed fast with 503 +
    Retry-After; nothing times out, the container is not OOM-killed and serves normally afterwards."""
    _, built = image
    port = infra.free_port()
    container = docker_client.containers.run(
        built.image_id, detach=True, name="mldeploy-h-iris-overload", read_only=True, tmpfs={"/tmp": "size=64m"},
        ports={"8080/tcp": ("127.0.0.1", port)}, nano_cpus=int(0.25e9), mem_limit="512m",
        environment={"MLDEPLOY_MAX_QUEUE": "4", "MLDEPLOY_BATCHING": "false", "MLDEPLOY_ACCESS_LOG": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        from mldeploy.local.container import wait_ready

        wait_ready(url, container, timeout=120)
        counts: dict[str, int] = {}
        retry_after = 0
        latencies: list[float] = []

        async def worker(client: httpx.AsyncClient, until: float) -> None:
            nonlocal retry_after
            while time.monotonic() < until:
                t0 = time.monotonic()
                try:
                    r = await client.post(f"{url}/predict", json=ROWS)
                    key = str(r.status_code)
                    if r.status_code == 503 and r.headers.get("retry-after"):
                        retry_after += 1
                except httpx.TimeoutException:
                    key = "timeout"
                except httpx.HTTPError as e:
                    key = type(e).__name__
                latencies.append(time.monotonic() - t0)
                counts[key] = counts.get(key, 0) + 1

        async def main() -> None:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
            async with httpx.AsyncClient(timeout=10, limits=limits) as client:
                until = time.monotonic() + 8
                await asyncio.gather(*(worker(client, until) for _ in range(256)))

        asyncio.run(main())
        container.reload()
        oom = container.attrs["State"]["OOMKilled"]
        running_after = container.status == "running"
        after = httpx.post(f"{url}/predict", json=ROWS, timeout=10).status_code
        total = sum(counts.values())
        shed = counts.get("503", 0)
        latencies.sort()
        record("overload", "0.25 vCPU, queue 4, 256 clients for 8 s", {
            "requests": total, "200": counts.get("200", 0), "503": shed,
            "503_share": round(shed / total, 3) if total else 0, "503_with_retry_after": retry_after,
            "timeouts": counts.get("timeout", 0), "other": {k: v for k, v in counts.items()
                                                            if k not in ("200", "503", "timeout")},
            "p99_s": round(latencies[int(len(latencies) * 0.99) - 1], 2) if latencies else None, "oom": oom})
        assert shed > 0 and retry_after == shed, counts
        assert counts.get("timeout", 0) == 0, counts
        assert set(counts) <= {"200", "503"}, counts
        assert not oom and running_after and after == 200
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)
