"""The OpenAPI 3.1 document, generated from the metadata as it is now, and the docs page."""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

import metacrm
from metacrm.metadata.roles import ACTIONS
from metacrm.runtime.api.context import runtime_of
from metacrm.runtime.api.http import JSONResponse
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.listing import MAX_LIMIT
from metacrm.runtime.permissions import Permissions
from metacrm.runtime.record_schema import input_schema, output_schema

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "code", "message"],
                "properties": {
                    "field": {"type": "string"},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
        "position": {
            "type": "object",
            "properties": {"line": {"type": "integer"}, "column": {"type": "integer"}},
        },
    },
}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _problem("Malformed request"),
    "401": _problem("Missing or bad token"),
    "403": _problem("Not allowed"),
    "404": _problem("Unknown entity or record"),
}
WRITE_ERRORS = {
    **ERRORS,
    "409": _problem("Conflict (a unique value)"),
    "412": _problem("If-Match does not match the record's version"),
    "413": _problem("Body too large"),
    "415": _problem("Not JSON"),
    "422": _problem("Invalid record"),
    "423": _problem("Locked while an approval is pending"),
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


LIST_PARAMETERS = [
    _query("filter", {"type": "string"}, "A rule-language expression"),
    _query("sort", {"type": "string"}, "Comma-separated fields, - for descending"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Page size"),
    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
    _query("fields", {"type": "string"}, "Only these fields (plus id)"),
    _query("expand", {"type": "string"}, "Embed these lookups"),
    _query("q", {"type": "string"}, "Case-insensitive search"),
    _query("count", {"type": "boolean"}, "Add the total count"),
]
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": (
        'The ETag the record was read with, such as "3", or a list of them ("3", "4": one must'
        ' be current), or * (any version). Compared strongly: a weak tag (W/"3") never matches.'
    ),
}


def _entity_paths(name: str) -> dict[str, Any]:
    title = _schema_name(name)
    record_ref = {"$ref": f"#/components/schemas/{title}"}
    input_ref = {"$ref": f"#/components/schemas/{title}Input"}
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    body = {"required": True, "content": {"application/json": {"schema": input_ref}}}
    page = {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": record_ref},
            "next_cursor": {"type": ["string", "null"]},
            "count": {"type": "integer"},
        },
    }
    history = {"type": "object", "properties": {"data": {"type": "array"}}}
    tags = [name]
    return {
        f"/api/v1/records/{name}": {
            "get": {
                "operationId": f"list_{name}",
                "tags": tags,
                "parameters": LIST_PARAMETERS,
                "responses": {"200": _json(page), **ERRORS},
            },
            "post": {
                "operationId": f"create_{name}",
                "tags": tags,
                "requestBody": body,
                "responses": {"201": _json(record_ref, "Created"), **WRITE_ERRORS},
            },
        },
        f"/api/v1/records/{name}/{{id}}": {
            "parameters": [id_param],
            "get": {
                "operationId": f"get_{name}",
                "tags": tags,
                "parameters": [LIST_PARAMETERS[4], LIST_PARAMETERS[5]],
                "responses": {"200": _json(record_ref), **ERRORS},
            },
            "patch": {
                "operationId": f"update_{name}",
                "tags": tags,
                "parameters": [IF_MATCH],
                "requestBody": body,
                "responses": {"200": _json(record_ref), **WRITE_ERRORS},
            },
            "delete": {
                "operationId": f"delete_{name}",
                "tags": tags,
                "parameters": [IF_MATCH],
                "responses": {"204": {"description": "Deleted"}, **WRITE_ERRORS},
            },
        },
        f"/api/v1/records/{name}/{{id}}/restore": {
            "parameters": [id_param],
            "post": {
                "operationId": f"restore_{name}",
                "tags": tags,
                "responses": {"200": _json(record_ref), **WRITE_ERRORS},
            },
        },
        f"/api/v1/records/{name}/{{id}}/history": {
            "parameters": [id_param],
            "get": {
                "operationId": f"history_{name}",
                "tags": tags,
                "responses": {"200": _json(history), **ERRORS},
            },
        },
    }


def _schema_name(entity: str) -> str:
    return "".join(part.capitalize() for part in entity.split("_")) or entity


def _meta_paths() -> dict[str, Any]:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    field = {"name": "field", "in": "path", "required": True, "schema": {"type": "string"}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "integer"}}
    doc = {"type": "object"}
    body = {"required": True, "content": {"application/json": {"schema": doc}}}
    tags = ["metadata"]
    ok = {"200": _json(doc), **WRITE_ERRORS}
    return {
        "/api/v1/meta/entities": {
            "get": {
                "operationId": "list_entities",
                "tags": tags,
                "responses": {"200": _json(doc), **ERRORS},
            },
            "post": {
                "operationId": "create_entity",
                "tags": tags,
                "requestBody": body,
                "responses": {"201": _json(doc, "Created"), **ok},
            },
        },
        "/api/v1/meta/entities/{name}": {
            "parameters": [name],
            "get": {
                "operationId": "get_entity",
                "tags": tags,
                "responses": {"200": _json(doc), **ERRORS},
            },
            "put": {
                "operationId": "replace_entity",
                "tags": tags,
                "requestBody": body,
                "parameters": [_query("dry_run", {"type": "boolean"}, "Plan only")],
                "responses": ok,
            },
            "delete": {
                "operationId": "delete_entity",
                "tags": tags,
                "parameters": [
                    _query("purge", {"type": "boolean"}, "Drop the table and records for good")
                ],
                "responses": {**ok, "422": _problem("Other metadata uses the entity")},
            },
        },
        "/api/v1/meta/entities/{name}/restore": {
            "parameters": [name],
            "post": {"operationId": "restore_entity", "tags": tags, "responses": ok},
        },
        "/api/v1/meta/entities/{name}/fields": {
            "parameters": [name],
            "post": {
                "operationId": "add_field",
                "tags": tags,
                "requestBody": body,
                "responses": {"201": _json(doc, "Created"), **ok},
            },
        },
        "/api/v1/meta/entities/{name}/fields/{field}": {
            "parameters": [name, field],
            "patch": {
                "operationId": "change_field",
                "tags": tags,
                "requestBody": body,
                "responses": ok,
            },
            "delete": {
                "operationId": "delete_field",
                "tags": tags,
                "parameters": [_query("purge", {"type": "boolean"}, "Drop the data")],
                "responses": ok,
            },
        },
        "/api/v1/meta/entities/{name}/rules/test": {
            "parameters": [name],
            "post": {
                "operationId": "test_rule",
                "tags": tags,
                "requestBody": body,
                "responses": {"200": _json(doc), **WRITE_ERRORS},
            },
        },
        "/api/v1/meta/entities/{name}/versions": {
            "parameters": [name],
            "get": {
                "operationId": "entity_versions",
                "tags": tags,
                "responses": {"200": _json(doc), **ERRORS},
            },
        },
        "/api/v1/meta/entities/{name}/versions/{version}/restore": {
            "parameters": [name, version],
            "post": {"operationId": "restore_entity_version", "tags": tags, "responses": ok},
        },
    }


# Users, org units, roles, shares and the caller: (path, method, operationId, tag, success
# status, has a JSON body). Their documents are described in the README.
def _document_rows(collection: str, noun: str) -> list[tuple[str, str, str, str, str, bool]]:
    """The seven operations of a named metadata document kind (DocumentEndpoints)."""
    base = f"/api/v1/meta/{collection}"
    tag = collection.replace("-", "_")
    return [
        (base, "get", f"list_{tag}", tag, "200", False),
        (base, "post", f"create_{noun}", tag, "201", True),
        (f"{base}/{{name}}", "get", f"get_{noun}", tag, "200", False),
        (f"{base}/{{name}}", "put", f"replace_{noun}", tag, "200", True),
        (f"{base}/{{name}}", "delete", f"delete_{noun}", tag, "204", False),
        (f"{base}/{{name}}/versions", "get", f"{noun}_versions", tag, "200", False),
        (
            f"{base}/{{name}}/versions/{{version}}/restore",
            "post",
            f"restore_{noun}_version",
            tag,
            "200",
            False,
        ),
    ]


_MANAGEMENT = [
    *_document_rows("roles", "role"),
    *_document_rows("pipelines", "pipeline"),
    *_document_rows("approval-processes", "approval_process"),
    ("/api/v1/approvals", "get", "approval_inbox", "approvals", "200", False),
    ("/api/v1/approvals/{id}", "get", "get_approval", "approvals", "200", False),
    ("/api/v1/approvals/{id}/approve", "post", "approve", "approvals", "200", True),
    ("/api/v1/approvals/{id}/reject", "post", "reject", "approvals", "200", True),
    ("/api/v1/approvals/{id}/recall", "post", "recall", "approvals", "200", True),
    ("/api/v1/approvals/{id}/reassign", "post", "reassign", "approvals", "200", True),
    ("/api/v1/me/delegations", "get", "list_delegations", "approvals", "200", False),
    ("/api/v1/me/delegations", "post", "delegate", "approvals", "201", True),
    ("/api/v1/me/delegations/{id}", "delete", "end_delegation", "approvals", "204", False),
    ("/api/v1/webhooks", "get", "list_webhooks", "webhooks", "200", False),
    ("/api/v1/webhooks", "post", "create_webhook", "webhooks", "201", True),
    ("/api/v1/webhooks/{id}", "get", "get_webhook", "webhooks", "200", False),
    ("/api/v1/webhooks/{id}", "patch", "change_webhook", "webhooks", "200", True),
    ("/api/v1/webhooks/{id}", "delete", "delete_webhook", "webhooks", "204", False),
    ("/api/v1/webhooks/{id}/secret", "post", "rotate_webhook_secret", "webhooks", "200", False),
    ("/api/v1/webhooks/{id}/deliveries", "get", "list_deliveries", "webhooks", "200", False),
    (
        "/api/v1/webhooks/{id}/deliveries/{delivery}/replay",
        "post",
        "replay_delivery",
        "webhooks",
        "202",
        False,
    ),
    ("/api/v1/notifications", "get", "list_notifications", "notifications", "200", False),
    ("/api/v1/notifications/read-all", "post", "read_all", "notifications", "200", False),
    ("/api/v1/notifications/{id}/read", "post", "mark_read", "notifications", "200", False),
    ("/api/v1/users", "get", "list_users", "users", "200", False),
    ("/api/v1/users", "post", "create_user", "users", "201", True),
    ("/api/v1/users/{id}", "get", "get_user", "users", "200", False),
    ("/api/v1/users/{id}", "patch", "change_user", "users", "200", True),
    ("/api/v1/org-units", "get", "list_org_units", "users", "200", False),
    ("/api/v1/org-units", "post", "create_org_unit", "users", "201", True),
    ("/api/v1/org-units/{id}", "get", "get_org_unit", "users", "200", False),
    ("/api/v1/org-units/{id}", "patch", "change_org_unit", "users", "200", True),
    ("/api/v1/org-units/{id}", "delete", "delete_org_unit", "users", "204", False),
    ("/api/v1/me", "get", "me", "users", "200", False),
    ("/api/v1/me/permissions", "get", "my_permissions", "users", "200", False),
]
# Operations on one record beside the records API proper, per entity: (path below the
# record, method, operationId prefix, success status, has a JSON body).
_RECORD_EXTRAS = [
    ("/shares", "get", "list_shares", "200", False),
    ("/shares", "post", "share", "201", True),
    ("/shares/{share}", "delete", "unshare", "204", False),
    ("/stages", "get", "stage_timeline", "200", False),
    ("/stage-plan", "put", "set_stage_plan", "200", True),
    ("/approvals", "get", "record_approvals", "200", False),
    ("/approvals", "post", "submit_for_approval", "201", True),
]


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {
            "name": n,
            "in": "path",
            "required": True,
            "schema": {"type": "integer" if n == "version" else "string"},
        }
        for n in names
    ]


def _operation(op_id: str, tag: str, status: str, has_body: bool) -> dict[str, Any]:
    doc = {"type": "object"}
    success = {"description": "No content"} if status == "204" else _json(doc)
    operation: dict[str, Any] = {
        "operationId": op_id,
        "tags": [tag],
        "responses": {status: success, **(WRITE_ERRORS if has_body else ERRORS)},
    }
    if has_body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": doc}},
        }
    return operation


def _management_paths(entities: list[str]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    rows = list(_MANAGEMENT)
    for name in entities:
        base = f"/api/v1/records/{name}/{{id}}"
        rows += [(base + p, m, f"{o}_{name}", name, st, b) for p, m, o, st, b in _RECORD_EXTRAS]
    for path, method, op_id, tag, status, has_body in rows:
        item = paths.setdefault(path, {"parameters": _path_parameters(path)})
        item[method] = _operation(op_id, tag, status, has_body)
    return paths


TIME = {"type": "string", "format": "date-time"}
TOKEN_SCHEMAS: dict[str, Any] = {
    "SignIn": {
        "type": "object",
        "required": ["email", "password"],
        "additionalProperties": False,
        "properties": {
            "email": {"type": "string", "minLength": 1},
            "password": {"type": "string", "minLength": 1},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
        },
    },
    "NewToken": {
        "type": "object",
        "required": ["id", "name", "token", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "token": {"type": "string", "description": "Shown only in this answer"},
            "created_at": TIME,
        },
    },
    "Token": {
        "type": "object",
        "required": ["id", "user", "name", "created_at", "revoked_at"],
        "properties": {
            "id": {"type": "string"},
            "user": {"type": "string"},
            "name": {"type": "string"},
            "created_at": TIME,
            "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
}


def _token_paths() -> dict[str, Any]:
    """Sign-in (no token needed) and the caller's tokens."""
    tags = ["tokens"]
    sign_in = {"$ref": "#/components/schemas/SignIn"}
    token_list = {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Token"}}},
    }
    return {
        "/api/v1/tokens": {
            "post": {
                "operationId": "create_token",
                "tags": tags,
                "security": [],
                "description": "Sign in with an email and a password; the token is shown once.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": sign_in}},
                },
                "responses": {
                    "201": _json({"$ref": "#/components/schemas/NewToken"}, "Created"),
                    "400": ERRORS["400"],
                    "401": _problem("The email or password is not right"),
                    "413": WRITE_ERRORS["413"],
                    "415": WRITE_ERRORS["415"],
                    "422": _problem("Not a sign-in"),
                    "429": {
                        **_problem("Too many attempts for this account or address"),
                        "headers": {
                            "Retry-After": {
                                "description": "Seconds until the next attempt may be made",
                                "schema": {"type": "integer"},
                            }
                        },
                    },
                },
            },
            "get": {
                "operationId": "list_tokens",
                "tags": tags,
                "parameters": [
                    _query("user", {"type": "string"}, "Another user's id (admins only)")
                ],
                "responses": {"200": _json(token_list), **ERRORS},
            },
        },
        "/api/v1/tokens/{id}": {
            "parameters": _path_parameters("/api/v1/tokens/{id}"),
            "delete": {
                "operationId": "revoke_token",
                "tags": tags,
                "responses": {"204": {"description": "Revoked"}, **ERRORS},
            },
        },
    }


def build_openapi(catalog: Catalog, permissions: Permissions | None = None) -> dict[str, Any]:
    """The document as the caller sees the metadata: entities they may use, and in each record
    schema only the fields some role of theirs shows them."""
    schemas: dict[str, Any] = {"Problem": PROBLEM, **TOKEN_SCHEMAS}
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "operationId": "health",
                "security": [],
                "tags": ["platform"],
                "responses": {
                    "200": _json({"type": "object"}),
                    "503": _json({"type": "object"}, "Unhealthy"),
                },
            },
        }
    }
    paths.update(_meta_paths())
    entities = sorted(catalog.entities.values(), key=lambda e: e.name)
    if permissions is not None:
        entities = [
            permissions.view(e, probe=False)
            for e in entities
            if any(permissions.may(e, action) for action in ACTIONS)
        ]
    paths.update(_management_paths([e.name for e in entities]))
    paths.update(_token_paths())
    for entity in entities:
        title = _schema_name(entity.name)
        schemas[title] = output_schema(entity)
        accepted = copy.deepcopy(input_schema(entity))
        accepted.pop("$schema", None)
        schemas[f"{title}Input"] = accepted
        paths.update(_entity_paths(entity.name))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "metacrm",
            "version": metacrm.__version__,
            "description": "Generated from the metadata as it is now.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


async def openapi_json(request: Request) -> Response:
    runtime = runtime_of(request)
    document = await runtime.run(
        request, lambda w: build_openapi(w.catalog, w.records().permissions)
    )
    return JSONResponse(document)


async def docs_page(request: Request) -> Response:
    templates = request.app.state.templates
    return HTMLResponse(templates.get_template("docs.html").render(version=metacrm.__version__))
