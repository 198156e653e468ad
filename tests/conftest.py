"""Shared fixtures. The machinery lives in tests/infra.py; keep this file small."""

from __future__ import annotations

import os

import pytest

from tests import infra


def pytest_configure(config: pytest.Config) -> None:
    for marker in (
        "docker: needs a docker daemon + the local base image (scripts/test-infra.sh)",
        "aws: runs against a local moto server",
        "slow: takes more than a few seconds",
    ):
        config.addinivalue_line("markers", marker)


_DOCKER_FIXTURES = {"docker_client", "base_image", "registry"}
_AWS_FIXTURES = {"moto_server", "aws"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tests using the fixtures get the markers automatically (-m "not docker" etc.)
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _DOCKER_FIXTURES:
            item.add_marker(pytest.mark.docker)
        if names & _AWS_FIXTURES:
            item.add_marker(pytest.mark.aws)


def _unavailable(reason: str) -> None:
    """Skip, or fail when MLDEPLOY_REQUIRE_DOCKER=1 (CI must not silently skip)."""
    if os.environ.get("MLDEPLOY_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (MLDEPLOY_REQUIRE_DOCKER=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def moto_server():
    """A real `python -m moto.server` process (AWS managed IAM policies loaded)."""
    with infra.MotoServer(load_managed_policies=True) as server:
        yield server


@pytest.fixture
def aws(moto_server: infra.MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fresh moto state; os.environ points boto3 at moto for this test; returns that env
    (pass it as env= to CLI subprocesses)."""
    return infra.use_moto(moto_server, monkeypatch)


@pytest.fixture(scope="session")
def docker_client():
    """docker SDK client (API version negotiated with the daemon)."""
    if not infra.docker_available():
        _unavailable("docker daemon not available; run scripts/test-infra.sh")
    import docker

    client = docker.from_env(timeout=600)
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """Tag of the local Python base image (built by scripts/test-infra.sh if missing)."""
    try:
        return infra.ensure_base_image()
    except RuntimeError as e:
        _unavailable(str(e))


@pytest.fixture(scope="session")
def registry():
    """A local docker-registry on 127.0.0.1:<port>; push to f"{registry.host}/name:tag"."""
    try:
        server = infra.LocalRegistry()
        server.start()
    except RuntimeError as e:
        _unavailable(str(e))
    yield server
    server.stop()
