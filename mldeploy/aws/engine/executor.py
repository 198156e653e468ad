"""Run a plan: each changing step's instructions in order, resolving ``Ref``/``Fn`` values as outputs appear.

Safe to interrupt: every step is idempotent against what the next plan reads, so the next run re-plans and
finishes the job. Errors name the step and say so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mldeploy.aws.clients import call, error_code
from mldeploy.aws.engine.model import Action, ApiCall, Fn, Instruction, Plan, Ref, Step, Wait
from mldeploy.errors import AwsError, ExitCode, MldeployError
from mldeploy.polling import PollTimeout, poll_interval, poll_until

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.ui import Ui

SYMBOL = {Action.create: "[green]+[/]", Action.update: "[yellow]~[/]", Action.replace: "[magenta]±[/]",
          Action.delete: "[red]-[/]", Action.noop: "[dim]=[/]"}

MISSING_HINT = {"image": "run `mldeploy up` (it builds and pushes) or pass --image URI"}


def _fn(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if name == "after":
        text, marker = str(args[0]), str(args[1])
        return text.split(marker, 1)[1] if marker in text else text
    if name == "json":
        return json.dumps(args[0], sort_keys=True, separators=(",", ":"))
    if name == "format":
        return str(args[0]).format(**kwargs)
    if name == "join":
        return str(args[0]).join(str(a) for a in args[1])
    raise AwsError(f"unknown plan function {name!r}")


def _jmespath(expression: str, data: Any) -> Any:
    import jmespath

    return jmespath.search(expression, data)


class Executor:
    """Interprets ``ApiCall`` and ``Wait`` instructions against real clients; ``values`` holds resolved refs."""

    def __init__(self, clients: Clients, ui: Ui, values: dict[str, Any] | None = None,
                 waiters: dict[str, Callable[..., Any]] | None = None) -> None:
        self.clients = clients
        self.ui = ui
        self.values: dict[str, Any] = dict(values or {})
        if waiters is None:
            from mldeploy.aws.waiters import WAITERS

            waiters = WAITERS
        self.waiters = waiters

    # ------------------------------------------------------------------------------------------- values

    def resolve(self, value: Any) -> Any:
        """``value`` with every ``Ref``/``Fn`` replaced by what the earlier calls produced."""
        if isinstance(value, Ref):
            if value.name not in self.values:
                raise AwsError(f"no value for {value.name} (an earlier step did not produce it)",
                               hint=MISSING_HINT.get(value.name, "run the command again"))
            return self.values[value.name]
        if isinstance(value, Fn):
            return _fn(value.name, [self.resolve(a) for a in value.args],
                       {k: self.resolve(v) for k, v in value.kwargs})
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.resolve(v) for v in value]
        return value

    # ------------------------------------------------------------------------------------- instructions

    def run_call(self, instruction: ApiCall) -> Any:
        params = self.resolve(instruction.params)
        method = getattr(self.clients.get(instruction.service), instruction.op)
        if instruction.retry:
            response = self._call_retrying(instruction, method, params)
        else:
            response = call(method, missing=instruction.missing, **params)
        if response is not None:
            for name, expression in instruction.outputs:
                self.values[name] = _jmespath(expression, response)
        return response

    def _call_retrying(self, instruction: ApiCall, method: Any, params: dict[str, Any]) -> Any:
        def attempt() -> Any:
            try:
                return ("done", call(method, missing=instruction.missing, **params))
            except AwsError as e:
                code, text = error_code(e.__cause__), str(e.__cause__ or e).lower()
                if any(r.code == code and r.contains.lower() in text for r in instruction.retry):
                    return None
                raise

        try:
            return poll_until(attempt, timeout=instruction.retry_timeout_s, interval=poll_interval(),
                              what=f"{instruction.service}.{instruction.op}")[1]
        except PollTimeout:
            return call(method, missing=instruction.missing, **params)  # the last try raises AWS's own error

    def run_wait(self, instruction: Wait) -> None:
        waiter = self.waiters.get(instruction.what)
        if waiter is None:
            raise AwsError(f"unknown wait {instruction.what!r}")
        waiter(self.clients, self.ui, timeout=instruction.timeout_s, **self.resolve(instruction.params))

    def run(self, instruction: Instruction) -> Any:
        if isinstance(instruction, ApiCall):
            return self.run_call(instruction)
        return self.run_wait(instruction)

    # ---------------------------------------------------------------------------------------------- steps

    def run_step(self, step: Step) -> None:
        try:
            for instruction in step.calls:
                self.run(instruction)
        except MldeployError as e:
            e.message = f"{step.kind} {step.name}: {e.message}"
            e.args = (e.message,)
            e.hint = (e.hint + "; " if e.hint else "") + ("then run the command again: completed steps are kept "
                                                          "and the next run continues from here")
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

    def apply(self, plan: Plan | list[Step]) -> list[dict[str, Any]]:
        """Run every changing step in order with progress; one record per applied step."""
        steps = plan.steps if isinstance(plan, Plan) else plan
        todo = [s for s in steps if s.action is not Action.noop]
        done: list[dict[str, Any]] = []
        if not todo:
            return done
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=self.ui.console, transient=True,
                            disable=not self.ui.interactive or self.ui.quiet)
        with progress:
            task = progress.add_task("applying", total=len(todo))
            for step in todo:
                progress.update(task, description=step.message[:80])
                t0 = time.monotonic()
                self.run_step(step)
                seconds = round(time.monotonic() - t0, 2)
                done.append({"kind": step.kind, "name": step.name, "action": str(step.action), "seconds": seconds})
                self.ui.print(f"  {SYMBOL[step.action]} {step.message} [dim]{seconds:.1f}s[/]", soft_wrap=True)
                progress.advance(task)
        return done
