"""Console entry point: hoists global options, runs the Typer app, maps errors to exit codes."""

from __future__ import annotations

import sys

GLOBAL_WITH_VALUE = {"-f", "--config", "--env", "--region", "--profile"}
GLOBAL_FLAGS = {"--json", "--yes", "-y", "--debug"}


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move global options written after the sub-command to before it.

    ``mldeploy up --env prod`` then means ``mldeploy --env prod up``: the README's CLI contract says every
    command honours them, and users write them at the end. Stops at ``--``.
    """
    if not argv:
        return argv
    # find the sub-command: the first token that is not a global option (or its value)
    i = 0
    while i < len(argv):
        tok = argv[i]
        name = tok.split("=", 1)[0]
        if name in GLOBAL_WITH_VALUE:
            i += 1 if "=" in tok else 2
        elif name in GLOBAL_FLAGS or tok in ("--version", "--help"):
            i += 1
        else:
            break
    head, cmd, rest = argv[:i], argv[i:i + 1], argv[i + 1:]
    hoisted: list[str] = []
    kept: list[str] = []
    j = 0
    while j < len(rest):
        tok = rest[j]
        if tok == "--":
            kept.extend(rest[j:])
            break
        name = tok.split("=", 1)[0]
        if name in GLOBAL_WITH_VALUE:
            if "=" in tok:
                hoisted.append(tok)
                j += 1
            else:
                hoisted.extend(rest[j:j + 2])
                j += 2
            continue
        if name in GLOBAL_FLAGS:
            hoisted.append(tok)
        else:
            kept.append(tok)
        j += 1
    return head + hoisted + cmd + kept


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) the documented exit code."""
    import typer

    try:  # typer ≥ 0.20 vendors click; older versions use the click package
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover
        from click import ClickException

    from mldeploy import console
    from mldeploy.cli import app as app_module
    from mldeploy.cli.session import Slot
    from mldeploy.errors import ConfigError, ExitCode, MldeployError

    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    code: int = 0
    slot = Slot()  # the callback puts the session here; --debug decides about tracebacks below

    def debug() -> bool:
        return slot.session is not None and slot.session.options.debug

    try:
        result = app_module.app(args=args, prog_name="mldeploy", standalone_mode=False, obj=slot)
        code = result if isinstance(result, int) else 0
    except ConfigError as e:
        console.error(e.message, e.hint)
        for p in e.problems:
            console.gh_annotation("error", f"{p.field}: {p.message}" if p.field else p.message,
                                  p.location.file, p.location.line, p.location.column)
        code = e.exit_code
        if debug():
            console.console.print_exception()
    except MldeployError as e:
        console.error(e.message, e.hint)
        console.gh_annotation("error", e.message)
        code = e.exit_code
        if debug():
            console.console.print_exception()
    except typer.Abort:
        console.error("interrupted")
        code = ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        console.error("interrupted — nothing is lost: run the same command again to continue")
        code = ExitCode.INTERRUPTED
    except typer.Exit as e:  # typer turns Ctrl-C into Exit(130)
        code = e.exit_code
        if code == ExitCode.INTERRUPTED:
            console.error("interrupted — nothing is lost: run the same command again to continue")
    except ClickException as e:
        e.show()
        code = ExitCode.USAGE
    except Exception as e:  # an unexpected bug: short message unless --debug
        if debug():
            console.console.print_exception()
        else:
            console.error(f"unexpected {type(e).__name__}: {e}", "re-run with --debug for the traceback")
        code = ExitCode.ERROR
    sys.stdout.flush()
    if argv is None:
        sys.exit(int(code))
    return int(code)


if __name__ == "__main__":
    main()
