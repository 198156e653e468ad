"""``mldeploy.yaml``: schema, loading, overlays and resource naming."""

from mldeploy.config.loader import DEFAULT_ENV, DEFAULT_FILE, Project, load_project, parse_text
from mldeploy.config.names import ResourceNames
from mldeploy.config.schema import Config

__all__ = ["DEFAULT_ENV", "DEFAULT_FILE", "Config", "Project", "ResourceNames", "load_project", "parse_text"]
