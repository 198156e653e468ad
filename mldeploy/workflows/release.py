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


def aws_release(project: Project, clients: Clients, ui: Ui, *, wait: bool = True) -> tuple[AwsTarget, SsmHistory]:
    """The AWS target and its SSM history for ``project`` (``wait`` False: ``--no-wait``, rollouts not waited for)."""
    from mldeploy.release.stores import SsmHistory
    from mldeploy.release.targets.aws import AwsTarget

    history = SsmHistory(clients, project.names, project.names.tags(project.config.aws.tags),
                         git_commit=_git_commit(project))
    target = AwsTarget(project, clients, ui, wait=wait)
    target.history = history  # shadow phases (action "shadow") are recorded by the target
    return target, history


UNVERIFIED = {
    # ELB guide, "Health checks for Application Load Balancer target groups": "If a target group contains only
    # unhealthy registered targets, the load balancer routes requests to all those targets"
    "canary": "the history records this canary as active at {percent}% (what the load balancer is now set to) "
              "before ECS reported its tasks healthy: until they pass the target group's health checks that share "
              "of requests may fail (a target group with only unhealthy targets is still routed to); "
              "`mldeploy rollback` removes the canary",
    "shadow": "the history records the shadow phase as active: the stable service is set to the shadow revision and "
              "its previous tasks serve until ECS has the new ones (which download both models) healthy",
    "promote": "the history records the promotion as succeeded: the stable service is set to the canary's task "
               "definition and its previous tasks serve until ECS has the new ones healthy; if ECS rolls it back "
               "(circuit breaker, alarm) the next release command records what runs",
    "rollback": "the history records the rollback as succeeded: the stable service is set to the earlier task "
                "definition and its current tasks serve until ECS has those healthy; if ECS rolls it back the next "
                "release command records what runs",
}


def _rollout_report(command: str, result: dict[str, Any], target: AwsTarget, history: SsmHistory, ui: Ui
                    ) -> dict[str, Any]:
    """``rollout_verified`` in the result; after ``--no-wait`` skipped a rollout wait, the record says so (its
    ``reason``) and the output says what the record means and how to follow the rollout."""
    result["rollout_verified"] = not target.skipped
    draining = list(dict.fromkeys(target.draining))
    if draining:
        result["removal_verified"] = False
    if not target.skipped and not draining:
        return result
    from mldeploy.release.history import Record

    notes = []
    if target.skipped:
        services = ", ".join(dict.fromkeys(target.skipped))
        notes.append(f"not verified (--no-wait): the ECS rollout of {services} was still in progress")
    if draining:
        # botocore ecs DeleteService: "if there are still running tasks that require cleanup, the service status
        # moves from ACTIVE to DRAINING … After all tasks have transitioned to either STOPPING or STOPPED status,
        # the service status moves from DRAINING to INACTIVE"; --no-wait returns once the deletion is requested
        notes.append(f"not verified (--no-wait): the deletion of {', '.join(draining)} was requested; its tasks "
                     "were still draining")
    note = "; ".join(notes)
    if result.get("record"):
        record = Record.from_json(result["record"])
        record = history.update(record, reason=f"{record.reason}; {note}" if record.reason else note)
        result["record"] = record.to_json()
    percent = (result.get("canary") or {}).get("percent")
    if target.skipped:
        ui.warn(f"{notes[0]}: " + UNVERIFIED.get(command, "").format(percent=percent if percent is not None else "N"))
    if draining:
        ui.warn(f"{notes[-1]}: the load balancer no longer sends it traffic; ECS stops its tasks and then removes "
                "the service (a new canary started meanwhile waits for that)")
    ui.info("follow the rollout with `mldeploy status` and `mldeploy logs -f`")
    return result


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
        _publish_model(project, clients, ui)
        return pushed.ref, pushed.digest

    return build


def _publish_model(project: Project, clients: Clients, ui: Ui) -> None:
    """``model.store: s3``: the canary's artifact is uploaded to its version prefix before its task definition
    points at it (``model_store.plan_grant`` lets the task role read it)."""
    from mldeploy.aws.model_upload import publish

    publish(project, clients, ui)


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


def _canary_local(project: Project, ui: Ui, *, percent: int | None, auto: bool, shadow: bool, sample: float | None,
                  allow_breaking: bool, metrics_url: str | None) -> dict[str, Any]:
    """``canary --target local``: the contract diff first; ``shadow``: routing.json names the candidate for shadow
    evaluation; ``auto``: the shadow phase judged by ``release.gates``, then the steps (no alarms locally)."""
    from mldeploy.release.contracts import local_gate

    version = project.config.model.version
    local, local_history = local_release(project, ui)
    local.adopt_stable(local_history)
    gate = local_gate(local.models_dir, ui, allow_breaking=allow_breaking)
    if auto:
        from mldeploy.release.gates import pair_of, read_local, shadow_phase
        from mldeploy.release.progressive import progressive, steps_from

        gates, release_cfg = project.config.release.gates, project.config.release
        if gates is None:
            raise MldeployError("--auto --target local needs release.gates in mldeploy.yaml (there are no alarms to "
                                "watch locally: the shadow gates judge the candidate)", exit_code=ExitCode.USAGE)
        url = metrics_url or local_metrics_url(project)

        def phase() -> dict[str, Any]:
            def read() -> dict[str, Any] | None:
                follow_local_container(project, ui)
                return pair_of(read_local(url), version)

            return shadow_phase(local, local_history, ui, gates=gates, version=version, read=read,
                                before_start=gate, image=version)

        return progressive(local, local_history, ui, steps=steps_from(release_cfg.steps, percent),  # type: ignore[arg-type]
                           bake_s=release_cfg.bake_time_s, version=version, image=version, shadow=phase)
    if percent is None and shadow:  # --shadow alone: a new candidate at 0 %, a running canary keeps its weight
        percent = local.snapshot().canary_percent
    result = ops.canary(local, local_history, ui, percent=percent or 0, image=version, version=version,
                        before_start=gate)
    if shadow:
        share = sample if sample is not None else (project.config.release.gates.sample
                                                   if project.config.release.gates else 0.1)
        local.set_shadow(version, share)
        ui.success(f"shadow evaluation: {version} also answers {share:.0%} of the stable requests, off the request "
                   "path; `mldeploy canary --report --target local` shows agreement, shift and latency")
        result["shadow"] = local.shadow()
    return result


def local_metrics_url(project: Project) -> str:
    """Where a local runtime serves /metrics and /shadow (``runtime.metrics_port`` on 127.0.0.1)."""
    return f"http://127.0.0.1:{project.config.runtime.metrics_port}"


def follow_local_container(project: Project, ui: Ui) -> None:
    """Restart the ``up --target local`` container when routing.json names a version it has not loaded."""
    from mldeploy.local.container import restart_for_new_versions

    try:
        restarted = restart_for_new_versions(project)
    except MldeployError:
        return
    if restarted is not None:
        ui.info(f"restarted the local container to load {', '.join(restarted[1])}")


def canary(project: Project, clients: Clients | None, ui: Ui, *, percent: int | None, image: str | None = None,
           auto: bool = False, target: TargetName = "aws", force_unlock: bool = False,
           ignore_budget: bool = False, wait: bool = True, shadow: bool = False, sample: float | None = None,
           allow_breaking: bool = False, metrics_url: str | None = None) -> dict[str, Any]:
    """``mldeploy canary``: start or shift a canary (``auto``: progressive delivery, then promote; ``wait`` False:
    ``--no-wait``, the canary's rollout is not waited for; ``shadow``: shadow evaluation, see docs/release-gates.md;
    a breaking model-contract change refuses without ``allow_breaking``)."""
    check_percent(percent, required=not (auto or shadow))
    if auto and not wait:
        raise MldeployError("--auto cannot be combined with --no-wait: progressive delivery waits for each step's "
                            "rollout and bakes it", exit_code=ExitCode.USAGE)
    version = project.config.model.version
    if target == "local":
        if image:
            raise MldeployError("--image applies to --target aws; locally the canary is the current model",
                                exit_code=ExitCode.USAGE)
        return _canary_local(project, ui, percent=percent, auto=auto, shadow=shadow, sample=sample,
                             allow_breaking=allow_breaking, metrics_url=metrics_url)
    gates = project.config.release.gates
    if (shadow or (auto and gates is not None)) and project.config.model.store != "s3":
        raise MldeployError(
            "shadow evaluation on --target aws needs model.store: s3: the stable tasks download the candidate's "
            "artifact from the S3 model store and evaluate it in process (docs/release-gates.md)",
            hint="set model.store: s3 in mldeploy.yaml and run `mldeploy up`; or shadow locally (`mldeploy canary "
                 "--shadow --target local`); or remove release.gates to use the alarm-gated --auto",
            exit_code=ExitCode.USAGE)
    if shadow and percent is not None:
        raise MldeployError("--shadow and --percent together apply to --target local: on AWS the stable tasks "
                            "shadow the candidate at 0 %, and `canary --percent N` afterwards moves it to a canary",
                            exit_code=ExitCode.USAGE)
    aws = _need_clients(clients)
    if image:
        # the version the image carries (its label in the registry), not the config's: --image may be any build
        from mldeploy.release.image_version import image_version

        version = image_version(image, aws, ui)
    label = "canary" + (f" --percent {percent}" if percent is not None else "") + (" --auto" if auto else "")
    with locked(project, aws, ui, label, force_unlock=force_unlock) as lock:
        _budget_gate(project, aws, ui, percent or project.config.release.steps[0], ignore_budget)
        release, history_store = aws_release(project, aws, ui, wait=wait)
        build = _builder(project, aws, ui)
        if image or shadow:  # no build: the model of an --image deployment (and of a shadow: the stable tasks'
            _publish_model(project, aws, ui)  # image loads it) comes from the packaged artifact (store: s3)
        from mldeploy.release.contracts import aws_gate

        gate = aws_gate(project, ui, allow_breaking=allow_breaking, from_project=not image, version=version)
        if auto:
            from mldeploy.release.progressive import progressive, steps_from

            phase = _aws_shadow_phase(project, aws, release, history_store, ui, version=version, image=image,
                                      build=build, gate=gate, lock=lock) if gates is not None else None
            return progressive(release, history_store, ui, steps=steps_from(project.config.release.steps, percent),
                               bake_s=project.config.release.bake_time_s, version=version, image=image,
                               build=build, lock=lock, before_start=gate, shadow=phase)
        if shadow and percent is None:
            return _rollout_report("shadow", _shadow_aws(project, release, history_store, ui, version=version,
                                                         sample=sample, gate=gate), release, history_store, ui)
        assert percent is not None
        result = ops.canary(release, history_store, ui, percent=percent, image=image, version=version, build=build,
                            before_start=gate)
        return _rollout_report("canary", result, release, history_store, ui)


def _shadow_aws(project: Project, release: AwsTarget, history: SsmHistory, ui: Ui, *, version: str,
                sample: float | None, gate: ops.BeforeStart) -> dict[str, Any]:
    """``canary --shadow --target aws``: the contract diff, then the stable tasks evaluate the (uploaded)
    candidate on ``sample`` of their requests (``AwsTarget.set_shadow``; no canary service, no traffic moved)."""
    gates = project.config.release.gates
    share = sample if sample is not None else (gates.sample if gates else 0.1)
    cur = ops.load(release, history)
    if cur.snap.stable is None:
        from mldeploy.release.state import TransitionError

        raise TransitionError(f"nothing is deployed for {project.names.base}: no stable service to shadow",
                              hint="run `mldeploy up` first")
    gate(cur, "")
    ref = release.set_shadow(version, share)
    ui.success(f"shadow evaluation: the stable tasks ({release.what(ref)}) also run {version} on {share:.0%} of "
               "their requests, off the request path; `mldeploy canary --report` shows agreement, shift and "
               "latency; `mldeploy canary --percent N` moves to a canary, `mldeploy rollback` ends the shadow")
    summary = release.summary(release.snapshot(), next((r for r in reversed(history.list())
                                                        if r.action == "shadow"), None))
    return summary


def _aws_shadow_phase(project: Project, aws: Clients, release: AwsTarget, history: SsmHistory, ui: Ui, *,
                      version: str, image: str | None, build: Any, gate: ops.BeforeStart, lock: Any) -> Any:
    """``canary --auto`` with ``release.gates`` on AWS: the candidate's canary service at 0 %, the stable tasks
    shadowing it, the measures read from CloudWatch (the runtime's EMF ``Shadow*`` metrics since the phase
    began) until ``min_samples`` or ``shadow_timeout_s``; a failed gate removes both (exit 6)."""
    import time

    from mldeploy.release.gates import read_cloudwatch, shadow_phase

    gates = project.config.release.gates
    assert gates is not None
    started = time.time()
    names = project.names

    def read() -> dict[str, Any] | None:
        # whole minutes, from before the phase began (GetMetricStatistics periods are multiples of 60 s)
        since = int(time.time() - started) + 120
        return read_cloudwatch(aws, names.app, names.env, version, since_s=since - since % 60)

    def tick() -> None:
        if lock is not None and hasattr(lock, "refresh"):
            lock.refresh()

    def phase() -> dict[str, Any]:
        return shadow_phase(release, history, ui, gates=gates, version=version, read=read, before_start=gate,
                            image=image, build=build, on_tick=tick, interval=AWS_SHADOW_POLL_S)

    return phase


AWS_SHADOW_POLL_S = 30.0
"""CloudWatch gets the runtime's EMF metrics about a minute after they are logged; reading them more often than
every 30 s would only repeat the same figures (and each read is 4 GetMetricStatistics calls)."""


def _end_shadow_if_only(release: AwsTarget, reason: str) -> dict[str, Any] | None:
    """``rollback`` during a shadow phase without a canary: the stable service back without the shadow (the
    stable version does not change, so nothing else is rolled back). None when that does not apply."""
    snap = release.snapshot()
    if snap.canary is not None or release.shadow() is None:
        return None
    release.remove_shadow(reason, "rolled_back")
    record = next((r for r in reversed(release.history.list()) if r.action == "shadow"), None) \
        if release.history is not None else None
    release.ui.success(f"shadow evaluation ended: {release.stable_name} serves "
                       f"{release.what(release.snapshot().stable)} without the candidate")
    return release.summary(release.snapshot(), record)


def shadow_candidate(project: Project, clients: Clients) -> str | None:
    """The version the stable tasks shadow now (``canary --shadow`` on AWS), None without a shadow phase."""
    from mldeploy.ui import NULL_UI

    if project.config.model.store != "s3":
        return None
    try:
        shadow = aws_release(project, clients, NULL_UI)[0].shadow()
    except MldeployError:
        return None
    return str(shadow["version"]) if shadow and shadow.get("version") else None


def shadow_report(project: Project, clients: Clients | None, *, target: TargetName = "aws",
                  metrics_url: str | None = None, since_s: int = 3600) -> dict[str, Any]:
    """``canary --report``: the shadow measures of the candidate (locally the runtime's ``/shadow``; on AWS the
    EMF-created CloudWatch metrics over ``since_s``) with the ``release.gates`` verdicts."""
    from mldeploy.release.gates import evaluate, pair_of, read_cloudwatch, read_local

    gates = project.config.release.gates
    if target == "local":
        from mldeploy.release.stores import read_state
        from mldeploy.ui import NULL_UI

        local, _ = local_release(project, NULL_UI)
        state = read_state(local.state_path)
        shadow = local.shadow()
        candidate = (shadow or {}).get("version") or state.get("canary") or project.config.model.version
        report = read_local(metrics_url or local_metrics_url(project))
        measures = pair_of(report, candidate, state.get("stable"))
        queue = report.get("queue")
    else:
        from mldeploy.ui import NULL_UI

        aws = _need_clients(clients)
        cur = _load_unlocked(project, aws, NULL_UI)
        active = cur.active_canary()
        running = cur.target.shadow()  # type: ignore[attr-defined]
        candidate = (running or {}).get("version") or (active.version if active else None) \
            or project.config.model.version
        names = project.names
        measures = read_cloudwatch(aws, names.app, names.env, candidate, since_s=since_s)
        queue = None
    verdicts = [{"gate": g.name, "ok": g.ok, "detail": g.detail} for g in evaluate(measures, gates)] \
        if gates is not None and measures is not None else []
    return {"target": target, "candidate": candidate, "measures": measures, "queue": queue, "gates": verdicts}


def promote(project: Project, clients: Clients | None, ui: Ui, *, target: TargetName = "aws",
            force_unlock: bool = False, wait: bool = True) -> dict[str, Any]:
    """``mldeploy promote`` (the CLI has confirmed; ``wait`` False: ``--no-wait``)."""
    if target == "local":
        return ops.promote(*local_release(project, ui), ui)
    aws = _need_clients(clients)
    with locked(project, aws, ui, "promote", force_unlock=force_unlock):
        release, history_store = aws_release(project, aws, ui, wait=wait)
        _refuse_promoting_a_shadow(release)
        return _rollout_report("promote", ops.promote(release, history_store, ui), release, history_store, ui)


def _refuse_promoting_a_shadow(release: AwsTarget) -> None:
    """``promote`` while the stable tasks shadow a candidate and no canary runs: nothing takes traffic to promote;
    say what runs and the commands that fit (exit 10, nothing changed)."""
    if release.snapshot().canary is not None:
        return
    shadow = release.shadow()
    if shadow is None:
        return
    from mldeploy.release.state import TransitionError

    version, sample = shadow.get("version"), float(shadow.get("sample") or 0)
    raise TransitionError(
        f"no canary is active for {release.names.base}: {version} runs only as a shadow (the stable tasks of "
        f"{release.stable_name}, {release.what(shadow.get('task_definition'))}, evaluate it on {sample:.0%} of "
        "their requests; it answers no client), so there is nothing to promote",
        hint=f"`mldeploy canary --percent N` moves {version} to a canary taking N% of traffic (and ends the "
             "shadow), then `mldeploy promote`; `mldeploy canary --report` shows the shadow's agreement, shift and "
             "latency; `mldeploy rollback` ends the shadow")


def rollback(project: Project, clients: Clients | None, ui: Ui, *, to: str | None = None, reason: str | None = None,
             target: TargetName = "aws", force_unlock: bool = False, wait: bool = True) -> dict[str, Any]:
    """``mldeploy rollback [--to VERSION]`` (the CLI has confirmed; ``wait`` False: ``--no-wait``)."""
    if target == "local":
        return ops.rollback(*local_release(project, ui), ui, to=to, reason=reason)
    aws = _need_clients(clients)
    with locked(project, aws, ui, "rollback" + (f" --to {to}" if to else ""), force_unlock=force_unlock):
        release, history_store = aws_release(project, aws, ui, wait=wait)
        ended = _end_shadow_if_only(release, reason or "mldeploy rollback") if to is None else None
        result = ended if ended is not None else ops.rollback(release, history_store, ui, to=to, reason=reason)
        return _rollout_report("rollback", result, release, history_store, ui)


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
    is reconciled now (with ``up``'s actor, time and commit) rather than by whichever command runs next. The
    record carries the model contract, so the next canary's contract diff has the running side."""
    from mldeploy.release.contracts import record_deployed
    from mldeploy.ui import NULL_UI

    cur = ops.load(*aws_release(project, clients, ui or NULL_UI))
    record_deployed(project, cur.history, cur.records, cur.target.ref_of)
    cur.target.follow_shadow("mldeploy up")  # type: ignore[attr-defined]  # a shadow kept (or ended) by `up`


def sync(project: Project, clients: Clients, ui: Ui | None = None) -> None:
    """Reconcile the history with what runs, unless a release command holds the lock (``status``, ``history``)."""
    from mldeploy.ui import NULL_UI

    _load_unlocked(project, clients, ui or NULL_UI)
