"""The records API (docs/api.md, "Records API"): list, create, get, patch, delete, restore,
history."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from metacrm.runtime import sharing
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.http import JSONResponse, if_match, read_json, record_response
from metacrm.runtime.api.operation import ENTITY_SCHEMA, Body, Param, operation, page, ref
from metacrm.runtime.api.params import parse_list_query, parse_names
from metacrm.runtime.listing import MAX_LIMIT

TAG = "records"
RECORD, INPUT = ref(ENTITY_SCHEMA), ref(f"{ENTITY_SCHEMA}Input")
# Record writes: a unique value taken, a stale If-Match, a record locked by an approval.
RECORD_WRITE_ERRORS = (409, 412, 423)
IF_MATCH = Param(
    "If-Match",
    {"type": "string"},
    'The ETag the record was read with, such as "3", or a list of them ("3", "4": one must be '
    'current), or * (any version). Compared strongly: a weak tag (W/"3") never matches.',
    "header",
)
FIELDS = Param("fields", {"type": "string"}, "Only these fields (comma-separated; id always)")
EXPAND = Param("expand", {"type": "string"}, "Embed these lookups' records (comma-separated)")
LIST_PARAMETERS = (
    Param("filter", {"type": "string"}, "A rule-language expression, e.g. amount > 5000"),
    Param("sort", {"type": "string"}, "Comma-separated fields, - for descending: -amount,name"),
    Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Page size (50)"),
    Param("cursor", {"type": "string"}, "The next_cursor of the previous page"),
    FIELDS,
    EXPAND,
    Param("q", {"type": "string"}, "Case-insensitive search over the searchable text fields"),
    Param("count", {"type": "boolean"}, "Add the total count"),
)


@operation(
    "list",
    TAG,
    "List records",
    description="Keyset pagination: pass next_cursor back as cursor; stable while records change.",
    params=LIST_PARAMETERS,
    response=ref(f"{ENTITY_SCHEMA}Page"),
)
async def list_records(request: Request) -> Response:
    entity = request.path_params["entity"]
    query = parse_list_query(request.query_params)
    result = await runtime_of(request).run(request, lambda w: w.records().list(entity, query))
    return JSONResponse(result)


@operation(
    "create",
    TAG,
    "Create a record",
    status=201,
    body=Body(INPUT),
    response=RECORD,
    headers=("Location", "ETag"),
    errors=(409,),
)
async def create_record(request: Request) -> Response:
    entity = request.path_params["entity"]
    body = await read_json(request)
    record = await runtime_of(request).run(
        request, lambda w: w.records().create(entity, body), write=True
    )
    location = f"/api/v1/records/{entity}/{record['id']}"
    return record_response(record, 201, Location=location)


@operation("get", TAG, "A record", params=(FIELDS, EXPAND), response=RECORD, headers=("ETag",))
async def get_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    fields = request.query_params.get("fields")
    expand = request.query_params.get("expand")
    record = await runtime_of(request).run(
        request,
        lambda w: w.records().get(
            entity,
            record_id,
            fields=parse_names(fields, "fields") if fields else None,
            expand=parse_names(expand, "expand") if expand else (),
        ),
    )
    if "version" not in record:
        return JSONResponse(record)
    return record_response(record)


@operation(
    "update",
    TAG,
    "Change some fields of a record",
    description='With If-Match: "<version>", a stale version is refused with 412.',
    params=(IF_MATCH,),
    body=Body(INPUT),
    response=RECORD,
    headers=("ETag",),
    errors=RECORD_WRITE_ERRORS,
)
async def update_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    expected = if_match(request)
    body = await read_json(request)
    record = await runtime_of(request).run(
        request,
        lambda w: w.records().update(entity, record_id, body, if_match=expected),
        write=True,
    )
    return record_response(record)


@operation(
    "delete",
    TAG,
    "Move a record to the recycle bin",
    params=(IF_MATCH,),
    status=204,
    errors=RECORD_WRITE_ERRORS,
)
async def delete_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    expected = if_match(request)

    def delete(work: Work) -> None:
        work.records().delete(entity, record_id, if_match=expected)

    await runtime_of(request).run(request, delete, write=True)
    return Response(status_code=204)


@operation(
    "restore",
    TAG,
    "Bring a record back from the recycle bin",
    response=RECORD,
    headers=("ETag",),
    errors=(409,),
)
async def restore_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    record = await runtime_of(request).run(
        request, lambda w: w.records().restore(entity, record_id), write=True
    )
    return record_response(record)


@operation(
    "history",
    TAG,
    "Who changed what, when: old → new, newest first",
    response=page(ref("HistoryEntry")),
)
async def record_history(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    history = await runtime_of(request).run(
        request, lambda w: w.records().history(entity, record_id)
    )
    return JSONResponse({"data": history})


@operation("list_shares", TAG, "A record's shares", response=page(ref("Share")))
async def record_shares(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    shares = await runtime_of(request).run(
        request, lambda w: sharing.list_shares(w.records(), entity, record_id)
    )
    return JSONResponse({"data": shares})


@operation(
    "share",
    TAG,
    "Share a record with a user, a role or an org unit",
    description="Needs the share right. Shares widen what a role's scope selects; they never "
    "grant an action no role grants.",
    status=201,
    body=Body(
        ref("ShareInput"),
        example={"principal_type": "role", "principal": "sales_rep", "access": "read"},
    ),
    response=ref("Share"),
    errors=(409,),
)
async def share_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    body = await read_json(request)
    share = await runtime_of(request).run(
        request, lambda w: sharing.add_share(w.records(), entity, record_id, body), write=True
    )
    return JSONResponse(share, status_code=201)


@operation("unshare", TAG, "Take a share away", status=204)
async def unshare_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    share_id = request.path_params["share"]

    def remove(work: Work) -> None:
        sharing.remove_share(work.records(), entity, record_id, share_id)

    await runtime_of(request).run(request, remove, write=True)
    return Response(status_code=204)
