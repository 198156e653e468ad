"""``python -m runtime`` as a child process on a free loopback port (``mldeploy bench --local``)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mldeploy.errors import NotReadyError
from mldeploy.polling import PollTimeout, poll_until
from mldeploy.workspace import Workspace

if TYPE_CHECKING:
    from mldeploy.config import Project

SERVER_LOG = "bench-server.log"
READY_POLL_S = 0.2


class LocalRuntime:
    """``python -m runtime`` on a free loopback port, serving the packaged model; stopped on exit.

    The server is pinned to ``ceil(vCPU)`` cores of this machine (Linux), the load generator keeps the rest;
    ``scale`` (vCPU ÷ pinned cores) converts the measured rate to the task's fractional vCPU share, since a
    Fargate task's CPU is a CFS quota and CPU-bound throughput is roughly proportional to it.
    """

    def __init__(self, project: Project, ready_timeout: float = 60.0) -> None:
        self.project = project
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        vcpu = project.config.aws.cpu / 1024
        available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.cores = available[:max(1, math.ceil(vcpu))] if available else []
        self.scale = vcpu / len(self.cores) if self.cores else 1.0
        self.note = (f"local runtime pinned to {len(self.cores)} core(s) of {len(available)}; rate × {self.scale:g} "
                     f"for a {vcpu:g} vCPU task" if self.cores else "local runtime not pinned (no CPU affinity)")

    def __enter__(self) -> LocalRuntime:
        import socket

        # the submodule, not ``mldeploy.artifacts.packager``: once the submodule is imported, that attribute
        # of the package is the module, not the function
        from mldeploy.artifacts.packager import package
        from mldeploy.local.inprocess import serving_dir

        model_dir = serving_dir(self.project, Path(package(self.project).dir))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        log_path = Workspace.of(self.project).path(SERVER_LOG)
        from mldeploy.artifacts import code_paths  # model.code_paths on the server's PYTHONPATH, as in the image

        shipped = code_paths.resolve(self.project.root, self.project.config.model.code_paths)
        path = [*map(str, code_paths.import_dirs(shipped)), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)} if path else None
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "runtime", "--model-dir", str(model_dir), "--host",
                                          "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=self._pin if self.cores else None, env=env)
        ready = self.url + self.project.config.aws.health_check.path
        try:
            poll_until(lambda: self._ready(ready), timeout=self.ready_timeout, interval=READY_POLL_S,
                       what=ready)
            if self.proc.poll() is None:
                return self
        except PollTimeout:
            pass
        self.__exit__(None, None, None)
        raise NotReadyError(f"the local runtime did not become ready at {ready} within {self.ready_timeout:g} s",
                            hint=f"see {log_path}")

    def _ready(self, url: str) -> bool:
        """True once ``url`` answers 200, or once the server exited (the caller then reports it)."""
        import httpx

        assert self.proc is not None
        if self.proc.poll() is not None:
            return True
        try:
            return httpx.get(url, timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def _pin(self) -> None:
        os.sched_setaffinity(0, self.cores)

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
