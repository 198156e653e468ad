"""The commands a GitHub workflow runs, under GITHUB_ACTIONS=true against the moto server: what each writes to
$GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY, `--json`, the lock's exit code, and no prompts in CI.

moto runs no tasks: the release commands' health waits are skipped with MLDEPLOY_SKIP_HEALTH_WAIT=1 (as in the
release tests) and `up` runs with --no-wait; images are never pulled, so any digest-pinned URI works.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mldeploy.errors import ExitCode
from tests.ci_helpers import GhRun, clean_env, run_gh

CONFIG = """\
name: iris
model:
  path: model.onnx
  version: 1.0.0
aws:
  region: us-east-1
  desired_count: 1
cost:
  capacity_rps_per_task: 50
"""
IMAGE_V1 = "127.0.0.1:5000/iris@sha256:" + "1" * 64
IMAGE_V2 = "127.0.0.1:5000/iris@sha256:" + "2" * 64


class Gh:
    """A project folder and the CLI run as a GitHub Actions step against moto."""

    def __init__(self, root: Path, aws_env: dict[str, str]) -> None:
        self.root = root
        (root / "model.onnx").write_bytes(b"moto never runs tasks")
        (root / "mldeploy.yaml").write_text(CONFIG)
        self.env = clean_env({**aws_env, "MLDEPLOY_SKIP_HEALTH_WAIT": "1", "MLDEPLOY_POLL_S": "0.2",
                              "COLUMNS": "200"})

    def __call__(self, *args: str) -> GhRun:
        return run_gh(list(args), self.root, self.root / ".gh", env=self.env, timeout=180)


@pytest.fixture
def gh(tmp_path: Path, aws: dict[str, str]) -> Gh:
    return Gh(tmp_path, aws)


def ok(run: GhRun) -> GhRun:
    assert run.code == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    return run


def test_plan_up_status_canary_promote_rollback_outputs_and_summaries(gh: Gh):
    plan = ok(gh("plan"))
    assert int(plan.outputs["changes"]) > 5
    assert plan.summary.startswith("### mldeploy plan `iris`")
    assert "| ➕ | ecs service | `iris` |" in plan.summary
    assert "Estimated cost" in plan.summary and "/month" in plan.summary

    up = ok(gh("up", "--image", IMAGE_V1, "--no-wait"))
    assert up.outputs["url"].startswith("http") and up.outputs["version"] == "1.0.0"
    assert up.outputs["image_digest"] == "sha256:" + "1" * 64
    assert up.outputs["task_definition_arn"].endswith(":task-definition/iris:1")
    assert "::group::plan" in up.stderr and "::endgroup::" in up.stderr  # collapsible sections in the log
    assert "### mldeploy up `iris`" in up.summary and up.outputs["url"] in up.summary

    status = ok(gh("status", "--json"))
    assert json.loads(status.stdout)["deployed"] is True
    assert status.outputs["deployed"] == "true" and status.outputs["url"] == up.outputs["url"]
    assert "| **Deployed** | yes |" in status.summary

    canary = ok(gh("canary", "--percent", "10", "--image", IMAGE_V2))
    assert canary.outputs["canary_state"] == "active" and canary.outputs["canary_percent"] == "10"
    assert canary.outputs["task_definition_arn"].endswith(":2")  # the canary's revision
    assert "gets 10 % of traffic" in canary.summary

    promote = ok(gh("promote", "--yes"))
    assert promote.outputs["canary_state"] == "none"
    assert promote.outputs["task_definition_arn"].endswith(":2")  # now stable
    assert "no canary" in promote.summary

    rollback = ok(gh("rollback", "--yes"))
    assert rollback.outputs["task_definition_arn"].endswith(":1")  # back to the first release

    history = ok(gh("history", "--json"))
    actions = [d["action"] for d in json.loads(history.stdout)["deployments"]]
    assert actions[0] == "rollback" and "canary" in actions and "up" in actions


def test_lock_held_exits_7_with_an_annotation(gh: Gh):
    """Another job holds the app/env lock (taken here in-process, through the release package's own lock)."""
    import boto3

    from mldeploy.aws.clients import clients
    from mldeploy.config import load_project
    from mldeploy.release.lock import DeployLock

    ok(gh("up", "--image", IMAGE_V1, "--no-wait"))
    project = load_project(gh.root / "mldeploy.yaml")
    with DeployLock.for_project(project, clients(project), "canary (another CI job)", ttl_s=600):
        run = gh("canary", "--percent", "10", "--image", IMAGE_V2)
    assert run.code == ExitCode.LOCKED, run.stderr
    assert "::error::" in run.stderr and "Traceback" not in run.stderr
    services = boto3.client("ecs").describe_services(cluster="iris", services=["iris-canary"])["services"]
    assert all(s["status"] == "INACTIVE" for s in services)  # nothing was started


def test_destructive_command_in_ci_needs_yes(gh: Gh):
    run = gh("down")
    assert run.code == ExitCode.USAGE
    assert "--yes" in run.stderr and "Traceback" not in run.stderr


def test_json_on_reporting_commands(gh: Gh):
    """`--json` gives one parseable document on stdout (progress stays on stderr) for the reporting commands
    that need no Docker: plan, status, history, cost (build and bench are covered by their own tests)."""
    for args in (["plan"], ["status"], ["history"], ["cost", "--rps", "1,10"]):
        run = ok(gh(*args, "--json"))
        doc = json.loads(run.stdout)
        assert isinstance(doc, dict) and doc, args
