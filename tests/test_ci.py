"""CI use: the generated GitHub workflow (linted by actionlint), the OIDC trust policy, and the CLI's behaviour
under GitHub Actions — annotations, no prompts/colours, outputs, summaries, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mldeploy.ci import github
from mldeploy.errors import ExitCode
from tests.ci_helpers import actionlint, clean_env, linter, parse_github_output, run_gh  # noqa: F401

CONFIG = """\
name: iris
model:
  path: model.onnx
aws:
  region: eu-west-1
release:
  steps: [5, 50, 100]
environments:
  staging:
    aws: {desired_count: 1}
  prod:
    aws: {desired_count: 3}
"""


def make_project(folder: Path, config: str = CONFIG) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(b"not really onnx")
    (folder / "mldeploy.yaml").write_text(config)
    return folder


def cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mldeploy", *args], cwd=cwd, env=env or clean_env(),
                          capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- the generated workflow


@pytest.mark.usefixtures("linter")
def test_init_ci_github_writes_a_workflow_that_passes_actionlint(tmp_path: Path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    proc = cli(["init", "--model", "model.onnx", "--name", "iris", "--ci", "github", "--yes"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / ".github" / "workflows" / "mldeploy.yml"
    assert actionlint(path) == []
    wf = yaml.safe_load(path.read_text())
    jobs = wf["jobs"]
    assert list(jobs) == ["test", "deploy", "promote", "rollback"]
    assert jobs["deploy"]["needs"] == "test" and jobs["promote"]["needs"] == "deploy"
    # least privilege: read-only by default, an OIDC token only for the jobs that talk to AWS
    assert wf["permissions"] == {"contents": "read"}
    assert "permissions" not in jobs["test"]
    for name in ("deploy", "promote", "rollback"):
        assert jobs[name]["permissions"] == {"contents": "read", "id-token": "write"}
        creds = [s for s in jobs[name]["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-cred")]
        assert len(creds) == 1 and creds[0]["with"]["role-to-assume"] == "${{ vars.MLDEPLOY_AWS_ROLE_ARN }}"
        checkout = next(s for s in jobs[name]["steps"] if s.get("uses", "").startswith("actions/checkout@"))
        assert checkout["with"]["persist-credentials"] is False
    text = path.read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    # every AWS job runs in a GitHub environment, and that environment's variable names its role: deploy (build,
    # push, up, canary) in `prod`, promote/rollback in `prod-release` (each role trusts only its environment)
    assert jobs["deploy"]["environment"]["name"] == "${{ inputs.environment || 'prod' }}"
    assert jobs["promote"]["environment"]["name"] == "${{ format('{0}-release', inputs.environment || 'prod') }}"
    assert jobs["rollback"]["environment"]["name"] == "${{ format('{0}-release', inputs.environment) }}"
    assert "inputs.environment || 'prod'" in wf["concurrency"]["group"]
    assert wf["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    # deploy: build and push, plan, first release with `up --image`, else a canary of the pushed image; then promote
    steps = jobs["deploy"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert runs.index("mldeploy build") < runs.index("mldeploy push") < runs.index("mldeploy plan")
    up = next(s for s in steps if s.get("run") == 'mldeploy up --image "$IMAGE_URI"')
    canary = next(s for s in steps
                  if s.get("run") == 'mldeploy canary --percent "$CANARY_PERCENT" --image "$IMAGE_URI"')
    for step in (up, canary):  # digest-pinned: repository@sha256:…
        assert step["env"]["IMAGE_URI"] == "${{ steps.push.outputs.image_ref }}"
    assert [s.get("run") for s in jobs["promote"]["steps"]][-2:] == ["mldeploy promote --yes",
                                                                     "mldeploy rollback --yes"]
    assert_pinned(text)


def assert_pinned(text: str) -> None:
    """Every `uses:` is `owner/repo@<40-hex SHA> # <version>` from github.ACTION_PINS, and every pin is used."""
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(.*)$", text, re.M)
    assert uses
    seen = set()
    for line in uses:
        m = re.fullmatch(r"([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)", line.strip())
        assert m, f"not pinned by commit with its version: {line!r}"
        action, sha, version = m.groups()
        assert github.ACTION_PINS.get(action) == (sha, version), line
        seen.add(action)
    assert seen == set(github.ACTION_PINS)


def test_action_pins_table_is_well_formed():
    for action, (sha, version) in github.ACTION_PINS.items():
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", action)
        assert re.fullmatch(r"[0-9a-f]{40}", sha) and re.fullmatch(r"v\d+\.\d+\.\d+", version)


def unpinned(text: str) -> str:
    """The workflow with `@<sha> # v4.4.0` turned back into `@v4`: actionlint only knows the inputs of popular
    actions by tag, so the broken-workflow control below lints this form."""
    return re.sub(r"@[0-9a-f]{40} # (v\d+)\.\d+\.\d+", r"@\1", text)


@pytest.mark.usefixtures("linter")
def test_actionlint_catches_a_broken_workflow(tmp_path: Path):
    """The linter really checks (so the passing test above means something): a typo'd action input,
    an undefined job dependency and a bad expression are each reported."""
    project = make_project(tmp_path / "app")
    text = unpinned(github.render_workflow(github.workflow_spec(_load(project))))
    path = tmp_path / "ok.yml"
    path.write_text(text)
    assert actionlint(path) == []
    broken = (text.replace("role-to-assume:", "role-to-asume:", 1)
                  .replace("needs: deploy", "needs: deplyo", 1)
                  .replace("steps.status.outputs.deployed != 'true'", "steps.status.outputs.deployed != 'true' &&", 1))
    path = tmp_path / "broken.yml"
    path.write_text(broken)
    problems = actionlint(path)
    messages = " ".join(p["message"] for p in problems)
    assert 'input "role-to-asume" is not defined' in messages
    assert "deplyo" in messages
    assert any(p["kind"] == "expression" for p in problems), problems


def _load(folder: Path):
    from mldeploy.config import load_project

    return load_project(folder / "mldeploy.yaml")


@pytest.mark.usefixtures("linter")
def test_workflow_for_a_project_in_a_subfolder_with_several_environments(tmp_path: Path):
    (tmp_path / ".git").mkdir()  # a repository root
    project = make_project(tmp_path / "services" / "iris")
    proc = cli(["init", "--ci", "github"], project)  # existing mldeploy.yaml: only the workflow is written
    assert proc.returncode == 0, proc.stderr
    assert (project / "mldeploy.yaml").read_text() == CONFIG
    path = tmp_path / ".github" / "workflows" / "mldeploy-iris.yml"
    assert path.exists() and not (project / ".github").exists()
    assert actionlint(path) == []
    wf = yaml.safe_load(path.read_text())
    assert wf["defaults"]["run"]["working-directory"] == "services/iris"
    on = wf[True]  # YAML 1.1 reads the key `on` as a boolean
    assert on["push"]["paths"] == ["services/iris/**", ".github/workflows/mldeploy-iris.yml"]
    dispatch = on["workflow_dispatch"]["inputs"]
    assert dispatch["environment"]["options"] == ["staging", "prod"]
    assert dispatch["environment"]["default"] == "prod"
    assert dispatch["canary_percent"]["default"] == 5  # release.steps[0]
    assert wf["env"]["AWS_REGION"] == "eu-west-1"
    # a second run refuses to overwrite; --force regenerates the workflow and still leaves mldeploy.yaml alone
    again = cli(["init", "--ci", "github"], project)
    assert again.returncode == ExitCode.USAGE and "--force" in again.stderr
    assert cli(["init", "--ci", "github", "--force"], project).returncode == 0
    assert (project / "mldeploy.yaml").read_text() == CONFIG


@pytest.mark.parametrize(("model", "fmt", "install"), [
    ("model.onnx", "auto", "mldeploy=="), ("model.pt", "auto", "mldeploy[torch]=="),
    ("model.pt", "torch", "mldeploy[torch]=="), ("saved", "savedmodel", "mldeploy[tensorflow]=="),
])
def test_workflow_installs_the_extra_the_model_format_needs(tmp_path: Path, model: str, fmt: str, install: str):
    project = make_project(tmp_path, CONFIG.replace("path: model.onnx", f"path: {model}\n  format: {fmt}"))
    (project / model).write_bytes(b"x")
    spec = github.workflow_spec(_load(project))
    assert spec.install.startswith(install)


def test_init_ci_rejects_unknown_provider_and_invalid_config(tmp_path: Path):
    project = make_project(tmp_path, CONFIG.replace("region: eu-west-1", "region: mars"))
    proc = cli(["init", "--ci", "gitlab"], project)
    assert proc.returncode == ExitCode.USAGE and "github" in proc.stderr
    proc = cli(["init", "--ci", "github"], project)
    assert proc.returncode == ExitCode.CONFIG and "aws.region" in proc.stderr
    assert not (tmp_path / ".github").exists()


# --------------------------------------------------------------------------- zizmor (workflow security audit)


def zizmor(path: Path) -> list[dict]:
    """zizmor's findings at its default level for the workflow at ``path``, offline (no GitHub API)."""
    import shutil

    exe = shutil.which("zizmor")
    if exe is None:
        if os.environ.get("MLDEPLOY_REQUIRE_LINT") == "1":
            pytest.fail("zizmor is not installed (pip install -e '.[dev]')", pytrace=False)
        pytest.skip("zizmor is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([exe, "--offline", "--no-progress", "--format", "json", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip(), f"zizmor did not run: {proc.stderr}"
    return json.loads(proc.stdout)


@pytest.mark.parametrize("layout", ["root", "subfolder"])
def test_zizmor_finds_nothing_in_the_generated_workflow(tmp_path: Path, layout: str):
    if layout == "root":
        project = make_project(tmp_path)
    else:
        (tmp_path / ".git").mkdir()
        project = make_project(tmp_path / "services" / "iris")
    spec = github.workflow_spec(_load(project))
    path = tmp_path / "workflow.yml"
    path.write_text(github.render_workflow(spec))
    assert zizmor(path) == []
    assert_pinned(path.read_text())


def test_zizmor_flags_what_the_template_avoids(tmp_path: Path):
    """The control: zizmor does report tag pins, persisted checkout credentials and `${{ github.* }}` in `run:`
    (so the clean result above means something)."""
    text = github.render_workflow(github.workflow_spec(_load(make_project(tmp_path / "app"))))
    broken = (unpinned(text).replace("        with:\n          persist-credentials: false\n", "", 1)
              .replace('run: mldeploy build', 'run: mldeploy build --tag "${{ github.head_ref }}"', 1))
    path = tmp_path / "broken.yml"
    path.write_text(broken)
    found = {f["ident"] for f in zizmor(path)}
    assert {"unpinned-uses", "artipacked", "template-injection"} <= found, found


# --------------------------------------------------------------------------- OIDC roles


def test_oidc_trust_policy_admits_exactly_one_github_environment():
    policy = github.oidc_trust_policy("my-org/iris-api", "prod-release", account_id="123456789012")
    (stmt,) = policy["Statement"]
    assert stmt["Principal"]["Federated"] == \
        "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
    cond = stmt["Condition"]
    assert set(cond) == {"StringEquals"}  # no StringLike: no wildcards anywhere
    assert cond["StringEquals"] == {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                                    "token.actions.githubusercontent.com:sub":
                                        "repo:my-org/iris-api:environment:prod-release"}
    assert "*" not in json.dumps(policy) and "ref:refs/heads" not in json.dumps(policy)


@pytest.mark.parametrize("bad", ["iris-api", "my-org/", "-org/repo", "my org/repo", "org/re*po", "a/b/c"])
def test_oidc_trust_policy_rejects_malformed_repositories(bad: str):
    from mldeploy.errors import MldeployError

    with pytest.raises(MldeployError, match="OWNER/REPO|GitHub repository"):
        github.oidc_trust_policy(bad, "prod")


def test_colliding_github_environments_are_refused():
    from mldeploy.errors import MldeployError

    assert github.github_environments(["staging", "prod"])[("prod", "release")] == "prod-release"
    with pytest.raises(MldeployError, match="share the GitHub environment 'prod-release'"):
        github.github_environments(["prod", "prod-release"])


def _actions(policy: dict) -> set[str]:
    return {a for st in policy["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str)
                                                       else st["Action"])}


def _oidc_doc(project: Path) -> dict:
    from mldeploy.aws.iam_policy import policy_for

    return github.iam_policy_with_oidc("my-org/iris-api", _load(project), policy_for, account_id="123456789012")


def test_github_oidc_prints_a_deploy_and_a_release_role_per_environment(tmp_path: Path):
    from mldeploy.aws.iam_policy import policy_for
    from mldeploy.config import load_project

    project = make_project(tmp_path)
    doc = _oidc_doc(project)
    assert doc["environments"] == ["staging", "prod"]
    layout = [(r["environment"], r["kind"], r["github_environment"], r["subject"]) for r in doc["roles"]]
    assert layout == [
        ("staging", "deploy", "staging", "repo:my-org/iris-api:environment:staging"),
        ("staging", "release", "staging-release", "repo:my-org/iris-api:environment:staging-release"),
        ("prod", "deploy", "prod", "repo:my-org/iris-api:environment:prod"),
        ("prod", "release", "prod-release", "repo:my-org/iris-api:environment:prod-release"),
    ]
    names = [r["role_name"] for r in doc["roles"]]
    assert len(set(names)) == 4 and all(len(n) <= 64 for n in names)
    for role in doc["roles"]:
        (stmt,) = role["trust_policy"]["Statement"]
        assert stmt["Condition"]["StringEquals"] == {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": role["subject"]}  # one subject, never a branch or a list
        # permissions: that environment's policy_for, split by command; resources and conditions unchanged
        full = policy_for(load_project(project / "mldeploy.yaml", role["environment"]))
        by_sid = {st["Sid"]: st for st in full["Statement"]}
        for st in role["permissions_policy"]["Statement"]:
            assert {k: v for k, v in st.items() if k != "Action"} == \
                {k: v for k, v in by_sid[st["Sid"]].items() if k != "Action"}
            assert set([st["Action"]] if isinstance(st["Action"], str) else st["Action"]) <= _actions(full)
        other = "staging" if role["environment"] == "prod" else "prod"
        assert f"iris-{other}-" not in json.dumps(role["permissions_policy"])  # no other environment's roles
    deploy, release = _actions(doc["roles"][2]["permissions_policy"]), _actions(doc["roles"][3]["permissions_policy"])
    # deploy: creates and updates, pushes images; never tears the stack down
    assert {"ecs:CreateService", "ecs:RegisterTaskDefinition", "iam:PassRole", "ecr:PutImage",
            "ecs:UpdateService", "ecs:DeleteService"} <= deploy
    assert not deploy & {"ecs:DeleteCluster", "elasticloadbalancing:DeleteLoadBalancer", "ecr:DeleteRepository",
                         "logs:DeleteLogGroup", "ec2:DeleteSecurityGroup"}
    # release: promote/rollback/down; cannot run a new image, pass or widen a role, or build infrastructure
    assert {"ecs:UpdateService", "elasticloadbalancing:ModifyListener", "ecs:DeleteCluster",
            "ssm:PutParameter"} <= release
    assert not release & {"iam:PassRole", "iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy",
                          "ecs:RegisterTaskDefinition", "ecs:CreateService", "ecr:PutImage",
                          "elasticloadbalancing:CreateLoadBalancer", "ec2:AuthorizeSecurityGroupIngress"}


def test_iam_policy_github_oidc_creates_working_roles_in_iam(tmp_path: Path, aws: dict[str, str]):
    """`iam-policy --github-oidc` against the moto server: the account comes from STS, and IAM accepts every
    role's two documents, as the printed setup commands use them."""
    import boto3

    project = make_project(tmp_path)
    proc = cli(["iam-policy", "--github-oidc", "my-org/iris-api"], project, env=clean_env(aws))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc["roles"]) == 4 and "ACCOUNT_ID" not in proc.stdout
    err = " ".join(proc.stderr.split())
    assert "create-open-id-connect-provider" in err
    assert "gh variable set MLDEPLOY_AWS_ROLE_ARN --repo my-org/iris-api --env prod-release" in err
    iam = boto3.client("iam")
    provider = iam.create_open_id_connect_provider(
        Url=f"https://{github.OIDC_HOST}", ClientIDList=[github.OIDC_AUDIENCE], ThumbprintList=["a" * 40])
    assert doc["oidc_provider"] == provider["OpenIDConnectProviderArn"]
    for role in doc["roles"]:
        assert role["trust_policy"]["Statement"][0]["Principal"]["Federated"] == doc["oidc_provider"]
        iam.create_role(RoleName=role["role_name"], AssumeRolePolicyDocument=json.dumps(role["trust_policy"]))
        iam.put_role_policy(RoleName=role["role_name"], PolicyName="mldeploy",
                            PolicyDocument=json.dumps(role["permissions_policy"]))
        stored = iam.get_role(RoleName=role["role_name"])["Role"]["AssumeRolePolicyDocument"]
        stored = json.loads(stored) if isinstance(stored, str) else stored
        assert stored["Statement"][0]["Condition"]["StringEquals"][
            "token.actions.githubusercontent.com:sub"] == role["subject"]
    bad = cli(["iam-policy", "--github-oidc", "not-a-repo"], project, env=clean_env(aws))
    assert bad.returncode == ExitCode.USAGE and "my-org/my-repo" in bad.stderr


def _moto_policy(policy: dict) -> dict:
    """moto evaluates actions only (every request's resource is "*") and names CloudWatch and the tagging API by
    their signing names: the same actions, on "*"."""
    rename = {"cloudwatch:": "monitoring:", "tag:": "tagging:"}

    def fix(a: str) -> str:
        return next((new + a[len(old):] for old, new in rename.items() if a.startswith(old)), a)

    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": sorted(fix(a) for a in _actions(policy)), "Resource": "*"}]}


def test_each_role_can_run_its_commands_and_not_the_others(tmp_path: Path):
    """Against moto with IAM enforcement: the deploy role's actions run up and canary (and plan/status) but not
    down; the release role's run promote, rollback and down but not up."""
    from tests import infra

    image_1, image_2 = ("127.0.0.1:5000/iris@sha256:" + c * 64 for c in "12")
    project = make_project(tmp_path / "app", "name: iris\nmodel:\n  path: model.onnx\n  version: 1.0.0\n"
                                             "aws:\n  region: us-east-1\n  desired_count: 1\n")
    roles = {r["kind"]: r["permissions_policy"] for r in _oidc_doc(project)["roles"]}
    with infra.MotoServer(iam_enforcement=True) as server:
        envs = {}
        with server.auth_disabled():
            iam = server.client("iam")
            for kind, policy in roles.items():
                iam.create_user(UserName=kind)
                iam.put_user_policy(UserName=kind, PolicyName="mldeploy",
                                    PolicyDocument=json.dumps(_moto_policy(policy)))
                key = iam.create_access_key(UserName=kind)["AccessKey"]
                envs[kind] = clean_env({**infra.aws_env(server.url), "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                                        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"], "NO_COLOR": "1",
                                        "MLDEPLOY_SKIP_HEALTH_WAIT": "1", "MLDEPLOY_POLL_S": "0.2", "CI": "true"})

        def run(kind: str, *args: str) -> subprocess.CompletedProcess[str]:
            return cli(list(args), project, env=envs[kind])

        def ok(kind: str, *args: str) -> None:
            proc = run(kind, *args)
            assert proc.returncode == 0, f"{kind}: mldeploy {' '.join(args)}\n{proc.stderr[-3000:]}"

        denied = run("release", "up", "--image", image_1, "--no-wait")
        assert denied.returncode == ExitCode.AWS and "access denied" in denied.stderr, denied.stderr[-2000:]
        for args in (["plan"], ["up", "--image", image_1, "--no-wait"], ["status"],
                     ["canary", "--percent", "10", "--image", image_2]):
            ok("deploy", *args)
        ok("release", "promote", "--yes")
        ok("deploy", "canary", "--percent", "10", "--image", image_1)
        ok("release", "rollback", "--yes")
        ok("release", "rollback", "--yes")
        denied = run("deploy", "down", "--yes")
        assert denied.returncode == ExitCode.AWS and "access denied" in denied.stderr, denied.stderr[-2000:]
        ok("release", "down", "--yes")


# --------------------------------------------------------------------------- CLI behaviour under GitHub Actions


BAD_CONFIG = """\
name: iris
model:
  path: model.onnx
aws:
  cpu: 300
runtime:
  port: 0
"""


def test_config_errors_become_error_annotations_with_file_line_col(tmp_path: Path):
    repo = tmp_path / "repo"
    project = make_project(repo / "services" / "iris", BAD_CONFIG)
    run = run_gh(["validate"], project, tmp_path / "gh", workspace=repo)
    assert run.code == ExitCode.CONFIG
    annotations = [line for line in run.stderr.splitlines() if line.startswith("::error ")]
    # paths relative to the repository root ($GITHUB_WORKSPACE), so GitHub shows them on the file
    assert any(re.fullmatch(r"::error file=services/iris/mldeploy\.yaml,line=5,col=\d+::aws\.cpu: .*300.*", a)
               for a in annotations), run.stderr
    assert any(re.fullmatch(r"::error file=services/iris/mldeploy\.yaml,line=7,col=\d+::runtime\.port: .*", a)
               for a in annotations), run.stderr
    assert "Traceback" not in run.stderr


def test_outside_github_actions_no_annotations_or_outputs(tmp_path: Path):
    project = make_project(tmp_path, BAD_CONFIG)
    proc = cli(["validate"], project)
    assert proc.returncode == ExitCode.CONFIG
    assert "::error" not in proc.stderr and "aws.cpu" in proc.stderr


def test_no_colours_or_cursor_control_in_ci_even_on_a_terminal(tmp_path: Path):
    """Through a real pty: colour codes appear on a terminal, but not with CI=true."""
    pexpect = pytest.importorskip("pexpect")
    project = make_project(tmp_path, BAD_CONFIG)

    def transcript(extra: dict[str, str]) -> str:
        env = clean_env()
        env.update({"TERM": "xterm-256color", "COLUMNS": "100", **extra})
        child = pexpect.spawn(sys.executable, ["-m", "mldeploy", "validate"], cwd=str(project), env=env,
                              encoding="utf-8", timeout=60)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == ExitCode.CONFIG
        return child.before

    assert "\x1b[" in transcript({})  # the control: a terminal gets colours
    ci = transcript({"CI": "true"})
    assert "\x1b[" not in ci and "\r\x1b" not in ci
    assert "aws.cpu" in ci


def test_confirmation_in_ci_fails_with_a_clear_message_unless_yes(monkeypatch: pytest.MonkeyPatch):
    from mldeploy.cli.session import Options, Session
    from mldeploy.errors import MldeployError

    monkeypatch.setenv("CI", "true")
    with pytest.raises(MldeployError) as e:
        Session().confirm("delete the service iris?")
    assert e.value.exit_code == ExitCode.USAGE and "--yes" in (e.value.hint or "")
    Session(Options(yes=True)).confirm("delete the service iris?")  # answered by --yes


def test_github_output_file_format_survives_multiline_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from mldeploy import console
    from mldeploy.ci import outputs

    out, summary = tmp_path / "out", tmp_path / "summary"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    outputs.report("Deployed iris", outputs={"url": "http://x", "notes": "a\nb=c", "skipped": None},
                   facts={"Version": "1.2.0", "Cost": 12.5, "Pipe": "a|b"})
    console.set_outputs({"url": "http://y"})  # appended: the runner keeps the last value
    values = parse_github_output(out.read_text())
    assert values == {"url": "http://y", "notes": "a\nb=c"}
    md = summary.read_text()
    assert md.startswith("### Deployed iris\n")
    assert "| **Version** | 1.2.0 |" in md and "| **Cost** | 12.50 |" in md and "a\\|b" in md


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(("error", "code"), [
    ("ConfigError", ExitCode.CONFIG), ("ArtifactError", ExitCode.BUILD), ("BuildError", ExitCode.BUILD),
    ("AwsError", ExitCode.AWS), ("RolledBackError", ExitCode.ROLLED_BACK), ("LockHeldError", ExitCode.LOCKED),
    ("NotReadyError", ExitCode.NOT_READY),
])
def test_each_failure_class_maps_to_its_documented_exit_code_and_an_annotation(
        error: str, code: ExitCode, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """main() maps every error class to its code, prints no traceback, and annotates under GitHub Actions.
    (The real commands that raise them are exercised in the tests below and in each area's tests.)"""
    import typer

    from mldeploy import errors
    from mldeploy.cli import app as app_module
    from mldeploy.cli import main as main_module

    cls = getattr(errors, error)
    probe = typer.Typer()

    @probe.command()
    def fail() -> None:
        raise cls("something specific failed") if error != "ConfigError" else cls("bad field")

    @probe.command()
    def other() -> None:  # two commands, so `fail` is a sub-command like the real ones
        pass

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setattr(app_module, "app", probe)
    assert main_module.main(["fail"]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r"^::error( file=[^:]+)?::", err, re.M), err


def test_exit_codes_are_documented():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "exit-codes.md").read_text()
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \| `{code.name}` \|", doc, re.M), f"{code.name} missing"


def test_real_failures_exit_with_their_class_code(tmp_path: Path):
    project = make_project(tmp_path, BAD_CONFIG)
    assert cli(["validate"], project).returncode == ExitCode.CONFIG
    missing = make_project(tmp_path / "missing", CONFIG.replace("model.onnx", "nowhere.onnx"))
    proc = cli(["validate"], missing)
    assert proc.returncode == ExitCode.CONFIG and "model.path" in proc.stderr
    # a usage error is click's 2
    assert cli(["validate", "--no-such-flag"], project).returncode == ExitCode.USAGE


def _tiny_onnx(path: Path) -> None:
    """A real 4→3 MatMul ONNX model (no training, no converter)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    weights = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.arange(12, dtype=np.float32).tolist())
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["logits"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_build_errors_exit_4(tmp_path: Path):
    """A corrupt model file (packaging) and a missing Docker daemon (image build) are both BUILD (4)."""
    corrupt = make_project(tmp_path / "corrupt", CONFIG)
    run = run_gh(["package"], corrupt, tmp_path / "gh")
    assert run.code == ExitCode.BUILD and "model.onnx" in run.stderr and "Traceback" not in run.stderr
    assert "::error::" in run.stderr

    project = make_project(tmp_path / "ok", CONFIG)
    _tiny_onnx(project / "model.onnx")
    env = clean_env()
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-such-docker.sock"
    run = run_gh(["build"], project, tmp_path / "gh", env=env)
    assert run.code == ExitCode.BUILD, run.stderr
    assert "Docker" in run.stderr and "no-such-docker.sock" in run.stderr and "Traceback" not in run.stderr
    assert run.outputs == {}  # nothing half-written to $GITHUB_OUTPUT


def test_aws_errors_exit_5(tmp_path: Path):
    """No reachable AWS endpoint → AwsError (exit 5) with the resource/endpoint named, not a traceback."""
    from mldeploy.cli import app as app_module

    commands = {c.name or c.callback.__name__ for c in app_module.app.registered_commands}
    if "status" not in commands:
        pytest.skip("`mldeploy status` does not exist yet (issue 6)")
    project = make_project(tmp_path, CONFIG)
    env = clean_env()
    env.update({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"})
    run = run_gh(["status"], project, tmp_path / "gh", env=env, timeout=120)
    assert run.code == ExitCode.AWS, run.stderr
    assert "Traceback" not in run.stderr and "::error" in run.stderr



def test_every_mldeploy_command_in_the_workflow_exists_with_its_options(tmp_path: Path):
    """The workflow cannot drift from the CLI: each `mldeploy …` line names a real command and real options."""
    import shlex

    import typer

    from mldeploy.cli.app import app

    group = typer.main.get_command(app)
    global_opts = {o for p in group.params for o in p.opts}
    text = github.render_workflow(github.workflow_spec(_load(make_project(tmp_path))))
    lines = [m.strip() for m in re.findall(r"^\s*(?:run:\s*)?(mldeploy [^\n#]*)", text, re.M)]
    assert len(lines) >= 10, lines
    seen = set()
    for line in lines:
        words = shlex.split(line)[1:]
        command = group.commands.get(words[0])
        assert command is not None, f"`{line}`: no command {words[0]!r}"
        opts = {o for p in command.params for o in p.opts} | global_opts
        for word in words[1:]:
            if word.startswith("-"):
                assert word.split("=", 1)[0] in opts, f"`{line}`: {word} is not an option of {words[0]}"
        seen.add(words[0])
    assert {"validate", "package", "build", "push", "plan", "status", "up", "canary", "promote", "rollback"} <= seen


# --------------------------------------------------------------------------- ci.install (issue 20.4)


def _installs(path: Path) -> set[str]:
    return set(re.findall(r'python -m pip install "([^"]+)"', path.read_text()))


def test_init_ci_warns_when_pip_cannot_resolve_the_install_spec_and_ci_install_fixes_it(tmp_path: Path):
    """The user's run: every job installed `mldeploy==0.1.0`, which pip cannot find. init now says so and how to fix
    it; `ci.install` (here a wheel path in the repository) is what every job installs, and it is checked."""
    from mldeploy import __version__

    folder = make_project(tmp_path)
    env = {**clean_env(), "PIP_INDEX_URL": (tmp_path / "empty-index").as_uri(), "PIP_EXTRA_INDEX_URL": "",
           "PIP_FIND_LINKS": "", "PIP_NO_INDEX": ""}
    (tmp_path / "empty-index").mkdir()
    proc = cli(["init", "--ci", "github"], folder, env)
    assert proc.returncode == 0, proc.stderr
    err = " ".join(proc.stderr.split())
    assert f"installs 'mldeploy=={__version__}', which pip cannot install here" in err
    assert "set ci.install in mldeploy.yaml" in err and "--force" in err
    assert _installs(folder / ".github" / "workflows" / "mldeploy.yml") == {f"mldeploy=={__version__}"}

    (folder / "wheels").mkdir()
    (folder / "wheels" / "mldeploy-0.1.0-py3-none-any.whl").write_bytes(b"")
    (folder / "mldeploy.yaml").write_text(CONFIG + "ci:\n  install: ./wheels/mldeploy-0.1.0-py3-none-any.whl\n")
    proc = cli(["init", "--ci", "github", "--force"], folder, env)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    assert _installs(folder / ".github" / "workflows" / "mldeploy.yml") == {"./wheels/mldeploy-0.1.0-py3-none-any.whl"}


def test_install_check_is_bounded_and_offline_is_a_warning_not_a_hang(tmp_path: Path):
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on: connection refused at once, like an offline index
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**clean_env(), "PIP_INDEX_URL": f"http://127.0.0.1:{port}/simple", "PIP_EXTRA_INDEX_URL": "",
           "PIP_FIND_LINKS": ""}
    folder = make_project(tmp_path)
    t0 = time.monotonic()
    proc = cli(["init", "--ci", "github"], folder, env)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 < 60
    err = " ".join(proc.stderr.split())
    assert "warning:" in err and "ci.install" in err and ("could not check" in err or "cannot install" in err)
    assert github.check_install("./missing.whl", cwd=tmp_path).ok is False


def test_ci_install_must_be_one_requirement(tmp_path: Path):
    folder = make_project(tmp_path, CONFIG + 'ci:\n  install: "mldeploy --index-url http://evil"\n')
    proc = cli(["validate"], folder)
    assert proc.returncode == ExitCode.CONFIG and "ci.install" in proc.stderr


# --------------------------------------------------------------------------- hash-locked installs (ci.requirements)


def _tiny_wheel(folder: Path, name: str = "mldeploy", version: str = "0.0.1") -> Path:
    """A minimal real wheel (PEP 427: METADATA, WHEEL, RECORD) that pip can resolve offline."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}_stub/__init__.py": "", f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\n"
             f"Version: {version}\n", f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
             "Tag: py3-none-any\n"}
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in files.items():
            zf.writestr(arc, text)
        zf.writestr(f"{info}/RECORD", "".join(f"{arc},,\n" for arc in [*files, f"{info}/RECORD"]))
    return path


def _pip_hash(wheel: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "pip", "hash", str(wheel)], capture_output=True, text=True,
                         check=True).stdout
    return out.strip().splitlines()[-1].strip()  # "--hash=sha256:…"


def _pip_accepts(requirements: Path, wheels: Path) -> subprocess.CompletedProcess[str]:
    """What the workflow runs, offline against ``wheels`` (dry run: nothing installed)."""
    return subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-index",
                           "--find-links", str(wheels), "--require-hashes", "-r", str(requirements)],
                          capture_output=True, text=True, timeout=120, env={**clean_env(),
                                                                            "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


LOCKED = CONFIG + "ci:\n  requirements: ci/requirements.txt\n"


@pytest.mark.usefixtures("linter")
def test_hash_locked_requirements_install_with_require_hashes_and_lint_clean(tmp_path: Path):
    project = make_project(tmp_path, LOCKED)
    wheel = _tiny_wheel(tmp_path / "wheels")
    (project / "ci").mkdir()
    req = project / "ci" / "requirements.txt"
    # the layout pip-compile --generate-hashes writes: continuation lines, a "# via" comment
    req.write_text(f"--index-url https://pypi.org/simple\n\nmldeploy==0.0.1 \\\n    {_pip_hash(wheel)}\n"
                   "    # via -r requirements.in\n")
    assert _pip_accepts(req, wheel.parent).returncode == 0  # pip takes the file this check takes
    proc = cli(["init", "--ci", "github"], project)
    assert proc.returncode == 0, proc.stderr
    assert "pinned with a --hash" in proc.stderr
    path = project / ".github" / "workflows" / "mldeploy.yml"
    text = path.read_text()
    assert 'python -m pip install --require-hashes -r "ci/requirements.txt"' in text
    assert "pip install \"mldeploy" not in text and "pip install pytest" not in text
    steps = [s for job in yaml.safe_load(text)["jobs"].values() for s in job["steps"]]
    installs = [s["run"] for s in steps if s.get("name", "").startswith("Install mldeploy")]
    assert len(installs) == 4 and set(installs) == {'python -m pip install --require-hashes -r "ci/requirements.txt"'}
    assert actionlint(path) == []
    assert zizmor(path) == []
    assert_pinned(text)
    assert cli(["validate"], project).returncode == 0


def test_a_requirement_without_a_hash_is_refused_naming_the_line(tmp_path: Path):
    project = make_project(tmp_path, LOCKED)
    wheel = _tiny_wheel(tmp_path / "wheels")
    (project / "ci").mkdir()
    req = project / "ci" / "requirements.txt"
    req.write_text(f"mldeploy==0.0.1 {_pip_hash(wheel)}\n# pinned, but unhashed:\nnumpy==1.26.4\nrich>=13 "
                   f"{_pip_hash(wheel)}\n")
    proc = cli(["init", "--ci", "github"], project)
    assert proc.returncode == ExitCode.CONFIG, proc.stderr
    assert "requirements.txt:3" in proc.stderr and "line 3: 'numpy==1.26.4' has no --hash=" in proc.stderr
    assert "line 4: 'rich>=13' is not pinned with ==" in proc.stderr
    assert not (project / ".github").exists()
    proc = cli(["validate"], project)
    assert proc.returncode == ExitCode.CONFIG and proc.stderr.count("line 3: 'numpy==1.26.4'") == 1, proc.stderr
    # the control: pip itself refuses an unhashed line in hash-checking mode (the package is there to install)
    _tiny_wheel(wheel.parent, "helper")
    req.write_text(f"mldeploy==0.0.1 {_pip_hash(wheel)}\nhelper==0.0.1\n")
    refused = _pip_accepts(req, wheel.parent)
    assert refused.returncode != 0 and "Hashes are required in --require-hashes mode" in refused.stderr


@pytest.mark.parametrize(("text", "message"), [
    (None, "ci/requirements.txt does not exist"),
    ("-r base.txt\n", "line 1: -r is not allowed"),
    ("-e .\n", "line 1: -e is not allowed"),
    ("rich==13.0.0 --hash=sha256:00\n", "does not install mldeploy"),
])
def test_requirements_file_problems(tmp_path: Path, text: str | None, message: str):
    project = make_project(tmp_path, LOCKED)
    if text is not None:
        (project / "ci").mkdir()
        (project / "ci" / "requirements.txt").write_text(text)
    with pytest.raises(Exception) as err:
        github.workflow_spec(_load(project))
    assert message in str(err.value)


@pytest.mark.parametrize(("ci", "message"), [
    ("  install: mldeploy==0.1.0\n  requirements: r.txt\n", "not both"),
    ("  requirements: ../outside.txt\n", "relative path inside the project"),
    ("  requirements: 'r.txt; curl x'\n", "relative path inside the project"),
])
def test_ci_requirements_setting_is_checked(tmp_path: Path, ci: str, message: str):
    from mldeploy.errors import ConfigError

    project = make_project(tmp_path, CONFIG + "ci:\n" + ci)
    with pytest.raises(ConfigError, match=message):
        _load(project)
