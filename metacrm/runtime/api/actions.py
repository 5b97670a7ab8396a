"""Record actions over HTTP: design them under `/meta/actions` (admins; a document is addressed
as `<entity>.<name>`), list a record's actions and run one under the records API."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.metadata import store
from metacrm.metadata.actions import ACTION
from metacrm.runtime import actions
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.documents import DocumentEndpoints
from metacrm.runtime.api.http import JSONResponse, read_json
from metacrm.runtime.api.operation import ENTITY_SCHEMA, Body, operation, page, ref

# Running an action: a record locked by an approval, the condition not holding.
RUN_ERRORS = (409, 412, 423)


def _summary(doc: store.StoredDocument) -> dict[str, Any]:
    return {
        "name": doc.name,
        "action": doc.document["name"],
        "label": doc.document["label"],
        "entity": doc.document["entity"],
        "permission": doc.document["permission"],
        "steps": [s["type"] for s in doc.document["steps"]],
        "version": doc.version,
    }


ACTIONS = DocumentEndpoints(
    "actions",
    ACTION,
    lambda work: actions.action_designer(work),
    _summary,
    "Action",
    "ActionSummary",
)


def result_schema(record: dict[str, Any]) -> dict[str, Any]:
    """What running an action answers, with `record` the entity's record schema."""
    return {
        "type": "object",
        "required": ["result"],
        "properties": {
            "result": {
                "type": "object",
                "required": ["record"],
                "properties": {
                    "record": record,
                    "created": {"type": "array", "items": ref("ActionCreated")},
                    "approvals": {"type": "array", "items": ref("ActionApproval")},
                },
                "additionalProperties": True,
                "description": "The record after the action (as the caller may read it), the "
                "records and approvals its steps created, and what its hooks returned",
            }
        },
    }


@operation(
    "record_actions",
    "records",
    "The actions the caller may run on a record, each available or not, and why",
    description="Lists the entity's actions whose permission some role of the caller's grants; "
    "an action is unavailable when the caller lacks the permission on this record, an "
    "approval locks the record, or the action's condition does not hold.",
    response=page(ref("RecordAction")),
)
async def list_record_actions(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    found = await runtime_of(request).run(
        request, lambda w: actions.list_actions(w.records(), entity, record_id)
    )
    return JSONResponse({"data": found})


@operation(
    "run_action",
    "records",
    "Run an action on a record",
    description="The body is the action's input. 403 without the action's permission on the "
    "record, 423 while an approval locks it, 409 (with `reason`) when the action's condition "
    "does not hold, 422 for input its input schema refuses (each problem at its key path) or a "
    "step the record refuses; nothing changes then.",
    body=Body(ref("ActionInput"), required=False, example={"reason": "Duplicate"}),
    response=result_schema(ref(ENTITY_SCHEMA)),
    errors=RUN_ERRORS,
)
async def run_record_action(request: Request) -> Response:
    params = request.path_params
    entity, record_id, name = params["entity"], params["id"], params["action"]
    body = await read_json(request) if await request.body() else {}

    def run(work: Work) -> dict[str, Any]:
        return actions.run_action(work.records(), entity, record_id, name, body)

    result = await runtime_of(request).run(request, run, write=True)
    return JSONResponse({"result": result})
