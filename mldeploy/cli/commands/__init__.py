"""Thin command modules: read the session, call one lower-layer function, hand the result to ``cli.render``.

Order matters: it is the order of ``mldeploy --help``.
"""

from __future__ import annotations

from mldeploy.cli.commands import artifacts, aws, config, cost, image, local, release, up

MODULES = (config, artifacts, image, local, up, aws, release, cost)
