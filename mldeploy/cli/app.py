"""The Typer application: global options (the callback builds the :class:`~mldeploy.cli.session.Session`) and
the registration of every command module.

Each ``commands/*`` module owns a group of commands and exposes ``register(app)``. Command modules import only
typer at module level; heavy libraries are imported inside the command functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mldeploy import __version__
from mldeploy.cli.commands import MODULES
from mldeploy.cli.session import Options, Session, Slot


def _no_metavar_for_flags() -> None:
    """Typer's rich help shows every flag's type as a value placeholder (``--json <bool>``, also ``--help``),
    although flags take no value (click's plain help shows none). Show nothing for flags; everything else in
    ``--help`` is unchanged."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_mldeploy", False):
        return

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        if self.is_flag and self.metavar is None:
            return None
        return shown(self, ctx)

    display_type_rich._mldeploy = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


def _no_pydantic_for_absent_options() -> None:
    """Typer (0.29 here) coerces each parameter through a pydantic ``TypeAdapter`` built on first use — also an option
    left at its ``None`` default, where coercion gives ``None`` again. ``mldeploy <command> --help`` processes the
    global options (``--config``, ``--env``, ``--region``, ``--profile``) before the command's help, so it imported
    pydantic for nothing (about 0.1 s, a third of the startup goal). Skip the coercion in exactly that case (an
    optional, single ``None`` value; its callback still runs, as Typer's own order has it); every other value is
    coerced by Typer as before."""
    from typer import core

    param = getattr(core, "_TyperParameter", None)  # older Typer: click's own types, no pydantic
    if param is None or getattr(param.process_value, "_mldeploy", False):
        return
    coerced = param.process_value

    def process_value(self: Any, ctx: typer.Context, value: Any) -> Any:
        if value is None and not self.required and not self.multiple and self.nargs == 1:
            return None if self.callback is None else self.callback(ctx, self, None)
        return coerced(self, ctx, value)

    process_value._mldeploy = True  # type: ignore[attr-defined]
    param.process_value = process_value


_no_metavar_for_flags()
_no_pydantic_for_absent_options()

app = typer.Typer(
    name="mldeploy",
    help="ML deploy in one command: a trained model + mldeploy.yaml → an autoscaled HTTPS endpoint on AWS Fargate.\n\n"
    "Global options may be given before or after the command.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mldeploy {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-f", help="Path to mldeploy.yaml.",
                                                 envvar="MLDEPLOY_CONFIG")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Environment overlay (dev, staging, prod…).",
                                            envvar="MLDEPLOY_ENV")] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region (overrides aws.region).")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="AWS profile (overrides aws.profile).")] = None,
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to confirmations (needed in CI).")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Global options."""
    session = Session(Options(config=config, env=env, region=region, profile=profile, json=json, yes=yes,
                              debug=debug))
    if isinstance(ctx.obj, Slot):
        ctx.obj.session = session
    ctx.obj = session
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG)


for module in MODULES:
    module.register(app)
