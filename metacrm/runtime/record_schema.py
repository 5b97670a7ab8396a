"""JSON Schemas of an entity's records, generated from its metadata: one for what a client may
send (checked on every write), one for what the API returns (published in OpenAPI)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.types import SYSTEM_FIELDS
from metacrm.metadata.values import default_max_length

_DECIMAL = {"type": ["string", "number"], "pattern": r"^[+-]?(\d+(\.\d*)?|\.\d+)$"}


def value_schema(field: FieldDef) -> dict[str, Any]:
    """The JSON shape of one field's value, nulls aside."""
    kind = field.type if field.type != "formula" else field.doc.get("result_type", "text")
    if field.system:
        kind = {"owner": "user", "created_by": "user", "updated_by": "user"}.get(
            field.name, SYSTEM_FIELDS[field.name]
        )
    if kind in ("text", "textarea", "email", "phone", "url", "autonumber"):
        schema: dict[str, Any] = {"type": "string"}
        if not field.system and field.type != "formula":
            schema["maxLength"] = default_max_length(field)
        if kind == "email":
            schema["format"] = "email"
        if kind == "url":
            schema["format"] = "uri"
        return schema
    if kind in ("lookup", "user"):
        return {"type": "string", "maxLength": 26, "description": "a record id"}
    if kind == "picklist":
        return {"type": "string", "enum": list(field.options)}
    if kind == "multipicklist":
        return {"type": "array", "items": {"type": "string", "enum": list(field.options)}}
    if kind == "integer":
        return {"type": "integer"}
    if kind == "decimal":
        return dict(_DECIMAL)
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "date":
        return {"type": "string", "format": "date"}
    if kind == "datetime":
        return {"type": "string", "format": "date-time"}
    raise ValueError(f"no schema for {kind}")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    kinds = out.get("type")
    out["type"] = [*(kinds if isinstance(kinds, list) else [kinds]), "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def writable(field: FieldDef) -> bool:
    return not field.read_only and field.type != "formula"


def input_schema(entity: EntityDef) -> dict[str, Any]:
    """What a client may send on create or update. System fields are accepted and ignored (a
    client may send back a record it read), except `owner`, which may be set."""
    properties: dict[str, Any] = {}
    for field in entity.all_fields:
        if field.system and field.name != "owner":
            properties[field.name] = {}
        elif writable(field) or field.name == "owner":
            properties[field.name] = _nullable(value_schema(field))
        else:
            properties[field.name] = {"not": {}, "description": "read-only"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


def output_schema(entity: EntityDef) -> dict[str, Any]:
    properties = {f.name: _nullable(value_schema(f)) for f in entity.all_fields}
    properties["id"] = {"type": "string"}
    properties["version"] = {"type": "integer"}
    properties.pop("deleted_at", None)
    for field in entity.fields:
        if field.type in ("lookup", "user"):
            properties[field.name] = {
                "anyOf": [{"type": "string"}, {"type": "object"}, {"type": "null"}]
            }
    return {"type": "object", "properties": properties, "required": ["id"]}


def input_validator(entity: EntityDef) -> Draft202012Validator:
    """Checks a record body against the entity's input schema. Keep one per entity snapshot
    (`catalog.memo`): building it compiles the schema."""
    return Draft202012Validator(input_schema(entity))
