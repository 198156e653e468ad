"""``docker build`` through the SDK's streaming API, with a rich progress display and a useful failure."""

from __future__ import annotations

import contextlib
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from mldeploy.errors import BuildError
from mldeploy.image.docker_client import client
from mldeploy.ui import Ui

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
LOG_TAIL = 30
BUILD_LOG = "build.log"  # the full log of the last build, next to the Dockerfile (excluded by .dockerignore)


@dataclass(frozen=True)
class BuildOutcome:
    image_id: str
    seconds: float
    steps: int
    cached_steps: int
    log: list[str]


def docker_build(context_dir: Path, tag: str, *, platform: str | None = None, no_cache: bool = False,
                 pull: bool = False, ui: Ui | None = None) -> BuildOutcome:
    """Build ``context_dir`` and tag it ``tag`` (progress on ``ui``); raise BuildError with the last log lines."""
    from docker.errors import APIError

    ui = ui or Ui()
    api = client().api
    log: deque[str] = deque(maxlen=2000)
    image_id: str | None = None
    step = total = cached = 0
    current = "sending build context"
    started = time.monotonic()
    live = ui.interactive
    status = ui.console.status(f"[bold]docker build[/] {current}") if live else None
    try:
        if status:
            status.start()
        else:
            ui.info(f"docker build {tag} ({context_dir})")
        stream = api.build(path=str(context_dir), tag=tag, platform=platform, nocache=no_cache, pull=pull,
                           rm=True, forcerm=True, decode=True)
        for chunk in stream:
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                log.append(str(detail).rstrip())
                raise BuildError(_failure(tag, f"build failed at step {step}/{total}: {current}", log),
                                 hint=_hint(str(detail)) or f"full log: {context_dir / BUILD_LOG}")
            if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            text = chunk.get("stream")
            if not text:
                continue
            for line in text.splitlines():
                if not line.strip():
                    continue
                log.append(line.rstrip())
                m = _STEP.match(line)
                if m:
                    step, total, current = int(m[1]), int(m[2]), " ".join(m[3].split())[:90]
                    if status:
                        status.update(f"[bold]docker build[/] step {step}/{total}: {escape(current)}")
                    else:
                        ui.print(f"  step {step}/{total}: {current}", markup=False, emoji=False,
                                              highlight=False, overflow="ellipsis", no_wrap=True)
                elif "Using cache" in line:
                    cached += 1
                else:
                    mid = re.match(r"^Successfully built ([0-9a-f]+)", line)
                    if mid and not image_id:
                        image_id = mid[1]
    except APIError as e:
        log.append(str(e.explanation or e))
        raise BuildError(_failure(tag, f"the Docker daemon refused the build: {e.explanation or e}", log),
                         hint=_hint(str(e.explanation or e))) from e
    finally:
        if status:
            status.stop()
        with contextlib.suppress(OSError):
            (context_dir / BUILD_LOG).write_text("\n".join(log) + "\n", encoding="utf-8")
    if not image_id:
        raise BuildError(_failure(tag, "the build finished without an image id", log))
    return BuildOutcome(image_id=image_id, seconds=time.monotonic() - started, steps=total, cached_steps=cached,
                        log=list(log))


def _failure(tag: str, headline: str, log: deque[str]) -> str:
    tail = list(log)[-LOG_TAIL:]
    body = "\n".join(f"  | {line}" for line in tail)
    return f"docker build of {tag}: {headline}\n  last build log lines:\n{body}"


def _hint(message: str) -> str | None:
    if "pull access denied" in message or "not found" in message.lower():
        return "the base image (image.base) must exist locally or be pullable from its registry"
    return None
