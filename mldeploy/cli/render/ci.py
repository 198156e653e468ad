"""How to create the GitHub Actions OIDC role (``iam-policy --github-oidc``), on stderr."""

from __future__ import annotations

from mldeploy import console


def print_oidc_setup(owner_repo: str, role: str) -> None:
    from mldeploy.ci.github import oidc_setup_commands

    console.console.print(
        "[bold]GitHub Actions OIDC setup[/bold] (save the two documents first, e.g. with jq):\n"
        f"  mldeploy iam-policy --github-oidc {owner_repo} | jq .trust_policy > trust.json\n"
        f"  mldeploy iam-policy --github-oidc {owner_repo} | jq .permissions_policy > policy.json\n"
        + "\n".join(f"  {line}" for line in oidc_setup_commands(role).splitlines()), soft_wrap=True)
