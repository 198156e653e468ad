"""Feature names: which names a packaged model's records use, and the checks ``package`` makes on them.

Order of precedence: ``model.feature_names`` in the config, then the model's own names (``feature_names_in_``,
booster names, ONNX input names, the MLmodel signature: ``Handler.model_feature_names``), then the keys of the
records/columns in ``model.sample_input``. The names are positional: name ``i`` is column ``i`` of the model's
input (or input ``i`` of a model with one input per feature), so a list whose length differs from the model's
feature count, or that moves one of the model's own names to another position, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.manifest import Tensor

FIELD = "model.feature_names"


class FeatureNamesError(Exception):
    """A names problem, with the config field it belongs to (the packager turns it into a ConfigError)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field_name, message


def per_input_names(inputs: list[Tensor]) -> list[str] | None:
    """The input names of a model with several inputs that each carry one feature (shape [N] or [N, 1])."""
    if len(inputs) < 2:
        return None
    if all(len(t.shape) == 1 or (len(t.shape) == 2 and t.shape[1] == 1) for t in inputs):
        return [t.name for t in inputs]
    return None


def feature_count(inputs: list[Tensor]) -> int | None:
    """Features the model takes: the width of its one 2-D input, or its inputs when each is one feature; None
    when that is not known (a dynamic width) or not tabular (see ``tabular``)."""
    if per_input_names(inputs):
        return len(inputs)
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and isinstance(inputs[0].shape[1], int):
        return inputs[0].shape[1]
    return None


def tabular(inputs: list[Tensor]) -> bool:
    """True when records can be decoded for this signature: one [N, features] input, or one input per feature."""
    return per_input_names(inputs) is not None or (len(inputs) == 1 and len(inputs[0].shape) == 2)


def _shape(inputs: list[Tensor]) -> str:
    if len(inputs) == 1:
        dims = ", ".join("N" if i == 0 else str(d) for i, d in enumerate(inputs[0].shape))
        return f"input {inputs[0].name!r} of shape [{dims}]"
    return f"{len(inputs)} inputs ({', '.join(t.name for t in inputs)})"


def _check_list(field_name: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FeatureNamesError(field_name, f"names must be unique; {dupes} appear more than once")
    if any(not isinstance(n, str) or not n for n in names):
        raise FeatureNamesError(field_name, "every name must be a non-empty string")


@dataclass
class Resolved:
    names: list[str] | None
    source: str  # config | model | sample | none
    notes: list[str] = field(default_factory=list)


def resolve(inputs: list[Tensor], configured: list[str] | None, own: list[str] | None,
            sample_keys: list[str] | None) -> Resolved:
    """The names model.json records (see the module docstring); raises FeatureNamesError."""
    count = feature_count(inputs)
    if own is not None and (len(own) != count if count is not None else not tabular(inputs)):
        own = None  # names that do not fit the signature (e.g. model.inputs reshaped it): not the model's columns
    if configured:
        _check_list(FIELD, configured)
        if not tabular(inputs):
            raise FeatureNamesError(FIELD, f"the model takes {_shape(inputs)}, not rows of features: feature names "
                                           "apply to tabular models only; remove model.feature_names")
        if count is not None and len(configured) != count:
            raise FeatureNamesError(FIELD, f"{len(configured)} names given but the model has {count} features "
                                           f"({_shape(inputs)}): list one name per feature, in the model's order")
        notes = []
        if own and own != configured:
            moved = next(((n, i, own.index(n)) for i, n in enumerate(configured) if n in own and own[i] != n), None)
            if moved:
                name, at, pos = moved
                raise FeatureNamesError(FIELD, f"{name!r} is name {at + 1} here but feature {pos + 1} of the model "
                                               f"(the model's own order: {own}); records would feed values to the "
                                               "wrong columns: list the names in the model's order, or remove "
                                               "model.feature_names to use the model's own")
            notes.append(f"model.feature_names renames the model's own features {own} to {configured} (same "
                         "positions); records use the configured names")
        return Resolved(list(configured), "config", notes)
    if own:
        return Resolved(list(own), "model")
    if sample_keys:
        where = "model.sample_input"
        _check_list(where, sample_keys)
        if not tabular(inputs):
            raise FeatureNamesError(where, f"records/columns given, but the model takes {_shape(inputs)}")
        if count is not None and len(sample_keys) != count:
            raise FeatureNamesError(where, f"the records have {len(sample_keys)} fields {sample_keys} but the model "
                                           f"has {count} features ({_shape(inputs)})")
        return Resolved(list(sample_keys), "sample")
    return Resolved(None, "none")
