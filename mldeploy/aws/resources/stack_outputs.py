"""Deployment outputs (URL, image, task definition, ALB DNS) kept durably in SSM Parameter Store under
``names.ssm_prefix``.

CI runners are ephemeral, so ``status``/``canary``/``rollback`` read these (``read``) instead of a local cache.
Reads ``known``: ``image``, ``task_definition_arn``, ``alb_dns`` (values or refs; the parameters get them once
the calls that produce them ran). The URL is ``load_balancer.url``.
"""

from __future__ import annotations

from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Step, is_unknown, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec
from mldeploy.aws.resources import load_balancer

KIND = "outputs (ssm)"
KEYS = ("url", "image", "task-definition", "alb-dns")
BATCH = 10
"""SSM GetParameters / DeleteParameters take at most 10 names (ParameterNameList ``max``, service-2.json)."""


def prefix(spec: StackSpec) -> str:
    return spec.names.ssm_prefix.rstrip("/") + "/"


def values(spec: StackSpec, known: Known) -> dict[str, Any]:
    """Parameter key → value (None: not known to this plan, left as it is)."""
    dns = known.get("alb_dns")
    return {"url": load_balancer.url(spec, known) if dns is not None else None, "image": known.get("image"),
            "task-definition": known.get("task_definition_arn"), "alb-dns": dns}


def read(spec: StackSpec, remote: Remote) -> dict[str, str]:
    """Current outputs from SSM (key → value)."""
    found = remote.get("ssm", "get_parameters", Names=[prefix(spec) + k for k in KEYS])["Parameters"]
    return {p["Name"].removeprefix(prefix(spec)): p["Value"] for p in found}


def _put(spec: StackSpec, key: str, value: Any, exists: bool) -> ApiCall:
    params: dict[str, Any] = {"Name": prefix(spec) + key, "Value": value if is_unknown(value) else str(value),
                              "Type": "String"}
    if exists:
        params["Overwrite"] = True
    else:
        # SSM PutParameter: tags only on creation ("To add tags to an existing Systems Manager parameter, use the
        # AddTagsToResource operation"); AWS rejects Tags together with Overwrite
        params["Tags"] = spec.tag_list()
    return ApiCall("ssm", "put_parameter", params)


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    current = read(spec, remote)
    want = values(spec, known)
    changed = [k for k in KEYS if want[k] is not None and (is_unknown(want[k]) or current.get(k) != str(want[k]))]
    name = spec.names.ssm_prefix
    if not changed:
        return [noop(KIND, name)]
    return [Step(KIND, name, Action.update if current else Action.create, changed,
                 calls=[_put(spec, k, want[k], k in current) for k in changed])]


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Every parameter under the prefix: the outputs, and the release history and lock kept there."""
    names = [p["Name"] for p in remote.pages("ssm", "get_parameters_by_path", "Parameters",
                                             Path=spec.names.ssm_prefix, Recursive=True)]
    if not names:
        return []
    return [Step(KIND, spec.names.ssm_prefix, Action.delete, [f"{len(names)} parameters"], calls=[
        ApiCall("ssm", "delete_parameters", {"Names": names[i:i + BATCH]}) for i in range(0, len(names), BATCH)])]
