"""Helpers for the AWS tests: a project folder, the CLI as a subprocess, the API call log."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BASE_CONFIG: dict[str, Any] = {
    "name": "demo",
    "model": {"path": "model.onnx"},
    "aws": {"region": "us-east-1", "desired_count": 2},
}


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    calls: list[dict[str, Any]]

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def mutating(self) -> list[str]:
        return [c["op"] for c in self.calls if c["mutating"]]

    @property
    def resource_mutating(self) -> list[str]:
        """Mutating calls on resources: without the deployment lock and history bookkeeping in SSM."""
        return [c["op"] for c in self.calls if c["mutating"] and not self.is_bookkeeping(c)]

    @staticmethod
    def is_bookkeeping(call: dict[str, Any]) -> bool:
        name = str(call.get("params", {}).get("Name", ""))
        return call["op"] in ("PutParameter", "DeleteParameter") and ("/lock" in name or "/releases/" in name)

    def params(self, op: str) -> list[dict[str, Any]]:
        return [c.get("params", {}) for c in self.calls if c["op"] == op]


class Project:
    """A folder with mldeploy.yaml; ``run`` executes ``python -m mldeploy`` there against moto."""

    def __init__(self, root: Path, env: dict[str, str], config: dict[str, Any] | None = None) -> None:
        self.root = root
        self.env = dict(env, MLDEPLOY_POLL_S="0.2", NO_COLOR="1", CI="true", COLUMNS="200")
        (root / "model.onnx").write_bytes(b"not really a model: moto never runs tasks")
        self.write(config or BASE_CONFIG)

    def write(self, config: dict[str, Any]) -> None:
        (self.root / "mldeploy.yaml").write_text(yaml.safe_dump(config))

    def run(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Result:
        log = self.root / "api.jsonl"
        log.unlink(missing_ok=True)
        full_env = dict(self.env, MLDEPLOY_API_LOG=str(log), MLDEPLOY_API_LOG_PARAMS="1", **(env or {}))
        proc = subprocess.run([sys.executable, "-m", "mldeploy", *args], cwd=self.root, env=full_env,
                              capture_output=True, text=True, timeout=timeout)
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return Result(proc.returncode, proc.stdout, proc.stderr, calls)


def tagged_arns(client_factory, app: str = "demo") -> list[str]:
    """ARNs the tagging API lists for the app, minus deleted (INACTIVE) ECS clusters/services that moto keeps
    listing after deletion."""
    tagging = client_factory("resourcegroupstaggingapi")
    ecs = client_factory("ecs")
    arns = [r["ResourceARN"] for r in tagging.get_resources(
        TagFilters=[{"Key": "mldeploy:app", "Values": [app]}])["ResourceTagMappingList"]]
    live = []
    for arn in arns:
        if ":cluster/" in arn and all(c["status"] == "INACTIVE"
                                      for c in ecs.describe_clusters(clusters=[arn])["clusters"]):
            continue
        if ":service/" in arn:
            cluster = arn.split(":service/", 1)[1].split("/")[0]
            try:
                if all(s["status"] == "INACTIVE" for s in ecs.describe_services(cluster=cluster,
                                                                                services=[arn])["services"]):
                    continue
            except ecs.exceptions.ClusterNotFoundException:
                continue
        live.append(arn)
    return live
