"""Deployment faults against the moto server: the CLI is SIGKILLed (or gets an injected error) right after a
mutating AWS call of ``up``, ``canary`` and ``promote``; re-runs converge to the state a clean run produces, with
no orphaned resource (counted via the tagging API and per-service describe calls); ``down`` after a half-finished
``up`` removes everything.

Faults come from ``mldeploy.aws.faults`` (``MLDEPLOY_FAULT_AFTER=N``: die after the N-th mutating call of that
run). A *walk* re-runs the command until it exits 0, every run dying a few calls further into the deployment; the
final state is compared with a clean run's (``inventory``). ``benchmarks/hardening_summary.py --full`` makes every
mutating call of ``up`` a kill point (``canary``: every second call; each of its runs begins with four
bookkeeping calls: breaking and taking the lock, closing the dead run's history record, opening its own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from benchmarks.hardening_summary import record
from mldeploy.errors import ExitCode

pytestmark = [pytest.mark.aws, pytest.mark.slow]

IMAGE_V1 = "registry.example/app:v1"
IMAGE_V2 = "registry.example/app:v2"
# CI: run k dies after call k+1 (+ the lock), so the walk visits a growing spacing of points; --full
# (MLDEPLOY_FAULT_FULL=1): every run dies right after its first real call, so every call is a kill point
FULL = os.environ.get("MLDEPLOY_FAULT_FULL") == "1"
STEP = 0 if FULL else 1
KILLED = -9


def _write(root: Path, name: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.onnx").write_bytes(b"moto never runs tasks")
    cfg = {"name": name, "model": {"path": "model.onnx", "version": "1.0.0"},
           "aws": {"region": "us-east-1", "desired_count": 2}, "release": {"steps": [10, 50], "bake_time_s": 30}}
    (root / "mldeploy.yaml").write_text(yaml.safe_dump(cfg))
    return root


def _cli(root: Path, env: dict[str, str], *args: str, fault: int | None = None, mode: str = "kill"
         ) -> subprocess.CompletedProcess[str]:
    full = dict(env, MLDEPLOY_POLL_S="0.2", MLDEPLOY_SKIP_HEALTH_WAIT="1", NO_COLOR="1", CI="true", COLUMNS="200")
    if fault is not None:
        full.update(MLDEPLOY_FAULT_AFTER=str(fault), MLDEPLOY_FAULT_MODE=mode)
    proc = subprocess.run([sys.executable, "-m", "mldeploy", *args], cwd=root, env=full, capture_output=True,
                          text=True, timeout=180)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _walk(root: Path, env: dict[str, str], args: list[str], first: int, step: int = 1, mode: str = "kill",
          finished: str | None = None) -> list[int]:
    """Re-run ``args`` (``--force-unlock`` after the first run: a SIGKILLed run leaves its deployment lock) with a
    fault after mutating call ``first + k * step`` of run k, until a run succeeds; returns the exit codes.

    Every run starts with a few bookkeeping calls (breaking/taking the lock, a history record), so a fixed point
    (``step=0``) must exceed them: each run then gets exactly ``first - overhead`` calls further. ``finished``: a
    re-run's error that means the killed run had already reached the goal (promote: "no canary is active")."""
    codes = []
    for attempt in range(80):
        proc = _cli(root, env, *args, *(["--force-unlock"] if attempt else []), fault=first + attempt * step,
                    mode=mode)
        codes.append(proc.returncode)
        if proc.returncode == 0 or (finished and finished in proc.stderr):
            return codes
        expected = KILLED if mode == "kill" else int(ExitCode.AWS)
        assert proc.returncode == expected, proc.stderr
        if mode == "error":
            assert "injected fault after mutating call" in proc.stderr, proc.stderr
    raise AssertionError(f"{args} never converged: {codes}")


def inventory(moto_server, app: str) -> Counter:
    """Every resource of ``app`` by kind: tagged ARNs (tagging API, live ones) plus what the tagging API does not
    list (IAM roles, ECR repositories, listeners, scalable targets, scaling policies, dashboards, SG rules)."""
    from tests.test_aws_helpers import tagged_arns

    inv: Counter = Counter()
    for arn in tagged_arns(moto_server.client, app):
        if ":parameter/mldeploy/" in arn and "/releases/" in arn:
            inv["history:record"] += 1  # one per attempt, also for attempts that died: not infrastructure
            continue
        kind = arn.split(":")[5].split("/")[0] if arn.split(":")[2] != "cloudwatch" else "alarm"
        inv[f"tagged:{arn.split(':')[2]}:{kind}"] += 1
    iam = moto_server.client("iam")
    inv["iam:role"] = sum(r["RoleName"].startswith(f"{app}-") for r in iam.list_roles()["Roles"])
    ecr = moto_server.client("ecr")
    inv["ecr:repository"] = sum(r["repositoryName"] == app for r in ecr.describe_repositories()["repositories"])
    elb = moto_server.client("elbv2")
    lbs = [lb for lb in elb.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == app]
    inv["elb:listener"] = sum(len(elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"])
                              for lb in lbs)
    inv["elb:target-group"] = sum(tg["TargetGroupName"].startswith(f"{app}-")
                                  for tg in elb.describe_target_groups()["TargetGroups"])
    aas = moto_server.client("application-autoscaling")
    inv["autoscaling:target"] = sum(t["ResourceId"].startswith(f"service/{app}/") for t in
                                    aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"])
    inv["autoscaling:policy"] = sum(p["ResourceId"].startswith(f"service/{app}/") for p in
                                    aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"])
    cw = moto_server.client("cloudwatch")
    inv["cloudwatch:dashboard"] = sum(d["DashboardName"].endswith(f"-{app}")
                                      for d in cw.list_dashboards()["DashboardEntries"])
    ec2 = moto_server.client("ec2")
    groups = [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"].startswith(f"{app}-")]
    inv["ec2:sg-ingress-rule"] = sum(len(g["IpPermissions"]) for g in groups)
    ecs = moto_server.client("ecs")
    inv["ecs:task-definition-revision"] = len(ecs.list_task_definitions(familyPrefix=app, status="ACTIVE")
                                              ["taskDefinitionArns"])
    return +inv  # drop zero counts


def _orphans(got: Counter, want: Counter) -> dict[str, int]:
    return {k: got[k] - want[k] for k in set(got) | set(want) if got[k] != want[k] and k != "history:record"}


@pytest.fixture
def projects(tmp_path, aws):
    return (_write(tmp_path / "ref", "ref"), _write(tmp_path / "app", "app"), aws)


def test_up_killed_or_failing_after_each_call_converges_without_orphans(projects, moto_server):
    ref, app, env = projects
    assert _cli(ref, env, "up", "--image", IMAGE_V1, "--no-wait").returncode == 0
    want = inventory(moto_server, "ref")

    codes = _walk(app, env, ["up", "--image", IMAGE_V1, "--no-wait"], 3, STEP)
    assert codes.count(KILLED) >= 5, codes  # the walk really died along the way
    assert json.loads(_cli(app, env, "plan", "--json").stdout)["changes"] == 0
    got = inventory(moto_server, "app")
    orphans = _orphans(got, want)
    record("faults", f"up: SIGKILL, {'every call' if FULL else 'growing spacing'}, re-run with --force-unlock", {
        "runs": len(codes), "killed": codes.count(KILLED), "converged": True, "orphans": sum(orphans.values()),
        "resources": sum(got.values())})
    assert orphans == {}, (got, want)

    other = _write(app.parent / "app2", "app2")
    stride = 2 if FULL else 5
    codes = _walk(other, env, ["up", "--image", IMAGE_V1, "--no-wait"], stride, 0, mode="error")
    assert len(codes) >= 3, codes
    got = inventory(moto_server, "app2")
    orphans = _orphans(got, want)
    record("faults", f"up: AwsError after every {stride} mutating calls", {
        "runs": len(codes), "killed": 0, "errors": len(codes) - 1, "converged": True,
        "orphans": sum(orphans.values()), "resources": sum(got.values())})
    assert orphans == {}, (got, want)


def test_down_after_half_finished_up_removes_everything(projects, moto_server):
    _, app, env = projects
    proc = _cli(app, env, "up", "--image", IMAGE_V1, "--no-wait", fault=16)  # after RegisterTaskDefinition
    assert proc.returncode == KILLED
    left = inventory(moto_server, "app")
    assert left["tagged:ecs:task-definition"] + left["tagged:elasticloadbalancing:loadbalancer"] >= 1, left
    down = _cli(app, env, "down", "--yes", "--purge")
    assert down.returncode == 0, down.stderr
    after = inventory(moto_server, "app")
    record("faults", "down after up killed at call 16", {
        "runs": 2, "killed": 1, "converged": True, "orphans": sum(after.values()), "resources": sum(left.values())})
    assert after == Counter(), after


def test_canary_and_promote_killed_at_every_call_converge(projects, moto_server):
    ref, app, env = projects
    for root in (ref, app):
        assert _cli(root, env, "up", "--image", IMAGE_V1, "--no-wait").returncode == 0
    clean = _cli(ref, env, "canary", "--percent", "10", "--image", IMAGE_V2)
    assert clean.returncode == 0, clean.stderr
    want_canary = inventory(moto_server, "ref")

    codes = _walk(app, env, ["canary", "--percent", "10", "--image", IMAGE_V2], 6 if FULL else 1, STEP)
    got = inventory(moto_server, "app")
    orphans = _orphans(got, want_canary)
    spacing = "every 2nd call" if FULL else "growing spacing"
    record("faults", f"canary --percent 10: SIGKILL, {spacing}, --force-unlock", {
        "runs": len(codes), "killed": codes.count(KILLED), "converged": True, "orphans": sum(orphans.values()),
        "resources": sum(got.values())})
    status = _cli(app, env, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert orphans == {}, (got, want_canary)

    assert _cli(ref, env, "promote", "--yes").returncode == 0
    want_promoted = inventory(moto_server, "ref")
    # promote re-issues its (idempotent) calls on every run instead of skipping done ones: a fixed kill point
    # would loop, so its walk always moves one call further per run
    codes = _walk(app, env, ["promote", "--yes"], 5 if FULL else 1, 1, finished="no canary is active")
    got = inventory(moto_server, "app")
    orphans = _orphans(got, want_promoted)
    record("faults", "promote: SIGKILL, one call further per run, --force-unlock", {
        "runs": len(codes), "killed": codes.count(KILLED), "converged": True, "orphans": sum(orphans.values()),
        "resources": sum(got.values())})
    assert orphans == {}, (got, want_promoted)
