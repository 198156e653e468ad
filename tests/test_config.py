"""mldeploy.yaml: schema errors with positions, overlays, interpolation, Fargate sizes, init, schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mldeploy.config import load_project, parse_text
from mldeploy.config.schema import FARGATE_SIZES
from mldeploy.errors import ConfigError, ExitCode

BASE = """\
name: iris
model:
  path: model.onnx
aws:
  cpu: 512
  memory: 1024
"""


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, input: str | None = None):
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    full_env.pop("GITHUB_ACTIONS", None)
    return subprocess.run([sys.executable, "-m", "mldeploy", *args], cwd=cwd, env=full_env, input=input,
                          capture_output=True, text=True, timeout=60)


def problems(text: str, **kw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_text(text, file="mldeploy.yaml", **kw)
    return [str(p) for p in info.value.problems]


def test_minimal_config_gets_defaults():
    cfg, _ = parse_text(BASE, environ={})
    assert cfg.runtime.port == 8080
    assert cfg.aws.autoscaling.min == 1
    assert cfg.image.platform == "linux/amd64"
    assert cfg.runtime.auth.mode.value == "none"


def test_unknown_key_has_did_you_mean_and_position():
    text = BASE.replace("  path: model.onnx\n", "  path: model.onnx\n  fromat: onnx\n")
    (msg,) = problems(text, environ={})
    assert msg.startswith("mldeploy.yaml:4:3: model.fromat:")
    assert "did you mean 'format'" in msg


def test_unknown_top_level_key_lists_allowed_keys_when_no_close_match():
    (msg,) = problems(BASE + "zzz: 1\n", environ={})
    assert "mldeploy.yaml:7:1: zzz: unknown key 'zzz'" in msg
    assert "allowed:" in msg and "runtime" in msg


def test_type_and_range_errors_point_at_the_field():
    text = BASE + "runtime:\n  workers: 0\n  batching:\n    max_batch_size: lots\n"
    msgs = problems(text, environ={})
    assert any(m.startswith("mldeploy.yaml:8:3: runtime.workers:") and "greater than or equal to 1" in m
               for m in msgs)
    assert any(m.startswith("mldeploy.yaml:10:5: runtime.batching.max_batch_size:") for m in msgs)


def test_missing_required_field():
    msgs = problems("name: iris\n", environ={})
    assert msgs == ["mldeploy.yaml:1:1: model: required field is missing"]


def test_enum_error_shows_the_value():
    (msg,) = problems(BASE.replace("path: model.onnx", "path: m.onnx\n  format: tflite"), environ={})
    assert "model.format" in msg and "'tflite'" in msg


def test_yaml_syntax_error_has_position():
    (msg,) = problems("name: iris\nmodel:\n  path: [unclosed\n", environ={})
    assert "YAML syntax error" in msg and msg.startswith("mldeploy.yaml:")


def test_duplicate_key_is_an_error():
    (msg,) = problems("name: a\nname: b\nmodel: {path: m}\n", environ={})
    assert msg.startswith("mldeploy.yaml:2:1: name: duplicate key")


@pytest.mark.parametrize("name", ["Iris", "9lives", "ends-", "under_score", "a" * 29])
def test_invalid_app_names(name: str):
    (msg,) = problems(BASE.replace("name: iris", f"name: {name}"), environ={})
    assert msg.startswith("mldeploy.yaml:1:1: name:")


def test_env_name_makes_resource_names_too_long():
    text = BASE.replace("name: iris", "name: " + "a" * 26) + "environments:\n  prod: {}\n"
    parse_text(text, environ={})  # the base alone fits
    (msg,) = problems(text, env="prod", environ={})
    assert "at most 28" in msg and "32" in msg


@pytest.mark.parametrize(("cpu", "memory", "ok"), [
    (256, 512, True), (256, 2048, True), (256, 4096, False), (512, 3072, True), (512, 512, False),
    (1024, 8192, True), (1024, 9216, False), (4096, 30720, True), (8192, 20480, True), (8192, 18432, False),
    (16384, 122880, True), (300, 1024, False),
])
def test_fargate_cpu_memory_pairs(cpu: int, memory: int, ok: bool):
    text = BASE.replace("cpu: 512", f"cpu: {cpu}").replace("memory: 1024", f"memory: {memory}")
    if ok:
        cfg, _ = parse_text(text, environ={})
        assert (cfg.aws.cpu, cfg.aws.memory) == (cpu, memory)
    else:
        msgs = problems(text, environ={})
        assert any("Fargate" in m for m in msgs), msgs
        assert any(m.startswith(("mldeploy.yaml:5:3: aws.cpu", "mldeploy.yaml:6:3: aws.memory")) for m in msgs)


def test_fargate_table_matches_aws_documentation():
    assert FARGATE_SIZES[256] == [512, 1024, 2048]
    assert FARGATE_SIZES[4096][0] == 8192 and FARGATE_SIZES[4096][-1] == 30720
    assert FARGATE_SIZES[16384][1] - FARGATE_SIZES[16384][0] == 8192


@pytest.mark.parametrize(("snippet", "field"), [
    ("aws:\n  autoscaling: {min: 5, max: 2}\n", "aws.autoscaling"),
    ("aws:\n  spot: {weight: 150}\n", "aws.spot.weight"),
    ("release:\n  steps: [50, 10]\n", "release.steps"),
    ("runtime:\n  cors: {allow_origins: ['*'], allow_credentials: true}\n", "runtime.cors"),
    ("aws:\n  region: useast1\n", "aws.region"),
    ("aws:\n  certificate_arn: not-an-arn\n", "aws.certificate_arn"),
    ("aws:\n  tags: {'aws:foo': x}\n", "aws.tags"),
    ("runtime:\n  rate_limit: {limit: lots}\n", "runtime.rate_limit.limit"),
    ("model:\n  path: m\n  version: one\n", "model.version"),
])
def test_semantic_rules(snippet: str, field: str):
    text = "name: iris\n" + ("model:\n  path: m\n" if not snippet.startswith("model") else "") + snippet
    msgs = problems(text, environ={})
    assert any(f": {field}:" in m for m in msgs), msgs


def test_interpolation_with_defaults_and_required():
    text = BASE + "aws:\n  region: ${REGION:-eu-west-1}\n  cpu: 512\n  memory: ${MEM}\n"
    text = text.replace("aws:\n  cpu: 512\n  memory: 1024\n", "", 1)
    cfg, _ = parse_text(text, environ={"MEM": "2048"})
    assert cfg.aws.region == "eu-west-1" and cfg.aws.memory == 2048
    cfg, _ = parse_text(text, environ={"MEM": "2048", "REGION": "us-west-2"})
    assert cfg.aws.region == "us-west-2"
    (msg,) = problems(text, environ={})
    assert msg.startswith("mldeploy.yaml:7:3: aws.memory: environment variable MEM is not set")


def test_interpolation_escape_and_required_message():
    cfg, _ = parse_text(BASE + "registry:\n  url: $${literal}\n", environ={})
    assert cfg.registry.url == "${literal}"
    (msg,) = problems(BASE + "registry:\n  url: ${REG:?set REG to your registry}\n", environ={})
    assert "set REG to your registry" in msg


def test_environment_overlay_deep_merges_and_keeps_positions():
    text = BASE + (
        "environments:\n"
        "  prod:\n"
        "    aws:\n"
        "      memory: 2048\n"
        "      autoscaling: {min: 2, max: 10}\n"
        "  dev:\n"
        "    aws:\n"
        "      memory: 99\n"
    )
    base, _ = parse_text(text, environ={})
    prod, _ = parse_text(text, env="prod", environ={})
    assert (base.aws.memory, prod.aws.memory) == (1024, 2048)
    assert prod.aws.cpu == 512  # inherited
    assert (prod.aws.autoscaling.min, prod.aws.autoscaling.max) == (2, 10)
    (msg,) = problems(text, env="dev", environ={})
    assert msg.startswith("mldeploy.yaml:14:7: aws.memory:")  # the overlay's line, not the base's
    (msg,) = problems(text, env="staging", environ={})
    assert "no environment 'staging'" in msg and "prod, dev" in msg


def test_overlay_cannot_rename_the_app():
    (msg,) = problems(BASE + "environments:\n  prod:\n    name: other\n", env="prod", environ={})
    assert "cannot set 'name'" in msg


def test_resource_names_and_tags(tmp_path: Path):
    (tmp_path / "mldeploy.yaml").write_text(BASE + "environments:\n  prod: {}\n")
    project = load_project(tmp_path / "mldeploy.yaml", "prod", environ={})
    n = project.names
    assert (n.base, n.target_group, n.canary_target_group) == ("iris-prod", "iris-prod-tg", "iris-prod-tgc")
    assert n.tags({"team": "ml"}) == {"team": "ml", "mldeploy:app": "iris", "mldeploy:env": "prod"}
    assert project.resolve("model.onnx") == tmp_path / "model.onnx"


# ---------------------------------------------------------------- the CLI


def test_validate_cli_reports_all_problems_and_exits_with_config_code(tmp_path: Path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "mldeploy.yaml").write_text(BASE.replace("memory: 1024", "memory: 100") + "runtim: {}\n")
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFIG
    assert "mldeploy.yaml:6:3: aws.memory" in r.stderr
    assert "did you mean 'runtime'" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("validate", "--debug", cwd=tmp_path)
    assert "Traceback" in r.stderr


def test_validate_cli_checks_model_path_and_every_overlay(tmp_path: Path):
    (tmp_path / "mldeploy.yaml").write_text(BASE + "environments:\n  prod:\n    aws: {memory: 3}\n")
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFIG and "aws.memory" in r.stderr  # prod overlay checked without --env
    (tmp_path / "mldeploy.yaml").write_text(BASE)
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFIG
    assert "mldeploy.yaml:3:3: model.path: model.onnx does not exist" in r.stderr
    (tmp_path / "model.onnx").write_bytes(b"x")
    r = cli("validate", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["resources"]["target_group"] == "iris-tg"


def test_validate_warns_about_pickle(tmp_path: Path):
    (tmp_path / "model.pkl").write_bytes(b"x")
    (tmp_path / "mldeploy.yaml").write_text(BASE.replace("model.onnx", "model.pkl"))
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == 0
    assert "executes code" in r.stderr and "skops" in r.stderr


def test_missing_config_file_has_a_hint(tmp_path: Path):
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFIG
    assert "mldeploy.yaml: file not found" in r.stderr and "mldeploy init" in r.stderr


def test_global_options_after_the_command(tmp_path: Path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "other.yaml").write_text(BASE + "environments:\n  prod: {aws: {memory: 2048}}\n")
    r = cli("validate", "--json", "-f", "other.yaml", "--env", "prod", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["fargate"]["memory"] == 2048


def test_init_non_interactive_writes_a_valid_commented_file(tmp_path: Path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    r = cli("init", "--model", "model.onnx", "--name", "my-app", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "mldeploy.yaml").read_text()
    assert "name: my-app" in text and "format: onnx" in text and "# " in text
    assert cli("validate", cwd=tmp_path).returncode == 0
    r = cli("init", "--model", "model.onnx", cwd=tmp_path)
    assert r.returncode == ExitCode.USAGE and "--force" in r.stderr
    assert cli("init", "--model", "model.onnx", "--force", cwd=tmp_path).returncode == 0


def test_init_rejects_bad_input(tmp_path: Path):
    r = cli("init", "--model", "nope.onnx", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFIG and "model not found: nope.onnx" in r.stderr
    (tmp_path / "m.onnx").write_bytes(b"x")
    r = cli("init", "--model", "m.onnx", "--name", "Bad_Name", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFIG and "name" in r.stderr
    assert not (tmp_path / "mldeploy.yaml").exists()
    r = cli("init", "--model", "m.onnx", "--format", "tflite", cwd=tmp_path)
    assert r.returncode == ExitCode.USAGE


def test_init_interactive_through_a_pty(tmp_path: Path):
    pexpect = pytest.importorskip("pexpect")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.onnx").write_bytes(b"x")
    (tmp_path / "models" / "b.pkl").write_bytes(b"x")
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    for key in ("CI", "GITHUB_ACTIONS"):
        env.pop(key, None)
    child = pexpect.spawn(sys.executable, ["-m", "mldeploy", "init"], cwd=str(tmp_path), env=env,
                          encoding="utf-8", timeout=30)
    child.expect("Which model")
    child.sendline("2")
    child.expect("App name")
    child.sendline("pty-app")
    child.expect("Model format")
    child.sendline("")  # accept the guess (pickle)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    text = (tmp_path / "mldeploy.yaml").read_text()
    assert "name: pty-app" in text and "path: models/b.pkl" in text and "format: pickle" in text


def test_schema_validates_generated_and_example_configs(tmp_path: Path):
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    r = cli("schema", cwd=tmp_path)
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert schema["title"] == "mldeploy.yaml"
    assert "model" in schema["required"]
    (tmp_path / "m.onnx").write_bytes(b"x")
    cli("init", "--model", "m.onnx", cwd=tmp_path)
    docs = [yaml.safe_load((tmp_path / "mldeploy.yaml").read_text().replace("${AWS_REGION:-us-east-1}",
                                                                              "us-east-1"))]
    examples = sorted(Path(__file__).resolve().parent.parent.glob("examples/*/mldeploy.yaml"))
    docs += [yaml.safe_load(p.read_text()) for p in examples]
    for doc in docs:
        jsonschema.validate(doc, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "model": {"path": "m", "fromat": "onnx"}}, schema)


# ---------------------------------------------------------------- AWS limits mirrored at validate time (#14.2)

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys-AbCdEf"


@pytest.mark.parametrize("env", ["prod_eu", "staging.v2", "prod-", "EU_1"])
def test_environment_names_that_make_invalid_alb_and_target_group_names_fail_at_their_line(env: str):
    # botocore elbv2 CreateLoadBalancerInput.Name / CreateTargetGroupInput.Name: alphanumerics and hyphens only,
    # no leading/trailing hyphen; the names are "<app>-<env>", "-tg", "-tgc" (config/names.py)
    text = BASE + f"environments:\n  {env}: {{}}\n"
    parse_text(text, environ={})  # the base alone is fine
    (msg,) = problems(text, env=env, environ={})
    assert msg.startswith(f"mldeploy.yaml:8:3: environments.{env}: environment name {env!r}")
    assert f"'iris-{env}'" in msg and "load balancer" in msg


def test_valid_environment_names_pass():
    for env in ("prod", "prod-eu", "staging2", "Prod"):
        cfg, _ = parse_text(BASE + f"environments:\n  {env}: {{}}\n", env=env, environ={})
        assert cfg.name == "iris"


def test_app_name_must_not_start_with_internal():
    (msg,) = problems(BASE.replace("name: iris", "name: internal-api"), environ={})
    assert msg.startswith("mldeploy.yaml:1:1: name:") and "internal-" in msg


def test_env_name_overlong_error_points_at_the_environment():
    text = BASE.replace("name: iris", "name: " + "a" * 26) + "environments:\n  prod: {}\n"
    (msg,) = problems(text, env="prod", environ={})
    assert msg.startswith("mldeploy.yaml:8:3: environments.prod:")


@pytest.mark.parametrize("timeout,interval,needle", [
    (61, 120, "less than or equal to 60"),  # botocore ecs HealthCheck.timeout: 2–60 s
    (10, 10, "must be less than interval_s"),  # ELBv2: interval must be greater than the timeout
    (30, 20, "must be less than interval_s"),
])
def test_health_check_timeout_fits_ecs_and_stays_below_the_interval(timeout: int, interval: int, needle: str):
    text = BASE + f"  health_check:\n    timeout_s: {timeout}\n    interval_s: {interval}\n"
    (msg,) = problems(text, environ={})
    assert msg.startswith("mldeploy.yaml:") and "aws.health_check" in msg and needle in msg
    parse_text(BASE + "  health_check:\n    timeout_s: 60\n    interval_s: 61\n", environ={})


def test_subnet_lists_static_rules():
    vpc = "  vpc_id: vpc-1\n"
    (msg,) = problems(BASE + vpc + "  subnet_ids: [subnet-a]\n", environ={})
    assert "aws: " in msg and "at least two availability zones" in msg and "subnet_ids lists 1" in msg
    (msg,) = problems(BASE + vpc + "  subnet_ids: [subnet-a, subnet-a]\n", environ={})
    assert msg.startswith("mldeploy.yaml:8:3: aws.subnet_ids:") and "more than once" in msg
    (msg,) = problems(BASE + "  alb_subnet_ids: [subnet-a, subnet-b]\n", environ={})
    assert "alb_subnet_ids requires vpc_id" in msg
    # one private task subnet is fine when the load balancer has its own two
    cfg, _ = parse_text(BASE + vpc + "  subnet_ids: [subnet-p]\n  alb_subnet_ids: [subnet-a, subnet-b]\n",
                        environ={})
    assert cfg.aws.alb_subnet_ids == ["subnet-a", "subnet-b"]


def test_secrets_manager_value_from_with_json_key_and_version_suffix():
    from mldeploy.config.schema import secret_resource_arn

    for suffix in ("", ":api_keys::", ":api_keys:AWSPREVIOUS:", ":::0a1b2c3d-ver"):
        cfg, _ = parse_text(BASE + f"  secrets:\n    MLDEPLOY_API_KEYS: '{SECRET}{suffix}'\n", environ={})
        assert secret_resource_arn(cfg.aws.secrets["MLDEPLOY_API_KEYS"]) == SECRET
    partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys"
    assert secret_resource_arn(partial + ":k::") == partial + "-??????"
    (msg,) = problems(BASE + f"  secrets:\n    K: {SECRET}:k:AWSCURRENT:0a1b\n", environ={})
    assert msg.startswith("mldeploy.yaml:7:3: aws.secrets:") and "both a version stage and a version id" in msg
    (msg,) = problems(BASE + f"  secrets:\n    K: {SECRET}:a:b:c:d\n", environ={})
    assert "json-key:version-stage:version-id" in msg


def test_secrets_kms_key_arn_must_be_a_key_arn():
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    cfg, _ = parse_text(BASE + f"  secrets_kms_key_arn: {key}\n", environ={})
    assert cfg.aws.secrets_kms_key_arn == key
    (msg,) = problems(BASE + "  secrets_kms_key_arn: arn:aws:kms:us-east-1:123456789012:alias/mine\n", environ={})
    assert msg.startswith("mldeploy.yaml:7:3: aws.secrets_kms_key_arn:") and "not an alias" in msg


def _project(tmp_path: Path, text: str, env: str | None = None):
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "mldeploy.yaml").write_text(text)
    return load_project(tmp_path / "mldeploy.yaml", env, environ={})


AUTH = "runtime:\n  auth:\n    mode: {mode}\n    jwt_audience: svc\n"


@pytest.mark.parametrize("mode,var", [("api_key", "MLDEPLOY_API_KEYS"), ("jwt", "MLDEPLOY_JWT_SECRET")])
def test_auth_mode_requires_its_secret_in_aws_secrets_for_ecs(tmp_path: Path, mode: str, var: str):
    from mldeploy.config.loader import deploy_problems

    project = _project(tmp_path, BASE + AUTH.format(mode=mode))
    (problem,) = deploy_problems(project)
    assert str(problem).startswith(f"{tmp_path / 'mldeploy.yaml'}:9:5: runtime.auth.mode:")
    assert f"aws.secrets.{var}" in str(problem)
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFIG and "runtime.auth.mode" in r.stderr and "aws.secrets" in r.stderr
    fixed = BASE + f"  secrets:\n    {var}: '{SECRET}:{var}::'\n" + AUTH.format(mode=mode)
    assert deploy_problems(_project(tmp_path, fixed)) == []
    assert cli("validate", cwd=tmp_path).returncode == 0


def test_auth_secret_checked_in_each_overlay_and_skipped_with_a_secret_file(tmp_path: Path):
    from mldeploy.config.loader import deploy_problems

    text = BASE + "environments:\n  prod:\n    runtime: {auth: {mode: api_key}}\n"
    assert deploy_problems(_project(tmp_path, text)) == []
    (problem,) = deploy_problems(_project(tmp_path, text, "prod"))
    assert ":9:22" in str(problem.location) and "MLDEPLOY_API_KEYS" in problem.message
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFIG and "runtime.auth.mode" in r.stderr
    with_file = BASE + "runtime:\n  auth:\n    mode: api_key\n    api_keys_file: /run/keys\n"
    assert deploy_problems(_project(tmp_path, with_file)) == []


def test_likely_secrets_in_aws_environment_warn(tmp_path: Path):
    from mldeploy.config.loader import deploy_warnings

    text = BASE + "  environment:\n    DB_PASSWORD: hunter2\n    API_TOKEN: t\n    LOG_FORMAT: json\n"
    (warning,) = deploy_warnings(_project(tmp_path, text).config)
    assert "API_TOKEN, DB_PASSWORD" in warning and "plain text" in warning and "aws.secrets" in warning
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == 0 and "DB_PASSWORD" in r.stderr and "aws.secrets" in r.stderr
    assert deploy_warnings(_project(tmp_path, BASE).config) == []


def test_validate_cli_names_the_line_of_a_bad_environment(tmp_path: Path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "mldeploy.yaml").write_text(BASE + "environments:\n  prod_eu: {}\n")
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFIG
    assert "mldeploy.yaml:8:3: environments.prod_eu:" in r.stderr and "'iris-prod_eu'" in r.stderr
