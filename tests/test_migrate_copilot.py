"""``mldeploy init --from-copilot``: AWS Copilot Load Balanced Web Service manifests → mldeploy.yaml.

The manifests copy the shapes of Copilot's own: aws/copilot-cli internal/pkg/manifest/testdata/lb-svc.yml,
lb-svc-placement-private.yml and environment-import-vpc.yml, and the samples of
site/content/docs/manifest/lb-web-service.en.md ("Larger containers", "Autoscaling", "Shared file system",
"With a domain"). The mapping is tested as data (``convert``), the command as the real CLI in a subprocess, and one
migration end to end: init → validate → plan against a moto server with the strict AWS layer.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from mldeploy.config.loader import load_project
from mldeploy.migrate.copilot import (
    MAPPED,
    MODEL_PLACEHOLDER,
    NEEDS_INPUT,
    NOT_NEEDED,
    UNSUPPORTED,
    MigrationError,
    convert,
    seconds,
)
from tests.artifact_helpers import cli, example

# internal/pkg/manifest/testdata/lb-svc.yml (comments dropped)
LB_SVC = """\
name: frontend
type: Load Balanced Web Service
http:
  path: ''
image:
  build: ./frontend/Dockerfile
  port: 80
cpu: 256
memory: 512
count: 1
exec: true
network:
  connect: true
"""

# lb-web-service.en.md "Larger containers" + "Autoscaling" + "Shared file system", with secrets from its "Basic"
# sample and the environments: block of testdata/lb-svc-placement-private.yml / "With a domain"
FULL = """\
name: frontend
type: Load Balanced Web Service
image:
  build:
    dockerfile: './frontend/Dockerfile'
    context: './frontend'
  port: 80
http:
  path: '/'
  healthcheck:
    path: '/_deephealthcheck'
    port: 8080
    success_codes: '200,301'
    healthy_threshold: 4
    unhealthy_threshold: 2
    interval: 15s
    timeout: 10s
    grace_period: 2m
  deregistration_delay: 50s
  stickiness: true
  allowed_source_ips: ["10.24.34.0/23"]
cpu: 2048
memory: 4096
count:
  range: 1-10
  cooldown:
    in: 60s
    out: 30s
  requests: 30
  response_time: 2s
platform: linux/arm64
exec: true
logging:
  retention: 14
variables:
  LOG_LEVEL: info
  API_TOKEN: abc123
secrets:
  GITHUB_TOKEN: GITHUB_TOKEN
  DB_SECRET:
    secretsmanager: 'mysql'
  STRIPE_KEY: arn:aws:ssm:us-east-1:123456789012:parameter/stripe/key
  DB_PASSWORD: /copilot/${COPILOT_APPLICATION_NAME}/${COPILOT_ENVIRONMENT_NAME}/secrets/db_password
storage:
  volumes:
    wp:
      path: /bitnami/wordpress
      read_only: false
      efs: true
sidecars:
  envoy:
    port: 80
    image: aws_account_id.dkr.ecr.us-west-2.amazonaws.com/envoy:latest
network:
  vpc:
    placement: 'private'
deployment:
  rollback_alarms: ["MyAlarm-ELB-4xx", "MyAlarm-ELB-5xx"]
environments:
  test:
    count: 2
    deployment:
      rolling: 'recreate'
  prod:
    cpu: 4096
    memory: 8192
    count:
      range: 3-20
      cpu_percentage: 70
    http:
      alias: 'api.example.com'
      hosted_zone: Z0873220N255IR3MTNR4
"""

# testdata/environment-import-vpc.yml with real-looking ids (mldeploy checks ARNs)
ENV_PROD = """\
name: prod
type: Environment
network:
  vpc:
    id: vpc-0a1b2c3d4e5f60718
    subnets:
      public:
        - id: subnet-0aaaaaaaaaaaaaaa1
        - id: subnet-0aaaaaaaaaaaaaaa2
      private:
        - id: subnet-0bbbbbbbbbbbbbbb1
        - id: subnet-0bbbbbbbbbbbbbbb2
http:
  public:
    certificates: [arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555]
observability:
  container_insights: true
"""

CHECK_ENV = {"AWS_ACCOUNT_ID": "123456789012", "AWS_REGION": "us-east-1"}


def _rows(m) -> dict[tuple[str, str | None], tuple[str, str]]:
    return {(r.copilot, r.mldeploy): (r.status, r.note) for r in m.rows}


def _full() -> tuple[dict, dict]:
    return yaml.safe_load(FULL), {"prod": yaml.safe_load(ENV_PROD)}


def workspace(root: Path, service: str = FULL, env_prod: str | None = ENV_PROD, name: str = "frontend") -> Path:
    (root / "copilot" / name).mkdir(parents=True)
    (root / "copilot" / name / "manifest.yml").write_text(service)
    (root / "copilot" / ".workspace").write_text("application: shop\n")
    if env_prod:
        (root / "copilot" / "environments" / "prod").mkdir(parents=True)
        (root / "copilot" / "environments" / "prod" / "manifest.yml").write_text(env_prod)
    return root


# ------------------------------------------------------------------------------------------ the mapping as data


def test_copilot_testdata_lb_svc_maps_size_and_count_and_reports_what_it_leaves() -> None:
    m = convert(yaml.safe_load(LB_SVC))
    assert m.config["name"] == "frontend"
    assert m.config["aws"]["cpu"] == 256 and m.config["aws"]["memory"] == 512
    # a plain count does not autoscale in Copilot: mldeploy's autoscaling is pinned to it
    assert m.config["aws"]["desired_count"] == 1
    assert m.config["aws"]["autoscaling"] == {"min": 1, "max": 1}
    assert m.config["model"]["path"] == MODEL_PLACEHOLDER
    rows = _rows(m)
    assert rows[("exec", None)][0] == UNSUPPORTED
    assert rows[("network.connect", None)][0] == NOT_NEEDED
    assert rows[("image.build", None)][0] == NOT_NEEDED and rows[("image.port", None)][0] == NOT_NEEDED
    assert rows[("http.path", None)][0] == NOT_NEEDED
    assert m.comments[("aws", "cpu")] == "copilot: cpu"


def test_every_manifest_leaf_has_a_row_never_dropped_silently() -> None:
    from mldeploy.migrate.copilot import leaves

    manifest, envs = _full()
    m = convert(manifest, envs, app="shop")
    sources = {r.copilot for r in m.rows}
    base = {k: v for k, v in manifest.items() if k != "environments"}
    for leaf in leaves(base):
        assert any(leaf == s or leaf.startswith(s + ".") or s.startswith(leaf) for s in sources), leaf


def test_range_count_with_request_scaling_maps_to_autoscaling() -> None:
    manifest, envs = _full()
    aws = convert(manifest, envs).config["aws"]
    assert aws["autoscaling"]["min"] == 1 and aws["autoscaling"]["max"] == 10
    assert aws["desired_count"] == 1  # Copilot starts a range at its minimum
    assert aws["autoscaling"]["requests_per_target"] == 30
    assert aws["autoscaling"]["scale_in_cooldown_s"] == 60 and aws["autoscaling"]["scale_out_cooldown_s"] == 30
    rows = _rows(convert(manifest, envs))
    assert rows[("count.response_time", None)][0] == UNSUPPORTED
    assert "60%" in rows[("count (no cpu_percentage)", "aws.autoscaling.cpu_target")][1]


def test_health_check_fields_map_with_durations_and_the_app_path_is_replaced_by_ready() -> None:
    manifest, envs = _full()
    m = convert(manifest, envs)
    assert m.config["aws"]["health_check"] == {"healthy_threshold": 4, "unhealthy_threshold": 2, "interval_s": 15,
                                               "timeout_s": 10, "grace_period_s": 120,
                                               "deregistration_delay_s": 50}
    status, note = _rows(m)[("http.healthcheck.path", None)]
    assert status == NOT_NEEDED and "/_deephealthcheck" in note and "/ready" in note
    assert m.config["aws"]["allowed_cidrs"] == ["10.24.34.0/23"]
    assert m.comments[("aws", "health_check", "grace_period_s")] == "copilot: http.healthcheck.grace_period"


def test_secrets_become_arns_and_secret_looking_variables_are_not_written() -> None:
    manifest, envs = _full()
    m = convert(manifest, envs, app="shop", account="123456789012", region="us-east-1")
    secrets = m.config["aws"]["secrets"]
    assert secrets["GITHUB_TOKEN"] == "arn:aws:ssm:us-east-1:123456789012:parameter/GITHUB_TOKEN"
    assert secrets["DB_SECRET"] == "arn:aws:secretsmanager:us-east-1:123456789012:secret:mysql"
    assert secrets["STRIPE_KEY"] == "arn:aws:ssm:us-east-1:123456789012:parameter/stripe/key"
    # ${COPILOT_ENVIRONMENT_NAME}: no value at the top level, one per environment overlay
    assert "DB_PASSWORD" not in secrets
    assert _rows(m)[("secrets.DB_PASSWORD", None)][0] == NEEDS_INPUT
    assert m.config["environments"]["prod"]["aws"]["secrets"]["DB_PASSWORD"] == (
        "arn:aws:ssm:us-east-1:123456789012:parameter/copilot/shop/prod/secrets/db_password")
    assert m.config["aws"]["environment"] == {"LOG_LEVEL": "info"}
    status, note = _rows(m)[("variables.API_TOKEN", None)]
    assert status == NEEDS_INPUT and "secret" in note and "abc123" not in yaml.safe_dump(m.config)
    # without account/region the ARN reads them at load time, with a message if unset
    bare = convert(manifest, envs).config["aws"]["secrets"]["GITHUB_TOKEN"]
    assert bare.startswith("arn:aws:ssm:${AWS_REGION:?") and "${AWS_ACCOUNT_ID:?" in bare


def test_unsupported_fields_are_reported_not_dropped() -> None:
    manifest, envs = _full()
    manifest["nlb"] = {"port": "80/tcp"}
    rows = _rows(convert(manifest, envs))
    for field in ("sidecars", "storage.volumes", "nlb", "deployment.rollback_alarms", "http.stickiness", "exec"):
        assert rows[(field, None)][0] == UNSUPPORTED, field
    # a field this mapper has never heard of still gets a row
    manifest["brand_new_copilot_field"] = {"x": 1}
    assert _rows(convert(manifest, envs))[("brand_new_copilot_field.x", None)] == (UNSUPPORTED,
                                                                                   "no mldeploy equivalent")


def test_environment_overrides_and_manifests_become_overlays_of_what_differs() -> None:
    manifest, envs = _full()
    m = convert(manifest, envs, app="shop")
    prod = m.config["environments"]["prod"]["aws"]
    assert prod["cpu"] == 4096 and prod["memory"] == 8192
    assert prod["autoscaling"] == {"min": 3, "max": 20, "cpu_target": 70}
    assert prod["domain"] == "api.example.com" and prod["hosted_zone_id"] == "Z0873220N255IR3MTNR4"
    # placement private + the environment's imported VPC: tasks in the private subnets, the ALB in the public ones
    assert prod["vpc_id"] == "vpc-0a1b2c3d4e5f60718" and prod["assign_public_ip"] is False
    assert prod["subnet_ids"] == ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]
    assert prod["alb_subnet_ids"] == ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
    assert prod["certificate_arn"].endswith("certificate/11111111-2222-3333-4444-555555555555")
    assert prod["container_insights"] is True
    assert "log_retention_days" not in prod  # same as the top level: not repeated
    test = m.config["environments"]["test"]["aws"]
    assert test["desired_count"] == 2 and test["autoscaling"] == {"min": 2, "max": 2}
    assert test["secrets"]["DB_PASSWORD"].endswith(":parameter/copilot/shop/test/secrets/db_password")
    assert set(test) == {"desired_count", "autoscaling", "secrets"}
    rows = _rows(m)
    assert rows[("environments.test.deployment.rolling", None)][0] == NOT_NEEDED
    assert rows[("env prod: network.vpc.id", "environments.prod.aws.vpc_id")][0] == MAPPED
    # the top level has no subnets for placement: private, so it says what to set
    assert rows[("network.vpc.placement", None)][0] == NEEDS_INPUT
    assert m.comments[("environments", "prod", "aws", "domain")] == "copilot: environments.prod.http.alias"


def test_the_written_text_validates_in_every_environment_and_keeps_the_comments(tmp_path: Path) -> None:
    from mldeploy.migrate.apply import build

    (tmp_path / "model.onnx").write_bytes(b"x")
    result = build(workspace(tmp_path), tmp_path / "mldeploy.yaml", model_path="model.onnx")
    (tmp_path / "mldeploy.yaml").write_text(result.text)
    for env in (None, "prod", "test"):
        project = load_project(tmp_path / "mldeploy.yaml", env, environ=CHECK_ENV)
        assert project.config.image.platform == "linux/arm64"
    prod = load_project(tmp_path / "mldeploy.yaml", "prod", environ=CHECK_ENV).config.aws
    assert (prod.cpu, prod.memory, prod.autoscaling.min, prod.autoscaling.max) == (4096, 8192, 3, 20)
    assert "cpu: 2048  # copilot: cpu" in result.text
    assert "#   sidecars: unsupported" in result.text  # the not-carried list heads the file


@pytest.mark.parametrize(("cpu", "memory", "field", "says"), [
    (256, 4096, "memory", "4096 MiB is not valid with cpu 256 on Fargate: cpu 256 takes 512, 1024 or 2048 MiB"),
    (300, 1024, "cpu", "300 is not a Fargate CPU size"),
])
def test_invalid_fargate_size_names_the_copilot_field(cpu: int, memory: int, field: str, says: str) -> None:
    manifest = yaml.safe_load(LB_SVC) | {"cpu": cpu, "memory": memory}
    with pytest.raises(MigrationError) as e:
        convert(manifest)
    assert e.value.field == field and says in e.value.message


def test_invalid_override_is_refused_at_its_manifest_line(tmp_path: Path) -> None:
    bad = FULL.replace("    cpu: 4096\n    memory: 8192\n", "    cpu: 4096\n    memory: 4096\n")
    r = cli("init", "--from-copilot", str(workspace(tmp_path, bad)), cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "copilot/frontend/manifest.yml:66:" in r.stderr and "environments.prod.memory" in r.stderr
    assert "4096 MiB is not valid with cpu 4096 on Fargate" in r.stderr
    assert not (tmp_path / "mldeploy.yaml").exists()


@pytest.mark.parametrize(("edit", "field", "says"), [
    (("  retention: 14\n", "  retention: 13\n"), "logging.retention", "aws.log_retention_days"),
    (("    timeout: 10s\n", "    timeout: 20s\n"), "http.healthcheck", "must be less than interval_s"),
])
def test_values_the_schema_refuses_are_reported_at_the_copilot_field(tmp_path: Path, edit: tuple[str, str],
                                                                       field: str, says: str) -> None:
    from mldeploy.errors import ConfigError
    from mldeploy.migrate.apply import build

    with pytest.raises(ConfigError) as e:
        build(workspace(tmp_path, FULL.replace(*edit)), tmp_path / "mldeploy.yaml")
    (problem,) = e.value.problems
    assert problem.field.startswith(field) and says in problem.message
    assert problem.location.file.endswith("copilot/frontend/manifest.yml") and problem.location.line


def test_durations_parse_go_style() -> None:
    assert [seconds(v, "f") for v in ("15s", "2m", "1m30s", "1h", 45)] == [15, 120, 90, 3600, 45]
    for bad in ("15", "1.5s", "soon"):
        with pytest.raises(MigrationError):
            seconds(bad, "http.healthcheck.interval")


def test_not_a_load_balanced_web_service_is_refused() -> None:
    with pytest.raises(MigrationError) as e:
        convert({"name": "worker", "type": "Worker Service"})
    assert e.value.field == "type" and "Load Balanced Web Service" in e.value.message


# ----------------------------------------------------------------------------------------------- the real CLI


def test_init_prints_the_table_and_json_and_refuses_ambiguous_workspaces(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    (ws / "copilot" / "api").mkdir()
    (ws / "copilot" / "api" / "manifest.yml").write_text(LB_SVC.replace("frontend", "api"))
    r = cli("init", "--from-copilot", str(ws), cwd=tmp_path)
    assert r.returncode == 2 and "several services: api (Load Balanced Web Service), frontend" in r.stderr
    r = cli("init", "--from-copilot", str(ws), "--service", "frontend", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Copilot → mldeploy" in r.stderr and "sidecars" in r.stderr and "unsupported" in r.stderr
    assert "aws.autoscaling.requests_per_target" in r.stderr and "set model.path" in r.stderr
    r = cli("--json", "init", "--from-copilot", str(ws / "copilot" / "api" / "manifest.yml"), "--force",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    exec_row = next(row for row in doc["rows"] if row["copilot"] == "exec")
    assert exec_row["mldeploy"] is None and exec_row["status"] == UNSUPPORTED and "ECS Exec" in exec_row["note"]
    assert yaml.safe_load((tmp_path / "mldeploy.yaml").read_text())["name"] == "api"
    # the placeholder model path is refused by validate, at its line
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == 3 and f"model.path: {MODEL_PLACEHOLDER} does not exist" in r.stderr


@pytest.fixture(scope="module")
def iris_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example("iris-sklearn", tmp_path_factory.mktemp("iris-src"))


def test_end_to_end_init_validate_plan_on_moto(tmp_path: Path, iris_src: Path, aws: dict[str, str]) -> None:
    for f in ("model.pkl", "sample.json"):
        (tmp_path / f).write_bytes((iris_src / f).read_bytes())
    workspace(tmp_path)
    env = dict(aws, AWS_ACCOUNT_ID="123456789012", MLDEPLOY_POLL_S="0.2", CI="true")
    r = cli("init", "--from-copilot", ".", "--model", "model.pkl", "--name", "shop-frontend", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    r = cli("validate", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "valid (default, prod, test)" in r.stderr
    r = cli("--json", "plan", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    calls = {c["call"]: c["params"] for s in json.loads(r.stdout)["steps"] for c in s["calls"] if "call" in c}
    task = calls["ecs.register_task_definition"]
    assert (task["cpu"], task["memory"]) == ("2048", "4096")
    assert task["runtimePlatform"]["cpuArchitecture"] == "ARM64"
    hc = calls["elbv2.create_target_group"]
    assert (hc["HealthCheckPath"], hc["HealthCheckIntervalSeconds"], hc["HealthCheckTimeoutSeconds"],
            hc["HealthyThresholdCount"], hc["UnhealthyThresholdCount"]) == ("/ready", 15, 10, 4, 2)
    assert calls["ecs.create_service"]["desiredCount"] == 1
    assert calls["ecs.create_service"]["healthCheckGracePeriodSeconds"] == 120
    target = calls["application-autoscaling.register_scalable_target"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 10)
    policies = {p["PolicyName"]: p["TargetTrackingScalingPolicyConfiguration"] for st in json.loads(r.stdout)["steps"]
                for c in st["calls"] if c.get("call") == "application-autoscaling.put_scaling_policy"
                for p in [c["params"]]}
    requests = next(v for k, v in policies.items() if k.endswith("requests"))
    assert requests["TargetValue"] == 30 and requests["ScaleInCooldown"] == 60 and requests["ScaleOutCooldown"] == 30
    secrets = {s["name"]: s["valueFrom"] for s in task["containerDefinitions"][0]["secrets"]}
    assert secrets["GITHUB_TOKEN"] == "arn:aws:ssm:us-east-1:123456789012:parameter/GITHUB_TOKEN"


def test_help_does_not_import_the_migration(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = textwrap.dedent("""
        import sys
        from mldeploy.cli.main import main
        try:
            sys.argv = ["mldeploy", "--help"]; main()
        except SystemExit:
            pass
        print("migrate" in " ".join(m for m in sys.modules if m.startswith("mldeploy.migrate")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
