"""``GET /metrics`` on its own port (``runtime.metrics_port``, Prometheus convention), never on the main port.

A stdlib HTTP server in a daemon thread of the same process: the load balancer only routes to the main port, so
metrics (live feature means, auth-reject counts) never reach it. With several uvicorn workers the supervisor
process serves it from the shared multiprocess files.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("mldeploy.metrics")
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class MetricsEndpoint:
    """Serves ``render()`` at ``/metrics`` on ``host:port`` and each ``routes`` path (JSON, e.g. ``/shadow``);
    every other path is 404."""

    def __init__(self, render: Callable[[], bytes], host: str, port: int,
                 routes: dict[str, Callable[[], bytes]] | None = None) -> None:
        self.render, self.host, self.port = render, host, port
        self.routes = dict(routes or {})
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> bool:
        """Bind and serve in a daemon thread; a busy port is logged, not fatal (serving predictions matters more)."""
        render, routes = self.render, self.routes

        class Handler(BaseHTTPRequestHandler):
            server_version = "mldeploy"
            sys_version = ""

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path != "/metrics" and path not in routes:
                    self._send(404, b'{"detail":"Not Found"}', "application/json")
                    return
                try:
                    body = render() if path == "/metrics" else routes[path]()
                except Exception:
                    log.exception("rendering %s failed", path)
                    self._send(500, b'{"detail":"internal error"}', "application/json")
                    return
                self._send(200, body, PROMETHEUS if path == "/metrics" else "application/json")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - scrapes are not access-logged
                pass

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as e:
            log.error("metrics port %s:%d unavailable (%s): /metrics is not served", self.host, self.port, e)
            return False
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)
        return True

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
