"""The test infrastructure itself works: moto server, local registry, docker base image."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from tests import infra

# ------------------------------------------------------------------------------ moto


def test_free_port_is_bindable():
    import socket

    port = infra.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_moto_sts_and_ecr_via_boto3(moto_server, aws):
    url = moto_server.url
    assert url.startswith("http://127.0.0.1:")
    sts = boto3.client("sts", endpoint_url=url, region_name="us-east-1")
    assert sts.get_caller_identity()["Account"] == infra.TEST_ACCOUNT_ID

    ecr = boto3.client("ecr", endpoint_url=url, region_name="us-east-1")
    repo = ecr.create_repository(repositoryName="mldeploy/iris")["repository"]
    assert repo["repositoryUri"].endswith(".amazonaws.com/mldeploy/iris")
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert names == ["mldeploy/iris"]


def test_aws_env_reaches_moto_from_subprocess(moto_server, aws):
    # a CLI subprocess with env=aws only sees moto (AWS_ENDPOINT_URL, no profile)
    assert "AWS_PROFILE" not in aws
    code = textwrap.dedent(
        """
        import boto3
        boto3.client("ecr").create_repository(repositoryName="from-subprocess")
        print(boto3.client("sts").get_caller_identity()["Account"])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], env=aws, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == infra.TEST_ACCOUNT_ID
    # ... and the in-process default session (os.environ patched by the fixture) too
    repos = boto3.client("ecr").describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in repos] == ["from-subprocess"]


def test_moto_reset_forgets_state(moto_server, aws):
    ecr = moto_server.client("ecr")
    ecr.create_repository(repositoryName="gone-after-reset")
    moto_server.reset()
    assert ecr.describe_repositories()["repositories"] == []


def test_moto_managed_policies_loaded(moto_server, aws):
    iam = moto_server.client("iam")
    iam.create_role(
        RoleName="exec",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
    )
    iam.attach_role_policy(
        RoleName="exec", PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    )
    attached = iam.list_attached_role_policies(RoleName="exec")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonECSTaskExecutionRolePolicy"]


def _error_code_or_message(error: ClientError) -> str:
    err = error.response["Error"]
    return f"{err.get('Code')} {err.get('Message')}"


@pytest.mark.aws
def test_moto_iam_enforcement():
    with infra.MotoServer(iam_enforcement=True, load_managed_policies=True) as server:
        # the default test keys are unknown to moto's IAM -> rejected
        with pytest.raises(ClientError) as exc:
            server.client("ecr").describe_repositories()
        # moto caveat: for JSON-protocol services (ECR, ECS) auth errors come back as an
        # XML body, so botocore reports Code "403" and the real code is in the message
        assert "InvalidClientTokenId" in _error_code_or_message(exc.value)

        with server.auth_disabled():
            iam = server.client("iam")
            iam.create_user(UserName="reader")
            iam.attach_user_policy(
                UserName="reader", PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
            )
            key = iam.create_access_key(UserName="reader")["AccessKey"]
        creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
        ecr = server.client("ecr", **creds)
        assert ecr.describe_repositories()["repositories"] == []  # allowed by the policy
        with pytest.raises(ClientError) as exc:
            ecr.create_repository(repositoryName="denied")  # not allowed
        assert "AccessDenied" in _error_code_or_message(exc.value)

        server.reset()  # state gone, enforcement still on
        with pytest.raises(ClientError):
            server.client("ecr", **creds).describe_repositories()


def test_aws_env_clears_profile_and_endpoint_overrides():
    env = infra.aws_env(
        "http://127.0.0.1:1",
        base={"AWS_PROFILE": "prod", "AWS_ENDPOINT_URL_ECR": "https://x", "PATH": "/bin", "NO_PROXY": "a"},
    )
    assert "AWS_PROFILE" not in env and "AWS_ENDPOINT_URL_ECR" not in env
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["PATH"] == "/bin"
    assert env["NO_PROXY"] == "a,127.0.0.1,localhost"


# ---------------------------------------------------------------------------- docker


def _docker(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"docker {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_base_image_runs_python(docker_client, base_image):
    out = docker_client.containers.run(base_image, ["python3", "-c", "import sys; print(sys.version)"], remove=True)
    assert out.decode().startswith("3.11.")
    # `python` works too, and the default command is python3
    image = docker_client.images.get(base_image)
    assert image.attrs["Config"]["Cmd"] == ["python3"]
    out = docker_client.containers.run(base_image, ["python", "-c", "print(42)"], remove=True)
    assert out.decode().strip() == "42"


def test_base_image_venv(docker_client, base_image):
    script = (
        "python3 -m venv /tmp/venv && /tmp/venv/bin/python -c 'import sys; print(sys.prefix)'"
        " && /tmp/venv/bin/pip --version"
    )
    out = docker_client.containers.run(base_image, ["sh", "-c", script], remove=True).decode()
    assert out.splitlines()[0] == "/tmp/venv"
    assert "pip " in out


@pytest.mark.slow
def test_base_image_as_dockerfile_base(docker_client, base_image, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        "RUN python -m venv /opt/venv\n"
        "ENV PATH=/opt/venv/bin:$PATH\n"
        'CMD ["python", "-c", "import sys; print(sys.prefix)"]\n'
    )
    tag = f"mldeploy-test/infra-build:{uuid.uuid4().hex[:8]}"
    docker_client.images.build(path=str(tmp_path), tag=tag, rm=True)
    try:
        out = docker_client.containers.run(tag, remove=True).decode().strip()
        assert out == "/opt/venv"
    finally:
        docker_client.images.remove(tag, force=True)


def test_registry_push_and_pull_by_digest(docker_client, base_image, registry):
    status, _, _ = infra.http_request(f"{registry.url}/v2/")
    assert status == 200
    ref = f"{registry.host}/base:test"
    digest = None
    _docker("tag", base_image, ref)
    try:
        push = _docker("push", ref)
        digest = registry.manifest_digest("base", "test")
        assert digest and digest.startswith("sha256:")
        assert digest in push.stdout
        assert registry.tags("base") == ["test"]

        # forget every local reference to the pushed repo, then pull by digest
        _docker("rmi", ref)
        by_digest = f"{registry.host}/base@{digest}"
        _docker("pull", by_digest)
        pulled = docker_client.images.get(by_digest)
        assert pulled.id == docker_client.images.get(base_image).id
        assert by_digest in pulled.attrs["RepoDigests"]
    finally:
        subprocess.run(["docker", "rmi", ref], capture_output=True)
        if digest:
            subprocess.run(["docker", "rmi", f"{registry.host}/base@{digest}"], capture_output=True)
