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
    from mldeploy.workflows.plan import plan_aws

    session = Session.of(ctx)
    project = session.project
    result = plan_aws(project, session.clients(), image=image).plan.to_json()
    plan_report(project.names.base, result)  # step summary: changes + cost (GitHub Actions only)
    if session.json:
        console.emit_json(result)
    else:
        print_plan(result, show_noop=all_)
    from mldeploy.cost.budget import enforce

    enforce((result.get("estimate") or {}).get("budget"), ignore=ignore_budget)  # exit 9 over cost.budget_monthly


def status(ctx: typer.Context) -> None:
    """Service, deployments, tasks, target health, URL and alarms."""
    from mldeploy import console
    from mldeploy.aws.status import collect
    from mldeploy.ci.outputs import status_report
    from mldeploy.cli.render.status import print_status

    session = Session.of(ctx)
    project, aws = session.project, session.clients()
    info = collect(project, aws)
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
) -> None:
    """Print the least-privilege IAM policy the caller needs for plan/up/status/logs/down/canary."""
    from mldeploy import console
    from mldeploy.aws.iam_policy import policy_for

    session = Session.of(ctx)
    try:
        project = session.project
    except Exception:  # usable without a config: scoped to any mldeploy app
        project = None
    if github_oidc:
        from mldeploy.ci import github

        github.parse_repo(github_oidc)
        account = session.account_id()
        if account is None:
            console.warn("no AWS credentials answered: the trust policies name ACCOUNT_ID — replace it with your "
                         "12-digit account id")
        doc = github.iam_policy_with_oidc(github_oidc, project, policy_for, account_id=account)
        console.console.print("[bold]GitHub Actions OIDC setup[/bold] (a deploy and a release role per environment):",
                              soft_wrap=True)
        console.console.print("\n".join(f"  {line}" for line in github.oidc_setup_commands(github_oidc, doc)
                                         .splitlines()), soft_wrap=True, markup=False, highlight=False)
        console.emit_json(doc)
        return
    console.emit_json(policy_for(project))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(plan)
    app.command()(status)
    app.command()(logs)
    app.command()(down)
    app.command("iam-policy")(iam_policy)
