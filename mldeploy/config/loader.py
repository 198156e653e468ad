"""Read ``mldeploy.yaml``: parse with positions, interpolate ``${VAR}``, apply the ``--env`` overlay, validate.

All failures become a ``ConfigError`` whose problems name the file, line and column of the field.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from mldeploy.config.interpolate import MissingVariable, interpolate
from mldeploy.config.names import ResourceNames
from mldeploy.config.schema import MAX_BASE_NAME, SECRET_ENV_HINTS, Config
from mldeploy.config.yamlpos import DuplicateKeyError, Positions, load_with_positions
from mldeploy.errors import ConfigError, Location, Problem

DEFAULT_FILE = "mldeploy.yaml"
DEFAULT_ENV = "default"


@dataclass
class Project:
    """A validated configuration plus where it came from."""

    config: Config
    path: Path
    env: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def names(self) -> ResourceNames:
        return ResourceNames(self.config.name, self.env)

    def resolve(self, relative: str) -> Path:
        """Resolve a path from the config relative to the config file's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.root / p)


def find_config(path: str | os.PathLike[str] | None) -> Path:
    p = Path(path) if path else Path(DEFAULT_FILE)
    if not p.exists():
        raise ConfigError(
            [Problem(Location(str(p)), "", "file not found")],
            hint="run `mldeploy init --model PATH` to create one, or pass -f/--config",
        )
    if p.is_dir():
        p = p / DEFAULT_FILE
        if not p.exists():
            raise ConfigError([Problem(Location(str(p)), "", "file not found")])
    return p


def _deep_merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names allowed at ``loc`` (for did-you-mean suggestions)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current = _unwrap(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Find the pydantic model inside Optional[...], list[...], Annotated[...]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _unwrap(arg)
        if found is not None:
            return found
    if get_origin(annotation) is None:
        return None
    return None


def _position(positions: Positions, loc: tuple[Any, ...]) -> tuple[int, int] | tuple[None, None]:
    for n in range(len(loc), -1, -1):
        if tuple(loc[:n]) in positions:
            return positions[tuple(loc[:n])]
    return (None, None)


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problems(exc: ValidationError, file: str, positions: Positions) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        line, col = _position(positions, loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(Config, loc[:-1])
            guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
            msg = f"unknown key {str(loc[-1])!r}" + (f" — did you mean {guess[0]!r}?" if guess else "")
            if allowed and not guess:
                msg += f" (allowed: {', '.join(allowed)})"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] in ("enum", "literal_error"):
            msg = f"{msg} (got {err.get('input')!r})"
        problems.append(Problem(Location(file, line, col), _dotted(loc), msg))
    return problems


def parse_text(
    text: str, *, file: str = DEFAULT_FILE, env: str | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Config, dict[str, Any]]:
    """Validate YAML text; return (config, merged raw dict)."""
    environ = os.environ if environ is None else environ
    try:
        data, positions = load_with_positions(text)
    except DuplicateKeyError as e:
        raise ConfigError([Problem(Location(file, e.line, e.column), e.key, "duplicate key")]) from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise ConfigError([Problem(Location(file, line, col), "", f"YAML syntax error: {e.problem}")]) from e
    if data is None:
        raise ConfigError([Problem(Location(file, 1, 1), "", "file is empty")],
                          hint="run `mldeploy init` to write a commented template")
    if not isinstance(data, dict):
        raise ConfigError([Problem(Location(file, 1, 1), "", "top level must be a mapping of keys")])

    try:
        data = interpolate(data, environ)
    except MissingVariable as e:
        line, col = _position(positions, e.path)
        raise ConfigError([Problem(Location(file, line, col), _dotted(e.path), str(e))]) from e

    environments = data.get("environments") or {}
    if env and env != DEFAULT_ENV:
        if not isinstance(environments, dict) or env not in environments:
            known = ", ".join(environments) if isinstance(environments, dict) and environments else "none defined"
            line, col = _position(positions, ("environments",))
            raise ConfigError(
                [Problem(Location(file, line, col), "environments", f"no environment {env!r} (known: {known})")]
            )
        overlay = environments[env] or {}
        if not isinstance(overlay, dict):
            line, col = _position(positions, ("environments", env))
            raise ConfigError([Problem(Location(file, line, col), f"environments.{env}", "must be a mapping")])
        if "environments" in overlay or "name" in overlay:
            line, col = _position(positions, ("environments", env))
            raise ConfigError([Problem(Location(file, line, col), f"environments.{env}",
                                       "an overlay cannot set 'name' or 'environments'")])
        merged = _deep_merge({k: v for k, v in data.items()}, overlay)
        # positions of overlay values win over the base's
        prefix = ("environments", env)
        for path, pos in list(positions.items()):
            if path[:2] == prefix and len(path) > 2:
                positions[path[2:]] = pos
        data = merged

    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_problems(e, file, positions)) from e

    # Overlays are validated too, each merged on its own, so `validate` catches errors in every env.
    _check_resource_names(config, env or DEFAULT_ENV, file, positions)
    return config, data


def _check_resource_names(config: Config, env: str, file: str, positions: Positions) -> None:
    """The ALB and target-group names derived from name + environment (``names.py``) must be valid AWS names."""
    names = ResourceNames(config.name, env)
    where = ("name",) if env == DEFAULT_ENV else ("environments", env)
    line, col = _position(positions, where)
    if len(names.base) > MAX_BASE_NAME:
        raise ConfigError([Problem(Location(file, line, col), _dotted(where),
                                   f"'{names.base}' (name + environment) is {len(names.base)} characters; at most "
                                   f"{MAX_BASE_NAME} so that ALB and target-group names fit AWS's 32")])
    problems = names.elb_problems()
    if problems:  # the first one: -tg / -tgc names share the base's fault
        what, name, why = problems[0]
        subject = f"name {config.name!r}" if env == DEFAULT_ENV else f"environment name {env!r}"
        raise ConfigError([Problem(Location(file, line, col), _dotted(where),
                                   f"{subject} makes the AWS {what} name {name!r} invalid: it {why}")],
                          hint="environment names become part of AWS resource names: use lowercase letters, digits "
                               "and hyphens, e.g. 'prod-eu'")


# ------------------------------------------------------------------------------ checks for deploying to AWS


def _file_positions(project: Project) -> Positions:
    """Positions of the project's file (with its overlay's values winning), for problems found after loading."""
    try:
        _, positions = load_with_positions(project.path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    prefix = ("environments", project.env)
    for path, pos in list(positions.items()):
        if path[:2] == prefix and len(path) > 2:
            positions[path[2:]] = pos
    return positions


def deploy_problems(project: Project) -> list[Problem]:
    """What the config lacks for running on ECS (not for ``--target local``): checked by ``validate`` and by every
    AWS plan (``network.resolve``)."""
    cfg, problems = project.config, []
    auth, aws = cfg.runtime.auth, cfg.aws
    # The server refuses to start without its auth secret (runtime/auth.py Authenticator: "auth.mode is api_key but
    # no API keys are configured"); on ECS that is a crash loop, then a circuit-breaker rollback. The container gets
    # only aws.environment / aws.secrets (task_definition.container).
    needed = {"api_key": (auth.api_keys_env, auth.api_keys_file or aws.environment.get("MLDEPLOY_API_KEYS_FILE")),
              "jwt": (auth.jwt_secret_env, auth.jwt_secret_file or aws.environment.get("MLDEPLOY_JWT_SECRET_FILE"))}
    if auth.mode.value in needed:
        var, file = needed[auth.mode.value]  # a secret file is baked into the image or mounted: not checkable here
        if not file and var not in aws.secrets and var not in aws.environment:
            positions = _file_positions(project)
            line, col = _position(positions, ("runtime", "auth", "mode"))
            problems.append(Problem(
                Location(str(project.path), line, col), "runtime.auth.mode",
                f"auth mode {auth.mode.value} needs {var} in the container, but aws.secrets has no {var}: on ECS the "
                f"server would not start (set aws.secrets.{var} to a Secrets Manager or SSM parameter ARN)"))
    return problems


def check_deploy(project: Project) -> None:
    """Raise ``ConfigError`` with ``deploy_problems``."""
    problems = deploy_problems(project)
    if problems:
        raise ConfigError(problems, hint="for `--target local` the server reads the secret from your own environment; "
                                         "`validate` and AWS plans check the ECS deployment")


def deploy_warnings(config: Config) -> list[str]:
    """Likely secrets in ``aws.environment``: botocore ecs ContainerDefinition.environment: "We don't recommend that
    you use plaintext environment variables for sensitive information, such as credential data" (they are stored
    and shown in the task definition)."""
    likely = sorted(k for k in config.aws.environment if any(h in k.upper() for h in SECRET_ENV_HINTS))
    if not likely:
        return []
    return [f"aws.environment {', '.join(likely)} look{'s' if len(likely) == 1 else ''} like secret"
            f"{'' if len(likely) == 1 else 's'}: environment values are stored in plain text in the ECS task "
            "definition (anyone with ecs:DescribeTaskDefinition reads them); move them to aws.secrets (Secrets "
            "Manager or SSM SecureString ARNs)"]


def load_project(
    path: str | os.PathLike[str] | None = None, env: str | None = None, environ: Mapping[str, str] | None = None
) -> Project:
    """Find, read and validate the config; the model path must exist."""
    file = find_config(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([Problem(Location(str(file)), "", f"cannot read: {e}")]) from e
    config, raw = parse_text(text, file=str(file), env=env, environ=environ)
    return Project(config=config, path=file.resolve(), env=env or DEFAULT_ENV, raw=raw)


def validate_all_envs(path: str | os.PathLike[str] | None = None,
                      environ: Mapping[str, str] | None = None) -> list[str]:
    """Validate the base config and every overlay; return the environment names checked."""
    project = load_project(path, None, environ)
    envs = [DEFAULT_ENV]
    for name in project.config.environments:
        load_project(path, name, environ)
        envs.append(name)
    return envs
