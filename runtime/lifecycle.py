"""Process lifecycle: the draining flag set on SIGTERM (chained in front of uvicorn's own handler)."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("mldeploy.lifecycle")
DRAINING = threading.Event()


def install_drain_handler() -> None:
    """On SIGTERM/SIGINT: readiness turns false at once, then uvicorn's graceful shutdown runs.

    Called from the app's startup, when uvicorn's handlers are already installed (main thread only).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            if not DRAINING.is_set():
                DRAINING.set()
                log.info("signal %s: draining (readiness false, finishing in-flight requests)", signum)
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, handler)
