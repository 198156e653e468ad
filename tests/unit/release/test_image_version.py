"""``canary --image`` records the image's own version: its label from the registry (Docker Registry v2 or ECR),
else the tag, else ``unknown``, with a warning."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mldeploy.release.image_version import ImageRef, image_version

CONFIG = {"config": {"Labels": {"org.opencontainers.image.version": "2.3.4", "dev.mldeploy.model.version": "2.3.4"}}}
MANIFEST = {"schemaVersion": 2, "config": {"digest": "sha256:cfg"}}


class Warnings:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warn(self, text: str) -> None:
        self.lines.append(text)


def test_parse_references() -> None:
    assert ImageRef.parse("127.0.0.1:5000/app:v2") == ImageRef("127.0.0.1:5000", "app", "v2", None)
    assert ImageRef.parse("1.dkr.ecr.us-east-1.amazonaws.com/a/b@sha256:ab") == \
        ImageRef("1.dkr.ecr.us-east-1.amazonaws.com", "a/b", None, "sha256:ab")
    assert ImageRef.parse("python:3.11") == ImageRef("registry-1.docker.io", "library/python", "3.11", None)


def test_label_read_from_a_v2_registry() -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = {"/v2/app/manifests/v9": MANIFEST, "/v2/app/blobs/sha256:cfg": CONFIG}.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(json.dumps(body or {}).encode())

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ui = Warnings()
        assert image_version(f"127.0.0.1:{server.server_port}/app:v9", None, ui) == "2.3.4"
        assert ui.lines == []
        assert image_version(f"127.0.0.1:{server.server_port}/app:missing", None, ui) == "missing"
        assert "recording version 'missing' (its tag)" in ui.lines[0]
    finally:
        server.shutdown()


def test_label_read_from_ecr_through_batch_get_image_and_the_config_blob(monkeypatch: Any) -> None:
    calls: list[tuple[str, dict]] = []

    class Ecr:
        def batch_get_image(self, **kw: Any) -> dict:
            calls.append(("batch_get_image", kw))
            return {"images": [{"imageManifest": json.dumps(MANIFEST)}]}

        def get_download_url_for_layer(self, **kw: Any) -> dict:
            calls.append(("get_download_url_for_layer", kw))
            return {"downloadUrl": "https://blob.example/cfg"}

    class Clients:
        ecr = Ecr()

    from mldeploy.release import image_version as mod

    monkeypatch.setattr(mod, "_http_json", lambda url, accept=None: CONFIG if url == "https://blob.example/cfg" else {})
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris@sha256:abc"
    assert image_version(image, Clients(), Warnings()) == "2.3.4"  # type: ignore[arg-type]
    assert calls[0] == ("batch_get_image", {"repositoryName": "iris", "imageIds": [{"imageDigest": "sha256:abc"}],
                                            "acceptedMediaTypes": mod.MANIFESTS})
    assert calls[1] == ("get_download_url_for_layer", {"repositoryName": "iris", "layerDigest": "sha256:cfg"})


def test_unreadable_digest_only_image_is_unknown_with_a_warning() -> None:
    ui = Warnings()
    assert image_version("127.0.0.1:1/app@sha256:" + "2" * 64, None, ui) == "unknown"  # type: ignore[arg-type]
    assert "recording version 'unknown' (no tag either)" in ui.lines[0]
