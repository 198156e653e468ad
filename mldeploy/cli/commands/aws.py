"""CLI commands for AWS: ``plan``, ``status``, ``logs``, ``down``, ``iam-policy``.

Only typer/stdlib at module level: boto3 and the planner are imported inside the commands.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mldeploy.cli.session import Session


def plan(
    ctx: typer.Context,
    image: Annotated[str | None, typer.Option("--image", help="Plan for this image (default: the deployed one).")]
    = None,
    all_: Annotated[bool, typer.Option("--all", help="Also list unchanged resources.")] = False,
    ignore_budget: Annotated[bool, typer.Option("--ignore-budget", help="Exit 0 even when the estimate exceeds "
                                                "cost.budget_monthly.")] = False,
) -> None:
    """Show what `up` would create, change or delete on AWS (a diff; nothing is changed)."""
    from mldeploy import console
    from mldeploy.ci.outputs import plan_report
    from mldeploy.cli.render.plan import print_plan
    from mldeploy.workflows.plan import enforce_shadow_memory, plan_aws

    session = Session.of(ctx)
    project = session.project
    planned = plan_aws(project, session.clients(), image=image)
    result = planned.plan.to_json()
    if planned.shadow is not None:  # a running shadow phase: kept (or ended) by this plan
        result["shadow"] = planned.shadow.to_json()
    plan_report(project.names.base, result)  # step summary: changes + cost (GitHub Actions only)
    contract = _contract_diff(session)
    if contract is not None:
        result["contract"] = contract
    if session.json:
        console.emit_json(result)
    else:
        print_plan(result, show_noop=all_)
        if contract is not None:
            from mldeploy.release.contracts import plan_lines

            for line in plan_lines(contract):
                (session.ui.warn if "BREAKING" in line else session.ui.info)(line)
    enforce_shadow_memory(planned, session.ui)  # exit 3 as `canary --shadow`: the tasks cannot hold both models
    from mldeploy.cost.budget import enforce

    enforce((result.get("estimate") or {}).get("budget"), ignore=ignore_budget)  # exit 9 over cost.budget_monthly


def _contract_diff(session: Session) -> dict | None:
    """The model-contract diff (running, from the history, against the packaged model); None when unreadable —
    a plan never fails on it."""
    from mldeploy.errors import MldeployError
    from mldeploy.release.contracts import plan_diff

    try:
        return plan_diff(session.project, session.clients())
    except (MldeployError, OSError, ValueError):
        return None


def status(ctx: typer.Context) -> None:
    """Service, deployments, tasks, target health, URL and alarms."""
    from mldeploy import console
    from mldeploy.aws.status import collect
    from mldeploy.ci.outputs import status_report
    from mldeploy.cli.render.status import print_status

    session = Session.of(ctx)
    project, aws = session.project, session.clients()
    info = collect(project, aws)
    from mldeploy.workflows.release import shadow_candidate

    candidate = shadow_candidate(project, aws) or (info.get("canary") or {}).get("version")
    if candidate:  # the shadow phase's (stable tasks) or the canary's measures, when its EMF created them
        from mldeploy.errors import MldeployError
        from mldeploy.release.gates import read_cloudwatch

        try:
            info["shadow"] = read_cloudwatch(aws, project.names.app, project.names.env, candidate)
        except MldeployError:
            info["shadow"] = None
    if session.json:
        console.emit_json(info)
    else:
        print_status(project.names.base, aws.region, info)
    status_report(project.names.base, info)  # url, deployed, task_definition_arn + summary


def logs(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option("--follow", "-F", help="Keep printing new lines (Ctrl-C stops).")] = False,
    since: Annotated[str, typer.Option("--since", help="How far back: 30s, 10m, 2h, 1d.")] = "10m",
    filter_: Annotated[str | None, typer.Option("--filter", help="CloudWatch Logs filter pattern.")] = None,
) -> None:
    """Print the containers' logs from CloudWatch Logs."""
    from mldeploy import console
    from mldeploy.aws.log_tail import FOLLOW_POLL_S, tail
    from mldeploy.cli.render.logs import print_event

    session = Session.of(ctx)
    interval = min(session.settings.poll_s or FOLLOW_POLL_S, FOLLOW_POLL_S)
    printed = 0
    try:
        for event in tail(session.project, session.clients(), since=since, follow=follow, pattern=filter_,
                          interval=interval):
            printed += 1
            if session.json:
                console.emit_json(event)
            else:
                print_event(event)
    except KeyboardInterrupt:
        return
    if not printed:  # stderr: stdout stays empty for pipes and --json
        matching = f" matching {filter_!r}" if filter_ else ""
        console.info(f"no log events{matching} in {session.project.names.log_group} in the last {since} "
                     "(try --since 1h, or --follow to wait for new ones)")


def down(
    ctx: typer.Context,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the ECR repository and its images.")] = False,
) -> None:
    """Delete every AWS resource of this app/env (keeps the ECR repository unless --purge)."""
    from mldeploy import console
    from mldeploy.workflows.down import down_aws, question

    session = Session.of(ctx)
    project, aws = session.project, session.clients()
    session.confirm(question(project, aws, purge))
    result = down_aws(project, aws, session.ui, purge=purge)
    if session.json:
        console.emit_json(result)


def iam_policy(
    ctx: typer.Context,
    github_oidc: Annotated[str | None, typer.Option("--github-oidc", metavar="OWNER/REPO", help="Print the two "
                                                    "roles per environment (deploy: up/canary; release: promote/"
                                                    "rollback/down) GitHub Actions assumes with OIDC, each "
                                                    "trusted from one GitHub environment only, and how to create "
                                                    "them.")] = None,
    boundary: Annotated[bool, typer.Option("--boundary", help="Print the permissions boundary suggested for the "
                                           "roles mldeploy creates (create it once, then set "
                                           "aws.permissions_boundary to its ARN).")] = False,
) -> None:
    """Print the least-privilege IAM policy the caller needs for plan/up/status/logs/down/canary."""
    from mldeploy import console
    from mldeploy.aws import iam_policy as policies
    from mldeploy.errors import ExitCode, MldeployError

    session = Session.of(ctx)
    try:
        project = session.project
    except Exception:  # usable without a config: scoped to any mldeploy app
        project = None
    if boundary:
        if project is None:
            raise MldeployError("--boundary needs the project (mldeploy.yaml): the boundary names its log group, "
                                "image repository and secrets", exit_code=ExitCode.USAGE)
        name = policies.boundary_name(project)
        console.info(f"create it once: aws iam create-policy --policy-name {name} --policy-document "
                     f"file://boundary.json; then set aws.permissions_boundary: arn:aws:iam::ACCOUNT_ID:policy/"
                     f"{name} and rerun `mldeploy iam-policy`")
        console.emit_json(policies.boundary_policy(project))
        return
    if project is None:
        console.warn("no mldeploy.yaml here: the policy covers every mldeploy app in the account (names are *); "
                     "run it in the project folder (with --env) for one app's ARNs")
    elif not project.config.aws.permissions_boundary:
        console.warn("aws.permissions_boundary is not set: the deploy identity can give the app's roles any "
                     "permissions; `mldeploy iam-policy --boundary` prints a boundary to create, then set "
                     "aws.permissions_boundary to its ARN")
    if github_oidc:
        from mldeploy.ci import github

        github.parse_repo(github_oidc)
        account = session.account_id()
        if account is None:
            console.warn("no AWS credentials answered: the trust policies name ACCOUNT_ID — replace it with your "
                         "12-digit account id")
        doc = github.iam_policy_with_oidc(github_oidc, project, lambda p: policies.policy_for(p, account=account),
                                          account_id=account)
        console.console.print("[bold]GitHub Actions OIDC setup[/bold] (a deploy and a release role per environment):",
                              soft_wrap=True)
        console.console.print("\n".join(f"  {line}" for line in github.oidc_setup_commands(github_oidc, doc)
                                         .splitlines()), soft_wrap=True, markup=False, highlight=False)
        console.emit_json(doc)
        return
    policy = policies.policy_for(project)
    if policies.size(policy) > policies.ROLE_POLICY_LIMIT:  # e.g. compute ec2 with a domain and a boundary
        parts = policies.managed_policies(policy)
        console.info(f"{policies.size(policy)} characters: over a role's inline quota ({policies.ROLE_POLICY_LIMIT}), "
                     f"so here are {len(parts)} managed policies (a JSON list): create each with `aws iam "
                     f"create-policy --policy-document` (e.g. `jq '.[0]'`) and attach all of them to the deploy role")
        console.emit_json(parts)
        return
    if policies.size(policy) > policies.MANAGED_POLICY_LIMIT:
        console.info(f"{policies.size(policy)} characters: put it inline on a role (aws iam put-role-policy, up to "
                     f"{policies.ROLE_POLICY_LIMIT}); a managed policy holds at most {policies.MANAGED_POLICY_LIMIT}")
    console.emit_json(policy)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(plan)
    app.command()(status)
    app.command()(logs)
    app.command()(down)
    app.command("iam-policy")(iam_policy)
