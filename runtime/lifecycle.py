"""Draining: set on SIGTERM/SIGINT (chained in front of uvicorn's own handler), owned by one app."""

from __future__ import annotations

import logging
import signal
import threading

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
