"""Step outputs and markdown summaries for GitHub Actions, on top of :mod:`mldeploy.console`.

The only writer of step outputs and summaries: commands call one ``*_report`` with what they produced; outside
GitHub Actions it does nothing (``console.set_outputs``/``add_summary`` are no-ops without ``$GITHUB_OUTPUT``/
``$GITHUB_STEP_SUMMARY``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mldeploy import console


def md(value: Any) -> str:
    """A value as one markdown table cell (pipes escaped, newlines flattened, None as a dash)."""
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        value = f"{value:,.2f}"
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", "<br>")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(md(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def key_values(values: Mapping[str, Any]) -> str:
    """A two-column markdown table of the non-empty ``values``."""
    return table(["", ""], [(f"**{md(k)}**", v) for k, v in values.items() if v is not None])


def report(title: str, *, outputs: Mapping[str, Any] | None = None, facts: Mapping[str, Any] | None = None,
           body: str = "") -> None:
    """Write ``outputs`` to ``$GITHUB_OUTPUT`` and a ``### title`` section (facts table + body) to the summary."""
    if outputs:
        console.set_outputs(dict(outputs))
    parts = [f"### {title}"]
    if facts:
        parts.append(key_values(facts))
    if body:
        parts.append(body.strip())
    console.add_summary("\n\n".join(parts))


# --------------------------------------------------------------------------- per-command reports
# Each takes what the command already computed (plain dicts/dataclasses) and never calls AWS or Docker itself.


def _mib(size: int | None) -> str | None:
    return None if size is None else f"{size / 2**20:,.1f} MiB"


def digest_of(ref: str | None) -> str | None:
    """``repo@sha256:…`` → ``sha256:…``."""
    return ref.split("@", 1)[1] if ref and "@sha256:" in ref else None


def package_report(result: Any) -> None:
    """``package``: the artifact folder (mldeploy.artifacts.PackageResult); outputs only."""
    m = result.manifest
    console.set_outputs({"artifact_dir": str(result.dir), "model_format": m.format, "model_sha256": m.sha256})


def build_report(built: Any) -> None:
    """``build``: the local image (mldeploy.image.api.BuiltImage)."""
    report(f"mldeploy build `{built.repository}`",
           outputs={"image": built.ref, "image_id": built.image_id, "image_size": built.size,
                    "version": built.model_version},
           facts={"Image": f"`{built.ref}`", "Model version": built.model_version,
                  "Model sha256": f"`{built.model_sha256[:16]}…`", "Size": _mib(built.size),
                  "Added over the base": _mib(built.added_size), "Build time": f"{built.build_seconds:.1f} s",
                  "Cached steps": f"{built.cached_steps}/{built.steps}", "Git commit": built.git_commit})


def push_report(pushed: Any, version: str | None = None) -> None:
    """``push``: the pushed image (mldeploy.image.api.PushedImage)."""
    report("mldeploy push",
           outputs={"image_uri": pushed.uri, "image_digest": pushed.digest, "image_ref": pushed.ref,
                    "version": version},
           facts={"Image": f"`{pushed.uri}`", "Digest": f"`{pushed.digest}`", "Tags": ", ".join(pushed.tags)})


def plan_report(base: str, plan: Mapping[str, Any]) -> None:
    """``plan``: the changes (Plan.to_json()) and the cost estimate."""
    changes = [s for s in plan.get("steps", []) if s.get("action") != "noop"]
    counts = ", ".join(f"{n} {a}" for a, n in (plan.get("summary") or {}).items() if n)
    estimate = plan.get("estimate") or {}
    cost = estimate.get("line") or (f"${estimate['monthly_usd']:,.2f}/month" if "monthly_usd" in estimate else None)
    body = table(["", "resource", "name", "change"],
                 [({"create": "➕", "update": "✏️", "delete": "➖"}.get(s["action"], s["action"]), s.get("kind"),
                   f"`{s.get('name')}`", s.get("message")) for s in changes]) if changes else "No changes."
    notes = "\n".join(f"- {n}" for n in plan.get("notes") or [])
    report(f"mldeploy plan `{base}`", outputs={"changes": len(changes)},
           facts={"Changes": counts or "none", "Estimated cost": cost}, body=body + ("\n\n" + notes if notes else ""))


def up_report(base: str, version: str, result: Mapping[str, Any]) -> None:
    """``up --target aws``: URL, image and changes applied (workflows.up.up_aws's result)."""
    image = result.get("image")
    console.add_summary(f"### mldeploy up `{base}`\n\n- URL: {result.get('url')}\n- image: `{image}`\n"
                        f"- changes applied: {len(result.get('applied') or [])}")
    console.set_outputs({"url": result.get("url"), "version": version, "image_uri": image,
                         "image_digest": digest_of(image), "task_definition_arn": result.get("task_definition")})


def release_report(command: str, base: str, version: str, result: Mapping[str, Any], url: str | None = None) -> None:
    """``canary``/``promote``/``rollback``: what serves traffic now (mldeploy.release.canary.summary())."""
    stable = result.get("stable") or {}
    canary = result.get("canary") or {}
    record = result.get("record") or {}
    if canary:
        state = f"canary rev {canary.get('revision')} gets {canary.get('percent')} % of traffic"
    else:
        state = "no canary: the stable version serves all traffic"
    task_def = canary.get("task_definition") if command == "canary" and canary else stable.get("task_definition")
    report(f"mldeploy {command} `{base}`",
           outputs={"url": url, "version": record.get("version") or version, "task_definition_arn": task_def,
                    "canary_state": "active" if canary else "none", "canary_percent": canary.get("percent"),
                    "canary_revision": canary.get("revision"), "stable_revision": stable.get("revision")},
           facts={"Canary": state, "Stable revision": stable.get("revision"), "Weights": result.get("weights"),
                  "Version": record.get("version") or version, "Outcome": record.get("outcome"), "URL": url})


def status_report(base: str, info: Mapping[str, Any]) -> None:
    """``status``: URL, running/desired, alarms."""
    svc = info.get("service") or {}
    alarms = info.get("alarms") or {}
    firing = [k for k, v in alarms.items() if v == "ALARM"]
    report(f"mldeploy status `{base}`",
           outputs={"url": info.get("url"), "deployed": str(bool(info.get("deployed"))).lower(),
                    "task_definition_arn": svc.get("task_definition")},
           facts={"Deployed": "yes" if info.get("deployed") else "no", "URL": info.get("url"),
                  "Tasks": f"{svc.get('running')}/{svc.get('desired')} running" if svc else None,
                  "Alarms": ", ".join(firing) + " in ALARM" if firing else ("all OK" if alarms else None)})
