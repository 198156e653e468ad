"""``mldeploy init --from-copilot``: read the workspace, map it, check the result validates, write it, report.

The written file is checked with the loader itself (``parse_text``, every environment overlay) before it is written;
a value mldeploy refuses is reported at the Copilot field and manifest line it came from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mldeploy.errors import ConfigError, Problem
from mldeploy.migrate.copilot import MAPPED, MODEL_PLACEHOLDER, Migration, MigrationError, Row, convert
from mldeploy.migrate.copilot_files import Workspace, load_workspace
from mldeploy.migrate.yaml_out import dump

_CHECK_ENV = {"AWS_ACCOUNT_ID": "123456789012", "AWS_REGION": "us-east-1"}


class _CheckEnviron(Mapping[str, str]):
    """For the pre-write check only: placeholders for ``${VAR}`` the file reads at load time."""

    def __getitem__(self, key: str) -> str:
        return _CHECK_ENV.get(key, "placeholder")

    def __iter__(self) -> Iterator[str]:
        return iter(_CHECK_ENV)

    def __len__(self) -> int:
        return len(_CHECK_ENV)


@dataclass
class Result:
    text: str
    migration: Migration
    workspace: Workspace


def build(source: Path, target: Path, *, service: str | None = None, model_path: str | None = None,
          name: str | None = None) -> Result:
    """The mldeploy.yaml text for a Copilot workspace or manifest (not written)."""
    ws = load_workspace(source, service)
    try:
        migration = convert(ws.service.data, {e: m.data for e, m in ws.environments.items()},
                            model_path=model_path, name=name, app=ws.app)
    except MigrationError as e:
        raise ConfigError([Problem(ws.locate(e.field), e.field, e.message)],
                          hint="fix the manifest value, or edit mldeploy.yaml by hand after `init`") from e
    text = dump(migration.config, migration.comments, header=_header(ws, migration))
    _check(text, target, migration, ws)
    return Result(text, migration, ws)


def _header(ws: Workspace, migration: Migration) -> str:
    lines = [f"Written by `mldeploy init --from-copilot` from {ws.service.path} (AWS Copilot "
             f"{ws.service.data.get('type')} {ws.service.data.get('name')!r}).",
             "Each carried value names the Copilot field it came from (# copilot: FIELD); docs/migrate-from-copilot.md",
             "tells how to cut DNS over and delete the Copilot service afterwards."]
    if migration.config.get("model", {}).get("path") == MODEL_PLACEHOLDER:
        lines.append(f"TODO: set model.path (it is {MODEL_PLACEHOLDER!r}: `mldeploy validate` refuses it).")
    skipped = [r for r in migration.rows if r.status != MAPPED]
    if skipped:
        lines += ["", "Not carried over:"] + [f"  {r.copilot}: {r.status} — {r.note}" for r in skipped]
    return "\n".join(lines) + "\n"


def _check(text: str, target: Path, migration: Migration, ws: Workspace) -> None:
    from mldeploy.config.loader import parse_text

    envs = [None, *migration.config.get("environments", {})]
    for env in envs:
        try:
            parse_text(text, file=str(target), env=env, environ=_CheckEnviron())
        except ConfigError as e:
            problems = []
            for p in e.problems:
                scoped = f"environments.{env}.{p.field}" if env and not p.field.startswith("environments") else p.field
                source = migration.source_of(scoped) or migration.source_of(p.field)
                if source is None:
                    problems.append(p)
                    continue
                problems.append(Problem(ws.locate(source), source, f"{p.message} (as mldeploy {scoped})"))
            raise ConfigError(problems, hint="mldeploy refuses this value; change it in the manifest or edit "
                                             "mldeploy.yaml after `init`") from e


def rows_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [{"copilot": r.copilot, "mldeploy": r.mldeploy, "status": r.status, "note": r.note} for r in rows]


def print_table(rows: list[Row]) -> None:
    """Copilot field → mldeploy field, and every field not carried over with why."""
    from rich.table import Table
    from rich.text import Text

    from mldeploy import console

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, title="Copilot → mldeploy")
    # field names and the status stay whole (one can search for them); the reason column wraps
    for column in ("Copilot field", "mldeploy field", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("value / why not", overflow="fold")
    for r in rows:  # Text: no markup or :emoji: codes read from manifest values (":secret:" in an ARN)
        table.add_row(Text(r.copilot), Text(r.mldeploy or "—"),
                      Text(r.status, style="green" if r.status == MAPPED else "yellow"), Text(r.note))
    console.console.print(table)


def init_from_copilot(target: Path, source: Path, *, service: str | None, model: Path | None, name: str | None,
                      as_json: bool) -> None:
    """Write ``target`` from a Copilot workspace and print what was carried over and what was not."""
    from mldeploy import console
    from mldeploy.errors import ExitCode, MldeployError

    model_path = None
    if model is not None:
        model_abs = model if model.is_absolute() else Path.cwd() / model
        if not model_abs.exists():
            raise MldeployError(f"model not found: {model}", hint="check the --model path", exit_code=ExitCode.CONFIG)
        try:
            model_path = model_abs.resolve().relative_to(target.parent.resolve()).as_posix()
        except ValueError:
            model_path = model_abs.resolve().as_posix()
    result = build(source, target, service=service, model_path=model_path, name=name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(result.text, encoding="utf-8")
    rows = result.migration.rows
    if as_json:
        console.emit_json({"file": str(target), "service": str(result.workspace.service.path),
                           "environments": list(result.migration.config.get("environments", {})),
                           "rows": rows_json(rows)})
        return
    print_table(rows)
    carried = sum(r.status == MAPPED for r in rows)
    console.success(f"wrote {target} from {result.workspace.service.path}: {carried} field"
                    f"{'s' if carried != 1 else ''} carried over, {len(rows) - carried} not (listed above and at the "
                    "top of the file)")
    if model_path is None:
        console.warn(f"set model.path in {target.name} (now {MODEL_PLACEHOLDER!r}) or rerun with --model PATH: "
                     "`mldeploy validate` refuses the placeholder")
    console.info("next: [bold]mldeploy validate[/bold], [bold]mldeploy plan[/bold]; then cut DNS over "
                 "(docs/migrate-from-copilot.md)")
