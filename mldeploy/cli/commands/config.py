"""``init``, ``validate`` and ``schema``: create and check ``mldeploy.yaml``."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from mldeploy.cli.session import Session


class CiProvider(StrEnum):
    github = "github"


def default_name(folder: Path) -> str:
    return slug(folder.resolve().name)


def slug(text: str) -> str:
    """``Wine Classifier`` → ``wine-classifier``: an app name the schema accepts (lowercase, hyphens, ≤ 28)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "model"
    if not name[0].isalpha():
        name = f"m-{name}"
    name = name[:28].rstrip("-")
    return name if len(name) >= 2 else f"{name}-app"  # schema.MIN_NAME: ECR repository names are ≥ 2 characters


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid app name (the schema's own rule), or None."""
    from pydantic import ValidationError

    from mldeploy.config.schema import Config

    try:
        Config.model_validate({"name": name, "model": {"path": "model"}})
    except ValidationError as e:
        found = [err["msg"].removeprefix("Value error, ") for err in e.errors() if tuple(err["loc"]) == ("name",)]
        return found[0] if found else None
    return None


def _ask_name(default: str) -> str:
    """Prompt for the app name until it is valid; a refused answer is explained and its slug offered."""
    from rich.prompt import Prompt

    from mldeploy import console

    while True:
        answer = Prompt.ask("App name", console=console.console, default=default).strip()
        problem = name_problem(answer)
        if problem is None:
            return answer
        suggestion = slug(answer)
        if suggestion != answer and name_problem(suggestion) is None:
            default = suggestion
            console.warn(f"{problem}; press Enter for {suggestion!r} or type another name")
        else:
            console.warn(f"{problem}; type another name")


def _ask_model_path() -> Path:
    """Prompt for the model path until it exists."""
    from rich.prompt import Prompt

    from mldeploy import console

    while True:
        answer = Path(Prompt.ask("Path to the model file", console=console.console).strip())
        if (answer if answer.is_absolute() else Path.cwd() / answer).exists():
            return answer
        console.warn(f"{answer} does not exist; type the path of a model file or SavedModel folder")


def _torch_inputs(model: Path, ask: bool) -> dict[str, Any]:
    """Template variables for a PyTorch model's input: read from its first layer (Linear → ``[in_features]``,
    Conv2d → an image with its channels), else asked on a terminal, else a commented ``model.inputs``."""
    from mldeploy.artifacts.formats.torch_fmt import first_layer

    layer = first_layer(model) if model.is_file() else None
    shape = layer.row_shape if layer else None
    if layer and shape and None not in shape:
        return {"tensor_shape": shape, "input_note": f"read from the first layer, {layer.name}: {layer.io}"}
    if layer and shape and len(shape) == 3 and shape[0] in (1, 3):
        return {"image_channels": shape[0], "image_size": _ask_image_size() if ask else None,
                "input_note": f"channels read from the first layer, {layer.name}: {layer.io}"}
    if ask:
        from rich.markup import escape

        from mldeploy import console

        console.info(escape("The model file does not tell its input shape"
                            + (f" ({layer.describe()})" if layer else "") + "."))
        return {"tensor_shape": _ask_shape(), "input_note": "as typed at `mldeploy init`"}
    return {"torch_model": True, "input_note": layer.describe() if layer else
            "the model file does not tell its input shape"}


def parse_shape(text: str) -> list[int] | str:
    """``13`` / ``3,224,224`` / ``3x224x224`` → the row shape, or why it is not one."""
    parts = [p for p in re.split(r"[\s,x×]+", text.strip().strip("[]")) if p]
    if not parts:
        return "type at least one size, e.g. 13"
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        return f"{text!r} is not a list of positive whole numbers, e.g. 13 or 3,224,224"
    if len(parts) > 4:
        return f"{len(parts)} axes: a request row has at most 4 (e.g. 3,224,224)"
    return [int(p) for p in parts]


def _ask_shape() -> list[int]:
    """Prompt for the input of one request row until it parses."""
    from rich.prompt import Prompt

    from mldeploy import console

    while True:
        answer = Prompt.ask("Input shape of one request row (e.g. 13 features, or 3,224,224 for an image)",
                            console=console.console)
        shape = parse_shape(answer)
        if isinstance(shape, list):
            return shape
        console.warn(shape)


def _ask_image_size() -> tuple[int, int]:
    """Prompt for the image size a Conv2d model was trained on (WIDTHxHEIGHT), checked as typed."""
    from rich.prompt import Prompt

    from mldeploy import console

    while True:
        answer = Prompt.ask("Image size the model was trained on (WIDTHxHEIGHT)", console=console.console,
                            default="224x224")
        size = parse_shape(answer)
        if isinstance(size, list) and len(size) == 2 and max(size) <= 8192:
            return size[0], size[1]
        console.warn(f"{answer!r} is not WIDTHxHEIGHT with sizes 1–8192, e.g. 224x224")


def _frame_inputs(model: Path, fmt: str, folder: Path) -> dict[str, Any]:
    """Template variables for a scikit-learn model fitted on a pandas DataFrame (sklearn_frame.init_columns): its
    columns, and ``sample.json`` next to the model (relative to the config's folder) when there is one."""
    from mldeploy.artifacts.formats.sklearn_frame import init_columns

    found = init_columns(model) if model.is_file() else None
    if not found:
        return {}
    columns, strings = found
    sample = model.resolve().parent / "sample.json"
    try:
        rel = sample.relative_to(folder.resolve()).as_posix() if sample.is_file() else None
    except ValueError:
        rel = sample.as_posix()
    return {"frame_columns": columns, "frame_strings": strings, "frame_sample": rel}


def init(
    ctx: typer.Context,
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Model file or SavedModel folder.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="App name (lowercase, hyphens).")] = None,
    format: Annotated[str | None, typer.Option("--format", help="Model format (default: detect).")] = None,
    base_image: Annotated[str, typer.Option("--base-image", help="Base image for the build.")] =
        "python:3.11-slim",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing mldeploy.yaml.")] = False,
    ci: Annotated[CiProvider | None, typer.Option(
        "--ci", help="Also write a CI workflow (github: .github/workflows/mldeploy.yml); with an existing "
        "mldeploy.yaml and no --model, only the workflow is written.")] = None,
    from_copilot: Annotated[Path | None, typer.Option(
        "--from-copilot", help="Migrate an AWS Copilot Load Balanced Web Service: a workspace folder "
        "(copilot/<service>/manifest.yml) or one manifest file; prints what was carried over and what was not.")] =
        None,
    service: Annotated[str | None, typer.Option(
        "--service", help="With --from-copilot: the Copilot service, when the workspace has several.")] = None,
) -> None:
    """Write a commented mldeploy.yaml (interactive on a terminal, scriptable with flags)."""
    from mldeploy import console
    from mldeploy.artifacts.detect import find_model_files, guess_format
    from mldeploy.config import parse_text
    from mldeploy.config.schema import ModelFormat
    from mldeploy.errors import ExitCode, MldeployError
    from mldeploy.templating import render

    session = Session.of(ctx)
    target = session.options.config or Path("mldeploy.yaml")
    if target.is_dir():
        target = target / "mldeploy.yaml"
    folder = target.parent
    if target.exists() and ci is not None and model is None and from_copilot is None:  # add CI only (yaml untouched)
        _init_ci(target, ci, force)
        return
    if target.exists() and not force:
        raise MldeployError(f"{target} already exists", hint="pass --force to overwrite it",
                            exit_code=ExitCode.USAGE)
    if name is not None and (problem := name_problem(name)) is not None:  # before anything is asked
        suggestion = slug(name)
        raise MldeployError(f"--name: {problem}",
                            hint=f"try --name {suggestion}" if suggestion != name and name_problem(suggestion)
                            is None else "choose another name", exit_code=ExitCode.CONFIG)
    if from_copilot is not None:  # mldeploy/migrate/: the mapping, the check, the table
        from mldeploy.migrate.apply import init_from_copilot

        init_from_copilot(target, from_copilot, service=service, model=model, name=name, as_json=session.options.json)
        if ci is not None:
            _init_ci(target, ci, force)
        return
    if service is not None:
        raise MldeployError("--service needs --from-copilot", exit_code=ExitCode.USAGE)
    ask = console.interactive() and not session.options.yes
    if model is None:
        candidates = find_model_files(folder)
        if ask and candidates:
            from rich.prompt import Prompt

            console.info("Model files found:")
            for i, c in enumerate(candidates, 1):
                console.info(f"  {i}. {c.relative_to(folder) if c.is_relative_to(folder) else c} "
                             f"[dim]({guess_format(c)})[/dim]")
            choice = Prompt.ask("Which model?", console=console.console,
                                choices=[str(i) for i in range(1, len(candidates) + 1)], default="1")
            model = candidates[int(choice) - 1]
        elif ask:
            model = _ask_model_path()
        elif len(candidates) == 1:
            model = candidates[0]
        else:
            raise MldeployError("no --model given" + (f" and {len(candidates)} candidates found" if candidates else
                                                         " and no model file found"),
                                hint="pass --model PATH", exit_code=ExitCode.USAGE)
    model_abs = model if model.is_absolute() else (Path.cwd() / model)
    if not model_abs.exists():
        raise MldeployError(f"model not found: {model}", hint="check the path", exit_code=ExitCode.CONFIG)
    fmt = format or guess_format(model_abs)
    if fmt not in {f.value for f in ModelFormat}:
        raise MldeployError(f"--format {fmt!r} is not one of {', '.join(f.value for f in ModelFormat)}",
                            exit_code=ExitCode.USAGE)
    from_folder = name is None
    if name is None:
        name = _ask_name(default_name(folder)) if ask else default_name(folder)
    if ask and format is None:
        from rich.prompt import Prompt

        fmt = Prompt.ask("Model format", console=console.console, default=fmt,
                         choices=[f.value for f in ModelFormat])
    try:
        rel = model_abs.resolve().relative_to(folder.resolve())
        model_path = rel.as_posix()
    except ValueError:
        model_path = model_abs.resolve().as_posix()
    inputs = {"tensor_shape": None, "image_channels": None, "image_size": None, "torch_model": False,
              "input_note": ""}
    if fmt in ("torch", "torchscript"):
        inputs.update(_torch_inputs(model_abs, ask))
    frame = _frame_inputs(model_abs, fmt, folder) if fmt in ("pickle", "joblib") else {}
    text = render("mldeploy.yaml.j2", name=name, model_path=model_path, format=fmt, base_image=base_image,
                  **inputs, **{"frame_columns": None, "frame_strings": None, "frame_sample": None, **frame})
    parse_text(text, file=str(target), environ={})  # never write a file that does not validate
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    console.success(f"wrote {target} (model {model_path}, format {fmt})")
    if from_folder and not ask:
        console.info(f"  app name {name!r}, from the folder name {folder.resolve().name!r}; --name sets another")
    from mldeploy.artifacts.detect import describe_model

    if note := describe_model(model_abs, fmt):
        console.info(f"  {note}")
    if frame:
        columns = ", ".join(frame["frame_columns"])
        console.info(f"  a scikit-learn pipeline fitted on a pandas DataFrame (columns {columns}): served as "
                     f"{fmt} with pandas, requests are records" + (f"; model.sample_input: {frame['frame_sample']}"
                                                                   if frame["frame_sample"] else ""))
        if not frame["frame_sample"] and frame["frame_strings"]:
            console.warn(f"set model.sample_input in {target.name} before `mldeploy package`: the string columns "
                         f"{', '.join(frame['frame_strings'])} need example records (a commented example is in the "
                         "file)")
    console.info("next: [bold]mldeploy validate[/bold], then [bold]mldeploy up --target local[/bold]")
    if inputs["torch_model"]:
        from rich.markup import escape

        console.warn(escape(f"set model.inputs in {target.name} before `mldeploy package`: {inputs['input_note']} "
                            "(a commented example is in the file)"))
    if ci is not None:
        _init_ci(target, ci, force)


def _init_ci(target: Path, ci: CiProvider, force: bool) -> None:
    from mldeploy import console
    from mldeploy.ci.github import init_ci

    written = init_ci(target, ci.value, force=force)
    spec = written.spec
    console.success(f"wrote {written.path} (environments: {', '.join(spec.environments)})")
    if spec.requirements:  # hash-locked (ci.requirements): checked line by line when the workflow was written
        console.info(f"[dim]checked: every requirement in {spec.requirements} is pinned with a --hash[/dim]")
    else:
        _check_ci_install(spec.install, target)
    envs = ", ".join(f"{e} and {e}-release" for e in spec.environments)
    console.info("next: [bold]mldeploy iam-policy --github-oidc OWNER/REPO[/bold] prints a deploy and a release "
                 "role per environment (trust policy, permissions, setup commands); set "
                 f"[bold]{spec.role_variable}[/bold] as an environment variable of each GitHub environment ({envs}) "
                 "to its role's ARN, and protect them with required reviewers and main-only deployment branches")


def _check_ci_install(spec: str, config_file: Path) -> None:
    """Warn, with the fix, when pip cannot resolve what every workflow job installs (``ci.install``)."""
    from rich.markup import escape

    from mldeploy import console
    from mldeploy.ci.github import check_install

    checked = check_install(spec, cwd=config_file.parent)
    spec, detail = escape(spec), escape(checked.detail)
    fix = (f"set ci.install in {config_file.name} to something pip can install on the runner, e.g. "
           "`ci: {install: \"mldeploy @ git+https://github.com/ORG/REPO@TAG\"}` or a wheel committed to the "
           "repository (`./wheels/mldeploy-X.Y.Z-py3-none-any.whl`), then run `mldeploy init --ci github --force`")
    if checked.ok is False:
        console.warn(f"every job of the workflow installs {spec!r}, which pip cannot install here "
                     f"({detail}): the workflow would fail at its first step; {fix}")
    elif checked.ok is None:
        console.warn(f"could not check that pip can install {spec!r} ({detail}); if the runner cannot "
                     f"either, the workflow fails at its first step: {fix}")
    else:
        console.info(f"[dim]checked: pip resolves {spec}[/dim]")


def validate(ctx: typer.Context) -> None:
    """Check mldeploy.yaml (every environment overlay) and the model path."""
    from mldeploy import console
    from mldeploy.artifacts.detect import guess_format
    from mldeploy.config.loader import validate_all_envs
    from mldeploy.errors import ConfigError, Location, Problem

    session = Session.of(ctx)
    opts = session.options
    envs = [opts.env] if opts.env else validate_all_envs(opts.config)
    project = session.project
    cfg = project.config
    model_path = project.resolve(cfg.model.path)
    if not model_path.exists():
        from mldeploy.config.loader import _position  # noqa: PLC0415 - one shared position lookup
        from mldeploy.config.yamlpos import load_with_positions

        _, positions = load_with_positions(project.path.read_text(encoding="utf-8"))
        line, col = _position(positions, ("model", "path"))
        raise ConfigError([Problem(Location(str(project.path), line, col), "model.path",
                                   f"{cfg.model.path} does not exist (resolved to {model_path})")])
    warnings: list[str] = []
    fmt = cfg.model.format.value
    from mldeploy.artifacts.detect import resolve_format  # reads a few bytes; no framework imports
    from mldeploy.errors import ArtifactError

    try:
        fmt = resolve_format(model_path, fmt)
    except ArtifactError as e:
        warnings.append(f"{e.message}" + (f" ({e.hint})" if e.hint else ""))
        if fmt == "auto":
            fmt = guess_format(model_path)
    if fmt == "skops":  # refuse a file that would construct untrusted types, before anything is loaded
        from mldeploy.artifacts.skops_trust import audit

        audit(model_path, cfg.model.trusted_types)
    if fmt in ("pickle", "joblib"):
        warnings.append(
            f"{cfg.model.path} is a {fmt} file: loading it executes code. `mldeploy package` unpickles it on this "
            "machine (or on the CI runner that runs it) and every server unpickles it again at start, so package "
            "only files you made or fully trust; the sha256 pin only makes the server refuse a file changed after "
            "packaging. Prefer skops or ONNX (convert: onnx): mldeploy checks a skops file's types before loading it."
        )
    if cfg.runtime.auth.mode.value == "none":
        warnings.append("runtime.auth.mode is 'none': anyone who can reach the endpoint can call it")
    from mldeploy.config.loader import deploy_problems, deploy_warnings, load_project

    # what ECS needs beyond the schema (AWS plans check the same), in every environment validated
    checked = [project] + [load_project(opts.config, e) for e in envs if e != project.env]
    from mldeploy.ci.github import requirements_problems  # ci.requirements: exists, every line hash-locked

    locked = {str(p): p for each in checked for p in requirements_problems(each)}  # once, not per environment
    if problems := [p for each in checked for p in deploy_problems(each)] + list(locked.values()):
        raise ConfigError(problems)
    from mldeploy.cost.instances import fit_problems  # aws.compute ec2: the task fits aws.instance_type

    if fits := [Problem(Location(str(each.path)), f, m) for each in checked for f, m in fit_problems(each.config)]:
        raise ConfigError(fits)
    warnings += dict.fromkeys(w for each in checked for w in deploy_warnings(each.config))
    from mldeploy.cost.instances import fit_warnings  # compute ec2: network interfaces bound tasks per instance

    warnings += dict.fromkeys(w for each in checked for w in fit_warnings(each.config) if w not in warnings)
    for w in warnings:
        console.warn(w)
    summary = {
        "file": str(project.path), "name": cfg.name, "environments": envs, "model": cfg.model.path,
        "format": fmt, "fargate": {"cpu": cfg.aws.cpu, "memory": cfg.aws.memory}, "warnings": warnings,
        "resources": {"cluster": project.names.cluster, "service": project.names.service,
                      "load_balancer": project.names.load_balancer, "target_group": project.names.target_group},
    }
    if opts.json:
        console.emit_json({"valid": True, **summary})
        return
    console.success(f"{project.path.name} is valid ({', '.join(envs)}): app {cfg.name}, model {cfg.model.path} "
                    f"({fmt}), {compute_summary(cfg.aws)} {cfg.aws.cpu} CPU / {cfg.aws.memory} MiB")


def compute_summary(aws: Any) -> str:
    """"Fargate", or "EC2 g5.xlarge (1 GPU, 1 task per instance)" for aws.compute ec2."""
    if aws.compute != "ec2":
        return "Fargate"
    from mldeploy.cost.instances import fit

    got = fit(aws)
    per = got.tasks if got else 0
    gpus = f"{aws.gpus} GPU, " if aws.gpus else ""
    bound = f", {got.reason().split(':', 1)[0]}" if got and got.eni_bound else ""
    return f"EC2 {aws.instance_type} ({gpus}{per} task{'s' if per != 1 else ''} per instance{bound})"


def schema() -> None:
    """Print the JSON Schema of mldeploy.yaml (for editors' yaml-language-server)."""
    import json

    from mldeploy.config.schema import Config

    doc = Config.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "mldeploy.yaml"
    typer.echo(json.dumps(doc, indent=2))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(init)
    app.command()(validate)
    app.command()(schema)
