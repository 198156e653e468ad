"""CLI commands for AWS: ``plan``, ``status``, ``logs``, ``down``, ``iam-policy``.

Only typer/stdlib at module level: boto3 and the planner are imported inside the commands.
"""

from __future__ import annotations

from typing import Annotated

import typer


def plan(
    image: Annotated[str | None, typer.Option("--image", help="Plan for this image (default: the deployed one).")]
    = None,
    all_: Annotated[bool, typer.Option("--all", help="Also list unchanged resources.")] = False,
) -> None:
    """Show what `up` would create, change or delete on AWS (a diff; nothing is changed)."""
    from mldeploy import console
    from mldeploy.aws import planner
    from mldeploy.aws.clients import clients
    from mldeploy.aws.context import DeployContext
    from mldeploy.cli import state

    project = state.project()
    ctx = DeployContext(project=project, aws=clients(project, region=state.options.region,
                                                     profile=state.options.profile), image=image)
    result = planner.make_plan(ctx)
    from mldeploy.ci.outputs import plan_report

    plan_report(project.names.base, result.to_json())  # step summary: changes + cost (GitHub Actions only)
    if state.options.json:
        console.emit_json(result.to_json())
    else:
        result.render(show_noop=all_)


def status() -> None:
    """Service, deployments, tasks, target health, URL and alarms."""
    from mldeploy.aws.status import show_status
    from mldeploy.ci.outputs import status_report
    from mldeploy.cli import state

    status_report(state.project().names.base, show_status())  # url, deployed, task_definition_arn + summary


def logs(
    follow: Annotated[bool, typer.Option("--follow", "-F", help="Keep printing new lines (Ctrl-C stops).")] = False,
    since: Annotated[str, typer.Option("--since", help="How far back: 30s, 10m, 2h, 1d.")] = "10m",
    filter_: Annotated[str | None, typer.Option("--filter", help="CloudWatch Logs filter pattern.")] = None,
) -> None:
    """Print the containers' logs from CloudWatch Logs."""
    from mldeploy.aws.log_tail import show_logs

    show_logs(since=since, follow=follow, pattern=filter_)


def down(
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the ECR repository and its images.")] = False,
) -> None:
    """Delete every AWS resource of this app/env (keeps the ECR repository unless --purge)."""
    from mldeploy import console
    from mldeploy.aws.clients import clients
    from mldeploy.cli import state
    from mldeploy.ui import Ui
    from mldeploy.workflows.down import down_aws, question

    project = state.project()
    aws = clients(project, region=state.options.region, profile=state.options.profile)
    state.confirm(question(project, aws, purge))
    result = down_aws(project, aws, Ui(), purge=purge)
    if state.options.json:
        console.emit_json(result)


def iam_policy(
    github_oidc: Annotated[str | None, typer.Option("--github-oidc", metavar="OWNER/REPO", help="Print the trust "
                                                    "policy and permissions of a role GitHub Actions assumes with "
                                                    "OIDC (no long-lived keys), and how to create it.")] = None,
) -> None:
    """Print the least-privilege IAM policy the caller needs for plan/up/status/logs/down/canary."""
    from mldeploy import console
    from mldeploy.aws.iam_policy import policy_for
    from mldeploy.cli import state

    try:
        project = state.project()
    except Exception:  # usable without a config: scoped to any mldeploy app
        project = None
    if github_oidc:
        from mldeploy.ci.github import iam_policy_with_oidc

        console.emit_json(iam_policy_with_oidc(github_oidc, project, policy_for))
        return
    console.emit_json(policy_for(project))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(plan)
    app.command()(status)
    app.command()(logs)
    app.command()(down)
    app.command("iam-policy")(iam_policy)
