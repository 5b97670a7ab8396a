"""The records API (API.md, "Records API"): list, create, get, patch, delete, restore, history."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.runtime import sharing
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.http import (
    IfMatch,
    JSONResponse,
    if_match,
    read_json,
    record_response,
)
from metacrm.runtime.api.params import parse_list_query, parse_names


async def list_records(request: Request) -> Response:
    entity = request.path_params["entity"]
    query = parse_list_query(request.query_params)
    result = await runtime_of(request).run(request, lambda w: w.records().list(entity, query))
    return JSONResponse(result)


async def create_record(request: Request) -> Response:
    entity = request.path_params["entity"]
    body = await read_json(request)
    record = await runtime_of(request).run(
        request, lambda w: w.records().create(entity, body), write=True
    )
    location = f"/api/v1/records/{entity}/{record['id']}"
    return record_response(record, 201, Location=location)


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


def _expected_version(
    work: Work, entity: str, record_id: str, condition: IfMatch | None
) -> int | None:
    """The version the record service checks as it writes. One strong tag goes to it as it is;
    a weak tag or a list of tags is decided here against the version read in the same
    transaction, which the service then checks again; `*` asks only that the record exists,
    which the service checks anyway (404 otherwise)."""
    if condition is None or condition.any:
        return None
    if condition.single_version is not None:
        return condition.single_version
    current = work.records().get(entity, record_id)["version"]
    if not condition.matches(current):
        raise condition.refusal(f"{entity} {record_id}", current)
    return current


async def update_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    condition = if_match(request)
    body = await read_json(request)

    def update(work: Work) -> dict[str, Any]:
        expected = _expected_version(work, entity, record_id, condition)
        return work.records().update(entity, record_id, body, if_match=expected)

    record = await runtime_of(request).run(request, update, write=True)
    return record_response(record)


async def delete_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    condition = if_match(request)

    def delete(work: Work) -> None:
        expected = _expected_version(work, entity, record_id, condition)
        work.records().delete(entity, record_id, if_match=expected)

    await runtime_of(request).run(request, delete, write=True)
    return Response(status_code=204)


async def restore_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    record = await runtime_of(request).run(
        request, lambda w: w.records().restore(entity, record_id), write=True
    )
    return record_response(record)


async def record_history(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    history = await runtime_of(request).run(
        request, lambda w: w.records().history(entity, record_id)
    )
    return JSONResponse({"data": history})


async def record_shares(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    shares = await runtime_of(request).run(
        request, lambda w: sharing.list_shares(w.records(), entity, record_id)
    )
    return JSONResponse({"data": shares})


async def share_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    body = await read_json(request)
    share = await runtime_of(request).run(
        request, lambda w: sharing.add_share(w.records(), entity, record_id, body), write=True
    )
    return JSONResponse(share, status_code=201)


async def unshare_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    share_id = request.path_params["share"]

    def remove(work: Work) -> None:
        sharing.remove_share(work.records(), entity, record_id, share_id)

    await runtime_of(request).run(request, remove, write=True)
    return Response(status_code=204)
