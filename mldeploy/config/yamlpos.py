"""Load YAML while keeping the line/column of every key and value.

PyYAML's composer gives nodes with start marks; we turn the node tree into plain Python objects
and a ``{path: (line, column)}`` map so that validation errors can point at the exact field.
"""

from __future__ import annotations

from typing import Any

import yaml

Path = tuple[str | int, ...]
Positions = dict[Path, tuple[int, int]]


class DuplicateKeyError(ValueError):
    def __init__(self, key: str, line: int, column: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.column = key, line, column


def load_with_positions(text: str) -> tuple[Any, Positions]:
    """Parse ``text``; return (data, positions). Positions are 1-based (line, column)."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    positions: Positions = {}
    if node is None:
        return None, positions
    constructor = yaml.SafeLoader("")

    def build(n: yaml.Node, path: Path) -> Any:
        positions.setdefault(path, (n.start_mark.line + 1, n.start_mark.column + 1))
        if isinstance(n, yaml.MappingNode):
            constructor.flatten_mapping(n)
            result: dict[str, Any] = {}
            for key_node, value_node in n.value:
                key = constructor.construct_object(key_node, deep=True)
                key = str(key)
                if key in result:
                    raise DuplicateKeyError(key, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                positions[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                result[key] = build(value_node, (*path, key))
            return result
        if isinstance(n, yaml.SequenceNode):
            return [build(item, (*path, i)) for i, item in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    return build(node, ()), positions
