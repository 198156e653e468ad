"""The model contract (what clients send and read) and the difference between two of them.

A *contract* is the part of ``model.json`` a client depends on: input names, dtypes and shapes, the response fields
the outputs produce, the class labels and the task. ``contract_of`` extracts it (compact, JSON-serialisable: it is
stored in the AWS deployment history), ``diff`` lists every change with whether it breaks existing clients.

Breaking: an input removed, renamed or added (clients do not send it), an input dtype or fixed-dimension change,
a dynamic dimension made fixed, a response field removed, a different class-label set, a different task, an input
that took ``null`` and no longer does, a category removed (or a free string input limited to categories).
Not breaking: a fixed dimension made dynamic, a new response field, the same labels in another order (answers
carry label names), output dtype changes (JSON numbers either way), an input that now takes ``null``, a category
added.

Pure: no I/O; ``check`` raises the CLI's error (exit 2) for a refused change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

# longer label lists are stored as count + sha256: the contract rides in an SSM history record, and "Standard
# parameters have a value limit of 4 KB" (botocore ssm PutParameterRequest.Value)
LABELS_INLINE_MAX = 1000


@dataclass(frozen=True)
class Change:
    """One difference between the running and the candidate contract."""

    field: str  # "inputs.x", "labels", "outputs.probabilities", "task"
    what: str  # a sentence naming the change
    breaking: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _response_fields(outputs: list[dict[str, Any]]) -> list[str]:
    """The answer fields the outputs produce (``runtime.formatting.OutputFormatter``'s rules)."""
    roles = {o.get("role") for o in outputs if o.get("role")}
    fields: list[str] = []
    if "label" in roles or "probabilities" in roles or "logits" in roles or "prediction" in roles or not roles:
        fields.append("predictions")
    if "probabilities" in roles or "logits" in roles:
        fields += ["probabilities", "top_k"]
    used = {"label", "probabilities", "logits", "prediction"}
    others = [o["name"] for o in outputs if o.get("role") not in used]
    if not roles:
        others = others[1:]  # the first output is the prediction
    fields += [f"outputs.{n}" for n in others]
    return fields


def contract_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The contract of a ``model.json`` document (or an already extracted contract, returned as is)."""
    if manifest.get("contract_version") == 1:
        return manifest
    labels = manifest.get("class_labels")
    doc: dict[str, Any] = {
        "contract_version": 1,
        "version": manifest.get("version"),
        "task": manifest.get("task", "other"),
        "inputs": [_input_contract(t) for t in manifest.get("inputs") or []],
        "fields": _response_fields(manifest.get("outputs") or []),
        "feature_names": manifest.get("feature_names"),
    }
    if labels is not None:
        text = json.dumps([str(x) for x in labels])
        if len(text) <= LABELS_INLINE_MAX:
            doc["labels"] = [str(x) for x in labels]
        else:
            doc["labels_count"] = len(labels)
        doc["labels_sha256"] = hashlib.sha256(json.dumps(sorted(str(x) for x in labels)).encode()).hexdigest()
    return doc


def _input_contract(t: dict[str, Any]) -> dict[str, Any]:
    """One input's contract; ``allow_missing`` and ``categories`` only where set (older records lack them)."""
    doc: dict[str, Any] = {"name": t["name"], "dtype": t.get("dtype", "float32"),
                           "shape": list(t.get("shape") or [None])}
    if t.get("allow_missing"):
        doc["allow_missing"] = True
    if t.get("categories") is not None:
        cats = [str(c) for c in t["categories"]]
        # inline only when short: the contract rides in one SSM history record (see LABELS_INLINE_MAX)
        if len(json.dumps(cats)) <= LABELS_INLINE_MAX // 4:
            doc["categories"] = cats
        else:
            doc["categories_count"] = len(cats)
        doc["categories_sha256"] = hashlib.sha256(json.dumps(sorted(cats)).encode()).hexdigest()
    return doc


def _category_changes(name: str, a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    where = f"inputs.{name}"
    a_sha, b_sha = a.get("categories_sha256"), b.get("categories_sha256")
    if a_sha == b_sha:
        return []
    if b_sha is None:
        return [Change(where, f"input {name!r} takes any string now (was limited to its categories)", False)]
    if a_sha is None:
        return [Change(where, f"input {name!r} limited to {b.get('categories_count') or len(b['categories'])} "
                              "categories (any other value is refused)", True)]
    old, new = a.get("categories"), b.get("categories")
    if old is None or new is None:
        return [Change(where, f"input {name!r} category set changed (sha256 differs)", True)]
    gone, added = [c for c in old if c not in new], [c for c in new if c not in old]
    out = []
    if gone:
        out.append(Change(where, f"input {name!r} categories removed: {', '.join(map(repr, gone))}", True))
    if added:
        out.append(Change(where, f"input {name!r} categories added: {', '.join(map(repr, added))}", False))
    return out


def _dim(d: Any) -> str:
    return "?" if d in (None, -1) else str(d)


def _shape(s: list[Any]) -> str:
    return "[" + ", ".join(_dim(d) for d in s) + "]"


def _shape_changes(name: str, old: list[Any], new: list[Any]) -> list[Change]:
    where = f"inputs.{name}"
    if len(old) != len(new):
        return [Change(where, f"input {name!r} shape {_shape(old)} → {_shape(new)} (rank changed)", True)]
    out = []
    for axis, (a, b) in enumerate(zip(old, new, strict=True)):
        if axis == 0 or _dim(a) == _dim(b):
            continue  # the batch axis is the server's
        if _dim(b) == "?":
            out.append(Change(where, f"input {name!r} axis {axis} {_dim(a)} → dynamic", False))
        else:
            out.append(Change(where, f"input {name!r} shape {_shape(old)} → {_shape(new)}", True))
            break
    return out


def _input_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[Change]:
    before, after = {t["name"]: t for t in old}, {t["name"]: t for t in new}
    removed = [n for n in before if n not in after]
    added = [n for n in after if n not in before]
    out: list[Change] = []
    # a removed and an added input of the same dtype and shape: a rename (one change, clearer than two)
    for r in list(removed):
        twin = next((a for a in added if after[a]["dtype"] == before[r]["dtype"]
                     and [_dim(d) for d in after[a]["shape"]] == [_dim(d) for d in before[r]["shape"]]), None)
        if twin is not None:
            out.append(Change(f"inputs.{r}", f"input {r!r} renamed to {twin!r}", True))
            removed.remove(r)
            added.remove(twin)
    out += [Change(f"inputs.{n}", f"input {n!r} removed", True) for n in removed]
    out += [Change(f"inputs.{n}", f"input {n!r} added ({after[n]['dtype']} {_shape(after[n]['shape'])}): "
                   "clients do not send it", True) for n in added]
    for n in before:
        if n not in after:
            continue
        a, b = before[n], after[n]
        if a["dtype"] != b["dtype"]:
            out.append(Change(f"inputs.{n}", f"input {n!r} dtype {a['dtype']} → {b['dtype']}", True))
        out += _shape_changes(n, a["shape"], b["shape"])
        if a.get("allow_missing") and not b.get("allow_missing"):
            out.append(Change(f"inputs.{n}", f"input {n!r} no longer takes null (clients sending it get 422)", True))
        elif b.get("allow_missing") and not a.get("allow_missing"):
            out.append(Change(f"inputs.{n}", f"input {n!r} now takes null", False))
        out += _category_changes(n, a, b)
    return out


def _label_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    a_sha, b_sha = old.get("labels_sha256"), new.get("labels_sha256")
    if a_sha is None and b_sha is None:
        return []
    if (a_sha is None) != (b_sha is None):
        return [Change("labels", "class labels " + ("added" if a_sha is None else "removed")
                       + " (answers change from indices to names or back)", True)]
    a, b = old.get("labels"), new.get("labels")
    if a_sha != b_sha:
        if a is not None and b is not None:
            gone = [x for x in a if x not in b]
            new_ = [x for x in b if x not in a]
            parts = ([f"removed {', '.join(map(repr, gone))}"] if gone else []) + \
                ([f"added {', '.join(map(repr, new_))}"] if new_ else [])
            return [Change("labels", f"class labels changed: {'; '.join(parts)}", True)]
        na = len(a) if a is not None else old.get("labels_count")
        nb = len(b) if b is not None else new.get("labels_count")
        return [Change("labels", f"class label set changed ({na} → {nb} labels, sha256 differs)", True)]
    if a is not None and b is not None and a != b:
        return [Change("labels", "class labels reordered (same set; answers carry the names)", False)]
    return []


def diff(running: dict[str, Any], candidate: dict[str, Any]) -> list[Change]:
    """Every change from ``running`` to ``candidate`` (model.json documents or contracts), breaking first."""
    old, new = contract_of(running), contract_of(candidate)
    out: list[Change] = []
    if old.get("task") != new.get("task"):
        out.append(Change("task", f"task {old.get('task')} → {new.get('task')}", True))
    out += _input_changes(old.get("inputs") or [], new.get("inputs") or [])
    fa, fb = old.get("fields") or [], new.get("fields") or []
    out += [Change(f"outputs.{f}", f"response field {f!r} removed", True) for f in fa if f not in fb]
    out += [Change(f"outputs.{f}", f"response field {f!r} added", False) for f in fb if f not in fa]
    out += _label_changes(old, new)
    if old.get("feature_names") and new.get("feature_names") and old["feature_names"] != new["feature_names"]:
        gone = [x for x in old["feature_names"] if x not in new["feature_names"]]
        out.append(Change("feature_names", "feature names " + (f"removed {', '.join(map(repr, gone))} (record "
                          "inputs keyed by them fail)" if gone else "reordered or extended"), bool(gone)))
    return sorted(out, key=lambda c: not c.breaking)


def breaking(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.breaking]


def describe(changes: list[Change]) -> list[str]:
    """One line per change, for the terminal: ``BREAKING input 'x' removed``."""
    return [("BREAKING " if c.breaking else "") + c.what for c in changes]


def check(changes: list[Change], *, allow_breaking: bool, running: str, candidate: str) -> None:
    """Refuse (exit 2, like any change that needs an explicit flag) when a change breaks clients."""
    from mldeploy.errors import ExitCode, MldeployError

    bad = breaking(changes)
    if bad and not allow_breaking:
        raise MldeployError(
            f"the candidate model {candidate} breaks the contract of the running {running}: "
            + "; ".join(c.what for c in bad),
            hint="clients of the running version would fail; pass --allow-breaking when they are updated "
                 "(or give the new contract another model name/endpoint)", exit_code=ExitCode.USAGE)
