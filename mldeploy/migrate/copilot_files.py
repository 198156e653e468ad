"""Find and read a Copilot workspace's manifests; turn mapping errors into ``ConfigError``s at the manifest line.

A workspace is a folder holding ``copilot/<service>/manifest.yml`` and optionally
``copilot/environments/<env>/manifest.yml`` (the layout ``copilot init`` writes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mldeploy.errors import ConfigError, ExitCode, Location, MldeployError, Problem

MANIFEST = "manifest.yml"


@dataclass
class Manifest:
    path: Path
    data: dict[str, Any]
    positions: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)


@dataclass
class Workspace:
    service: Manifest
    environments: dict[str, Manifest] = field(default_factory=dict)
    app: str | None = None  # copilot/.workspace "application:" (the Copilot application's name)

    def locate(self, copilot_field: str) -> Location:
        """The file, line and column of a dotted Copilot field (``environments.test.count``, ``env test: …``)."""
        manifest, dotted = self.service, copilot_field
        if m := re.fullmatch(r"env ([^:]+): (.*)", copilot_field):
            manifest, dotted = self.environments.get(m.group(1), self.service), m.group(2)
        parts: list[Any] = []
        for part in re.split(r"\.(?![^\[]*\])", dotted.split(" (")[0]):
            name, _, index = part.partition("[")
            parts.append(name)
            if index:
                parts.append(int(index.rstrip("]")))
        for n in range(len(parts), 0, -1):
            if (pos := manifest.positions.get(tuple(parts[:n]))) is not None:
                return Location(str(manifest.path), *pos)
        return Location(str(manifest.path))


def read_manifest(path: Path) -> Manifest:
    import yaml

    from mldeploy.config.yamlpos import DuplicateKeyError, load_with_positions

    try:
        data, positions = load_with_positions(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([Problem(Location(str(path)), "", f"cannot read: {e}")]) from e
    except DuplicateKeyError as e:
        raise ConfigError([Problem(Location(str(path), e.line, e.column), e.key, "duplicate key")]) from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = Location(str(path), mark.line + 1, mark.column + 1) if mark else Location(str(path))
        raise ConfigError([Problem(where, "", f"YAML syntax error: {e.problem}")]) from e
    if not isinstance(data, dict):
        raise ConfigError([Problem(Location(str(path), 1, 1), "", "a Copilot manifest is a map of fields")])
    return Manifest(path, data, positions)


def _copilot_dir(path: Path) -> Path:
    if (path / "copilot").is_dir():
        return path / "copilot"
    if path.name == "copilot" and path.is_dir():
        return path
    raise MldeployError(f"--from-copilot: {path} has no copilot/ folder",
                        hint="pass the folder that holds copilot/<service>/manifest.yml, or one manifest file",
                        exit_code=ExitCode.USAGE)


def load_workspace(path: Path, service: str | None = None) -> Workspace:
    """The service manifest to migrate and the workspace's environment manifests."""
    from mldeploy.migrate.copilot import LBWS

    if not path.exists():
        raise MldeployError(f"--from-copilot: {path} does not exist", exit_code=ExitCode.USAGE)
    if path.is_file():
        root = path.resolve().parent.parent  # copilot/<service>/manifest.yml → copilot/
        chosen = read_manifest(path)
        if service and chosen.data.get("name") != service:
            raise MldeployError(f"--service {service}: {path} is the manifest of {chosen.data.get('name')!r}",
                                exit_code=ExitCode.USAGE)
    else:
        root = _copilot_dir(path)
        found = {d.name: d / MANIFEST for d in sorted(root.iterdir())
                 if d.is_dir() and d.name != "environments" and (d / MANIFEST).is_file()}
        if not found:
            raise MldeployError(f"--from-copilot: no service manifest in {root} (copilot/<service>/{MANIFEST})",
                                exit_code=ExitCode.USAGE)
        manifests = {name: read_manifest(p) for name, p in found.items()}
        web = [n for n, m in manifests.items() if m.data.get("type") == LBWS]
        if service is not None:
            if service not in manifests:
                raise MldeployError(f"--service {service}: no copilot/{service}/{MANIFEST} (services: "
                                    f"{', '.join(manifests)})", exit_code=ExitCode.USAGE)
            chosen = manifests[service]
        elif len(manifests) == 1:
            chosen = next(iter(manifests.values()))
        elif len(web) == 1:
            chosen = manifests[web[0]]
        else:
            listed = ", ".join(f"{n} ({m.data.get('type')})" for n, m in manifests.items())
            raise MldeployError(f"--from-copilot: the workspace has several services: {listed}",
                                hint="pass --service NAME", exit_code=ExitCode.USAGE)
    envs: dict[str, Manifest] = {}
    env_root = root / "environments"
    if env_root.is_dir():
        for d in sorted(env_root.iterdir()):
            if (d / MANIFEST).is_file():
                envs[d.name] = read_manifest(d / MANIFEST)
    return Workspace(chosen, envs, _application(root / ".workspace"))


def _application(path: Path) -> str | None:
    """The application name ``copilot app init`` writes to ``copilot/.workspace`` (``application: NAME``)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    app = data.get("application") if isinstance(data, dict) else None
    return str(app) if app else None
