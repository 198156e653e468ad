"""Locate and render the Jinja2 templates shipped in ``templates/`` (``mldeploy/_templates`` in a wheel)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any


def template_dir() -> Path:
    """The templates folder: inside the installed package, else the source checkout's ``templates/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("mldeploy templates not found; reinstall mldeploy")


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - we render Dockerfiles/YAML, not HTML
    )


def render(template: str, /, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return _environment().get_template(template).render(**context)
