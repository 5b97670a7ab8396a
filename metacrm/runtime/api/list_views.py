"""List views: shared ones designed under `/meta/list-views` (admins only); the views a user
may use, and their own views, under `/list-views` (each user theirs; admins anyone's)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.metadata import store
from metacrm.metadata.list_views import LIST_VIEW, ListViewDesigner
from metacrm.runtime import list_views
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.documents import DocumentEndpoints
from metacrm.runtime.api.http import JSONResponse, read_json
from metacrm.runtime.api.operation import Body, Param, operation, page, ref
from metacrm.runtime.rule_checks import expression_checker

TAG = "list_views"
EXAMPLE = {
    "label": "My big deals",
    "entity": "opportunity",
    "columns": ["name", "account.industry", "amount", "stage"],
    "filter": "amount > 10000 and owner == $user.id",
    "sort": "-amount,name",
    "page_size": 25,
    "quick_filters": ["stage"],
    "default": True,
}


def _designer(work: Work) -> ListViewDesigner:
    return ListViewDesigner(
        work.conn,
        author=work.user.id,
        entities=work.catalog.entities,
        views=work.catalog.of_kind(LIST_VIEW),
        check_expression=expression_checker(work.catalog),
    )


def _summary(doc: store.StoredDocument) -> dict[str, Any]:
    return {
        "name": doc.name,
        "label": doc.document["label"],
        "entity": doc.document["entity"],
        "columns": doc.document["columns"],
        "default": doc.document.get("default", False),
        "version": doc.version,
    }


LIST_VIEWS = DocumentEndpoints(
    "list-views", LIST_VIEW, _designer, _summary, "ListView", "ListViewSummary"
)


@operation(
    "usable_list_views",
    TAG,
    "The list views you may use: your own, then the shared ones",
    description="Each with the columns you may see, whether you may use it (a filter or sort "
    "on a field withheld from you makes it unavailable, with the reason) and the records list "
    "parameters that show it (`query`). One view per entity `applies_by_default`: your own "
    "default, else the shared one.",
    params=(
        Param("entity", {"type": "string"}, "Only this entity's views"),
        Param("user", {"type": "string"}, "Another user's id: their views (admins only)"),
    ),
    response=page(ref("ListViewInUse")),
    errors=(404,),
)
async def usable_views(request: Request) -> Response:
    entity, user = request.query_params.get("entity"), request.query_params.get("user")

    def usable(work: Work) -> list[dict[str, Any]]:
        return list_views.views_for(list_views.for_user(work.records(), user), entity)

    return JSONResponse({"data": await runtime_of(request).run(request, usable)})


@operation(
    "create_personal_view",
    TAG,
    "Save a list view of your own",
    description="Checked against the entity as its owner sees it: a field withheld from them "
    "is unknown. Marking it `default` unmarks their previous default of the entity. Admins may "
    "make one for another user (`owner`).",
    status=201,
    body=Body(ref("PersonalListView"), example=EXAMPLE),
    response=ref("ListViewInUse"),
)
async def create_view(request: Request) -> Response:
    body = await read_json(request)
    found = await runtime_of(request).run(
        request, lambda w: list_views.create_personal(w.records(), body), write=True
    )
    return JSONResponse(found, status_code=201)


@operation(
    "get_personal_view",
    TAG,
    "One of your own list views",
    description="Someone else's view is a 404 to anyone but an admin.",
    response=ref("ListViewInUse"),
)
async def get_view(request: Request) -> Response:
    view_id = request.path_params["id"]
    found = await runtime_of(request).run(
        request, lambda w: list_views.get_personal(w.records(), view_id)
    )
    return JSONResponse(found)


@operation(
    "replace_personal_view",
    TAG,
    "Replace one of your own list views",
    description="Send back the `version` you read to be refused (412) if it changed meanwhile.",
    body=Body(ref("PersonalListView"), example={**EXAMPLE, "version": 1}),
    response=ref("ListViewInUse"),
    errors=(412,),
)
async def replace_view(request: Request) -> Response:
    view_id = request.path_params["id"]
    body = await read_json(request)
    found = await runtime_of(request).run(
        request, lambda w: list_views.replace_personal(w.records(), view_id, body), write=True
    )
    return JSONResponse(found)


@operation("delete_personal_view", TAG, "Delete one of your own list views", status=204)
async def delete_view(request: Request) -> Response:
    view_id = request.path_params["id"]
    await runtime_of(request).run(
        request, lambda w: list_views.delete_personal(w.records(), view_id), write=True
    )
    return Response(status_code=204)
