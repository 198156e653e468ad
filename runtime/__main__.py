"""``python -m runtime --model-dir DIR [--port P] [--host H] [--workers N]``: run the server with uvicorn.

Settings: runtime.json next to model.json, then MLDEPLOY_* env vars, then these flags. Exits 2 with a one-line
message (no traceback) when the settings, the model folder or the auth secrets are wrong, or when the S3 artifact
(``model.store: s3``, ``runtime.model_fetch``) does not verify. On SIGTERM readiness
turns false, in-flight requests finish within ``drain_timeout_s`` and the process exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runtime", description="mldeploy model server")
    p.add_argument("--model-dir", help="artifact folder with model.json ($MLDEPLOY_MODEL_DIR)")
    p.add_argument("--models-dir", help="one artifact folder per version + routing.json ($MLDEPLOY_MODELS_DIR)")
    p.add_argument("--host", help="bind address (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument("--workers", type=int, help="uvicorn worker processes (default 1)")
    args = p.parse_args(argv)

    from runtime.auth import AuthConfigError
    from runtime.model_fetch import FetchError, prepare
    from runtime.repository import StartupError
    from runtime.settings import ENV_MAP, SettingsError, load_settings
    from runtime.telemetry import setup_logging

    env_of = {v: k for k, v in ENV_MAP.items()}
    overrides = {"model_dir": args.model_dir, "models_dir": args.models_dir, "host": args.host, "port": args.port,
                 "workers": args.workers}
    try:
        settings = load_settings(overrides)
        setup_logging(settings.log_level)
        # model.store s3: download + verify the artifact first (/ready answers 503 meanwhile), then serve it
        fetched = prepare(settings.model_dir, settings.host, settings.port)
        if fetched is not None:  # a shadow phase (MLDEPLOY_SHADOW_*): a models folder with both versions
            overrides.update(model_dir=None, models_dir=str(fetched.folder)) if fetched.multi else \
                overrides.update(model_dir=str(fetched.folder), models_dir=None)
            settings = load_settings(overrides)
        # workers re-read settings from the environment: pass the flags on
        for key, value in overrides.items():
            if value is not None:
                os.environ[env_of[key]] = str(value)
        from runtime.http.app import ModelServer

        built = ModelServer.build(settings)  # validate models folder + auth secrets before binding the port
        metrics_dir = None
        if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # set after the check above: only the (spawned) workers write metric files
            metrics_dir = tempfile.mkdtemp(prefix="mldeploy-prom-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    except (SettingsError, AuthConfigError, StartupError, FetchError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    import signal

    import uvicorn

    # uvicorn re-raises the stop signal after its graceful shutdown; with a no-op handler underneath it the process
    # then exits 0 (ECS treats a SIGTERM death as exit code 143)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    endpoint = None
    if metrics_dir and settings.metrics_port:  # several workers: the supervisor serves their shared metrics
        from runtime.http.metrics_endpoint import MetricsEndpoint
        from runtime.metrics import render_multiprocess

        routes = {}
        if built.shadow is not None:  # /shadow: the sum of the workers' measures (runtime.shadow.render_shared)
            from runtime.shadow import render_shared

            sensitive = settings.auth.sensitive_data
            routes["/shadow"] = lambda: render_shared(metrics_dir, sensitive)
        endpoint = MetricsEndpoint(render_multiprocess, settings.host, settings.metrics_port, routes)
        endpoint.start()
    uvicorn.run(
        "runtime.http.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.drain_timeout_s,
        timeout_keep_alive=settings.keep_alive_s,  # above the ALB's idle timeout, so the ALB closes first
        limit_max_requests=None,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For is read by runtime.http.clientip, from trusted proxies only
        loop="auto",  # uvloop when installed
        http=http_protocol(),
        lifespan="on",
    )
    if endpoint is not None:
        endpoint.stop()
    if metrics_dir:
        import shutil

        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def http_protocol() -> str:
    """uvicorn's ``http``: httptools with one socket write per predict answer (``runtime.http.onewrite``) when
    httptools is installed, else uvicorn's choice (h11)."""
    import importlib.util

    if importlib.util.find_spec("httptools") is None:
        return "auto"
    return "runtime.http.onewrite:OneWriteHttpTools"


if __name__ == "__main__":
    sys.exit(main())
