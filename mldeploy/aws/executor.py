"""Apply a plan step by step with progress; safe to interrupt: the next ``up`` re-plans and finishes the job."""

from __future__ import annotations

import time

from mldeploy import console
from mldeploy.aws.context import DeployContext
from mldeploy.aws.plan import Action, Plan, Step
from mldeploy.errors import AwsError, ExitCode, MldeployError


def apply(plan: Plan, ctx: DeployContext) -> list[dict]:
    """Run every changing step in order; returns one record per applied step (kind, name, action, seconds)."""
    done: list[dict] = []
    todo = [s for s in plan.steps if s.action is not Action.noop]
    if not todo:
        return done
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    live = console.interactive()
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console.console, transient=True, disable=not live)
    with progress:
        task = progress.add_task("applying", total=len(todo))
        for step in todo:
            progress.update(task, description=step.message[:80])
            t0 = time.monotonic()
            _run(step, ctx)
            seconds = round(time.monotonic() - t0, 2)
            done.append({"kind": step.kind, "name": step.name, "action": str(step.action), "seconds": seconds})
            console.console.print(f"  {_symbol(step)} {step.message} [dim]{seconds:.1f}s[/]", soft_wrap=True)
            progress.advance(task)
    return done


def _symbol(step: Step) -> str:
    from mldeploy.aws.plan import SYMBOL

    return SYMBOL[step.action]


def _run(step: Step, ctx: DeployContext) -> None:
    if step.apply is None:
        return
    try:
        step.apply(ctx)
    except MldeployError as e:
        e.message = f"{step.kind} {step.name}: {e.message}"
        e.args = (e.message,)
        e.hint = (e.hint + "; " if e.hint else "") + ("then run the command again: completed steps are kept and "
                                                      "the next run continues from here")
        raise
    except KeyboardInterrupt as e:
        # Typer turns a bare KeyboardInterrupt into a silent exit 130; say where we stopped and what to do
        raise MldeployError(f"interrupted while applying: {step.message}",
                            hint="nothing is lost: run the same command again and it continues from here "
                                 "(AWS finishes or rejects the in-flight call on its side)",
                            exit_code=ExitCode.INTERRUPTED) from e
    except Exception as e:
        raise AwsError(f"{step.kind} {step.name}: unexpected {type(e).__name__}: {e}",
                       hint="run the command again to continue; add --debug for the traceback") from e
