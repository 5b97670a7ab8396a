"""Form layouts: designed under `/meta/form-layouts` (admins only), and the layout a user gets
for an entity — its default designed layout or the derived one, as they may see it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.metadata import store
from metacrm.metadata.form_layouts import FORM_LAYOUT, FormLayoutDesigner
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.documents import DocumentEndpoints
from metacrm.runtime.api.http import JSONResponse
from metacrm.runtime.api.operation import Param, operation, ref
from metacrm.runtime.form_layouts import layout_for
from metacrm.runtime.rule_checks import expression_checker


def _designer(work: Work) -> FormLayoutDesigner:
    return FormLayoutDesigner(
        work.conn,
        author=work.user.id,
        entities=work.catalog.entities,
        layouts=work.catalog.of_kind(FORM_LAYOUT),
        check_expression=expression_checker(work.catalog),
    )


def _summary(doc: store.StoredDocument) -> dict[str, Any]:
    return {
        "name": doc.name,
        "label": doc.document.get("label") or {"en": doc.name},
        "entity": doc.document["entity"],
        "default": doc.document.get("default", False),
        "sections": len(doc.document["sections"]),
        "version": doc.version,
    }


FORM_LAYOUTS = DocumentEndpoints(
    "form-layouts", FORM_LAYOUT, _designer, _summary, "FormLayout", "FormLayoutSummary"
)


@operation(
    "form_layout",
    "records",
    "The form layout of the entity, as you may see it",
    description="The entity's default designed layout, or the one derived from its fields when "
    "none is designed (`derived: true`). Fields you may not see are left out (a section left "
    "empty goes too), and so are related lists of records you may not read; `unplaced` lists "
    "the fields you see that the layout leaves out.",
    params=(Param("name", {"type": "string"}, "A designed layout of the entity, by name"),),
    response=ref("FormLayoutInUse"),
)
async def entity_layout(request: Request) -> Response:
    entity = request.path_params["entity"]
    name = request.query_params.get("name")
    found = await runtime_of(request).run(request, lambda w: layout_for(w.records(), entity, name))
    return JSONResponse(found)
