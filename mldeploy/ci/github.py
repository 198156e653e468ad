"""GitHub Actions: render and write the deploy workflow; the OIDC trust policy of the role it assumes.

The workflow (``templates/github-workflow.yml.j2``) runs test → build and push → deploy (first release, or a
canary) → promote, gated by a protected GitHub environment. Jobs get short-lived AWS credentials from GitHub's
OIDC provider (``aws-actions/configure-aws-credentials`` with ``role-to-assume``); the role's trust policy
(:func:`oidc_trust_policy`) admits only this repository's default branch and its deployment environments.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mldeploy.errors import ExitCode, MldeployError

if TYPE_CHECKING:
    from mldeploy.config import Project

OIDC_HOST = "token.actions.githubusercontent.com"
OIDC_AUDIENCE = "sts.amazonaws.com"
ROLE_VARIABLE = "MLDEPLOY_AWS_ROLE_ARN"
DEFAULT_ROLE_NAME = "mldeploy-github-deploy"
WORKFLOW_DIR = Path(".github/workflows")
# GitHub: owners are alphanumerics and single hyphens (≤ 39), repositories [A-Za-z0-9._-] (≤ 100).
REPO_RE = re.compile(r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})/(?P<repo>[A-Za-z0-9._-]{1,100})")
ENV_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,255}")
EXTRAS = {"torch": "torch", "torchscript": "torch", "savedmodel": "tensorflow", "skops": "skops"}


@dataclass(frozen=True)
class WorkflowSpec:
    """Everything the workflow template needs, derived from the project and where it sits in the repository."""

    app: str
    workflow_path: str  # relative to the repository root
    working_directory: str  # the folder holding mldeploy.yaml, relative to the repository root
    config_file: str  # relative to working_directory
    environments: list[str]
    default_environment: str
    aws_region: str
    canary_percent: int
    install: str
    python_version: str = "3.11"
    branch: str = "main"
    role_variable: str = ROLE_VARIABLE
    version: str = ""


def git_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that holds ``.git`` (None outside a repository)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def workflow_spec(project: Project, repo_root: Path | None = None) -> WorkflowSpec:
    """Derive the workflow's settings: environments from the overlays, canary share from ``release.steps``, the
    install spec from ``ci.install`` (default: this mldeploy's version)."""
    from mldeploy import __version__

    cfg = project.config
    root = (repo_root or git_root(project.root) or project.root).resolve()
    try:
        workdir = project.root.resolve().relative_to(root).as_posix()
    except ValueError as e:
        raise MldeployError(f"{project.path} is not inside the repository {root}",
                            hint="run `mldeploy init --ci github` inside the repository", exit_code=ExitCode.USAGE
                            ) from e
    envs = list(cfg.environments) or ["default"]
    bad = [e for e in envs if not ENV_NAME_RE.fullmatch(e)]
    if bad:
        raise MldeployError(f"environment name(s) {', '.join(map(repr, bad))} cannot be GitHub environment names",
                            hint="use letters, digits, '.', '_' and '-'", exit_code=ExitCode.CONFIG)
    default_env = "prod" if "prod" in envs else envs[0]
    steps = [s for s in cfg.release.steps if s < 100]
    fmt = cfg.model.format.value
    if fmt == "auto":  # the test job needs the framework's extra to load the model (the image does not)
        from mldeploy.artifacts.detect import guess_format

        fmt = guess_format(project.resolve(cfg.model.path))
    extra = EXTRAS.get(fmt)
    name = "mldeploy.yml" if workdir == "." else f"mldeploy-{cfg.name}.yml"
    return WorkflowSpec(
        app=cfg.name,
        workflow_path=(WORKFLOW_DIR / name).as_posix(),
        working_directory=workdir,
        config_file=project.path.name,
        environments=envs,
        default_environment=default_env,
        aws_region=cfg.aws.region or "us-east-1",
        canary_percent=steps[0] if steps else 10,
        install=cfg.ci.install or default_install(extra),
        version=__version__,
    )


def default_install(extra: str | None = None) -> str:
    """The running mldeploy's own spec (``mldeploy[torch]==0.1.0``): the default of ``ci.install``."""
    from mldeploy import __version__

    return f"mldeploy[{extra}]=={__version__}" if extra else f"mldeploy=={__version__}"


INSTALL_CHECK_TIMEOUT_S = 30.0
"""Upper bound for ``init --ci github``'s pip check (an offline machine warns instead of hanging)."""


@dataclass(frozen=True)
class InstallCheck:
    """Whether pip on this machine resolves ``ci.install``: ``ok`` True, False (it cannot), None (not checked)."""

    spec: str
    ok: bool | None
    detail: str = ""


def check_install(spec: str, *, timeout: float = INSTALL_CHECK_TIMEOUT_S, cwd: Path | None = None) -> InstallCheck:
    """Ask this machine's pip (its index configuration) to resolve ``spec`` without installing anything:
    ``pip install --dry-run --no-deps --ignore-installed``, bounded by ``timeout`` with one connection retry.

    Paths (resolved on the runner after checkout) are only checked for existence under ``cwd``.
    """
    import os
    import subprocess
    import sys

    target = spec.split("@", 1)[1].strip() if " @ " in spec else spec
    if target.startswith((".", "/")) and "://" not in target:
        found = (cwd or Path.cwd()) / target
        return InstallCheck(spec, found.exists(), "" if found.exists() else f"{found} does not exist")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_RETRIES": "0",
           "PIP_DEFAULT_TIMEOUT": str(max(1, int(timeout / 3))), "PIP_NO_INPUT": "1"}
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet", spec]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        return InstallCheck(spec, None, f"pip did not answer within {timeout:.0f}s (offline?)")
    except OSError as e:
        return InstallCheck(spec, None, f"could not run pip: {e}")
    if proc.returncode == 0:
        return InstallCheck(spec, True)
    errors = [line.strip() for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    text = proc.stderr.lower()
    if any(s in text for s in ("connection", "network is unreachable", "temporary failure in name resolution",
                               "max retries", "timed out")) and "from versions:" not in text:
        return InstallCheck(spec, None, "pip could not reach its index (offline?)")
    return InstallCheck(spec, False, errors[0].removeprefix("ERROR: ") if errors else proc.stderr.strip()[-300:])


def _gh(expression: str) -> str:
    """A GitHub Actions expression; keeps ``${{ … }}`` out of the Jinja template's own syntax."""
    return "${{ " + expression + " }}"


def render_workflow(spec: WorkflowSpec) -> str:
    """The workflow YAML for ``spec`` (checked to parse before it is returned)."""
    import yaml

    from mldeploy.templating import render

    text = render("github-workflow.yml.j2", gh=_gh, **asdict(spec))
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as e:  # a template bug, never the user's fault
        raise MldeployError(f"the generated workflow does not parse: {e}", exit_code=ExitCode.ERROR) from e
    return text


@dataclass(frozen=True)
class WrittenWorkflow:
    """Where the workflow went and what it was rendered from (the CLI prints the next steps)."""

    path: Path
    spec: WorkflowSpec


def write_workflow(project: Project, *, force: bool = False, repo_root: Path | None = None) -> WrittenWorkflow:
    """Write the workflow under ``<repository>/.github/workflows/``; refuses to overwrite without ``force``."""
    root = (repo_root or git_root(project.root) or project.root).resolve()
    spec = workflow_spec(project, root)
    path = root / spec.workflow_path
    if path.exists() and not force:
        raise MldeployError(f"{path} already exists", hint="pass --force to overwrite it", exit_code=ExitCode.USAGE)
    text = render_workflow(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return WrittenWorkflow(path, spec)


def parse_repo(owner_repo: str) -> tuple[str, str]:
    """``OWNER/REPO`` → (owner, repo); a clear error otherwise."""
    m = REPO_RE.fullmatch(owner_repo.strip())
    if not m:
        raise MldeployError(f"--github-oidc {owner_repo!r} is not a GitHub repository like 'my-org/my-repo'",
                            exit_code=ExitCode.USAGE)
    return m["owner"], m["repo"]


def oidc_provider_arn(account_id: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:oidc-provider/{OIDC_HOST}"


def oidc_subjects(owner_repo: str, environments: list[str] | tuple[str, ...] = ("prod",),
                  branches: list[str] | tuple[str, ...] = ("main",)) -> list[str]:
    """The ``sub`` claims the workflow's AWS jobs present: pushes to ``branches`` (build, deploy) and jobs
    that run in a GitHub environment (promote, rollback). Pull requests never get AWS credentials."""
    owner, repo = parse_repo(owner_repo)
    for env in environments:
        if not ENV_NAME_RE.fullmatch(env):
            raise MldeployError(f"{env!r} is not a valid GitHub environment name", exit_code=ExitCode.USAGE)
    subjects = [f"repo:{owner}/{repo}:ref:refs/heads/{b}" for b in branches]
    subjects += [f"repo:{owner}/{repo}:environment:{e}" for e in environments]
    return list(dict.fromkeys(subjects))


def oidc_trust_policy(owner_repo: str, environments: list[str] | tuple[str, ...] = ("prod",), *,
                      account_id: str | None = None, branches: list[str] | tuple[str, ...] = ("main",),
                      partition: str = "aws") -> dict[str, Any]:
    """The trust policy of the role GitHub Actions assumes with OIDC: exact subjects, no wildcards.

    ``account_id`` None leaves the placeholder ``ACCOUNT_ID`` (IAM rejects it, so it cannot be used by mistake).
    """
    if account_id is not None and not re.fullmatch(r"\d{12}", account_id):
        raise MldeployError(f"{account_id!r} is not a 12-digit AWS account id", exit_code=ExitCode.USAGE)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GitHubActionsOidc",
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn(account_id or "ACCOUNT_ID", partition)},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{OIDC_HOST}:aud": OIDC_AUDIENCE,
                        f"{OIDC_HOST}:sub": oidc_subjects(owner_repo, environments, branches),
                    }
                },
            }
        ],
    }


def oidc_setup_commands(role_name: str = DEFAULT_ROLE_NAME, *, trust_file: str = "trust.json",
                        policy_file: str = "policy.json") -> str:
    """AWS CLI commands that create the OIDC provider and the role (printed by ``iam-policy --github-oidc``)."""
    return "\n".join([
        "# once per AWS account (skip if the provider exists):",
        f"aws iam create-open-id-connect-provider --url https://{OIDC_HOST} --client-id-list {OIDC_AUDIENCE}",
        "# the deploy role, trusted by this repository only:",
        f"aws iam create-role --role-name {role_name} --assume-role-policy-document file://{trust_file}",
        f"aws iam put-role-policy --role-name {role_name} --policy-name mldeploy "
        f"--policy-document file://{policy_file}",
        f"# then in GitHub: repository variable {ROLE_VARIABLE} = the role's ARN",
    ])


def init_ci(config_file: Path, provider: str, *, force: bool = False) -> WrittenWorkflow:
    """``init --ci PROVIDER``: write the CI workflow for the (validated) project at ``config_file``."""
    from mldeploy.config import load_project

    if provider != "github":
        raise MldeployError(f"--ci {provider!r} is not supported", hint="use --ci github", exit_code=ExitCode.USAGE)
    return write_workflow(load_project(config_file), force=force)


def merge_policies(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One policy from several (one per environment): statements with the same Sid get the union of resources."""
    merged: dict[str, dict[str, Any]] = {}
    for doc in documents:
        for stmt in doc["Statement"]:
            key = stmt.get("Sid") or json_key(stmt)
            if key not in merged:
                merged[key] = {**stmt}
                continue
            have = merged[key].get("Resource", [])
            have = [have] if isinstance(have, str) else list(have)
            new = stmt.get("Resource", [])
            new = [new] if isinstance(new, str) else new
            union = list(dict.fromkeys([*have, *new]))
            merged[key]["Resource"] = union[0] if len(union) == 1 else union
    return {"Version": "2012-10-17", "Statement": list(merged.values())}


def json_key(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def oidc_role_name(project: Project | None) -> str:
    """The deploy role ``iam-policy --github-oidc`` suggests creating."""
    return f"mldeploy-github-{project.config.name}" if project is not None else DEFAULT_ROLE_NAME


def iam_policy_with_oidc(owner_repo: str, project: Project | None,
                         permissions_for: Callable[[Project | None], dict[str, Any]],
                         account_id: str | None = None) -> dict[str, Any]:
    """``iam-policy --github-oidc OWNER/REPO``: the deploy role's trust policy (for ``account_id``; None keeps the
    ``ACCOUNT_ID`` placeholder) and its permissions for every environment the workflow deploys (the overlays)."""
    from mldeploy.config import load_project

    parse_repo(owner_repo)
    if project is None:
        envs, projects = ["prod"], [None]
    else:
        envs = list(project.config.environments) or ["default"]
        projects = [load_project(project.path, env) for env in envs]
    trust = oidc_trust_policy(owner_repo, envs, account_id=account_id)
    return {"role_name": oidc_role_name(project), "environments": envs, "subjects": oidc_subjects(owner_repo, envs),
            "trust_policy": trust, "permissions_policy": merge_policies([permissions_for(p) for p in projects])}
