"""Rollout waits against a moto server, through the real CLI (issue 20 item 3): the deadline (exit 8), Ctrl-C
(exit 130) and ``--no-wait`` on the release commands.

What moto cannot show: it runs no tasks, so a service's primary deployment stays ``rolloutState: IN_PROGRESS`` with
``runningCount`` 0 and ``pendingCount`` = desired for ever, it records no service ``events`` (DescribeServices
answers ``events: []``) and answers ``ListServiceDeployments`` with HTTP 500 (the wait falls back to
``deployments[]``). So here a wait can only time out or be interrupted, and the report says "no service events";
progress that changes, new events, de-duplication and the 30 s CI heartbeat are tested with a fake clock and a
scripted describe sequence in tests/unit/test_rollout_progress.py. The other e2e suites skip these waits with
``MLDEPLOY_SKIP_HEALTH_WAIT=1``; these tests unset it.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mldeploy.errors import ExitCode
from tests import infra
from tests.release_helpers import REGISTRY, Emulator, cli, cli_env, ok, write_project
from tests.test_aws_helpers import BASE_CONFIG, Project

IMAGE = "registry.example/demo:1"


@pytest.fixture
def project(tmp_path: Path, aws: dict[str, str]) -> Project:
    env = {k: v for k, v in aws.items() if k != "MLDEPLOY_SKIP_HEALTH_WAIT"}
    return Project(tmp_path, env, {**BASE_CONFIG, "aws": {**BASE_CONFIG["aws"], "deploy_timeout_s": 10}})


def test_up_past_aws_deploy_timeout_exits_8_then_ctrl_c_says_what_runs(project: Project):
    t0 = time.monotonic()
    r = project.run("up", "--image", IMAGE)
    took = time.monotonic() - t0
    assert r.rc == int(ExitCode.NOT_READY) == 8, r.stderr
    assert "Traceback" not in r.stderr
    err = " ".join(r.stderr.split())  # rich wraps long lines
    # CI mode (CI=true): the state line once (it never changes on moto), not one per poll every 0.2 s
    assert len(re.findall(r"\d+s rollout IN_PROGRESS: 0/2 running, 2 pending", r.stderr)) == 1, r.stderr
    assert re.search(r"service demo \(cluster demo\) not stable after 10s \(aws\.deploy_timeout_s\): deployment "
                     r"ecs-svc/\d+ IN_PROGRESS, task definition demo:1, 0/2 running, 2 pending", err), err
    assert "no service events since the deployment began" in err  # moto records none
    assert "the rollout continues on AWS" in err and "`mldeploy status`" in err and "`mldeploy rollback`" in err
    assert 10 <= took < 60
    # the change was applied and stays: the service exists and a re-run has nothing to change
    assert "CreateService" in r.mutating

    # Ctrl-C during the wait of a re-run: exit 130, what still runs, the lock released
    errfile = project.root / "stderr.txt"
    with errfile.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "mldeploy", "up", "--image", IMAGE], cwd=project.root,
                                env=project.env, stdout=subprocess.DEVNULL, stderr=fh, text=True,
                                preexec_fn=infra.interruptible)
        deadline = time.monotonic() + 60
        while "rollout IN_PROGRESS" not in errfile.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    out = errfile.read_text()
    assert proc.returncode == int(ExitCode.INTERRUPTED), out
    assert "Traceback" not in out
    flat = " ".join(out.split())
    assert re.search(r"interrupted after \d+s waiting for the rollout of demo; still running on AWS: service demo "
                     r"\(cluster demo\): deployment ecs-svc/\d+ IN_PROGRESS, task definition demo:1, 0/2 running, "
                     r"2 pending", flat), flat
    assert "nothing is lost" in flat and "run the same command again" in flat
    r = project.run("up", "--image", IMAGE, "--no-wait")
    assert r.rc == 0 and "nothing to change" in r.stderr and r.resource_mutating == [], r.stderr


def test_release_commands_no_wait_apply_and_record_unverified(tmp_path: Path, aws: dict[str, str],
                                                               monkeypatch: pytest.MonkeyPatch):
    """Without the emulator shortcut a canary/promote wait would never end on moto; --no-wait returns at once and
    the history says the rollout was not verified."""
    root = write_project(tmp_path / "p")
    env = cli_env(aws)
    ok(["up", "--no-wait", "--image", f"{REGISTRY}:v1"], root, env)
    del env["MLDEPLOY_SKIP_HEALTH_WAIT"]
    emu = Emulator()

    r = cli(["canary", "--percent", "10", "--image", f"{REGISTRY}:1.1.0", "--no-wait", "--json"], root, env, 60)
    assert r.returncode == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "not waiting (--no-wait)" in err
    assert "not verified (--no-wait): the ECS rollout of app-canary was still in progress: the history records " \
           "this canary as active at 10%" in err, err
    assert "`mldeploy rollback` removes the canary" in err and "`mldeploy status`" in err
    assert emu.weights() == {"app-tg": 90, "app-tgc": 10}
    import json

    result = json.loads(r.stdout)
    assert result["rollout_verified"] is False and "not verified" in result["record"]["reason"]
    canary = emu.records()[-1]
    assert (canary["action"], canary["outcome"], canary["percent"]) == ("canary", "active", 10)
    assert "not verified (--no-wait)" in canary["reason"]

    r = cli(["promote", "--yes", "--no-wait"], root, env, 60)
    assert r.returncode == 0, r.stderr
    assert "records the promotion as succeeded" in " ".join(r.stderr.split())
    promote = emu.records()[-1]
    assert (promote["action"], promote["outcome"]) == ("promote", "succeeded")
    assert "not verified (--no-wait)" in promote["reason"]
    assert emu.weights() == {"app-tg": 100} and set(emu.services()) == {"app"}

    r = cli(["rollback", "--yes", "--no-wait"], root, env, 60)
    assert r.returncode == 0, r.stderr
    back = emu.records()[-1]
    assert (back["action"], back["outcome"], back["version"]) == ("rollback", "succeeded", "1.0.0")
    assert "not verified (--no-wait)" in back["reason"]

    r = cli(["canary", "--percent", "10", "--auto", "--no-wait", "--image", f"{REGISTRY}:1.3.0"], root, env, 60)
    assert r.returncode == 2 and "--auto cannot be combined with --no-wait" in r.stderr
