"""The metadata API (docs/api.md, "Metadata API"): design entities and fields, see and restore
versions. Reads are open to every user; changes are for admins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.metadata import store
from metacrm.metadata.entities import DesignResult, EntityDesigner, public_document
from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import BadRequest, NotFound, Unprocessable
from metacrm.runtime import entity_removal, rule_tester
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.http import JSONResponse, read_json
from metacrm.runtime.api.operation import Body, Param, Reply, operation, page, ref
from metacrm.runtime.api.params import parse_bool
from metacrm.runtime.automations import broken_automations
from metacrm.runtime.pipelines.design import binding_errors
from metacrm.runtime.rule_checks import expression_checker


def entity_json(entity: EntityDef) -> dict[str, Any]:
    doc = public_document(entity.doc)
    doc["version"] = entity.version
    hidden = [f["name"] for f in entity.doc.get("hidden_fields", [])]
    if hidden:
        doc["hidden_fields"] = hidden
    return doc


def _designer(work: Work) -> EntityDesigner:
    return EntityDesigner(
        work.conn,
        author=work.user.id,
        check_expression=expression_checker(work.catalog),
        validators=tuple(work.host.registry.validators),
    )


def _changed(work: Work, change: Callable[[EntityDesigner], DesignResult]) -> DesignResult:
    """An entity change made through the API, refused if it would break a pipeline bound to
    the entity (a stage's option removed, the field retyped or deleted) or an automation (a
    field it sets or reads gone or retyped)."""
    result = change(_designer(work))
    errors = binding_errors(work.catalog, result.entity)
    if errors:
        raise Unprocessable("the change would break a stage pipeline", errors=errors)
    if result.applied:
        errors = broken_automations(work.conn, work.catalog)
        if errors:
            raise Unprocessable("the change would break an automation", errors=errors)
    return result


TAG = "entities"
DRY_RUN = Param("dry_run", {"type": "boolean"}, "Only return the plan; change nothing")
WRITTEN = ref("EntityWritten")
EXAMPLE_ENTITY = {
    "name": "opportunity",
    "label": {"en": "Opportunity"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True, "max_length": 200},
        {"name": "amount", "type": "decimal", "precision": 14, "scale": 2, "min": 0},
        {"name": "close_date", "type": "date", "indexed": True},
    ],
}


def _result(result: DesignResult, status: int = 200) -> Response:
    body = entity_json(result.entity)
    if not result.applied:
        body = {"dry_run": True, "plan": result.plan.as_json(), "entity": body}
    else:
        body["plan"] = result.plan.as_json()
    return JSONResponse(body, status_code=status)


@operation("list_entities", TAG, "All entities (summaries)", response=page(ref("EntitySummary")))
async def list_entities(request: Request) -> Response:
    def summaries(work: Work) -> list[dict[str, Any]]:
        return [
            {
                "name": e.name,
                "label": e.label,
                "plural_label": e.plural_label,
                "version": e.version,
                "fields": len(e.fields),
            }
            for e in sorted(work.catalog.entities.values(), key=lambda e: e.name)
        ]

    return JSONResponse({"data": await runtime_of(request).run(request, summaries)})


@operation(
    "create_entity",
    TAG,
    "Create an entity",
    description="Creates its table with typed columns and indexes. Every problem of an invalid "
    "document is reported at once, each with a JSON Pointer.",
    status=201,
    body=Body(ref("Entity"), example=EXAMPLE_ENTITY),
    params=(DRY_RUN,),
    response=WRITTEN,
    also=(Reply(200, ref("EntityDryRun"), "Dry run: the plan; nothing was changed"),),
    errors=(409,),
)
async def create_entity(request: Request) -> Response:
    body = await read_json(request)
    dry_run = parse_bool(request.query_params.get("dry_run"), "dry_run")
    result = await runtime_of(request).run(
        request, lambda w: _designer(w).create(body, dry_run=dry_run), write=True, admin=True
    )
    return _result(result, 200 if dry_run else 201)


@operation(
    "get_entity", TAG, "An entity's document, with its version", response=ref("EntityDocument")
)
async def get_entity(request: Request) -> Response:
    name = request.path_params["name"]
    entity = await runtime_of(request).run(request, lambda w: w.catalog.entity(name))
    return JSONResponse(entity_json(entity))


@operation(
    "replace_entity",
    TAG,
    "Replace an entity's document",
    description="The difference becomes a migration. A change existing data can't take is "
    "refused (422, with how many rows and a few ids); send back the `version` you read to be "
    "refused (412) if someone changed the document in between.",
    body=Body(ref("Entity"), example={**EXAMPLE_ENTITY, "version": 1}),
    params=(DRY_RUN,),
    response={"anyOf": [WRITTEN, ref("EntityDryRun")]},
    errors=(409, 412),
)
async def replace_entity(request: Request) -> Response:
    name = request.path_params["name"]
    body = await read_json(request)
    dry_run = parse_bool(request.query_params.get("dry_run"), "dry_run")
    expected = body.get("version") if isinstance(body, dict) else None
    if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool)):
        raise BadRequest("version must be the integer version the document was read at")
    result = await runtime_of(request).run(
        request,
        lambda w: _changed(
            w, lambda d: d.replace(name, body, dry_run=dry_run, expected_version=expected)
        ),
        write=True,
        admin=True,
    )
    return _result(result)


@operation(
    "add_field",
    TAG,
    "Add a field",
    description="On a table with rows too; a default fills the existing rows.",
    status=201,
    body=Body(ref("Field"), example={"name": "close_date", "type": "date", "indexed": True}),
    response=WRITTEN,
    errors=(409,),
)
async def add_field(request: Request) -> Response:
    name = request.path_params["name"]
    body = await read_json(request)
    result = await runtime_of(request).run(
        request, lambda w: _designer(w).add_field(name, body), write=True, admin=True
    )
    return _result(result, 201)


@operation(
    "change_field",
    TAG,
    "Change a field",
    description="Only the options sent change; null takes an option away. A type change "
    "follows the table of allowed conversions; `name` renames the field.",
    body=Body(ref("FieldChange"), example={"label": {"en": "Expected close"}, "required": True}),
    response=WRITTEN,
    errors=(409,),
)
async def change_field(request: Request) -> Response:
    name, field = request.path_params["name"], request.path_params["field"]
    body = await read_json(request)
    result = await runtime_of(request).run(
        request,
        lambda w: _changed(w, lambda d: d.change_field(name, field, body)),
        write=True,
        admin=True,
    )
    return _result(result)


@operation(
    "delete_field",
    TAG,
    "Delete a field",
    description="Hides the field and keeps its data; `purge=true` drops it for good.",
    params=(Param("purge", {"type": "boolean"}, "Drop the column and its data"),),
    response=WRITTEN,
)
async def delete_field(request: Request) -> Response:
    name, field = request.path_params["name"], request.path_params["field"]
    purge = parse_bool(request.query_params.get("purge"), "purge")
    result = await runtime_of(request).run(
        request,
        lambda w: _changed(w, lambda d: d.delete_field(name, field, purge=purge)),
        write=True,
        admin=True,
    )
    return _result(result)


@operation(
    "delete_entity",
    TAG,
    "Delete an entity",
    description="Refused (422, listing each) while other metadata uses it. Hides the entity and "
    "keeps its table and records (restorable, name held); `purge=true` drops them for good.",
    params=(Param("purge", {"type": "boolean"}, "Drop the table and its records for good"),),
    response=ref("EntityRemoved"),
    errors=(409,),
)
async def delete_entity(request: Request) -> Response:
    """Hide the entity (table and records kept, restorable) or, with `?purge=true`, drop it."""
    name = request.path_params["name"]
    purge = parse_bool(request.query_params.get("purge"), "purge")
    result = await runtime_of(request).run(
        request,
        lambda w: entity_removal.remove_entity(w.conn, w.catalog, w.user.id, name, purge=purge),
        write=True,
        admin=True,
    )
    body = {
        "name": name,
        "deleted": True,
        "purged": purge,
        "version": result.entity.version,
        "plan": result.plan.as_json(),
    }
    return JSONResponse(body)


@operation(
    "restore_entity",
    TAG,
    "Bring a deleted entity back",
    description="As it was when it was deleted, over its kept table and records.",
    response=WRITTEN,
    errors=(409,),
)
async def restore_entity(request: Request) -> Response:
    """Bring a deleted entity back as it was when it was deleted."""
    name = request.path_params["name"]
    result = await runtime_of(request).run(
        request, lambda w: _changed(w, lambda d: d.undelete(name)), write=True, admin=True
    )
    return _result(result)


@operation(
    "entity_versions",
    TAG,
    "Every version of an entity, with author, time and diff",
    response=page(ref("DocumentVersion")),
)
async def entity_versions(request: Request) -> Response:
    name = request.path_params["name"]

    def history(work: Work) -> list[dict[str, Any]]:
        # A deleted entity keeps its history: it says which version to restore.
        found = [v.as_json() for v in store.versions(work.conn, store.ENTITY, name)]
        if not found:
            raise NotFound(f"no entity named {name!r}")
        return found

    return JSONResponse({"data": await runtime_of(request).run(request, history)})


@operation(
    "restore_entity_version",
    TAG,
    "Make an old version of an entity current again",
    response=WRITTEN,
    errors=(409,),
)
async def restore_version(request: Request) -> Response:
    name, raw = request.path_params["name"], request.path_params["version"]
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest("the version must be a whole number")
    if len(raw) > 9:
        raise NotFound(f"entity {name!r} has no version {raw}")
    result = await runtime_of(request).run(
        request,
        lambda w: _changed(w, lambda d: d.restore(name, int(raw))),
        write=True,
        admin=True,
    )
    return _result(result)


@operation(
    "test_rule",
    TAG,
    "Test a rule-language expression",
    description="What it checks to, the SQL it compiles to, and its value for a record (or, for "
    "a condition without a record, how many records match). Changes nothing.",
    body=Body(ref("RuleTest"), example={"expression": "amount > 5000", "record": {"amount": 7000}}),
    response=ref("RuleTestResult"),
)
async def test_rule(request: Request) -> Response:
    name = request.path_params["name"]
    body = await read_json(request)
    result = await runtime_of(request).run(
        request, lambda w: rule_tester.test_rule(w.records(), name, body), admin=True
    )
    return JSONResponse(result)
