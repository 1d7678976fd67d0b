"""YAML loaders for the exporter's own files (web config, settings file): safe, and strict about keys."""

from __future__ import annotations

from typing import Any

import yaml


def _refuse_repeated_keys(
    loader: yaml.constructor.BaseConstructor, node: yaml.MappingNode, deep: bool
) -> None:
    """A key given twice is a mistake, not "the last one wins"."""
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, str | int):  # anything else PyYAML refuses itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} appears twice", key_node.start_mark
                )
            seen.add(key)


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader (no Python objects) that refuses repeated keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _refuse_repeated_keys(self, node, deep)
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, StrictLoader.construct_mapping)


class TextLoader(yaml.BaseLoader):
    """Every scalar as the text written, and repeated keys refused: for the settings file, whose values go
    through the same parsers as environment variables. YAML 1.1 would read ``off``, ``no``, ``1:20`` and
    ``010`` as false, false, 80 and 8, values the user never wrote."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _refuse_repeated_keys(self, node, deep)
        return super().construct_mapping(node, deep=deep)


def problem(error: yaml.YAMLError) -> str:
    """The problem and its position only: PyYAML's full message quotes the line, which may hold a secret."""
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return f"{getattr(error, 'problem', None) or 'syntax error'}{where}"
