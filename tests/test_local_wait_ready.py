"""``mldeploy.local.container.wait_ready`` against a real container that exits before it is ready: the error names
the exit code and the log, within the exit-check interval, not after the ready timeout."""

from __future__ import annotations

import time

import pytest

from mldeploy.errors import NotReadyError
from mldeploy.local import container as local_container
from tests.infra import base_image, free_port

pytestmark = pytest.mark.docker


def test_a_container_that_exits_is_reported_with_its_code_and_log_long_before_the_timeout() -> None:
    import docker

    client = docker.from_env()
    box = client.containers.run(base_image(), ["python", "-c", "import sys; print('model file missing'); sys.exit(3)"],
                                detach=True)
    try:
        t0 = time.monotonic()
        with pytest.raises(NotReadyError) as info:
            local_container.wait_ready(f"http://127.0.0.1:{free_port()}", box, timeout=60)
        waited = time.monotonic() - t0
        assert "exited (code 3)" in str(info.value) and "model file missing" in str(info.value)
        # exit is checked every EXIT_CHECK_S (not on every 20 ms poll: an inspect costs 10–40 ms of Docker API time)
        assert waited < 30, waited
    finally:
        box.remove(force=True)
