"""A lint for OpenAPI documents: what a client generator needs beyond validity.

openapi-spec-validator accepts `{"type": "array"}` without `items` and an object response with
nothing in it; a generated client then drops the value (issue 10). This walks every schema of a
document and names each such hole, with its JSON Pointer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

SUCCESS = re.compile(r"^2\d\d$")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Keywords whose value is one schema, a list of schemas, or a map of schemas.
ONE = ("items", "not", "if", "then", "else", "contains", "propertyNames", "additionalProperties")
ONE += ("unevaluatedProperties", "unevaluatedItems")
MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
MAP = ("properties", "patternProperties", "$defs", "dependentSchemas")


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    return {kind} if isinstance(kind, str) else set(kind or ())


def _schemas(schema: Any, at: str) -> Iterator[tuple[dict[str, Any], str]]:
    """A schema and every schema inside it, with their pointers."""
    if not isinstance(schema, dict):
        return
    yield schema, at
    for key in ONE:
        yield from _schemas(schema.get(key), f"{at}/{key}")
    for key in MANY:
        for i, sub in enumerate(schema.get(key) or ()):
            yield from _schemas(sub, f"{at}/{key}/{i}")
    for key in MAP:
        for name, sub in (schema.get(key) or {}).items():
            yield from _schemas(sub, f"{at}/{key}/{_escape(name)}")


def _schema_problems(schema: dict[str, Any], at: str) -> list[str]:
    problems = []
    kinds = _types(schema)
    if "array" in kinds:
        items = schema.get("items")
        if not items and "prefixItems" not in schema:
            problems.append(f"{at}: an array without items")
    if "object" in kinds:
        described = (
            schema.get("properties")
            or "additionalProperties" in schema
            or schema.get("patternProperties")
            or any(k in schema for k in ("$ref", "allOf", "anyOf", "oneOf"))
        )
        if not described:
            problems.append(f"{at}: an object without properties, additionalProperties or $ref")
    return problems


def _resolve(document: dict[str, Any], target: str) -> bool:
    if not target.startswith("#/"):
        return False  # everything must be inside the document
    node: Any = document
    for raw in target[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def _refs(node: Any, at: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"], at
        for key, value in node.items():
            yield from _refs(value, f"{at}/{_escape(str(key))}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, f"{at}/{i}")


def _operation_problems(operation: dict[str, Any], at: str) -> tuple[list[str], list[Any]]:
    """The operation's own problems, and the schemas it holds (with pointers) to check."""
    problems: list[str] = []
    schemas: list[Any] = []
    responses = operation.get("responses") or {}
    successes = [status for status in responses if SUCCESS.match(str(status))]
    if not successes:
        problems.append(f"{at}: no success response")
    for status, response in responses.items():
        where = f"{at}/responses/{status}"
        content = response.get("content") or {}
        if str(status) == "204":
            if content:
                problems.append(f"{where}: a 204 with a body")
            continue
        if not content:
            problems.append(f"{where}: no content (only 204 has no body)")
        for media, body in content.items():
            if not body.get("schema"):
                problems.append(f"{where}/content/{_escape(media)}: no schema")
            schemas.append((body.get("schema"), f"{where}/content/{_escape(media)}/schema"))
    request = operation.get("requestBody")
    if request is not None:
        content = request.get("content") or {}
        if not content:
            problems.append(f"{at}/requestBody: no content")
        for media, body in content.items():
            where = f"{at}/requestBody/content/{_escape(media)}"
            if not body.get("schema"):
                problems.append(f"{where}: no schema")
            schemas.append((body.get("schema"), f"{where}/schema"))
    for i, parameter in enumerate(operation.get("parameters") or ()):
        if "$ref" not in parameter and not parameter.get("schema"):
            problems.append(f"{at}/parameters/{i}: no schema")
        schemas.append((parameter.get("schema"), f"{at}/parameters/{i}/schema"))
    if not operation.get("operationId"):
        problems.append(f"{at}: no operationId")
    return problems, schemas


def lint(document: dict[str, Any]) -> list[str]:
    """Every hole a client generator would fall into, each with its JSON Pointer."""
    problems: list[str] = []
    roots: list[Any] = []
    seen_ids: dict[str, str] = {}
    for path, item in (document.get("paths") or {}).items():
        declared = set(re.findall(r"\{([^}]+)\}", path))
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            at = f"/paths/{_escape(path)}/{method}"
            found, schemas = _operation_problems(operation, at)
            problems += found
            roots += schemas
            op_id = operation.get("operationId")
            if op_id in seen_ids:
                problems.append(f"{at}: operationId {op_id!r} is also {seen_ids[op_id]}")
            elif op_id:
                seen_ids[op_id] = at
            in_path = {
                p.get("name")
                for p in [*item.get("parameters", ()), *operation.get("parameters", ())]
                if p.get("in") == "path"
            }
            if in_path != declared:
                problems.append(f"{at}: path parameters {sorted(in_path)} != {sorted(declared)}")
    for name, schema in ((document.get("components") or {}).get("schemas") or {}).items():
        roots.append((schema, f"/components/schemas/{_escape(name)}"))
    for root, at in roots:
        for schema, where in _schemas(root, at):
            problems += _schema_problems(schema, where)
    for target, at in _refs(document, ""):
        if not _resolve(document, target):
            problems.append(f"{at}: $ref {target!r} does not resolve inside the document")
    return sorted(set(problems))
