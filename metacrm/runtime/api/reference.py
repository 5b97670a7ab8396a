"""The API reference at /api/docs (placeholder while it is written)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

import metacrm
from metacrm.runtime.api.operation import operation


@operation(
    "docs",
    "platform",
    "This reference",
    media="text/html",
    response={"type": "string"},
    public=True,
)
async def docs_page(request: Request) -> Response:
    templates = request.app.state.templates
    return HTMLResponse(templates.get_template("docs.html").render(version=metacrm.__version__))


@operation("docs_entities", "platform", "Entities", media="text/html", response={"type": "string"})
async def entity_reference(request: Request) -> Response:
    return HTMLResponse("")
