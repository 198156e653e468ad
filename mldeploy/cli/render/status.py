"""``mldeploy status`` on a terminal (stderr), from ``mldeploy.aws.status.collect``'s dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mldeploy import console
from mldeploy.cli.render import print_table


def print_status(base: str, region: str, info: Mapping[str, Any]) -> None:
    from rich.table import Table

    c = console.console
    if not info["deployed"]:
        c.print(f"[yellow]{base} is not deployed in {region}[/] (run `mldeploy up`)")
        return
    s = info["service"]
    c.print(f"[bold]{base}[/] ({region})  {info['url'] or ''}")
    c.print(f"service {s['name']}: {s['status']}, {s['running']}/{s['desired']} running, {s['pending']} pending")
    version = f" (version {info['version']})" if info.get("version") else ""
    c.print(f"image: {info['image']}{version}")
    can = info.get("canary")
    if can:
        c.print(f"canary {can['name']}: [bold]{can['percent']}%[/] of traffic, {can['running']}/{can['desired']} "
                f"running, revision {can.get('revision')} (version {can.get('version') or '?'}), "
                f"image {can.get('image')}")
    else:
        c.print("canary: none")
    shadow = info.get("shadow")
    if shadow and shadow.get("rows"):
        from mldeploy.release.gates import lines

        for line in lines(shadow):
            c.print(f"shadow: {line}")
    table = Table("deployment", "status", "rollout", "running/desired", "task definition", box=None)
    for d in info["deployments"]:
        table.add_row(str(d["id"]), str(d["status"]), str(d["rollout"]), f"{d['running']}/{d['desired']}",
                      str(d["task_definition"]).rsplit("/", 1)[-1])
    print_table(c, table)
    if info["tasks"]:
        tt = Table("task", "status", "health", "revision", "capacity", box=None)
        for t in info["tasks"]:
            tt.add_row(t["id"], str(t["status"]), str(t["health"]), t["task_definition"], str(t["capacity"]))
        print_table(c, tt)
    else:
        c.print("tasks: none running")
    targets = ", ".join(f"{v} {k}" for k, v in sorted(info["targets"].items())) or "none registered"
    c.print(f"targets: {targets}")
    alarms = ", ".join(f"{k.removeprefix(f'mldeploy-{base}-')}: {v}" for k, v in info["alarms"].items())
    c.print(f"alarms: {alarms or 'none'}")
