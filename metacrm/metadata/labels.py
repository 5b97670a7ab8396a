"""Labels and their shorthand: wherever a metadata document holds a label (a `{locale: text}`
map), a plain string is its English text, so `"message": "Too late"` is stored as
`"message": {"en": "Too late"}`. What is stored, versioned and read back is always the map.

Where a kind of document holds labels is read from its JSON Schema (each `$ref` to
label.schema.json), so a label added to a schema takes the shorthand with nothing else to edit.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from typing import Any

from metacrm.metadata.validate import schema_files

LABEL_SCHEMA = "label.schema.json"
# Path steps that stand for every item of an array, every member of an object.
ANY_ITEM, ANY_MEMBER = "*", "{}"
Path = tuple[str, ...]


def with_label_maps(kind: str, document: Any) -> Any:
    """The document with each label given as a string turned into `{"en": string}`; anything
    else is left as it is, for validation to judge. The caller's document is not changed."""
    if not isinstance(document, dict):
        return document
    paths = label_paths(kind)
    if not any(_holds_string(document, path) for path in paths):
        return document
    result = copy.deepcopy(document)
    for path in paths:
        _expand(result, path)
    return result


@cache
def label_paths(kind: str) -> tuple[Path, ...]:
    """Where documents of a kind (`entity`, `field`, `role`, …) hold labels."""
    files = schema_files()
    found = _walk(files, f"{kind}.schema.json", files[f"{kind}.schema.json"], (), frozenset())
    return tuple(sorted(set(found)))


def _walk(
    files: dict[str, dict[str, Any]],
    file_name: str,
    schema: Any,
    path: Path,
    visiting: frozenset[tuple[str, str]],
) -> Iterator[Path]:
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target_file, _, fragment = ref.partition("#")
        target_file = target_file or file_name
        if target_file == LABEL_SCHEMA:
            yield path
            return
        key = (target_file, fragment)
        if key not in visiting:
            target = files[target_file]
            for step in (s for s in fragment.split("/") if s):
                target = target[step]
            yield from _walk(files, target_file, target, path, visiting | {key})
    for name, sub in (schema.get("properties") or {}).items():
        yield from _walk(files, file_name, sub, (*path, name), visiting)
    for keyword, step in (("items", ANY_ITEM), ("additionalProperties", ANY_MEMBER)):
        yield from _walk(files, file_name, schema.get(keyword), (*path, step), visiting)
    for keyword in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(keyword) or ():
            yield from _walk(files, file_name, sub, path, visiting)
    for keyword in ("if", "then", "else"):
        yield from _walk(files, file_name, schema.get(keyword), path, visiting)


def _children(value: Any, step: str) -> Iterator[tuple[Any, Any]]:
    """(container, key) of each place one path step leads to from a value."""
    if step == ANY_ITEM and isinstance(value, list):
        yield from ((value, i) for i in range(len(value)))
    elif step == ANY_MEMBER and isinstance(value, dict):
        yield from ((value, k) for k in value)
    elif isinstance(value, dict) and step in value:
        yield value, step


def _places(document: Any, path: Path) -> Iterator[tuple[Any, Any]]:
    if not path:
        return
    *parents, last = path
    values = [document]
    for step in parents:
        values = [c[k] for v in values for c, k in _children(v, step)]
    for value in values:
        yield from _children(value, last)


def _holds_string(document: Any, path: Path) -> bool:
    return any(isinstance(c[k], str) for c, k in _places(document, path))


def _expand(document: Any, path: Path) -> None:
    for container, key in list(_places(document, path)):
        if isinstance(container[key], str):
            container[key] = {"en": container[key]}
