"""Approval workflows over HTTP: submit a record, see a record's approvals and one's inbox,
answer, recall and reassign; manage one's delegations; and design approval processes under
`/meta/approval-processes` (admins only)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.metadata import store
from metacrm.metadata.approvals import APPROVAL_PROCESS, ApprovalProcessDesigner
from metacrm.platform.errors import BadRequest, FieldError, Forbidden, Unprocessable
from metacrm.runtime import approvals
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.documents import DocumentEndpoints
from metacrm.runtime.api.http import JSONResponse, read_json
from metacrm.runtime.approvals.transitions import APPROVED, REJECTED
from metacrm.runtime.approvals.views import INBOX_STATUSES
from metacrm.runtime.rule_checks import expression_checker

MAX_COMMENT = 4000


def _designer(work: Work) -> ApprovalProcessDesigner:
    return ApprovalProcessDesigner(
        work.conn,
        author=work.user.id,
        entities=work.catalog.entities,
        roles=work.catalog.roles.keys(),
        check_expression=expression_checker(work.catalog),
    )


def _summary(doc: store.StoredDocument) -> dict[str, Any]:
    return {
        "name": doc.name,
        "label": doc.document["label"],
        "entity": doc.document["entity"],
        "trigger": doc.document.get("trigger", "manual"),
        "steps": len(doc.document.get("steps") or ()),
        "version": doc.version,
    }


APPROVAL_PROCESSES = DocumentEndpoints("approval-processes", APPROVAL_PROCESS, _designer, _summary)


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    """An optional JSON object of known keys; no body at all is an empty one."""
    if not await request.body():
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise Unprocessable("the body must be a JSON object", errors=[FieldError("", "type", "")])
    errors = [
        FieldError(k, "unknown_field", "not accepted here") for k in sorted(set(body) - allowed)
    ]
    for key in allowed & set(body):
        value = body[key]
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            errors.append(FieldError(key, "type", "must be text"))
        elif key == "comment" and value is not None and len(value) > MAX_COMMENT:
            errors.append(FieldError(key, "max_length", f"at most {MAX_COMMENT} characters"))
    if errors:
        raise Unprocessable("the body is not valid", errors=errors)
    return body


# ---- a record's approvals -------------------------------------------------------------------


async def submit_record(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    body = await _body(request, {"process", "comment"})
    if not body.get("process"):
        raise Unprocessable(
            "name the process", errors=[FieldError("process", "required", "is required")]
        )

    def submit(work: Work) -> dict[str, Any]:
        return approvals.submit(
            work.records(), entity, record_id, body["process"], comment=body.get("comment")
        )

    approval = await runtime_of(request).run(request, submit, write=True)
    return JSONResponse(
        approval, status_code=201, headers={"Location": f"/api/v1/approvals/{approval['id']}"}
    )


async def list_record_approvals(request: Request) -> Response:
    entity, record_id = request.path_params["entity"], request.path_params["id"]
    found = await runtime_of(request).run(
        request, lambda w: approvals.record_approvals(w.records(), entity, record_id)
    )
    return JSONResponse({"data": found})


# ---- approvals ------------------------------------------------------------------------------


async def list_inbox(request: Request) -> Response:
    assigned_to = request.query_params.get("assigned_to", "me")
    status = request.query_params.get("status", "pending")
    if status not in INBOX_STATUSES:
        raise BadRequest(f"status must be one of: {', '.join(INBOX_STATUSES)}")

    def tasks(work: Work) -> list[dict[str, Any]]:
        user_id = work.user.id if assigned_to == "me" else assigned_to
        if user_id != work.user.id and not work.user.is_admin:
            raise Forbidden("only admins may see someone else's approvals")
        return approvals.inbox(work.records(), user_id, status)

    return JSONResponse({"data": await runtime_of(request).run(request, tasks)})


async def get_approval(request: Request) -> Response:
    approval_id = request.path_params["id"]

    def one(work: Work) -> dict[str, Any]:
        service = work.records()
        return approvals.approval_json(service, approvals.visible(service, approval_id))

    return JSONResponse(await runtime_of(request).run(request, one))


async def _answer(request: Request, answer: str) -> Response:
    approval_id = request.path_params["id"]
    body = await _body(request, {"comment"})

    def decide(work: Work) -> dict[str, Any]:
        service = work.records()
        approvals.visible(service, approval_id)
        approval = approvals.decide(service, approval_id, answer, body.get("comment"))
        return approvals.approval_json(service, approval)

    return JSONResponse(await runtime_of(request).run(request, decide, write=True))


async def approve(request: Request) -> Response:
    return await _answer(request, APPROVED)


async def reject(request: Request) -> Response:
    return await _answer(request, REJECTED)


async def recall(request: Request) -> Response:
    approval_id = request.path_params["id"]
    body = await _body(request, {"comment"})

    def withdraw(work: Work) -> dict[str, Any]:
        service = work.records()
        approvals.visible(service, approval_id)
        approval = approvals.recall(service, approval_id, body.get("comment"))
        return approvals.approval_json(service, approval)

    return JSONResponse(await runtime_of(request).run(request, withdraw, write=True))


async def reassign(request: Request) -> Response:
    approval_id = request.path_params["id"]
    body = await _body(request, {"from", "to", "comment"})
    if not body.get("to"):
        raise Unprocessable(
            "name whom the task goes to", errors=[FieldError("to", "required", "is required")]
        )

    def move(work: Work) -> dict[str, Any]:
        service = work.records()
        approvals.visible(service, approval_id)
        approval = approvals.reassign(
            service,
            approval_id,
            body["to"],
            from_user=body.get("from"),
            comment=body.get("comment"),
        )
        return approvals.approval_json(service, approvals.visible(service, approval.id))

    return JSONResponse(await runtime_of(request).run(request, move, write=True))


# ---- delegations ----------------------------------------------------------------------------


async def my_delegations(request: Request) -> Response:
    found = await runtime_of(request).run(
        request, lambda w: approvals.list_delegations(w.conn, w.user)
    )
    return JSONResponse({"data": found})


async def delegate(request: Request) -> Response:
    body = await read_json(request)
    created = await runtime_of(request).run(
        request,
        lambda w: approvals.create_delegation(w.conn, w.user, body, w.now),
        write=True,
    )
    return JSONResponse(created, status_code=201)


async def end_delegation(request: Request) -> Response:
    delegation_id = request.path_params["id"]

    def remove(work: Work) -> None:
        approvals.delete_delegation(work.conn, work.user, delegation_id)

    await runtime_of(request).run(request, remove, write=True)
    return Response(status_code=204)
