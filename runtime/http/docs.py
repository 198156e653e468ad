"""``/docs`` (Swagger UI) from assets installed with the runtime — no CDN; off with ``runtime.docs: false``.

The assets come from the ``fastapi-offline`` wheel (Swagger UI 5, which renders OpenAPI 3.1), located without
importing it. Without that package ``/docs`` is not served (``/openapi.json`` still is) and a warning is logged.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import FileResponse, Response

log = logging.getLogger("mldeploy.server")
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}


def assets_dir() -> Path | None:
    """The folder holding the Swagger UI assets, or None when the package is missing."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if all((folder / name).is_file() for name in ASSETS) else None


def add_docs(app: FastAPI) -> None:
    """Register ``/docs`` and ``/docs/<asset>`` (not in the schema)."""
    folder = assets_dir()
    if folder is None:
        log.warning("/docs is off: the Swagger UI assets (pip package fastapi-offline) are not installed")
        return
    title = app.title

    async def docs() -> Response:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{title} - docs",
                                   swagger_js_url="/docs/swagger-ui-bundle.js", swagger_css_url="/docs/swagger-ui.css",
                                   swagger_favicon_url="/docs/favicon.png")

    async def asset(name: str) -> Response:
        if name not in ASSETS:
            return Response(b'{"detail":"Not Found"}', 404, media_type="application/json")
        return FileResponse(folder / name, media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs/{name}", asset, methods=["GET"], include_in_schema=False)
