"""The named schemas of the OpenAPI document (components/schemas): every JSON body the API reads
or writes, except the per-entity record schemas, which come from the metadata (openapi.py).

Metadata documents (entity, field, role, pipeline, approval process, record action, automation,
assignment rule, list view, form layout) are described by the same JSON Schemas that validate them
(metacrm/metadata/schemas), their `$defs` lifted into named components so that every `$ref`
resolves inside the document. Response objects are open (more
properties may come in later versions); request bodies are closed where the API refuses
unknown properties.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from metacrm.runtime.api.operation import Schema, page, ref
from metacrm.runtime.webhooks import EVENT_TYPES

# metadata/schemas/<file>.schema.json → the component it becomes.
METADATA_DOCUMENTS = {
    "label": "Label",
    "field": "Field",
    "entity": "Entity",
    "role": "Role",
    "pipeline": "Pipeline",
    "approval_process": "ApprovalProcess",
    "action": "Action",
    "automation": "Automation",
    "assignment_rule": "AssignmentRule",
    "list_view": "ListView",
    "personal_list_view": "PersonalListView",
    "form_layout": "FormLayout",
}

STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
MOMENT = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC"}
NULLABLE_MOMENT = {"type": ["string", "null"], "format": "date-time"}
ID = {"type": "string", "maxLength": 26, "description": "A 26-character, time-ordered id"}
NULLABLE_ID = {"type": ["string", "null"], "maxLength": 26}
NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"}
TEXT_MAP = {"type": "object", "additionalProperties": STRING, "description": "Text per locale"}


def _object(
    properties: dict[str, Schema],
    required: tuple[str, ...] = (),
    *,
    closed: bool = False,
    **kw: Any,
) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **kw}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _scalar(schema: Schema) -> bool:
    """A definition that only names a kind of value (a name, an expression, a number of hours):
    written out where it is used rather than made a schema of its own."""
    kinds = schema.get("type")
    return "$ref" not in json.dumps(schema) and (
        kinds in ("string", "number", "integer", "boolean")
        or set(schema) <= {"enum", "description"}
    )


def _lift(document: Schema, title: str) -> dict[str, Schema]:
    """A metadata JSON Schema as components: the document as `title`, each of its `$defs` as
    `title + Def` (scalar ones written out in place), references rewritten to point into the
    OpenAPI document."""
    defs = document.pop("$defs", {})
    # Client generators name a model by its title: the component's name is the one to use.
    for key in ("$schema", "$id", "title"):
        document.pop(key, None)
    inline = {name: schema for name, schema in defs.items() if _scalar(schema)}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str) and target[8:] in inline and target.startswith("#/$defs/"):
                rest = {k: rewrite(v) for k, v in node.items() if k != "$ref"}
                return {**copy.deepcopy(inline[target[8:]]), **rest}
            out = {k: rewrite(v) for k, v in node.items()}
            if isinstance(target, str):
                if target.startswith("#/$defs/"):
                    out["$ref"] = f"#/components/schemas/{title}{_camel(target[8:])}"
                elif target.endswith(".schema.json"):
                    out["$ref"] = f"#/components/schemas/{METADATA_DOCUMENTS[target[:-12]]}"
                elif ".schema.json#/$defs/" in target:
                    # A definition of another document (label.schema.json#/$defs/long); one
                    # that only names a kind of value is written out here, as in its own.
                    stem, _, name = target.partition(".schema.json#/$defs/")
                    foreign = _schema_file(stem)["$defs"][name]
                    if _scalar(foreign):
                        rest = {k: v for k, v in out.items() if k != "$ref"}
                        return {**copy.deepcopy(foreign), **rest}
                    other = METADATA_DOCUMENTS[stem]
                    out["$ref"] = f"#/components/schemas/{other}{_camel(name)}"
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    lifted = {title: rewrite(document)}
    for name, schema in defs.items():
        if name not in inline:
            lifted[f"{title}{_camel(name)}"] = rewrite(schema)
    return lifted


@cache
def _schema_file(stem: str) -> Schema:
    folder = resources.files("metacrm.metadata") / "schemas"
    found: Schema = json.loads((folder / f"{stem}.schema.json").read_text("utf-8"))
    return found


@cache
def _metadata_components() -> dict[str, Schema]:
    found: dict[str, Schema] = {}
    for stem, title in METADATA_DOCUMENTS.items():
        found.update(_lift(copy.deepcopy(_schema_file(stem)), title))
    return found


def _opened(schema: Schema, **properties: Schema) -> Schema:
    """A closed request schema as a response: open to more properties, plus `properties`."""
    out = copy.deepcopy(schema)
    out.pop("additionalProperties", None)
    out.setdefault("properties", {}).update(properties)
    return out


def _extended(base: Schema, properties: dict[str, Schema], required: tuple[str, ...]) -> Schema:
    """`base` with more properties (a copy, so that clients see one flat object)."""
    out = copy.deepcopy(base)
    out["properties"].update(properties)
    out["required"] = [*out.get("required", []), *required]
    return out


def _nullable_properties(schema: Schema) -> Schema:
    """Every property optional and nullable (null takes a setting away), as a PATCH takes them."""
    out = copy.deepcopy(schema)
    out.pop("required", None)
    out["properties"] = {
        name: {"anyOf": [prop, {"type": "null"}]} if prop else prop
        for name, prop in out["properties"].items()
    }
    return out


PROBLEM = _object(
    {
        "type": {"type": "string", "description": "A URI naming the kind of problem"},
        "title": STRING,
        "status": INTEGER,
        "detail": STRING,
        "errors": {"type": "array", "items": ref("FieldProblem")},
        "position": _object({"line": INTEGER, "column": INTEGER}),
    },
    ("type", "title", "status", "detail"),
    description="RFC 9457 problem details",
)
FIELD_PROBLEM = _object(
    {
        "field": {
            "type": "string",
            "description": "The field's name, or a JSON Pointer into a metadata document",
        },
        "code": STRING,
        "message": STRING,
    },
    ("field", "code", "message"),
)

PLAN = _object(
    {
        "entity": NAME,
        "operations": {
            "type": "array",
            "items": _object(
                {"op": STRING, "description": STRING, "field": STRING, "from": STRING},
                ("op", "description"),
            ),
        },
    },
    ("entity", "operations"),
    description="The schema changes a metadata change makes (or would make, on a dry run)",
)
VERSION = _object(
    {
        "version": INTEGER,
        "action": {"type": "string", "description": "create, replace, restore or delete"},
        "created_at": MOMENT,
        "created_by": NULLABLE_ID,
        "diff": _object(
            {
                "changed": {"type": "array", "items": STRING},
                "fields_added": {"type": "array", "items": STRING},
                "fields_removed": {"type": "array", "items": STRING},
                "fields_changed": {"type": "array", "items": STRING},
                "deleted": BOOLEAN,
            }
        ),
    },
    ("version", "action", "created_at", "created_by", "diff"),
)
ENTITY_SUMMARY = _object(
    {
        "name": NAME,
        "label": ref("Label"),
        "plural_label": ref("Label"),
        "version": INTEGER,
        "fields": {"type": "integer", "description": "How many fields it has"},
    },
    ("name", "label", "plural_label", "version", "fields"),
)
DRY_RUN = _object(
    {"dry_run": {"const": True}, "plan": ref("Plan"), "entity": ref("EntityDocument")},
    ("dry_run", "plan", "entity"),
    description="What the change would do; nothing was changed",
)
RULE_TEST = _object(
    {
        "expression": {"type": "string", "minLength": 1, "maxLength": 10000},
        "record": _object({}, additionalProperties=True, description="Field values to test"),
        "old": _object(
            {}, additionalProperties=True, description="The values before a change (old.x)"
        ),
    },
    ("expression",),
)
RULE_TEST_RESULT = _object(
    {
        "type": {"type": "string", "description": "The expression's type"},
        "sql": NULLABLE_STRING,
        "sql_error": STRING,
        "value": {"description": "Its value for the record sent"},
        "count": {"type": "integer", "description": "How many records match (conditions)"},
    },
    ("type", "sql"),
)

ROLE_SUMMARY = _object(
    {"name": NAME, "label": ref("Label"), "version": INTEGER, "entities": INTEGER},
    ("name", "label", "version", "entities"),
)
PIPELINE_SUMMARY = _object(
    {
        "name": NAME,
        "label": ref("Label"),
        "entity": NAME,
        "field": NAME,
        "stages": {"type": "array", "items": STRING},
        "version": INTEGER,
    },
    ("name", "label", "entity", "field", "stages", "version"),
)
APPROVAL_PROCESS_SUMMARY = _object(
    {
        "name": NAME,
        "label": ref("Label"),
        "entity": NAME,
        "trigger": {"enum": ["manual", "auto"]},
        "steps": INTEGER,
        "version": INTEGER,
    },
    ("name", "label", "entity", "trigger", "steps", "version"),
)
ACTION_SUMMARY = _object(
    {
        "name": {"type": "string", "description": "The document's name: <entity>.<action>"},
        "action": {**NAME, "description": "The action's name on its entity"},
        "label": ref("Label"),
        "entity": NAME,
        "permission": STRING,
        "steps": {"type": "array", "items": STRING, "description": "Each step's type"},
        "version": INTEGER,
    },
    ("name", "action", "label", "entity", "permission", "steps", "version"),
)
RECORD_ACTION = _object(
    {
        "name": NAME,
        "label": ref("Label"),
        "available": BOOLEAN,
        "reason": {**TEXT_MAP, "description": "Why it is not available (text per locale)"},
        "reason_code": {"enum": ["permission", "refused", "hook", "condition"]},
        "input_schema": {
            "type": "object",
            "additionalProperties": True,
            "description": "The JSON Schema of the action's input",
        },
    },
    ("name", "label", "available"),
)
ACTION_INPUT = _object(
    {},
    additionalProperties=True,
    description="The action's input, as its input schema describes it (empty when it takes none)",
)
ACTION_CREATED = _object({"entity": NAME, "id": ID}, ("entity", "id"))
ACTION_APPROVAL = _object({"id": ID, "process": NAME}, ("id", "process"))
AUTOMATION_SUMMARY = _object(
    {
        "name": NAME,
        "label": ref("Label"),
        "entity": NAME,
        "on": {
            "type": ["array", "null"],
            "items": {"enum": ["create", "update"]},
            "description": "When a triggered automation runs; null for a scheduled one",
        },
        "every_minutes": {
            "type": ["integer", "null"],
            "description": "How often a scheduled automation runs; null for a triggered one",
        },
        "active": BOOLEAN,
        "steps": INTEGER,
        "version": INTEGER,
    },
    ("name", "label", "entity", "on", "every_minutes", "active", "steps", "version"),
)
ASSIGNMENT_RULE_SUMMARY = _object(
    {
        "name": NAME,
        "label": ref("Label"),
        "entity": NAME,
        "field": NAME,
        "active": BOOLEAN,
        "rules": INTEGER,
        "version": INTEGER,
    },
    ("name", "label", "entity", "field", "active", "rules", "version"),
)
LIST_VIEW_SUMMARY = _object(
    {
        "name": NAME,
        "label": ref("Label"),
        "entity": NAME,
        "columns": {"type": "array", "items": STRING},
        "default": BOOLEAN,
        "version": INTEGER,
    },
    ("name", "label", "entity", "columns", "default", "version"),
)
FORM_LAYOUT_SUMMARY = _object(
    {
        "name": NAME,
        "label": ref("Label"),
        "entity": NAME,
        "default": BOOLEAN,
        "sections": INTEGER,
        "version": INTEGER,
    },
    ("name", "label", "entity", "default", "sections", "version"),
)
# A list view as its user may use it (GET /list-views, and a user's own view).
LIST_VIEW_IN_USE = _object(
    {
        "name": {**NAME, "description": "A shared view's name"},
        "id": {**ID, "description": "A personal view's id"},
        "shared": BOOLEAN,
        "owner": {**NULLABLE_ID, "description": "Whose view it is (null: shared)"},
        "label": ref("Label"),
        "description": STRING,
        "entity": NAME,
        "columns": {
            "type": "array",
            "items": STRING,
            "description": "The view's columns the user may see, in order",
        },
        "filter": STRING,
        "sort": STRING,
        "page_size": INTEGER,
        "quick_filters": {"type": "array", "items": STRING},
        "default": {**BOOLEAN, "description": "Marked as the default (of its owner, or shared)"},
        "applies_by_default": {**BOOLEAN, "description": "The view a list opens with"},
        "available": BOOLEAN,
        "reason": {**STRING, "description": "Why the user can't use it"},
        "query": _object(
            {
                "fields": STRING,
                "expand": STRING,
                "filter": STRING,
                "sort": STRING,
                "limit": INTEGER,
            },
            description="The records list parameters that show the view",
        ),
        "version": INTEGER,
        "created_at": MOMENT,
        "updated_at": MOMENT,
    },
    ("shared", "owner", "label", "entity", "columns", "default", "available", "query", "version"),
)
FORM_LAYOUT_IN_USE = _object(
    {
        "name": NAME,
        "label": ref("Label"),
        "entity": NAME,
        "derived": {**BOOLEAN, "description": "Derived from the fields: no layout is designed"},
        "default": BOOLEAN,
        "sections": {"type": "array", "items": ref("FormLayoutSection")},
        "related_lists": {"type": "array", "items": ref("FormLayoutRelatedList")},
        "unplaced": {
            "type": "array",
            "items": STRING,
            "description": "Fields the user sees that the layout doesn't place",
        },
        "version": {**INTEGER, "description": "The layout's version (0: derived)"},
    },
    ("name", "label", "entity", "derived", "sections", "related_lists", "unplaced", "version"),
)

STAGE = _object(
    {
        "key": STRING,
        "label": ref("Label"),
        "category": {"enum": ["open", "won", "lost"]},
        "probability": INTEGER,
        "forecast_category": STRING,
        "target_days": {"type": ["integer", "null"]},
        "planned_date": {"type": ["string", "null"], "format": "date"},
        "first_entered_at": NULLABLE_MOMENT,
        "last_exited_at": NULLABLE_MOMENT,
        "days_spent": {"type": "number"},
        "visits": INTEGER,
    },
    ("key", "label", "category", "visits", "days_spent"),
)
TIMELINE = _object(
    {
        "entity": NAME,
        "id": ID,
        "pipeline": NAME,
        "current": _object(
            {
                "stage": NULLABLE_STRING,
                "entered_at": NULLABLE_MOMENT,
                "days_in_stage": {"type": ["number", "null"]},
            },
            ("stage", "entered_at", "days_in_stage"),
        ),
        "stages": {"type": "array", "items": ref("TimelineStage")},
        "history": {
            "type": "array",
            "items": _object(
                {
                    "stage": STRING,
                    "entered_at": MOMENT,
                    "entered_by": NULLABLE_ID,
                    "exited_at": NULLABLE_MOMENT,
                    "exited_by": NULLABLE_ID,
                },
                ("stage", "entered_at"),
            ),
        },
    },
    ("entity", "id", "pipeline", "current", "stages", "history"),
)
STAGE_PLAN = {
    "type": "object",
    "description": "Planned dates by stage key; null removes a stage's plan",
    "additionalProperties": {"type": ["string", "null"], "format": "date"},
}

TASK = _object(
    {
        "id": ID,
        "step": INTEGER,
        "step_name": NULLABLE_STRING,
        "approver": ID,
        "original_approver": NULLABLE_ID,
        "status": {"enum": ["pending", "approved", "rejected", "reassigned", "cancelled"]},
        "assigned_at": MOMENT,
        "due_at": NULLABLE_MOMENT,
        "reminded_at": NULLABLE_MOMENT,
        "decided_at": NULLABLE_MOMENT,
        "comment": NULLABLE_STRING,
    },
    ("id", "step", "approver", "status", "assigned_at"),
)
APPROVAL = _object(
    {
        "id": ID,
        "entity": NAME,
        "record_id": ID,
        "process": NAME,
        "process_label": ref("Label"),
        "process_version": INTEGER,
        "status": {"enum": ["pending", "approved", "rejected", "recalled"]},
        "step": {"type": ["integer", "null"]},
        "step_name": NULLABLE_STRING,
        "submitted_by": ID,
        "submitted_at": MOMENT,
        "finished_at": NULLABLE_MOMENT,
        "version": INTEGER,
        "tasks": {"type": "array", "items": ref("ApprovalTask")},
        "log": {
            "type": "array",
            "items": _object(
                {
                    "at": MOMENT,
                    "by": NULLABLE_ID,
                    "action": STRING,
                    "step": {"type": ["integer", "null"]},
                    "comment": NULLABLE_STRING,
                    "detail": {
                        "type": ["object", "null"],
                        "additionalProperties": True,
                        "description": "What else the action recorded (such as whom a task "
                        "went to)",
                    },
                },
                ("at", "action"),
            ),
        },
    },
    ("id", "entity", "record_id", "process", "status", "submitted_by", "tasks", "log"),
)
INBOX_ITEM = _extended(
    TASK,
    {
        "approval": {**ID, "description": "The approval's id (approve, reject … take this)"},
        "approval_status": STRING,
        "process": NAME,
        "process_label": ref("Label"),
        "entity": NAME,
        "record_id": ID,
        "record_title": {"description": "The record's title, when the caller may read it"},
        "submitted_by": ID,
    },
    ("approval", "entity", "record_id"),
)
SUBMISSION = _object(
    {"process": NAME, "comment": {"type": ["string", "null"], "maxLength": 4000}},
    ("process",),
    closed=True,
)
ANSWER = _object({"comment": {"type": ["string", "null"], "maxLength": 4000}}, closed=True)
REASSIGNMENT = _object(
    {
        "to": {**ID, "description": "The user who gets the task"},
        "from": {**NULLABLE_ID, "description": "Whose task (when several hold one)"},
        "comment": {"type": ["string", "null"], "maxLength": 4000},
    },
    ("to",),
    closed=True,
)
DELEGATION = _object(
    {
        "id": ID,
        "user": ID,
        "delegate": ID,
        "starts_at": MOMENT,
        "ends_at": MOMENT,
        "created_at": MOMENT,
    },
    ("id", "user", "delegate", "starts_at", "ends_at"),
)
DELEGATION_INPUT = _object(
    {"delegate": ID, "starts_at": MOMENT, "ends_at": MOMENT},
    ("delegate", "starts_at", "ends_at"),
    closed=True,
)

USER = _object(
    {
        "id": ID,
        "email": STRING,
        "name": STRING,
        "roles": {"type": "array", "items": NAME},
        "is_admin": BOOLEAN,
        "org_unit": NULLABLE_ID,
        "manager": NULLABLE_ID,
        "is_active": BOOLEAN,
    },
    ("id", "email", "name", "roles", "is_admin", "is_active"),
)
USER_INPUT = _object(
    {
        "email": {"type": "string", "format": "email"},
        "password": {"type": "string", "writeOnly": True},
        "name": STRING,
        "roles": {"type": "array", "items": NAME, "description": '"admin" makes an admin'},
        "is_admin": BOOLEAN,
        "org_unit": NULLABLE_ID,
        "manager": NULLABLE_ID,
    },
    ("email", "password"),
    closed=True,
)
USER_CHANGE = _object(
    {
        "password": {"type": "string", "writeOnly": True},
        "name": STRING,
        "roles": {"type": "array", "items": NAME},
        "is_admin": BOOLEAN,
        "org_unit": {**NULLABLE_ID, "description": "null takes the user out of their unit"},
        "manager": NULLABLE_ID,
        "is_active": {"type": "boolean", "description": "false freezes the user's tokens"},
    },
    closed=True,
)
ORG_UNIT = _object(
    {
        "id": ID,
        "name": NAME,
        "label": NULLABLE_STRING,
        "parent": NULLABLE_ID,
        "head": NULLABLE_ID,
    },
    ("id", "name"),
)
ORG_UNIT_INPUT = _object(
    {"name": NAME, "label": NULLABLE_STRING, "parent": NULLABLE_ID, "head": NULLABLE_ID},
    ("name",),
    closed=True,
)
ORG_UNIT_CHANGE = _object(
    {"label": NULLABLE_STRING, "parent": NULLABLE_ID, "head": NULLABLE_ID}, closed=True
)
SCOPE = {"enum": ["own", "subordinates", "org_unit", "org_unit_tree", "all"]}
FIELD_READ = {"enum": ["visible", "masked", "hidden", "varies"]}
MY_PERMISSIONS = _object(
    {
        "user": ref("User"),
        "is_admin": BOOLEAN,
        "entities": {
            "type": "object",
            "description": "By entity name",
            "additionalProperties": _object(
                {
                    "actions": {
                        "type": "object",
                        "description": "By action (read, create, update …)",
                        "additionalProperties": _object(
                            {
                                "scopes": {"type": "array", "items": SCOPE},
                                "rules": {
                                    "type": "boolean",
                                    "description": "Record rules or shares shape the scope",
                                },
                            },
                            ("scopes", "rules"),
                        ),
                    },
                    "fields": {
                        "type": "object",
                        "description": "By field name",
                        "additionalProperties": _object(
                            {
                                "read": FIELD_READ,
                                "filter": BOOLEAN,
                                "create": BOOLEAN,
                                "update": BOOLEAN,
                                "own": _object(
                                    {"read": FIELD_READ, "create": BOOLEAN, "update": BOOLEAN},
                                    ("read", "create", "update"),
                                    description="On records the caller owns, when a field "
                                    "permission sparing the owner (except_owner) makes it differ",
                                ),
                            },
                            ("read", "filter", "create", "update"),
                        ),
                    },
                },
                ("actions", "fields"),
            ),
        },
    },
    ("user", "is_admin", "entities"),
)

EVENTS = {
    "type": "array",
    "minItems": 1,
    "items": {"enum": ["*", *EVENT_TYPES]},
    "description": 'Event types, or ["*"] for every one',
}
WEBHOOK = _object(
    {
        "id": ID,
        "name": STRING,
        "url": {"type": "string", "format": "uri"},
        "entity": {**NULLABLE_STRING, "description": "Only this entity's events (null: all)"},
        "events": EVENTS,
        "condition": NULLABLE_STRING,
        "active": BOOLEAN,
        "created_at": MOMENT,
        "created_by": NULLABLE_ID,
    },
    ("id", "name", "url", "entity", "events", "condition", "active", "created_at"),
)
WEBHOOK_WITH_SECRET = _extended(
    WEBHOOK,
    {"secret": {"type": "string", "description": "Signs deliveries; shown only now"}},
    ("secret",),
)
WEBHOOK_PROPERTIES: dict[str, Schema] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "url": {"type": "string", "format": "uri", "maxLength": 2000},
    "entity": {"type": ["string", "null"]},
    "events": EVENTS,
    "condition": {
        "type": ["string", "null"],
        "maxLength": 10000,
        "description": "A rule-language condition on the event's record (needs an entity)",
    },
    "active": BOOLEAN,
}
WEBHOOK_INPUT = _object(WEBHOOK_PROPERTIES, ("name", "url", "events"), closed=True)
WEBHOOK_CHANGE = _object(WEBHOOK_PROPERTIES, closed=True)
DELIVERY = _object(
    {
        "id": ID,
        "webhook_id": ID,
        "event_type": STRING,
        "event_id": STRING,
        "status": {"enum": ["pending", "delivered", "failed"]},
        "attempts": INTEGER,
        "response_code": {"type": ["integer", "null"]},
        "last_error": NULLABLE_STRING,
        "next_attempt_at": NULLABLE_MOMENT,
        "created_at": MOMENT,
        "delivered_at": NULLABLE_MOMENT,
    },
    ("id", "webhook_id", "event_type", "status", "attempts", "created_at"),
)

NOTIFICATION = _object(
    {
        "id": ID,
        "kind": STRING,
        "title": STRING,
        "body": NULLABLE_STRING,
        "entity": NULLABLE_STRING,
        "record_id": NULLABLE_ID,
        "created_at": MOMENT,
        "read_at": NULLABLE_MOMENT,
    },
    ("id", "kind", "title", "created_at", "read_at"),
)

SHARE = _object(
    {
        "id": ID,
        "principal_type": {"enum": ["user", "role", "org_unit"]},
        "principal": STRING,
        "access": {"enum": ["read", "edit"]},
        "created_at": MOMENT,
        "created_by": NULLABLE_ID,
    },
    ("id", "principal_type", "principal", "access"),
)
SHARE_INPUT = _object(
    {
        "principal_type": {"enum": ["user", "role", "org_unit"]},
        "principal": {
            "type": "string",
            "minLength": 1,
            "maxLength": 63,
            "description": "A user id, a role name or an org unit id",
        },
        "access": {"enum": ["read", "edit"]},
    },
    ("principal_type", "principal", "access"),
    closed=True,
)
HISTORY_ENTRY = _object(
    {
        "version": INTEGER,
        "action": STRING,
        "changed_at": MOMENT,
        "changed_by": NULLABLE_ID,
        "changes": {
            "type": "object",
            "description": "By field name: the value before and after",
            "additionalProperties": _object(
                {"old": {"description": "any JSON value"}, "new": {"description": "any value"}},
                ("old", "new"),
            ),
        },
    },
    ("version", "action", "changed_at", "changed_by", "changes"),
)

HEALTH = _object(
    {
        "status": {"enum": ["ok", "error"]},
        "database": {"enum": ["ok", "error"]},
        "redis": {"enum": ["ok", "error", "disabled"]},
    },
    ("status", "database", "redis"),
)
OPENAPI_DOCUMENT = _object(
    {
        "openapi": STRING,
        "info": _object({"title": STRING, "version": STRING}, ("title", "version")),
        "paths": {"type": "object", "additionalProperties": True},
        "components": {"type": "object", "additionalProperties": True},
    },
    ("openapi", "info", "paths"),
    description="This document (OpenAPI 3.1)",
)

# The system fields every record has; the entity-independent reference shows these and says
# that the entity's own fields come along (the caller's document names them).
RECORD = _object(
    {
        "id": ID,
        "owner": NULLABLE_ID,
        "created_at": MOMENT,
        "created_by": NULLABLE_ID,
        "updated_at": MOMENT,
        "updated_by": NULLABLE_ID,
        "version": INTEGER,
    },
    ("id",),
    additionalProperties=True,
    description="A record: the entity's fields by name, plus the system fields",
)
RECORD_INPUT = _object(
    {"owner": NULLABLE_ID},
    additionalProperties=True,
    description="The entity's writable fields by name (and owner)",
)


def record_page(record: Schema) -> Schema:
    return page(
        record,
        ("next_cursor",),
        next_cursor={**NULLABLE_STRING, "description": "Pass as cursor for the next page"},
        count={"type": "integer", "description": "With count=true: how many match"},
    )


def components() -> dict[str, Schema]:
    """Every named schema that does not depend on the metadata, a fresh copy."""
    lifted = _metadata_components()
    entity = lifted["Entity"]
    named: dict[str, Schema] = {
        "Problem": PROBLEM,
        "FieldProblem": FIELD_PROBLEM,
        **lifted,
        "EntityDocument": _opened(
            entity,
            hidden_fields={
                "type": "array",
                "items": STRING,
                "description": "Deleted fields whose data is kept",
            },
        )
        | {"required": [*entity["required"], "version"]},
        "EntityWritten": _opened(
            entity,
            hidden_fields={"type": "array", "items": STRING},
            plan=ref("Plan"),
        )
        | {"required": [*entity["required"], "version", "plan"]},
        "EntityDryRun": DRY_RUN,
        "SignIn": _object(
            {
                "email": {"type": "string", "minLength": 1},
                "password": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
            },
            ("email", "password"),
            closed=True,
        ),
        "NewToken": _object(
            {
                "id": STRING,
                "name": STRING,
                "token": {"type": "string", "description": "Shown only in this answer"},
                "created_at": {"type": "string", "format": "date-time"},
            },
            ("id", "name", "token", "created_at"),
        ),
        "Token": _object(
            {
                "id": STRING,
                "user": STRING,
                "name": STRING,
                "created_at": {"type": "string", "format": "date-time"},
                "revoked_at": {"type": ["string", "null"], "format": "date-time"},
            },
            ("id", "user", "name", "created_at", "revoked_at"),
        ),
        "EntityRemoved": _object(
            {
                "name": STRING,
                "deleted": {"type": "boolean", "const": True},
                "purged": {"type": "boolean", "description": "The table was dropped for good"},
                "version": {"type": "integer", "description": "The version the delete made"},
                "plan": ref("Plan"),
            },
            ("name", "deleted", "purged", "version", "plan"),
        ),
        "EntitySummary": ENTITY_SUMMARY,
        "FieldChange": _nullable_properties(lifted["Field"]),
        "Plan": PLAN,
        "DocumentVersion": VERSION,
        "RuleTest": RULE_TEST,
        "RuleTestResult": RULE_TEST_RESULT,
        "PipelineInput": {
            **lifted["Pipeline"],
            "properties": {
                **lifted["Pipeline"]["properties"],
                "stage_mapping": {
                    "type": "object",
                    "description": "Where the records of removed stages go (not stored)",
                    "additionalProperties": STRING,
                },
            },
        },
        "RoleSummary": ROLE_SUMMARY,
        "PipelineSummary": PIPELINE_SUMMARY,
        "ApprovalProcessSummary": APPROVAL_PROCESS_SUMMARY,
        "ActionSummary": ACTION_SUMMARY,
        "RecordAction": RECORD_ACTION,
        "ActionInput": ACTION_INPUT,
        "ActionCreated": ACTION_CREATED,
        "ActionApproval": ACTION_APPROVAL,
        "AutomationSummary": AUTOMATION_SUMMARY,
        "AssignmentRuleSummary": ASSIGNMENT_RULE_SUMMARY,
        "ListViewSummary": LIST_VIEW_SUMMARY,
        "FormLayoutSummary": FORM_LAYOUT_SUMMARY,
        "ListViewInUse": LIST_VIEW_IN_USE,
        "FormLayoutInUse": FORM_LAYOUT_IN_USE,
        "Timeline": TIMELINE,
        "TimelineStage": STAGE,
        "StagePlan": STAGE_PLAN,
        "Approval": APPROVAL,
        "ApprovalTask": TASK,
        "InboxItem": INBOX_ITEM,
        "Submission": SUBMISSION,
        "Answer": ANSWER,
        "Reassignment": REASSIGNMENT,
        "Delegation": DELEGATION,
        "DelegationInput": DELEGATION_INPUT,
        "User": USER,
        "UserInput": USER_INPUT,
        "UserChange": USER_CHANGE,
        "OrgUnit": ORG_UNIT,
        "OrgUnitInput": ORG_UNIT_INPUT,
        "OrgUnitChange": ORG_UNIT_CHANGE,
        "MyPermissions": MY_PERMISSIONS,
        "Webhook": WEBHOOK,
        "WebhookWithSecret": WEBHOOK_WITH_SECRET,
        "WebhookInput": WEBHOOK_INPUT,
        "WebhookChange": WEBHOOK_CHANGE,
        "Delivery": DELIVERY,
        "Notification": NOTIFICATION,
        "Share": SHARE,
        "ShareInput": SHARE_INPUT,
        "HistoryEntry": HISTORY_ENTRY,
        "Health": HEALTH,
        "OpenAPIDocument": OPENAPI_DOCUMENT,
    }
    return copy.deepcopy(named)
