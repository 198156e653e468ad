"""``cost`` (monthly estimate per traffic level) and ``bench`` (load test → per-task capacity)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mldeploy.cli.options import ApiKey
from mldeploy.cli.session import Session

DEFAULT_LEVELS = "100,1000,10000"


def _levels(text: str) -> list[float]:
    from mldeploy.errors import MldeployError

    levels: list[float] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            value = float(part.lower().replace("k", "e3"))
        except ValueError:
            raise MldeployError(f"--rps: {part!r} is not a number; give a list like 100,1000,10000") from None
        if value < 0 or value != value or value == float("inf"):
            raise MldeployError(f"--rps: {part!r} must be a finite rate ≥ 0")
        levels.append(value)
    if not levels:
        raise MldeployError("--rps: give at least one request rate, e.g. --rps 100,1000,10000")
    return sorted(set(levels))


def _plot_arg(args: list[str]) -> str | None:
    """``--plot [FILE]`` from the leftover arguments: ``-`` (terminal) without FILE, else FILE.

    Click options cannot take an optional value (typer has no ``flag_value``), so ``--plot`` is parsed here from
    the arguments the command lets through; anything else left over is an unknown option.
    """
    from mldeploy.errors import ExitCode, MldeployError

    plot: str | None = None
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--plot":
            nxt = args[i + 1] if i + 1 < len(args) else None
            if nxt is not None and not nxt.startswith("-"):
                plot, i = nxt, i + 2
            else:
                plot, i = "-", i + 1
        elif tok.startswith("--plot="):
            plot, i = tok.split("=", 1)[1] or "-", i + 1
        else:
            raise MldeployError(f"no such option or argument: {tok}", hint="see `mldeploy cost --help`",
                                exit_code=ExitCode.USAGE)
    return plot


def cost(
    ctx: typer.Context,
    rps: Annotated[str | None, typer.Option("--rps", help="Request rates (req/s), comma-separated; k = 1000. "
                                            f"Default: {DEFAULT_LEVELS} when a capacity is known.")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="x86 vs ARM vs Spot side by side, then ECS on EC2 and "
                                          "Lambda at the same load.")] = False,
    capacity: Annotated[float | None, typer.Option("--capacity", min=0.001, help="Requests/s one task sustains "
                                                   "(overrides cost.capacity_rps_per_task and bench).")] = None,
    live: Annotated[bool, typer.Option("--live", help="Refresh unit prices from the AWS Pricing API "
                                       "(cached 24 h under ~/.cache/mldeploy).")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="Show the arithmetic of every component.")] = False,
) -> None:
    r"""Estimate the monthly AWS bill per traffic level: Fargate, ALB LCUs, logs, metrics, ECR, NAT, data transfer.

    [bold]--plot \[FILE.png][/bold]: monthly cost against request rate, drawn into FILE.png, or in the terminal
    without FILE.
    """
    from mldeploy import console
    from mldeploy.cli.render import cost as render
    from mldeploy.cost import capacity as capacities
    from mldeploy.cost import model, prices, report
    from mldeploy.cost import plot as plots

    session = Session.of(ctx)
    plot = _plot_arg(list(ctx.args))
    project = session.project
    config = project.config
    region = session.region or prices.DEFAULT_REGION
    table = prices.load(live=live, region=region, profile=session.profile if live else None)
    if table.warning:
        console.warn(table.warning)
    if live and table.origin != "bundled":
        missing = sorted(set(prices.LIVE_ITEMS) - set(table.live_items))
        console.info(f"prices: AWS Pricing API ({table.origin}) for {len(table.live_items)} items"
                     + (f"; bundled for {', '.join(missing)}" if missing else ""))

    known = capacities.resolve(project, capacity)
    render.measured_size_warning(known, config.aws.cpu, config.aws.memory)
    levels = capacities.levels(_levels(rps) if rps is not None else None, known)
    if levels == [None]:
        render.no_capacity_warning()

    if known.estimated:
        render.estimated_capacity_warning(known)
    kw = {"capacity": known.rps_per_task, "capacity_source": known.source, "region": region, "prices": table,
          "capacity_estimated": known.estimated}
    if compare:
        config = model.fargate_equivalent(config)  # compute ec2: the Fargate variants of the same task size
        by_variant = {name: [model.estimate(config, r, arch=arch, spot=spot, **kw) for r in levels]
                      for name, arch, spot in model.variants(config)}
    else:
        ests = [model.estimate(config, r, **kw) for r in levels]
        by_variant = {ests[0].variant: ests}

    first = next(iter(by_variant.values()))
    others = None
    if compare:
        from mldeploy.cost.alternatives import alternatives

        others = [(e, alternatives(e, config, table)) for e in first]
    if session.json:
        doc = report.to_json(by_variant)
        doc["notes"] = report.notes(first)
        if others is not None:
            doc["alternatives"] = [{"rps": e.rps, **{a.key: {"name": a.name, "total": None if a.total is None else
                                                           round(a.total, 2), "source": a.source, "notes": a.notes}
                                                    for a in alts}} for e, alts in others]
    else:
        render.print_estimates(by_variant, explain=explain, compare=compare, alternatives=others)

    if plot is not None:
        numeric = [r for r in levels if r]
        if not numeric:
            from mldeploy.errors import MldeployError

            raise MldeployError("--plot needs request rates above 0: pass --rps (and a capacity, see above)")
        names = list(by_variant)
        variants = {name: (arch, spot) for name, arch, spot in model.variants(config)}

        def at(x: float, name: str) -> model.Estimate:
            if name in variants and compare:
                arch, spot = variants[name]
                return model.estimate(config, x, arch=arch, spot=spot, **kw)
            return model.estimate(config, x, **kw)

        target = console.console if session.json else console.out  # with --json, stdout carries only the JSON
        if plot == "-":
            target.print(plots.terminal(plots.curves_for(at, names, numeric)))
        else:
            curves = plots.curves_for(at, names, plots.sweep_points(numeric))
            try:
                path = plots.png(curves, numeric, Path(plot), f"{config.name}: monthly cost, {region}, "
                                 f"{config.aws.cpu / 1024:g} vCPU / {config.aws.memory / 1024:g} GB tasks")
            except plots.MatplotlibMissing as e:  # the estimate is there: show the terminal chart instead
                from rich.markup import escape

                console.warn(escape(f"{e.message}: {plot} not written; the terminal chart follows "
                                    "(pip install 'mldeploy[plot]' for the PNG)"))
                target.print(plots.terminal(plots.curves_for(at, names, numeric)))
                path = None
            else:
                console.success(f"plot written to {path}")
            if session.json:
                doc["plot"] = str(path) if path else None
    if session.json:
        console.emit_json(doc)


def bench(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option("--url", help="Endpoint URL (default: the local run's).")] = None,
    local: Annotated[bool, typer.Option("--local", help="Package the model and start the runtime locally "
                                        "(python -m runtime) for the test.")] = False,
    duration: Annotated[float, typer.Option("--duration", help="Measured seconds (≤ 600).")] = 10.0,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="Requests in flight.")] = 8,
    warmup: Annotated[float, typer.Option("--warmup", help="Unmeasured seconds first.")] = 2.0,
    input_file: Annotated[str | None, typer.Option("--input", "-i", help="Request body: a .json or .npy file, or - "
                                                   "(default: the manifest's sample input).")] = None,
    tasks: Annotated[int, typer.Option("--tasks", min=1, help="Tasks behind --url (capacity = req/s ÷ tasks).")] = 1,
    max_requests: Annotated[int | None, typer.Option("--max-requests", min=1, help="Stop after N requests.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Per-request timeout (s).")] = 10.0,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Store the per-task capacity for `cost`.")] = True,
    api_key: ApiKey = None,
) -> None:
    """Load-test an endpoint for a bounded time: req/s, p50/p95/p99, errors; stores the per-task capacity."""
    import contextlib

    from mldeploy import console
    from mldeploy.cli.render.cost import print_bench
    from mldeploy.cost import bench as b
    from mldeploy.errors import MldeployError
    from mldeploy.local import client as p

    if url and local:
        raise MldeployError("--url and --local exclude each other")
    session = Session.of(ctx)
    project = session.project
    request = p.file_request(input_file) if input_file else p.sample_request(project)
    with contextlib.ExitStack() as stack:
        scale, note = 1.0, None
        if local:
            from mldeploy.local.runtime_proc import LocalRuntime

            server = stack.enter_context(LocalRuntime(project))
            target, source, scale, note = b.endpoint(server.url), "local", server.scale, server.note
            console.info(f"[dim]{note}[/dim]")
        else:
            target, source = b.endpoint(url or p.default_url(project)), "url"
        console.info(f"bench: POST {target} ({request.source}) for {warmup:g}+{duration:g} s, "
                     f"concurrency {concurrency}")
        result = b.run(target, body=request.body, content_type=request.content_type,
                       headers=p.auth_headers(project, api_key), duration=duration, concurrency=concurrency,
                       warmup=warmup, max_requests=max_requests,
                       timeout=timeout)
    record = None
    if save and result.ok:
        record = b.save_capacity(project, result, tasks, source, scale=scale, note=note)
    if session.json:
        console.emit_json({**result.to_dict(), "capacity": record})
    else:
        print_bench(target, result)
        if record:
            console.success(f"capacity {record['capacity_rps_per_task']:g} req/s per task stored in "
                            f"{b.capacity_path(project).relative_to(project.root)} (used by `mldeploy cost`)")
    if result.requests and result.error_rate > 0.01:
        console.warn(f"{result.error_rate:.1%} of requests failed: the capacity is overstated — lower --concurrency")
    if not result.ok:
        raise MldeployError(f"no successful request to {target} ({result.errors} errors)",
                            hint=result.error_samples[0] if result.error_samples else None)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(cost)
    app.command()(bench)
