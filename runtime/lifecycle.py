"""The server process's life: start-up without garbage collection until ready, and draining (set on
SIGTERM/SIGINT, chained in front of uvicorn's own handler, owned by one app)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from pathlib import Path

log = logging.getLogger("mldeploy.lifecycle")


class Drain:
    """Readiness turns false and responses ask clients to close their connection once ``active``."""

    def __init__(self) -> None:
        self.active = False

    def begin(self, reason: str = "") -> None:
        if not self.active:
            self.active = True
            log.info("%s: draining (readiness false, finishing in-flight requests)", reason or "drain")

    def install_signal_handlers(self) -> None:
        """Chain ``begin`` in front of the current SIGTERM/SIGINT handlers (main thread only).

        Called from the app's startup, when uvicorn's handlers are already installed.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)

            def handler(signum, frame, previous=previous):
                self.begin(f"signal {signum}")
                if callable(previous):
                    previous(signum, frame)

            signal.signal(sig, handler)


# --------------------------------------------------------------------------- start-up: the garbage collector

GC_DEFER_LIMIT_S = 30.0
"""The collector comes back on after this long even when the server never gets ready (a supervisor of several
workers, a long model download, a failed start)."""


class _StartupGC:
    server = False  # defer() ran: this is a server process (``python -m runtime``)
    deferred = False
    timer: threading.Timer | None = None


def defer_gc(limit_s: float = GC_DEFER_LIMIT_S) -> None:
    """Turn the cyclic garbage collector off until ``resume_gc`` (the server is ready), ``limit_s`` at most.

    Start-up creates a few hundred thousand objects that live as long as the process (modules, pydantic schemas,
    the model) and almost no garbage (~760 unreachable objects at ready for iris, ~7,200 for a TorchScript CNN);
    each automatic collection on the way traverses all of them again: ~15 % of the CPU time to import the runtime,
    17 % of ``import torch`` (measured in the image). Called by ``runtime/__init__`` for ``python -m runtime``
    and its uvicorn workers (``workers > 1``) only, never in a process that merely imports the package.
    """
    if not gc.isenabled():
        return
    gc.disable()
    _StartupGC.server = _StartupGC.deferred = True
    timer = threading.Timer(limit_s, resume_gc, kwargs={"freeze": False})
    timer.daemon = True
    timer.start()
    _StartupGC.timer = timer


def resume_gc(freeze: bool = True) -> None:
    """The server is ready: freeze what start-up created (``gc.freeze``: never traversed again, so no collection
    pauses to walk the model and the modules) and turn the collector back on. Does nothing in a process where
    ``defer_gc`` did not run (tests, the CLI's in-process server)."""
    if not _StartupGC.server:
        return
    if freeze:
        gc.freeze()
    if _StartupGC.deferred:
        _StartupGC.deferred = False
        gc.enable()
        if _StartupGC.timer is not None and threading.current_thread() is not _StartupGC.timer:
            _StartupGC.timer.cancel()


def server_process() -> bool:
    """``defer_gc`` ran: this process was started as the server (``python -m runtime``)."""
    return _StartupGC.server


def process_age_s() -> float | None:
    """Seconds since this process started (``/proc/self/stat`` starttime, 10 ms resolution); None off Linux."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))  # field 22: starttime in ticks
    except (OSError, ValueError, IndexError, AttributeError):
        return None
