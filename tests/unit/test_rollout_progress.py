"""Rollout waits you can see (issue 20 item 3): progress lines, new ECS service events, the deadline, Ctrl-C.

A fake clock and a scripted DescribeServices sequence stand in for a real rollout (moto never runs tasks, see
tests/test_aws_waits.py for what the emulator can show).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mldeploy.aws import waiters
from mldeploy.errors import ExitCode, MldeployError, RolloutTimeoutError
from mldeploy.ui import LiveProgress, Ui

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    """Fake monotonic time: ``sleep`` advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


class RecordingUi(Ui):
    """A non-interactive Ui whose printed lines are kept."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    @property
    def interactive(self) -> bool:
        return False

    def print(self, *objects: Any, **kwargs: Any) -> None:
        self.lines.append(" ".join(str(o) for o in objects))

    def info(self, message: str) -> None:
        self.lines.append(message)


def event(n: int, message: str, seconds: int) -> dict[str, Any]:
    return {"id": f"ev-{n}", "createdAt": T0 + timedelta(seconds=seconds), "message": message}


def service(running: int, pending: int, state: str = "IN_PROGRESS", events: list[dict[str, Any]] | None = None,
            old: int = 0) -> dict[str, Any]:
    """An ECS service as DescribeServices answers it, mid-rollout of td:2 (deployment ecs-svc/1)."""
    deployments = [{"id": "ecs-svc/1", "status": "PRIMARY", "taskDefinition": "arn:aws:ecs:r:1:task-definition/app:2",
                    "rolloutState": state, "desiredCount": 2, "runningCount": running, "pendingCount": pending,
                    "createdAt": T0}]
    if old:
        deployments.append({"id": "ecs-svc/0", "status": "ACTIVE", "runningCount": old, "desiredCount": 0,
                            "taskDefinition": "arn:aws:ecs:r:1:task-definition/app:1"})
    return {"serviceName": "app", "status": "ACTIVE", "desiredCount": 2, "runningCount": running + old,
            "pendingCount": pending, "deployments": deployments, "events": sorted(
                events or [], key=lambda e: e["createdAt"], reverse=True)}  # ECS: newest first


class FakeEcs:
    """``describe_services`` answers the scripted services in turn (the last one repeats); an exception in the
    script is raised instead. ``list_service_deployments`` is missing (as on moto): the wait reads deployments[]."""

    def __init__(self, script: list[Any]) -> None:
        self.script, self.calls = list(script), 0

    def describe_services(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        return {"services": [item]}


class FakeClients:
    def __init__(self, ecs: FakeEcs) -> None:
        self.ecs = ecs

    def get(self, name: str) -> Any:
        return getattr(self, name)


def wait(script: list[Any], ui: Ui, clock: Clock, timeout: float = 600) -> dict[str, Any] | None:
    return waiters.wait_stable(FakeClients(FakeEcs(script)), ui, timeout=timeout, cluster="app",  # type: ignore[arg-type]
                               service="app", task_definition="arn:aws:ecs:r:1:task-definition/app:2",
                               clock=clock, sleep=clock.sleep)


@pytest.fixture(autouse=True)
def _poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_POLL_S", "10")
    monkeypatch.delenv("MLDEPLOY_SKIP_HEALTH_WAIT", raising=False)


def test_progress_shows_each_change_and_only_new_events() -> None:
    """Counts and state per change; each event once (by id, and a text ECS repeats once); events older than the
    deployment are not news."""
    stale = event(0, "(service app) has reached a steady state.", -600)
    started = event(1, "(service app) has started 2 tasks: (task a) (task b).", 5)
    placed = event(2, "(service app) was unable to place a task because no container instance met all of its "
                      "requirements.", 20)
    again = event(3, placed["message"], 40)  # ECS repeats the same text under a new id
    healthy = event(4, "(service app) registered 2 targets in (target-group app-tg)", 50)
    script = [service(0, 2, events=[stale]), service(0, 2, events=[stale, started]),
              service(1, 1, events=[stale, started, placed]), service(1, 1, events=[stale, started, placed, again]),
              service(2, 0, "COMPLETED", events=[stale, started, placed, again, healthy])]
    ui, clock = RecordingUi(), Clock()
    assert wait(script, ui, clock)["runningCount"] == 2
    out = "\n".join(ui.lines)
    assert "steady state" not in out  # older than the deployment being watched
    assert out.count("has started 2 tasks") == 1 and out.count("unable to place a task") == 1
    assert "registered 2 targets" in out
    progress = [line for line in ui.lines if "rollout" in line and "waiting" not in line]
    assert progress == ["      0s rollout IN_PROGRESS: 0/2 running, 2 pending",
                        "     20s rollout IN_PROGRESS: 1/2 running, 1 pending",
                        "     40s rollout COMPLETED: 2/2 running, 0 pending"]
    # the event lines carry the elapsed time of the poll that saw them, in order
    events = [line.split("event: ")[1][:40] for line in ui.lines if "event: " in line]
    assert events == ["(service app) has started 2 tasks: (task", "(service app) was unable to place a task",
                      "(service app) registered 2 targets in (t"]


def test_ci_heartbeat_repeats_an_unchanged_state_every_30s() -> None:
    ui, clock = RecordingUi(), Clock()
    with pytest.raises(RolloutTimeoutError):
        wait([service(0, 2)], ui, clock, timeout=100)
    beats = [line.split("s ", 1)[0].strip() for line in ui.lines if "rollout IN_PROGRESS" in line]
    assert beats == ["0", "30", "60", "90"]  # polled every 10 s, printed on change or every 30 s


def test_previous_deployment_tasks_are_shown_apart() -> None:
    line = waiters.progress_line(service(1, 1, old=2), {"healthy": 3})
    assert line == ("rollout IN_PROGRESS: 1/2 running, 1 pending, 2 of the previous deployment running, "
                    "targets 3 healthy")


def test_deadline_exits_8_with_the_state_and_the_last_events() -> None:
    evs = [event(i, f"(service app) message {i}", 10 * i) for i in range(1, 8)]
    ui, clock = RecordingUi(), Clock()
    with pytest.raises(RolloutTimeoutError) as caught:
        wait([service(1, 1, events=evs)], ui, clock, timeout=60)
    err = caught.value
    assert err.exit_code == ExitCode.NOT_READY == 8
    assert clock.now - 1000.0 == pytest.approx(60, abs=0.1)  # the deadline, not a poll later
    assert ("service app (cluster app) not stable after 60s (aws.deploy_timeout_s): deployment ecs-svc/1 "
            "IN_PROGRESS, task definition app:2, 1/2 running, 1 pending\n") in err.message
    # the last five events, oldest first, with ECS's time
    assert err.message.endswith("last service events:\n    12:00:30 (service app) message 3\n    12:00:40 "
                                "(service app) message 4\n    12:00:50 (service app) message 5\n    12:01:00 "
                                "(service app) message 6\n    12:01:10 (service app) message 7")
    assert "continues on AWS" in err.hint and "mldeploy status" in err.hint and "mldeploy rollback" in err.hint


def test_deadline_without_events_says_so() -> None:
    with pytest.raises(RolloutTimeoutError, match="no service events since the deployment began"):
        wait([service(0, 2)], RecordingUi(), Clock(), timeout=20)


def test_ctrl_c_says_what_still_runs_on_aws() -> None:
    ui, clock = RecordingUi(), Clock()
    script = [service(0, 2), service(1, 1, events=[event(1, "(service app) has started 2 tasks.", 5)]),
              KeyboardInterrupt()]
    with pytest.raises(MldeployError) as caught:
        wait(script, ui, clock)
    err = caught.value
    assert err.exit_code == ExitCode.INTERRUPTED == 130
    assert err.message.startswith("interrupted after 20s waiting for the rollout of app; still running on AWS: "
                                  "service app (cluster app): deployment ecs-svc/1 IN_PROGRESS, task definition "
                                  "app:2, 1/2 running, 1 pending")
    assert "has started 2 tasks" in err.message
    assert "nothing is lost" in err.hint and "mldeploy status" in err.hint


def test_ctrl_c_before_the_first_describe() -> None:
    with pytest.raises(MldeployError, match=r"still running on AWS: service app \(cluster app\): not read yet"):
        wait([KeyboardInterrupt()], RecordingUi(), Clock())


def test_a_failed_rollout_still_raises_rolled_back() -> None:
    from mldeploy.errors import RolledBackError

    failed = service(0, 0, "FAILED", events=[event(1, "(service app) deployment failed: tasks failed to start.", 5)])
    failed["deployments"][0]["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
    ui = RecordingUi()
    with pytest.raises(RolledBackError, match="circuit breaker"):
        wait([failed], ui, Clock())
    assert any("tasks failed to start" in line for line in ui.lines if "event: " in line)  # shown before the error


def test_live_line_on_a_terminal_updates_in_place_and_keeps_events() -> None:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    clock = Clock()
    with LiveProgress(console, "waiting for the rollout of app…", clock) as view:
        view.update("rollout IN_PROGRESS: 0/2 running, 2 pending")
        view.event("(service app) has started 2 tasks.")
        clock.now += 42
        view.update("rollout IN_PROGRESS: 1/2 running, 1 pending")
    out = buf.getvalue()
    assert "\x1b[" in out  # cursor movement: the line is redrawn, not appended
    assert "event: (service app) has started 2 tasks." in out
    assert out.rstrip().endswith("42s rollout IN_PROGRESS: 1/2 running, 1 pending")  # the last state stays


def test_ui_progress_picks_the_mode() -> None:
    ui = RecordingUi()
    with ui.progress("t", live=False, clock=Clock()) as view:
        assert type(view).__name__ == "LineProgress"
    quiet = Ui(quiet=True)
    with quiet.progress("t", live=True, clock=Clock()) as view:
        assert type(view).__name__ == "LineProgress"  # --quiet: no live display


def test_deploy_timeout_setting() -> None:
    from pydantic import ValidationError

    from mldeploy.config.schema import AwsSection
    from tests.unit.fakes import BASE_CONFIG, project

    assert waiters.deploy_timeout_s(project(BASE_CONFIG).config) == 900  # release.stability_timeout_s' default
    assert waiters.deploy_timeout_s(project(BASE_CONFIG + "aws:\n  deploy_timeout_s: 1800\n").config) == 1800
    for bad in (5, 7201):
        with pytest.raises(ValidationError, match="deploy_timeout_s"):
            AwsSection(deploy_timeout_s=bad)
