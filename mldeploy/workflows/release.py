"""``canary``, ``promote``, ``rollback``, ``history`` for the CLI: pick the target and history store, take the
deployment lock on AWS, run the operation (``mldeploy.release.ops``) and return its result dict.

The CLI confirms destructive commands first and renders the result; nothing here prompts or prints JSON.
``clients`` may be None for the local target.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from mldeploy.errors import ExitCode, MldeployError
from mldeploy.release import ops
from mldeploy.release.state import check_percent

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.release.lock import DeployLock
    from mldeploy.release.stores import LocalHistory, SsmHistory
    from mldeploy.release.targets.aws import AwsTarget
    from mldeploy.release.targets.local import LocalTarget
    from mldeploy.ui import Ui

TargetName = Literal["aws", "local"]


def _git_commit(project: Project) -> str | None:
    from mldeploy.gitinfo import git_commit

    return git_commit(str(project.root))


def aws_release(project: Project, clients: Clients, ui: Ui) -> tuple[AwsTarget, SsmHistory]:
    """The AWS target and its SSM history for ``project``."""
    from mldeploy.release.stores import SsmHistory
    from mldeploy.release.targets.aws import AwsTarget

    history = SsmHistory(clients, project.names, project.names.tags(project.config.aws.tags),
                         git_commit=_git_commit(project))
    return AwsTarget(project, clients, ui), history


def local_release(project: Project, ui: Ui) -> tuple[LocalTarget, LocalHistory]:
    """The local target (``routing.json``) and its history in the state file."""
    from mldeploy.release.stores import LocalHistory
    from mldeploy.release.targets.local import LocalTarget

    target = LocalTarget(project, ui)
    return target, LocalHistory(target.state_path, git_commit=_git_commit(project))


@contextlib.contextmanager
def locked(project: Project, clients: Clients, ui: Ui, command: str, *, force_unlock: bool = False
           ) -> Iterator[DeployLock]:
    """Hold the app/env deployment lock (SSM conditional write) with SIGTERM turned into an interrupt."""
    from mldeploy.release.lock import DeployLock, sigterm_as_interrupt

    with sigterm_as_interrupt(), DeployLock.for_project(project, clients, command, force_unlock=force_unlock,
                                                        ui=ui) as lock:
        if lock.broken is not None:
            ui.warn(f"--force-unlock: broke the deployment lock held by {lock.broken.describe()}")
        yield lock


def _need_clients(clients: Clients | None) -> Clients:
    if clients is None:
        raise MldeployError("AWS clients are needed for --target aws")
    return clients


def _builder(project: Project, clients: Clients, ui: Ui) -> Any:
    def build() -> tuple[str, str | None]:
        from mldeploy.image.api import build_and_push

        pushed = build_and_push(project, aws=clients, ui=ui)
        return pushed.ref, pushed.digest

    return build


def _budget_gate(project: Project, aws: Clients, ui: Ui, percent: int, ignore: bool) -> None:
    """``cost.budget_monthly``: the monthly estimate with the canary's extra tasks, against what runs; exit 9 over."""
    from mldeploy.aws.engine.remote import Remote
    from mldeploy.aws.engine.spec import StackSpec
    from mldeploy.cost.budget import enforce
    from mldeploy.workflows.plan import estimate

    remote = Remote(aws)
    est = estimate(project, aws.region, spec=StackSpec.of(project, remote), remote=remote, canary_percent=percent)
    if est and est.get("line"):
        ui.info(f"estimated cost: {est['line']}")
    enforce((est or {}).get("budget"), ignore=ignore)


def canary(project: Project, clients: Clients | None, ui: Ui, *, percent: int | None, image: str | None = None,
           auto: bool = False, target: TargetName = "aws", force_unlock: bool = False,
           ignore_budget: bool = False) -> dict[str, Any]:
    """``mldeploy canary``: start or shift a canary (``auto``: progressive delivery, then promote)."""
    check_percent(percent, required=not auto)
    version = project.config.model.version
    if target == "local":
        if auto:
            raise MldeployError("--auto needs --target aws (it watches CloudWatch alarms)", exit_code=ExitCode.USAGE)
        if image:
            raise MldeployError("--image applies to --target aws; locally the canary is the current model",
                                exit_code=ExitCode.USAGE)
        local, local_history = local_release(project, ui)
        local.adopt_stable(local_history)
        return ops.canary(local, local_history, ui, percent=percent or 0, image=version, version=version)
    aws = _need_clients(clients)
    if image:
        # the version the image carries (its label in the registry), not the config's: --image may be any build
        from mldeploy.release.image_version import image_version

        version = image_version(image, aws, ui)
    label = "canary" + (f" --percent {percent}" if percent is not None else "") + (" --auto" if auto else "")
    with locked(project, aws, ui, label, force_unlock=force_unlock) as lock:
        _budget_gate(project, aws, ui, percent or project.config.release.steps[0], ignore_budget)
        release, history_store = aws_release(project, aws, ui)
        build = _builder(project, aws, ui)
        if auto:
            from mldeploy.release.progressive import progressive, steps_from

            return progressive(release, history_store, ui, steps=steps_from(project.config.release.steps, percent),
                               bake_s=project.config.release.bake_time_s, version=version, image=image,
                               build=build, lock=lock)
        assert percent is not None
        return ops.canary(release, history_store, ui, percent=percent, image=image, version=version, build=build)


def promote(project: Project, clients: Clients | None, ui: Ui, *, target: TargetName = "aws",
            force_unlock: bool = False) -> dict[str, Any]:
    """``mldeploy promote`` (the CLI has confirmed)."""
    if target == "local":
        return ops.promote(*local_release(project, ui), ui)
    aws = _need_clients(clients)
    with locked(project, aws, ui, "promote", force_unlock=force_unlock):
        return ops.promote(*aws_release(project, aws, ui), ui)


def rollback(project: Project, clients: Clients | None, ui: Ui, *, to: str | None = None, reason: str | None = None,
             target: TargetName = "aws", force_unlock: bool = False) -> dict[str, Any]:
    """``mldeploy rollback [--to VERSION]`` (the CLI has confirmed)."""
    if target == "local":
        return ops.rollback(*local_release(project, ui), ui, to=to, reason=reason)
    aws = _need_clients(clients)
    with locked(project, aws, ui, "rollback" + (f" --to {to}" if to else ""), force_unlock=force_unlock):
        return ops.rollback(*aws_release(project, aws, ui), ui, to=to, reason=reason)


def _load_unlocked(project: Project, clients: Clients, ui: Ui) -> ops.Current:
    """``ops.load`` for callers without the lock: reconcile only while no release command runs, so its
    in-progress records are not mistaken for interrupted ones."""
    from mldeploy.release.lock import DeployLock

    free = DeployLock(clients, project.names, "history", holder="-").read() is None
    return ops.load(*aws_release(project, clients, ui), reconcile=free)


def history(project: Project, clients: Clients | None, *, target: TargetName = "aws") -> list[dict[str, Any]]:
    """Every deployment record, oldest first (AWS: first records a stable version ``up`` deployed since)."""
    from mldeploy.ui import NULL_UI

    if target == "local":
        _, store = local_release(project, NULL_UI)
        return [r.to_json() for r in store.list()]
    return [r.to_json() for r in _load_unlocked(project, _need_clients(clients), NULL_UI).records]


def record_up(project: Project, clients: Clients, ui: Ui | None = None) -> None:
    """Record what ``up`` just deployed in the durable history. ``up`` holds the deployment lock, so the history
    is reconciled now (with ``up``'s actor, time and commit) rather than by whichever command runs next."""
    from mldeploy.ui import NULL_UI

    ops.load(*aws_release(project, clients, ui or NULL_UI))


def sync(project: Project, clients: Clients, ui: Ui | None = None) -> None:
    """Reconcile the history with what runs, unless a release command holds the lock (``status``, ``history``)."""
    from mldeploy.ui import NULL_UI

    _load_unlocked(project, clients, ui or NULL_UI)
