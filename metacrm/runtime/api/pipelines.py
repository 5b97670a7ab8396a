"""Pipelines through the metadata API (admins only), and a record's stage timeline and stage
plan through the records API (as the caller's permissions allow)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.metadata import store
from metacrm.metadata.pipelines import PIPELINE
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.documents import DocumentEndpoints
from metacrm.runtime.api.http import JSONResponse, read_json
from metacrm.runtime.api.operation import Body, Param, operation, ref
from metacrm.runtime.pipelines.design import PipelineDesigner
from metacrm.runtime.pipelines.timeline import set_plan, timeline


def _designer(work: Work) -> PipelineDesigner:
    return PipelineDesigner(work.records())


def _summary(doc: store.StoredDocument) -> dict[str, Any]:
    return {
        "name": doc.name,
        "label": doc.document["label"],
        "entity": doc.document["entity"],
        "field": doc.document["field"],
        "stages": [s["key"] for s in doc.document["stages"]],
        "version": doc.version,
    }


PIPELINES = DocumentEndpoints(
    "pipelines", PIPELINE, _designer, _summary, "Pipeline", "PipelineSummary", "PipelineInput"
)


WHICH_PIPELINE = Param(
    "pipeline", {"type": "string"}, "Which of the entity's pipelines (default: its first by name)"
)


@operation(
    "stage_timeline",
    "records",
    "A record's stage timeline",
    description="Per stage: first entered, last left, days spent, visits and planned date; and "
    "every visit in order.",
    params=(WHICH_PIPELINE,),
    response=ref("Timeline"),
)
async def stage_timeline(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    name = request.query_params.get("pipeline")
    found = await runtime_of(request).run(
        request, lambda w: timeline(w.records(), entity, record_id, name)
    )
    return JSONResponse(found)


@operation(
    "set_stage_plan",
    "records",
    "Set or remove planned dates of stages",
    description="Needs the right to change the record; returns the timeline.",
    params=(WHICH_PIPELINE,),
    body=Body(ref("StagePlan"), example={"proposal": "2030-03-01", "negotiation": None}),
    response=ref("Timeline"),
)
async def put_stage_plan(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    name = request.query_params.get("pipeline")
    body = await read_json(request)
    found = await runtime_of(request).run(
        request, lambda w: set_plan(w.records(), entity, record_id, body, name), write=True
    )
    return JSONResponse(found)
