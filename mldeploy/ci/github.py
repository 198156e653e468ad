"""GitHub Actions: render and write the deploy workflow; the OIDC roles its jobs assume.

The workflow (``templates/github-workflow.yml.j2``) runs test → deploy (build and push the image, then the first
release or a canary) → promote. Jobs get short-lived AWS credentials from GitHub's OIDC provider
(``aws-actions/configure-aws-credentials``); each mldeploy environment has two roles (:func:`iam_policy_with_oidc`):
``deploy`` trusted only from the GitHub environment ``<env>`` and ``release`` (promote, rollback, down) only from
``<env>-release``. Every action the workflow uses is pinned by commit (:data:`ACTION_PINS`).
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
WORKFLOW_DIR = Path(".github/workflows")
# GitHub: owners are alphanumerics and single hyphens (≤ 39), repositories [A-Za-z0-9._-] (≤ 100).
REPO_RE = re.compile(r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})/(?P<repo>[A-Za-z0-9._-]{1,100})")
ENV_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,255}")
# Every action the generated workflow uses, pinned by full commit SHA (the version goes in a comment). Each SHA is
# what the tag resolved to in the action's repository; bump both together (and rerun tests/test_ci.py).
ACTION_PINS: dict[str, tuple[str, str]] = {
    "actions/checkout": ("11d5960a326750d5838078e36cf38b85af677262", "v4.4.0"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "aws-actions/configure-aws-credentials": ("7474bc4690e29a8392af63c5b98e7449536d5c3a", "v4.3.1"),
}
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
    requirements: str = ""  # ci.requirements, relative to working_directory: installed with --require-hashes
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
        requirements=checked_requirements(project) or "",
        version=__version__,
    )


def default_install(extra: str | None = None) -> str:
    """The running mldeploy's own spec (``mldeploy[torch]==0.1.0``): the default of ``ci.install``."""
    from mldeploy import __version__

    return f"mldeploy[{extra}]=={__version__}" if extra else f"mldeploy=={__version__}"


# pip's options that may stand on a line of their own in a hash-checked file (pip user guide, "Requirements File
# Format": global options); -r/-c/-e are refused: an included file escapes this check, and pip refuses an editable
# in hash-checking mode ("cannot be installed when requiring hashes, because there is no single file to hash":
# pip/_internal/operations/prepare.py)
ALLOWED_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--no-index", "--find-links", "-f", "--prefer-binary",
                   "--only-binary", "--no-binary", "--trusted-host", "--require-hashes", "--pre")
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each requirement: ``\\`` continuations joined, comments dropped (pip's
    "Requirements File Format": a ``#`` after whitespace starts a comment)."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if not buf:
            start = n
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        if buf.strip():
            out.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        out.append((start, buf.strip()))
    return out


def requirements_problems(project: Project) -> list[Any]:
    """``ci.requirements``: the file exists, every requirement carries ``--hash=`` and is pinned with ``==`` (or is
    a direct URL) — what ``pip install --require-hashes`` demands (pip's HashMissing: "Hashes are required in
    --require-hashes mode"; HashUnpinned: "all requirements must have their versions pinned with ==") — no
    ``-r``/``-c``/``-e`` lines, and mldeploy is one of them. Each problem names the line."""
    from mldeploy.errors import Location, Problem

    rel = project.config.ci.requirements
    if rel is None:
        return []
    path = project.root / rel
    if not path.is_file():
        return [Problem(Location(str(project.path)), "ci.requirements", f"{rel} does not exist (resolved to {path}); "
                        "make it with `pip-compile --generate-hashes` (see README, \"Hash-locked CI installs\")")]
    problems, names = [], set()
    for n, line in _logical_lines(path.read_text(encoding="utf-8")):
        where = Location(str(path), n, None)
        first = line.split()[0]
        if first.startswith("-"):
            if first.split("=", 1)[0] not in ALLOWED_OPTIONS:
                problems.append(Problem(where, "ci.requirements", f"line {n}: {first.split('=', 1)[0]} is not "
                                        "allowed in a hash-locked file (list every package itself, with its hashes)"))
            continue
        req = line.split(" --hash", 1)[0].split(";", 1)[0].strip()
        m = _NAME.match(req)
        names.add(re.sub(r"[-_.]+", "-", m.group(1)).lower() if m else req)
        if "--hash=" not in line:
            problems.append(Problem(where, "ci.requirements", f"line {n}: {req!r} has no --hash= (pip "
                                    "--require-hashes refuses a requirement without one)"))
        elif "==" not in req and " @ " not in req:
            problems.append(Problem(where, "ci.requirements", f"line {n}: {req!r} is not pinned with == (pip "
                                    "--require-hashes needs an exact version)"))
    if "mldeploy" not in names:
        problems.append(Problem(Location(str(path)), "ci.requirements", f"{rel} does not install mldeploy (add "
                                "mldeploy==VERSION, with the model format's extra, and regenerate the hashes)"))
    return problems


def checked_requirements(project: Project) -> str | None:
    """``ci.requirements`` once :func:`requirements_problems` finds nothing (``ConfigError`` otherwise)."""
    from mldeploy.errors import ConfigError

    if problems := requirements_problems(project):
        raise ConfigError(problems)
    return project.config.ci.requirements


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


def pinned(action: str) -> str:
    """``owner/repo@<sha> # <version>`` for a ``uses:`` line; only actions in :data:`ACTION_PINS` exist."""
    sha, version = ACTION_PINS[action]
    return f"{action}@{sha} # {version}"


def render_workflow(spec: WorkflowSpec) -> str:
    """The workflow YAML for ``spec`` (checked to parse before it is returned)."""
    import yaml

    from mldeploy.templating import render

    text = render("github-workflow.yml.j2", gh=_gh, pin=pinned, release_suffix=RELEASE_SUFFIX, **asdict(spec))
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


def github_environment(env: str, kind: str) -> str:
    """The GitHub environment a job of ``kind`` (``deploy`` or ``release``) runs in for mldeploy environment ``env``:
    ``prod`` for build/deploy (up, canary), ``prod-release`` for promote/rollback/down."""
    if kind not in ROLE_KINDS:
        raise ValueError(kind)
    return env if kind == "deploy" else f"{env}{RELEASE_SUFFIX}"


def github_environments(environments: list[str] | tuple[str, ...]) -> dict[tuple[str, str], str]:
    """(env, kind) → GitHub environment, for every environment and both kinds; refuses invalid or colliding names
    (an mldeploy environment ``prod-release`` next to ``prod`` would share one GitHub environment, hence one
    ``sub``, between two roles)."""
    for env in environments:
        if not ENV_NAME_RE.fullmatch(env) or not ENV_NAME_RE.fullmatch(env + RELEASE_SUFFIX):
            raise MldeployError(f"{env!r} is not a valid GitHub environment name", exit_code=ExitCode.USAGE)
    names = {(env, kind): github_environment(env, kind) for env in environments for kind in ROLE_KINDS}
    seen: dict[str, tuple[str, str]] = {}
    for key, name in names.items():
        if name.lower() in seen:  # GitHub environment names are case-insensitive
            raise MldeployError(f"environments {seen[name.lower()][0]!r} and {key[0]!r} would share the GitHub "
                                f"environment {name!r}", hint=f"rename the mldeploy environment {key[0]!r}",
                                exit_code=ExitCode.CONFIG)
        seen[name.lower()] = key
    return names


def oidc_subject(owner_repo: str, github_env: str) -> str:
    """The ``sub`` claim of a job that runs in GitHub environment ``github_env`` of ``owner_repo``."""
    owner, repo = parse_repo(owner_repo)
    if not ENV_NAME_RE.fullmatch(github_env):
        raise MldeployError(f"{github_env!r} is not a valid GitHub environment name", exit_code=ExitCode.USAGE)
    return f"repo:{owner}/{repo}:environment:{github_env}"


def oidc_trust_policy(owner_repo: str, github_env: str, *, account_id: str | None = None,
                      partition: str = "aws") -> dict[str, Any]:
    """The trust policy of one role GitHub Actions assumes with OIDC: only jobs of ``owner_repo`` that run in the
    GitHub environment ``github_env`` (exact ``sub``, ``aud`` = STS; no wildcards, no branch subjects — restrict
    the environment's deployment branches in GitHub).

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
                        f"{OIDC_HOST}:sub": oidc_subject(owner_repo, github_env),
                    }
                },
            }
        ],
    }


def init_ci(config_file: Path, provider: str, *, force: bool = False) -> WrittenWorkflow:
    """``init --ci PROVIDER``: write the CI workflow for the (validated) project at ``config_file``."""
    from mldeploy.config import load_project

    if provider != "github":
        raise MldeployError(f"--ci {provider!r} is not supported", hint="use --ci github", exit_code=ExitCode.USAGE)
    return write_workflow(load_project(config_file), force=force)


def json_key(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


# --------------------------------------------------------------------------- deploy and release roles

ROLE_KINDS = ("deploy", "release")
RELEASE_SUFFIX = "-release"
ROLE_COMMANDS = {"deploy": ["build", "push", "plan", "status", "up", "canary"],
                 "release": ["status", "promote", "rollback", "down"]}

DOWN_ONLY_ACTIONS = frozenset({
    # Only ``down`` (the Family.delete planners in aws/engine/stack.py) makes these calls; ``up`` and ``canary``
    # (including canary --auto rolling itself back) never do, so the deploy role cannot tear the stack down.
    "ecr:DeleteRepository", "ecs:DeleteCluster", "ec2:DeleteSecurityGroup",
    "application-autoscaling:DeregisterScalableTarget", "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteTargetGroup", "cloudwatch:DeleteDashboards", "ecs:DeregisterTaskDefinition",
    "ecs:DeleteTaskDefinitions", "logs:DeleteLogGroup",
})
RELEASE_WRITE_ACTIONS = DOWN_ONLY_ACTIONS | {
    # promote / rollback: point the stable service at a registered revision, shift the listener weights, remove
    # the canary service and its alarms, write the history and the lock (SSM)
    "ecs:UpdateService", "ecs:DeleteService", "elasticloadbalancing:ModifyListener", "cloudwatch:DeleteAlarms",
    "ssm:PutParameter", "ssm:DeleteParameter", "ssm:DeleteParameters",
    # down: the rest of the teardown (the role deletions stay scoped to the app's roles by policy_for)
    "elasticloadbalancing:DeleteListener", "application-autoscaling:DeleteScalingPolicy", "sns:DeleteTopic",
    "ec2:RevokeSecurityGroupIngress", "iam:DetachRolePolicy", "iam:DeleteRolePolicy", "iam:DeleteRole",
    # down with aws.domain: the alias and validation records, then the ACM certificate (resources/dns.py,
    # certificate.py)
    "route53:ChangeResourceRecordSets", "acm:DeleteCertificate",
}
READ_PREFIXES = ("Describe", "List", "Get")
RELEASE_EXCLUDED_READS = frozenset({
    # image pulls are for the tasks (execution role), not for a release job
    "ecr:GetAuthorizationToken", "ecr:GetDownloadUrlForLayer", "ecr:GetLifecyclePolicy",
})


def role_allows(kind: str, action: str) -> bool:
    """Whether the ``kind`` role keeps ``action`` of the full ``mldeploy iam-policy`` document.

    deploy (build, push, plan, status, up, canary): everything but the teardown-only calls. release (promote,
    rollback, down): reads plus the calls those commands make — no create/register/put of infrastructure, no
    ``iam:PassRole``, no image push, so a release job cannot run a new image or widen a role.
    """
    if kind == "deploy":
        return action not in DOWN_ONLY_ACTIONS
    if kind == "release":
        if action in RELEASE_WRITE_ACTIONS:
            return True
        verb = action.split(":", 1)[1]
        return verb.startswith(READ_PREFIXES) and action not in RELEASE_EXCLUDED_READS
    raise ValueError(kind)


def split_policy(policy: dict[str, Any], kind: str) -> dict[str, Any]:
    """``policy`` (from ``mldeploy.aws.iam_policy.policy_for``) reduced to the ``kind`` role's actions: each
    statement keeps its resources and conditions; statements left with no action are dropped. Deny statements
    (the permissions-boundary guards) stay whole in both roles."""
    statements = []
    for stmt in policy["Statement"]:
        if stmt.get("Effect") == "Deny":
            statements.append(stmt)
            continue
        actions = [stmt["Action"]] if isinstance(stmt["Action"], str) else list(stmt["Action"])
        kept = [a for a in actions if role_allows(kind, a)]
        if kept:
            statements.append({**stmt, "Action": kept[0] if isinstance(stmt["Action"], str) else kept})
    return {"Version": policy.get("Version", "2012-10-17"), "Statement": statements}


def oidc_role_name(project: Project | None, env: str, kind: str) -> str:
    """The name of the ``kind`` role of ``env`` that ``iam-policy --github-oidc`` suggests creating (≤ 64)."""
    app = project.config.name if project is not None else "app"
    return f"mldeploy-gh-{app}-{env}-{kind}"[:64]


def iam_policy_with_oidc(owner_repo: str, project: Project | None,
                         permissions_for: Callable[[Project | None], dict[str, Any]],
                         account_id: str | None = None) -> dict[str, Any]:
    """``iam-policy --github-oidc OWNER/REPO``: two roles per environment the workflow deploys (the overlays) —
    ``deploy`` (build, push, up, canary) trusted only from the GitHub environment ``<env>``, ``release`` (promote,
    rollback, down) only from ``<env>-release`` — each with that environment's permissions only (``account_id``
    None keeps the ``ACCOUNT_ID`` placeholder)."""
    from mldeploy.config import load_project

    parse_repo(owner_repo)
    if project is None:
        envs, projects = ["prod"], {"prod": None}
    else:
        envs = list(project.config.environments) or ["default"]
        projects = {env: load_project(project.path, env) for env in envs}
    names = github_environments(envs)
    roles = []
    for env in envs:
        full = permissions_for(projects[env])
        for kind in ROLE_KINDS:
            gh_env = names[(env, kind)]
            roles.append({
                "role_name": oidc_role_name(project, env, kind), "environment": env, "kind": kind,
                "commands": ROLE_COMMANDS[kind], "github_environment": gh_env,
                "subject": oidc_subject(owner_repo, gh_env),
                "trust_policy": oidc_trust_policy(owner_repo, gh_env, account_id=account_id),
                "permissions_policy": split_policy(full, kind),
            })
    return {"oidc_provider": oidc_provider_arn(account_id or "ACCOUNT_ID"), "environments": envs,
            "role_variable": ROLE_VARIABLE, "roles": roles}


def oidc_setup_commands(owner_repo: str, doc: dict[str, Any]) -> str:
    """How to create what ``iam_policy_with_oidc`` printed (``doc``): the OIDC provider, each role with its two
    documents, and each GitHub environment's ``MLDEPLOY_AWS_ROLE_ARN`` variable (printed on stderr)."""
    lines = [
        "# once per AWS account (skip if the provider exists):",
        f"aws iam create-open-id-connect-provider --url https://{OIDC_HOST} --client-id-list {OIDC_AUDIENCE}",
        "# the roles mldeploy creates are capped by aws.permissions_boundary when it is set: create that policy "
        "first (mldeploy iam-policy --boundary)",
        "# each role: trusted by one GitHub environment of this repository only",
        f"mldeploy iam-policy --github-oidc {owner_repo} > oidc.json",
    ]
    for i, role in enumerate(doc["roles"]):
        name, gh_env = role["role_name"], role["github_environment"]
        lines += [
            f"# {role['kind']} role of {role['environment']} ({', '.join(role['commands'])}), GitHub environment "
            f"{gh_env}:",
            f"jq '.roles[{i}].trust_policy' oidc.json > trust-{name}.json",
            f"jq '.roles[{i}].permissions_policy' oidc.json > policy-{name}.json",
            f"aws iam create-role --role-name {name} --assume-role-policy-document file://trust-{name}.json",
            f"aws iam put-role-policy --role-name {name} --policy-name mldeploy "
            f"--policy-document file://policy-{name}.json",
            f"gh api --method PUT repos/{owner_repo}/environments/{gh_env} > /dev/null  # creates it if missing",
            f"gh variable set {ROLE_VARIABLE} --repo {owner_repo} --env {gh_env} --body "
            f"\"$(aws iam get-role --role-name {name} --query Role.Arn --output text)\"",
        ]
    lines += ["# then in GitHub → Settings → Environments, for each environment above: deployment branches = "
              "main only; required reviewers on the ones that need approval (prod, prod-release)"]
    return "\n".join(lines)
