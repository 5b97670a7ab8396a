"""The OpenAPI 3.1 document, generated from the route table and the metadata as it is now.

Which operations exist comes from the route table (each endpoint carries its `Operation`, see
operation.py); what a record looks like comes from the entities the caller may use. Operations
under `/api/v1/records/{entity}` are repeated for each such entity, with its record schemas.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

import metacrm
from metacrm.metadata.actions import ACTION, ActionDef
from metacrm.metadata.model import EntityDef
from metacrm.metadata.roles import ACTIONS
from metacrm.runtime.api.components import (
    OPENAPI_DOCUMENT,
    RECORD,
    RECORD_INPUT,
    components,
    record_page,
)
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.http import JSONResponse
from metacrm.runtime.api.operation import (
    ACTION_SEGMENT,
    ENTITY_SCHEMA,
    ENTITY_SEGMENT,
    Body,
    Operation,
    Schema,
    operation,
    ref,
)
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.permissions import Permissions
from metacrm.runtime.record_schema import EXPANDED, input_schema, output_schema

# A row of the route table: method, path, endpoint.
RouteRow = tuple[str, str, Any]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SUCCESS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No content"}
PROBLEMS = {
    400: "Malformed request (a bad parameter, filter, sort or cursor)",
    401: "Missing or bad token",
    403: "Authenticated but not allowed",
    404: "No such resource, or one the caller may not read",
    409: "Conflict (a name or unique value taken, or the state changed)",
    412: "If-Match or the document's version does not match the current version",
    413: "Body too large",
    415: "Not JSON",
    422: "Well-formed but invalid (every problem found, each with its field)",
    423: "Locked while an approval is pending",
    429: "Too many requests",
}
# Path parameters by name: their schema and meaning, wherever they appear.
NAME_PATTERN = "^[a-z][a-z0-9_]{0,62}$"
# A document's name: a record action's is its entity's and its own, `lead.claim`.
DOCUMENT_NAME_PATTERN = "^[a-z][a-z0-9_]{0,62}([.][a-z][a-z0-9_]{0,62})?$"
PATH_PARAMETERS: dict[str, tuple[Schema, str]] = {
    "entity": ({"type": "string", "pattern": NAME_PATTERN}, "The entity's name"),
    "name": (
        {"type": "string", "pattern": DOCUMENT_NAME_PATTERN},
        "The document's name (a record action's: <entity>.<action>)",
    ),
    "action": ({"type": "string", "pattern": NAME_PATTERN}, "The action's name"),
    "field": ({"type": "string", "pattern": NAME_PATTERN}, "The field's name"),
    "version": ({"type": "integer", "minimum": 1}, "A version number of the document"),
    "id": ({"type": "string"}, "The id"),
    "delivery": ({"type": "string"}, "The delivery's id"),
    "share": ({"type": "string"}, "The share's id"),
}
# The document's tags in the order the reference shows them; each operation names one. Records
# operations are tagged with their entity in a caller's document ("records" without metadata).
TAGS = [
    ("platform", "Health, the OpenAPI document and this reference"),
    ("entities", "Design entities and their fields; every change is versioned (admins change)"),
    ("records", "Records of every entity: list, create, read, change, delete, history, shares, "
     "stages and approvals"),
    ("approvals", "The approval inbox, answers, recall, reassignment and delegations"),
    ("roles", "Who may do what with which records (admins)"),
    ("pipelines", "Ordered stages bound to a picklist field (admins)"),
    ("approval_processes", "Who must approve which records, in which steps (admins)"),
    ("actions", "Record actions: named operations on records, their input and steps (admins)"),
    ("assignment_rules", "Who new records go to: queues of users, in turn or least loaded "
     "(admins)"),
    ("list_views", "Saved lists of records: shared ones (admins design them) and each user's "
     "own"),
    ("form_layouts", "How record pages and forms lay out an entity's fields (admins)"),
    ("users", "Users, the org tree, the caller and their permissions"),
    ("webhooks", "Signed event deliveries to other systems (admins)"),
    ("notifications", "The caller's inbox"),
]  # fmt: skip
_PATH_PARAMETER = re.compile(r"\{([a-z_]+)\}")


def operation_of(endpoint: Any) -> Operation | None:
    """The operation an endpoint of the route table carries, if any."""
    found = getattr(endpoint, "operation", None)
    return found if isinstance(found, Operation) else None


def schema_names(entities: Iterable[EntityDef], taken: Iterable[str]) -> dict[str, str]:
    """Each entity's schema name: its name in CamelCase ("sales_order" → "SalesOrder"), or
    `Entity_<name>` when that, its Input or its Page would take a name already in use."""
    used = set(taken)
    names = {}
    for entity in sorted(entities, key=lambda e: e.name):
        title = "".join(part.capitalize() for part in entity.name.split("_"))
        if {title, f"{title}Input", f"{title}Page"} & used:
            title = f"Entity_{entity.name}"
        used.update({title, f"{title}Input", f"{title}Page"})
        names[entity.name] = title
    return names


def _unique(operation_id: str, taken: set[str]) -> str:
    """The id, or (when an entity's name makes it another operation's, as `create` for an
    entity named `webhook` would) the id numbered; fixed operations keep theirs."""
    found, n = operation_id, 1
    while found in taken:
        n += 1
        found = f"{operation_id}_{n}"
    taken.add(found)
    return found


def _bind(node: Any, schema_name: str) -> Any:
    """A copy of a schema with the entity placeholder in its references made concrete."""
    if isinstance(node, dict):
        out = {k: _bind(v, schema_name) for k, v in node.items()}
        if isinstance(out.get("$ref"), str):
            out["$ref"] = out["$ref"].replace(ENTITY_SCHEMA, schema_name)
        return out
    if isinstance(node, list):
        return [_bind(v, schema_name) for v in node]
    return node


def _path_parameters(path: str) -> list[dict[str, Any]]:
    found = []
    for name in _PATH_PARAMETER.findall(path):
        schema, meaning = PATH_PARAMETERS.get(name, ({"type": "string"}, name))
        found.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": dict(schema),
                "description": meaning,
            }
        )
    return found


def _problem(status: int) -> dict[str, Any]:
    found: dict[str, Any] = {
        "description": PROBLEMS[status],
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }
    if status == 429:
        found["headers"] = {
            "Retry-After": {
                "description": "Seconds until the next attempt may be made",
                "schema": {"type": "integer"},
            }
        }
    return found


def error_statuses(described: Operation, method: str, path: str) -> list[int]:
    """The problems an operation may answer: what every operation of its kind may, plus those it
    names itself."""
    found = set(described.errors)
    if not described.public:
        found |= {400, 401, 403}
    if "{" in path:
        found.add(404)
    if method in WRITE_METHODS and not described.public:
        found.add(422)
    if described.body is not None:
        found |= {400, 413, 415, 422}
    return sorted(found)


def _response(status: int, schema: Schema | None, media: str, description: str) -> Schema:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {media: {"schema": schema}}}


HEADERS = {
    "Location": "Where the new resource is",
    "ETag": 'The record\'s version as an ETag, such as "3"; send it back in If-Match',
}


def operation_object(
    described: Operation,
    method: str,
    path: str,
    entity: str | None = None,
    schema_name: str = "Record",
    tag: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI operation for one route; `entity` names the entity a records route was made
    concrete for (None: the route as it is), `schema_name` its schema, `tag` its tag."""
    out: dict[str, Any] = {
        "operationId": described.id if entity is None else f"{described.id}_{entity}",
        "tags": [tag or described.tag],
        "summary": described.summary,
    }
    if described.description:
        out["description"] = described.description
    parameters = _path_parameters(path)
    for param in described.params:
        parameters.append(
            {
                "name": param.name,
                "in": param.where,
                "required": param.required,
                "schema": copy.deepcopy(param.schema),
                "description": param.description,
            }
        )
    if parameters:
        out["parameters"] = parameters
    if described.body is not None:
        media: dict[str, Any] = {"schema": _bind(described.body.schema, schema_name)}
        if described.body.example is not None:
            media["example"] = copy.deepcopy(described.body.example)
        out["requestBody"] = {
            "required": described.body.required,
            "content": {"application/json": media},
        }
    success = _response(
        described.status,
        _bind(described.response, schema_name),
        described.media,
        SUCCESS.get(described.status, "OK"),
    )
    if described.headers:
        success["headers"] = {
            name: {"description": HEADERS[name], "schema": {"type": "string"}}
            for name in described.headers
        }
    responses: dict[str, Any] = {str(described.status): success}
    for reply in described.also:
        responses[str(reply.status)] = _response(
            reply.status, _bind(reply.schema, schema_name), described.media, reply.description
        )
    for status in error_statuses(described, method, path):
        responses.setdefault(str(status), _problem(status))
    out["responses"] = responses
    if described.public:
        out["security"] = []
    return out


# The body of an action that takes no input.
NO_INPUT: Schema = {"type": "object", "properties": {}, "additionalProperties": False}


def action_operations(
    described: Operation,
    method: str,
    path: str,
    entity: EntityDef,
    schema_name: str,
    tag: str,
    actions: Sequence[ActionDef],
) -> list[tuple[str, dict[str, Any]]]:
    """An operation with an `{action}` segment, once per action of the entity on its own path,
    with the action's input schema as its body: a generated client gets a typed call per
    action (`run_ticket_close`) beside the one taking any action's name."""
    found = []
    for action in actions:
        schema = copy.deepcopy(dict(action.input_schema or NO_INPUT))
        required = bool(schema.get("required"))
        own = replace(
            described,
            summary=action.label.get("en", action.name),
            description=f"Needs {action.permission} on the record. {described.description}",
            body=Body(schema, required=required),
        )
        concrete = path.replace(ENTITY_SEGMENT, entity.name).replace(ACTION_SEGMENT, action.name)
        operation = operation_object(own, method, concrete, entity.name, schema_name, tag)
        operation["operationId"] = f"run_{entity.name}_{action.name}"
        found.append((concrete, operation))
    return found


def build_openapi(
    routes: Sequence[RouteRow],
    entities: Sequence[EntityDef] | None,
    actions: Mapping[str, Sequence[ActionDef]] | None = None,
) -> dict[str, Any]:
    """The document for these routes. With `entities` (as the caller sees them), records routes
    are repeated per entity with its record schemas, and those naming an `{action}` also per
    action in `actions` (by entity); with None, they stay as one set under
    `/api/v1/records/{entity}` with the system fields only (the reference without a token)."""
    schemas = components()
    names = schema_names(entities or (), schemas)
    paths: dict[str, Any] = {}
    per_entity = []
    for method, path, endpoint in routes:
        described = operation_of(endpoint)
        if described is None:
            continue  # tests/integration/test_openapi_routes.py names it
        if ENTITY_SEGMENT in path and entities is not None:
            per_entity.append((method, path, described))
        else:
            paths.setdefault(path, {})[method.lower()] = operation_object(described, method, path)
    taken = {op["operationId"] for item in paths.values() for op in item.values()}
    tag_names = {name for name, _ in TAGS}
    tags = [{"name": name, "description": text} for name, text in TAGS if name != "records"]
    for entity in sorted(entities or (), key=lambda e: e.name):
        # Tagged with its name, unless that is a tag of the API's own ("webhooks").
        tag = _unique(entity.name, tag_names)
        label = entity.label.get("en", entity.name)
        tags.append(
            {
                "name": tag,
                "description": f"{label} records",
                "x-entity": entity.name,
                "x-schema": names[entity.name],
            }
        )
        for method, path, described in per_entity:
            concrete = path.replace(ENTITY_SEGMENT, entity.name)
            found = operation_object(
                described, method, concrete, entity.name, names[entity.name], tag
            )
            found["operationId"] = _unique(found["operationId"], taken)
            paths.setdefault(concrete, {})[method.lower()] = found
            if ACTION_SEGMENT not in path:
                continue
            own = (actions or {}).get(entity.name, ())
            for where, action in action_operations(
                described, method, path, entity, names[entity.name], tag, own
            ):
                action["operationId"] = _unique(action["operationId"], taken)
                paths.setdefault(where, {})[method.lower()] = action
    if entities is None:
        tags = [{"name": name, "description": text} for name, text in TAGS]
        schemas.update(
            Record=copy.deepcopy(RECORD),
            RecordInput=copy.deepcopy(RECORD_INPUT),
            RecordPage=record_page(ref("Record")),
        )
    for entity in entities or ():
        name = names[entity.name]
        schemas[name] = output_schema(
            entity, lambda target: ref(names[target]) if target in names else dict(EXPANDED)
        )
        accepted = copy.deepcopy(input_schema(entity))
        accepted.pop("$schema", None)
        schemas[f"{name}Input"] = accepted
        schemas[f"{name}Page"] = record_page(ref(name))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "metacrm",
            "version": metacrm.__version__,
            "description": "Generated from the route table and the metadata as it is now.",
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def visible_entities(catalog: Catalog, permissions: Permissions | None) -> list[EntityDef]:
    """The entities the caller may use, each as they see it (hidden fields left out)."""
    entities = sorted(catalog.entities.values(), key=lambda e: e.name)
    if permissions is None:
        return entities
    return [
        permissions.view(e, probe=False)
        for e in entities
        if any(permissions.may(e, action) for action in ACTIONS)
    ]


def visible_actions(
    catalog: Catalog, entities: Sequence[EntityDef], permissions: Permissions | None
) -> dict[str, list[ActionDef]]:
    """By entity, the record actions whose permission the caller's roles grant."""
    found: dict[str, list[ActionDef]] = {}
    for entity in entities:
        own: list[ActionDef] = catalog.of_kind_for(ACTION, entity.name)
        found[entity.name] = [
            a for a in own if permissions is None or permissions.may(entity, a.permission)
        ]
    return found


def routes_of(request: Request) -> Sequence[RouteRow]:
    """The route table the app was built with."""
    return request.app.state.routes


@operation(
    "openapi",
    "platform",
    "This OpenAPI document",
    description="Every operation, and every entity's record schemas as the caller sees them: "
    "entities they may use, fields some role of theirs shows them.",
    response=copy.deepcopy(OPENAPI_DOCUMENT),
)
async def openapi_json(request: Request) -> Response:
    routes = routes_of(request)

    def document_for(work: Work) -> dict[str, Any]:
        permissions = work.records().permissions
        entities = visible_entities(work.catalog, permissions)
        actions = visible_actions(work.catalog, entities, permissions)
        return build_openapi(routes, entities, actions)

    return JSONResponse(await runtime_of(request).run(request, document_for))
