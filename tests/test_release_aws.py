"""Release management through the real CLI (subprocesses) against a moto server.

What moto cannot show: it runs no tasks, so runningCount stays 0 and no targets register in the target groups;
the CLI's waits for healthy canary targets and service stability are skipped with MLDEPLOY_SKIP_HEALTH_WAIT=1,
except in one test where the canary is expected to time out and be removed (the successful waits are exercised
against stubbed clients in test_release_unit.py). CloudWatch alarms never evaluate metrics
in moto either; the tests put them in ALARM with set_alarm_state.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.release_helpers import (
    REGISTRY,
    Emulator,
    cli,
    cli_env,
    cli_in_process,
    history,
    ok,
    up,
    write_project,
)

pytestmark = [pytest.mark.aws]

STABLE_ONLY = {"app-tg": 100}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj")


def bump(project: Path, version: str, **kw: object) -> None:
    write_project(project, version=version, **kw)  # type: ignore[arg-type]


def test_up_canary_promote_canary_rollback_rollback_to(project: Path, aws: dict[str, str]):
    env = cli_env(aws, GITHUB_ACTOR="alice", GITHUB_SHA="0123456789abcdef")
    emu = Emulator()
    up(project, env)
    assert emu.weights() == STABLE_ONLY
    # `up` wrote its own record (with its actor), before any other command ran
    assert [(r["action"], r["version"], r["revision"]) for r in history(project, env)] == [("up", "1.0.0", 1)]
    stable_td = emu.task_definition(emu.ecs.describe_services(cluster="app", services=["app"])["services"][0]
                                    ["taskDefinition"])

    # canary 10: a second service behind a second target group, weighted 90/10
    bump(project, "1.1.0")
    proc = ok(["canary", "--percent", "10", "--image", f"{REGISTRY}:1.1.0", "--json"], project, env)
    assert json.loads(proc.stdout)["canary"]["percent"] == 10
    assert emu.weights() == {"app-tg": 90, "app-tgc": 10}
    services = emu.services()
    assert services["app"]["revision"] == 1 and services["app"]["image"] == f"{REGISTRY}:v1"
    assert services["app-canary"] == {"revision": 2, "image": f"{REGISTRY}:1.1.0", "desired": 1,
                                      "target_groups": ["app-tgc"]}
    canary_td = emu.task_definition("app:2")
    # the canary differs from the stable task definition only in its image and model version
    for key in ("cpu", "memory", "executionRoleArn", "networkMode", "requiresCompatibilities"):
        assert canary_td.get(key) == stable_td.get(key), key
    env_vars = {e["name"]: e["value"] for e in canary_td["containerDefinitions"][0]["environment"]}
    assert env_vars["MLDEPLOY_MODEL_VERSION"] == "1.1.0"
    assert set(emu.alarms()) == {"mldeploy-app-canary-5xx", "mldeploy-app-canary-p99"}

    # canary 50: only the weights (and the canary's task count) move; no new task definition
    ok(["canary", "--percent", "50"], project, env)
    assert emu.weights() == {"app-tg": 50, "app-tgc": 50}
    assert emu.revisions() == 2
    assert emu.services()["app-canary"]["desired"] == 1  # ceil(2 × 50 %)

    # promote: stable takes revision 2, weights 100/0, canary service and alarms gone
    ok(["promote", "--yes"], project, env)
    assert emu.weights() == STABLE_ONLY
    assert set(emu.services()) == {"app"} and emu.services()["app"]["revision"] == 2
    assert emu.alarms() == {}

    # another canary, then rollback: the canary goes, stable stays on revision 2
    bump(project, "1.2.0")
    ok(["canary", "--percent", "25", "--image", f"{REGISTRY}:1.2.0"], project, env)
    assert emu.weights() == {"app-tg": 75, "app-tgc": 25}
    assert emu.services()["app-canary"]["revision"] == 3
    ok(["rollback", "--yes"], project, env)
    assert emu.weights() == STABLE_ONLY
    assert set(emu.services()) == {"app"} and emu.services()["app"]["revision"] == 2

    # rollback --to an older version: stable returns to revision 1 (v1)
    ok(["rollback", "--yes", "--to", "1.0.0"], project, env)
    assert emu.services()["app"] == {"revision": 1, "image": f"{REGISTRY}:v1", "desired": 2,
                                     "target_groups": ["app-tg"]}
    assert emu.weights() == STABLE_ONLY

    # history: durable in SSM, one record per deployment
    records = history(project, env)  # the CLI's JSON (newest first, reversed by the helper)
    assert records == emu.records()
    assert [(r["action"], r["version"], r["revision"], r["outcome"]) for r in records] == [
        ("up", "1.0.0", 1, "succeeded"),
        ("canary", "1.1.0", 2, "promoted"),
        ("promote", "1.1.0", 2, "succeeded"),
        ("canary", "1.2.0", 3, "rolled_back"),
        ("rollback", "1.1.0", 2, "succeeded"),
        ("rollback", "1.0.0", 1, "succeeded"),
    ]
    assert records[1]["percent"] == 100 and records[3]["percent"] == 25
    assert all(r["actor"] == "alice (github)" for r in records[1:])
    assert all(r["git_commit"] == "0123456789abcdef" for r in records)
    assert records[1]["image"] == f"{REGISTRY}:1.1.0" and records[-1]["from_revision"] == 2
    params = emu.ssm.get_parameters_by_path(Path="/mldeploy/app/default/releases")["Parameters"]
    assert len(params) == 6
    assert emu.lock() is None  # released after every command

    # the lineage is a stack: v1 is the oldest, there is nothing earlier to return to
    proc = cli(["rollback", "--yes"], project, env)
    assert proc.returncode == 10 and "no earlier version of app to roll back to" in proc.stderr

    table = ok(["history"], project, env).stdout
    assert "rolled_back" in table and "1.2.0" in table and "alice" in table


def test_invalid_transitions_change_nothing(project: Path, aws: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]):
    """The CLI's main() in this process (saves an interpreter start per check), against the same moto server."""
    env = cli_env(aws)
    for key in ("MLDEPLOY_SKIP_HEALTH_WAIT", "COLUMNS", "NO_COLOR"):
        monkeypatch.setenv(key, env[key])
    emu = Emulator()

    def run(*args: str, code: int, message: str) -> None:
        proc = cli_in_process(list(args), project, monkeypatch, capsys)
        assert proc.returncode == code, (args, proc.stderr)
        assert message in proc.stderr.replace("\n", " "), (args, proc.stderr)

    run("canary", "--percent", "10", "--image", f"{REGISTRY}:1.1.0", code=10, message="nothing is deployed for app")
    up(project, env)
    run("promote", "--yes", code=10, message="no canary is active for app (cluster app): nothing to promote")
    run("rollback", "--yes", code=10, message="no earlier version of app to roll back to")
    run("rollback", "--yes", "--to", "9.9.9", code=10, message="no deployment of app with version or revision '9.9.9'")
    run("canary", "--percent", "150", "--image", f"{REGISTRY}:1.1.0", code=2, message="--percent 150 is outside 0–100")
    run("canary", code=2, message="--percent is required")
    run("canary", "--percent", "10", "--image", f"{REGISTRY}:v1", code=10, message="is already the stable version")
    run("rollback", code=2, message="pass --yes")  # no terminal, no --yes: refuse rather than act unasked
    assert emu.weights() == STABLE_ONLY and set(emu.services()) == {"app"} and emu.revisions() == 1

    # without the emulator shortcut the canary never becomes healthy (moto runs no tasks): it is removed again
    write_project(project, timeout=10)
    monkeypatch.delenv("MLDEPLOY_SKIP_HEALTH_WAIT")
    monkeypatch.setenv("MLDEPLOY_POLL_S", "1")
    run("canary", "--percent", "10", "--image", f"{REGISTRY}:v9", code=6,
        message="the canary never became healthy and was removed")
    assert emu.weights() == STABLE_ONLY and set(emu.services()) == {"app"} and emu.alarms() == {}
    monkeypatch.setenv("MLDEPLOY_SKIP_HEALTH_WAIT", "1")

    run("canary", "--percent", "10", "--image", f"{REGISTRY}:1.1.0", code=0, message="takes 10% of traffic")
    run("canary", "--percent", "20", "--image", f"{REGISTRY}:1.2.0", code=10,
        message=f"a canary is already active for app (cluster app) with {REGISTRY}:1.1.0 (10% of traffic)")
    run("rollback", "--yes", "--to", "1.0.0", code=10,
        message="roll it back before returning the stable service to 1.0.0")
    assert emu.weights() == {"app-tg": 90, "app-tgc": 10} and emu.revisions() == 3
    # each canary records its image's version (the tag here: moto's registry has no labels to read)
    assert [(r["version"], r["outcome"]) for r in emu.records()[1:]] == [("v9", "failed"), ("1.1.0", "active")]
    assert emu.lock() is None


def test_auto_rolls_back_when_a_canary_alarm_fires_then_promotes_when_quiet(project: Path, aws: dict[str, str]):
    env = cli_env(aws)
    emu = Emulator()
    up(project, env)
    bump(project, "1.1.0", steps="[10, 50]", bake=60)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mldeploy", "canary", "--auto", "--image", f"{REGISTRY}:1.1.0"],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        emu.wait_for(lambda: emu.weights() == {"app-tg": 90, "app-tgc": 10}, what="the 10% step")
        emu.wait_for(lambda: len(emu.alarms()) == 2, what="the canary alarms")
        assert set(emu.alarms().values()) <= {"OK", "INSUFFICIENT_DATA"}
        emu.cw.set_alarm_state(AlarmName="mldeploy-app-canary-5xx", StateValue="ALARM",
                               StateReason="Threshold Crossed: 12.5% 5xx")
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 6, stderr
    assert time.monotonic() - started < 45  # it reacted to the alarm instead of baking out the 60 s
    assert "alarm mldeploy-app-canary-5xx fired at 10% of traffic" in stderr.replace("\n", " ")
    assert emu.weights() == STABLE_ONLY
    assert set(emu.services()) == {"app"} and emu.services()["app"]["revision"] == 1
    assert emu.alarms() == {}
    canary = emu.records()[1]
    assert canary["outcome"] == "rolled_back" and "mldeploy-app-canary-5xx" in canary["reason"]
    assert emu.lock() is None

    # quiet alarms: every step bakes, then the canary is promoted
    bump(project, "1.1.0", steps="[10, 50]", bake=1)
    proc2 = ok(["canary", "--auto", "--image", f"{REGISTRY}:1.1.0", "--json"], project, env)
    result = json.loads(proc2.stdout)
    assert [s["percent"] for s in result["steps"]] == [10, 50]
    assert "10% → 50%" in proc2.stderr and "promoted 1.1.0" in proc2.stderr
    assert emu.weights() == STABLE_ONLY and set(emu.services()) == {"app"}
    assert emu.services()["app"]["image"] == f"{REGISTRY}:1.1.0"


def test_lock_two_concurrent_cli_processes(project: Path, aws: dict[str, str]):
    env = cli_env(aws)
    emu = Emulator()
    up(project, env)
    bump(project, "1.1.0", steps="[10, 50]", bake=1)
    cmd = [sys.executable, "-m", "mldeploy", "canary", "--auto", "--image", f"{REGISTRY}:1.1.0"]
    procs = [subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=90), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 7], results
    loser = next(err for code, err in results if code == 7).replace("\n", " ")
    assert "another deployment of app is in progress: the lock is held by" in loser
    assert "canary --auto" in loser and "--force-unlock" in loser
    assert emu.lock() is None
    assert emu.services()["app"]["image"] == f"{REGISTRY}:1.1.0"  # the winner promoted exactly once
    assert [r["action"] for r in emu.records()] == ["up", "canary", "promote"]

    # a stale lock (its holder died) is reported, and broken only on request
    stale = {"holder": "ci-job-41", "pid": 4242, "host": "runner-7", "command": "promote", "token": "dead",
             "acquired_at": time.time() - 7200, "expires_at": time.time() - 3600}
    emu.ssm.put_parameter(Name="/mldeploy/app/default/lock", Value=json.dumps(stale), Type="String")
    proc = cli(["rollback", "--yes"], project, env)
    assert proc.returncode == 7
    assert "the deployment lock for app is stale: held by ci-job-41 (pid 4242 on runner-7" in \
        proc.stderr.replace("\n", " ")
    assert emu.services()["app"]["revision"] == 2
    proc = ok(["rollback", "--yes", "--force-unlock"], project, env)
    assert "broke the deployment lock held by ci-job-41" in proc.stderr.replace("\n", " ")
    assert emu.services()["app"]["revision"] == 1 and emu.lock() is None


def test_release_state_up_record_plan_status_sizing_version_and_down(project: Path, aws: dict[str, str]):
    """Issue 14 item 7, one claim per block."""
    env = cli_env(aws, GITHUB_ACTOR="bob")
    emu = Emulator()
    # `up` writes its own history record (its actor), before any other command reads the history
    up(project, env)
    assert [(r["action"], r["version"], r["actor"]) for r in emu.records()] == [("up", "1.0.0", "bob (github)")]

    proc = ok(["canary", "--percent", "50", "--image", f"{REGISTRY}:9.9.9"], project, env)  # config stays 1.0.0
    # canary --image records the image's version: the label is unreadable here (no registry), so the tag, warned
    assert "recording version '9.9.9' (its tag)" in proc.stderr.replace("\n", " ")
    assert emu.records()[-1]["version"] == "9.9.9"
    env_vars = {e["name"]: e["value"] for e in emu.task_definition("app:2")["containerDefinitions"][0]["environment"]}
    assert env_vars["MLDEPLOY_MODEL_VERSION"] == "9.9.9"

    # plan during a canary: no change for the stable service nor its task definition
    plan = json.loads(ok(["plan", "--json"], project, env).stdout)
    stable = [s for s in plan["steps"] if s["kind"] in ("ecs service", "task definition") and s["name"] in ("app",)]
    assert all(s["action"] == "no-op" for s in stable), [s["message"] for s in stable]

    # status shows the canary and its weight
    st = json.loads(ok(["status", "--json"], project, env).stdout)
    assert st["canary"]["name"] == "app-canary" and st["canary"]["percent"] == 50
    assert st["canary"]["version"] == "9.9.9" and st["weights"] == {"app-tg": 50, "app-tgc": 50}
    assert "50% of traffic" in ok(["status"], project, env).stderr

    # the canary scales with the stable service: `up` with 4 stable tasks resizes it to ceil(4 × 50 %) = 2
    assert emu.services()["app-canary"]["desired"] == 1
    emu.ecs.update_service(cluster="app", service="app", desiredCount=4)  # as autoscaling would
    proc = ok(["up", "--no-wait", "--image", f"{REGISTRY}:v1"], project, env)
    assert "desired count 1 → 2 (50% of 4 stable tasks)" in proc.stderr.replace("\n", " ")
    assert emu.services()["app-canary"]["desired"] == 2
    ok(["canary", "--percent", "75"], project, env)  # and every --percent recomputes from the stable count
    assert emu.services()["app-canary"]["desired"] == 3

    # status is current after promote: no canary, the stable service runs the canary's image and version
    ok(["promote", "--yes"], project, env)
    st = json.loads(ok(["status", "--json"], project, env).stdout)
    assert st["canary"] is None and st["weights"] == {"app-tg": 100}
    assert st["image"] == f"{REGISTRY}:9.9.9" and st["version"] == "9.9.9"

    # down deletes the canary's alarms with everything else
    ok(["canary", "--percent", "10", "--image", f"{REGISTRY}:1.2.0"], project, env)
    assert set(emu.alarms()) == {"mldeploy-app-canary-5xx", "mldeploy-app-canary-p99"}
    ok(["down", "--yes"], project, env)
    assert emu.alarms() == {} and emu.alarms("mldeploy-app") == {}


def _api_calls(log: Path) -> list[dict]:
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def _canary_polls_after_delete(calls: list[dict]) -> tuple[bool, int]:
    """(DeleteService of app-canary requested, DescribeServices of app-canary made after it)."""
    deleted = [i for i, c in enumerate(calls) if c["op"] == "DeleteService"
               and c.get("params", {}).get("service") == "app-canary"]
    if not deleted:
        return False, 0
    return True, sum(1 for c in calls[deleted[0]:] if c["op"] == "DescribeServices"
                     and c.get("params", {}).get("services") == ["app-canary"])


def test_no_wait_requests_the_canary_deletion_and_does_not_wait_for_its_drain(project: Path, aws: dict[str, str],
                                                                              tmp_path: Path):
    """``promote``/``rollback --no-wait`` request the canary service's deletion and return without polling for its
    drain; the history and ``--json`` say the removal is not verified.

    What moto cannot show: it runs no tasks, so a deleted service has nothing to drain and reads INACTIVE on the
    first DescribeServices — a drain wait ends on its first poll here. So the test compares the DescribeServices
    calls on the canary service after its DeleteService with and without ``--no-wait``: the wait's poll is the one
    more (on AWS that poll repeats until the tasks stopped)."""
    log = tmp_path / "api.jsonl"
    env = cli_env(aws, MLDEPLOY_API_LOG=str(log), MLDEPLOY_API_LOG_PARAMS="1")
    emu = Emulator()
    up(project, env)
    ok(["canary", "--percent", "10", "--image", f"{REGISTRY}:1.1.0"], project, env)
    _api_calls(log)
    ok(["rollback", "--yes"], project, env)  # waiting: the drain is polled
    requested, waited_polls = _canary_polls_after_delete(_api_calls(log))
    assert requested and waited_polls >= 1

    ok(["canary", "--percent", "10", "--image", f"{REGISTRY}:1.1.0"], project, env)
    _api_calls(log)
    proc = ok(["rollback", "--yes", "--no-wait", "--json"], project, env)
    requested, polls = _canary_polls_after_delete(_api_calls(log))
    assert requested and polls == waited_polls - 1, (polls, waited_polls)  # the deletion asked for, not waited on
    err = " ".join(proc.stderr.split())
    assert "not waiting (--no-wait): delete ecs service app-canary requested" in err, err
    assert "the deletion of app-canary was requested; its tasks were still draining" in err
    result = json.loads(proc.stdout)
    assert result["removal_verified"] is False and "app-canary" in result["record"]["reason"]
    last = emu.records()[-1]
    assert (last["action"], last["outcome"]) == ("rollback", "succeeded")
    assert "the deletion of app-canary was requested" in last["reason"]
    assert emu.weights() == STABLE_ONLY

    ok(["canary", "--percent", "10", "--image", f"{REGISTRY}:1.2.0"], project, env)
    _api_calls(log)
    proc = ok(["promote", "--yes", "--no-wait"], project, env)
    requested, polls = _canary_polls_after_delete(_api_calls(log))
    assert requested and polls == waited_polls - 1
    promoted = emu.records()[-1]
    assert (promoted["action"], promoted["outcome"], promoted["version"]) == ("promote", "succeeded", "1.2.0")
    assert "the deletion of app-canary was requested" in promoted["reason"]
    assert "app-canary" not in emu.services() and emu.weights() == STABLE_ONLY
