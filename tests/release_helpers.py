"""Helpers for the release tests: a project on disk, the CLI as a subprocess, read-backs from the emulator."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

REGISTRY = "127.0.0.1:5000/app"  # moto never pulls images

CONFIG = """\
name: app
model:
  path: model.onnx
  version: {version}
aws:
  region: us-east-1
  desired_count: 2
release:
  steps: {steps}
  bake_time_s: {bake}
  stability_timeout_s: {timeout}
"""


def write_project(root: Path, version: str = "1.0.0", steps: str = "[10, 50]", bake: int = 30,
                  timeout: int = 900) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.onnx").write_bytes(b"not really onnx")  # release commands never read the model
    (root / "mldeploy.yaml").write_text(CONFIG.format(version=version, steps=steps, bake=bake, timeout=timeout))
    return root


def cli_env(aws_env: dict[str, str], **extra: str) -> dict[str, str]:
    # moto runs no tasks (runningCount stays 0, no targets register): skip the health/stability waits
    return {**aws_env, "MLDEPLOY_SKIP_HEALTH_WAIT": "1", "COLUMNS": "200", "NO_COLOR": "1", **extra}


def cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "mldeploy", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def ok(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = cli(args, cwd, env)
    assert proc.returncode == 0, f"{args} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def cli_in_process(args: list[str], cwd: Path, monkeypatch: Any, capsys: Any) -> subprocess.CompletedProcess[str]:
    """``mldeploy.cli.main.main(args)`` in this process (os.environ is the test's), output captured."""
    from mldeploy.cli.main import main

    monkeypatch.chdir(cwd)  # every main() call builds a fresh Session: no process-wide CLI state to reset
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return subprocess.CompletedProcess(args, code, out, err)


def up(cwd: Path, env: dict[str, str], image: str = f"{REGISTRY}:v1") -> None:
    ok(["up", "--no-wait", "--image", image], cwd, env)


def tg_name(arn: str) -> str:
    return arn.split(":targetgroup/", 1)[1].split("/", 1)[0]


class Emulator:
    """Read back what the CLI did, straight from moto (boto3 picks up the ``aws`` fixture's environment)."""

    def __init__(self) -> None:
        import boto3

        self.ecs = boto3.client("ecs")
        self.elb = boto3.client("elbv2")
        self.cw = boto3.client("cloudwatch")
        self.ssm = boto3.client("ssm")

    def weights(self) -> dict[str, int]:
        lb = self.elb.describe_load_balancers(Names=["app"])["LoadBalancers"][0]
        (listener,) = self.elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        (action,) = listener["DefaultActions"]
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
        if not groups:
            return {tg_name(action["TargetGroupArn"]): 100}
        if len(groups) == 1:
            return {tg_name(groups[0]["TargetGroupArn"]): 100}
        return {tg_name(g["TargetGroupArn"]): g["Weight"] for g in groups}

    def services(self) -> dict[str, dict[str, Any]]:
        """ACTIVE services → {revision, image, desired}."""
        found = self.ecs.describe_services(cluster="app", services=["app", "app-canary"])["services"]
        out = {}
        for svc in found:
            if svc["status"] != "ACTIVE":
                continue
            td = self.task_definition(svc["taskDefinition"])
            out[svc["serviceName"]] = {"revision": td["revision"], "image": td["containerDefinitions"][0]["image"],
                                       "desired": svc["desiredCount"],
                                       "target_groups": [tg_name(lb["targetGroupArn"])
                                                         for lb in svc.get("loadBalancers", [])]}
        return out

    def task_definition(self, arn: str) -> dict[str, Any]:
        return self.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]

    def revisions(self) -> int:
        return len(self.ecs.list_task_definitions(familyPrefix="app")["taskDefinitionArns"])

    def alarms(self, prefix: str = "mldeploy-app-canary") -> dict[str, str]:
        found = self.cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
        return {a["AlarmName"]: a["StateValue"] for a in found}

    def lock(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.ssm.get_parameter(Name="/mldeploy/app/default/lock")["Parameter"]["Value"])
        except self.ssm.exceptions.ParameterNotFound:
            return None

    def records(self) -> list[dict[str, Any]]:
        """History records straight from SSM, oldest first."""
        params = self.ssm.get_parameters_by_path(Path="/mldeploy/app/default/releases")["Parameters"]
        return sorted((json.loads(p["Value"]) for p in params), key=lambda r: r["id"])

    def wait_for(self, predicate: Any, timeout: float = 60, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except Exception:  # noqa: S112 - resources may not exist yet
                pass
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")


def history(cwd: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """Records oldest first (``history --json`` lists newest first)."""
    proc = ok(["history", "--json", "--limit", "100"], cwd, env)
    return json.loads(proc.stdout)["deployments"][::-1]


@contextlib.contextmanager
def serve_models(tmp: Path, models_dir: Path) -> Iterator[str]:
    """``python -m runtime --models-dir`` on a free port until ready; yields its URL."""
    from tests.infra import runtime_server

    with runtime_server(tmp, models_dir=models_dir) as proc:
        yield proc.url
