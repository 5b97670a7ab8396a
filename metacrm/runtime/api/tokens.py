"""API tokens: `POST /tokens` signs in with an email and a password and answers a new token (the
only time it is shown), `GET /tokens` lists the caller's (admins: anyone's, `?user=`),
`DELETE /tokens/{id}` revokes one at once."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from metacrm.platform.db import writing
from metacrm.platform.errors import FieldError, Unprocessable
from metacrm.platform.signin import sign_in
from metacrm.platform.users import IssuedToken, issue_token, revoke_token, visible_tokens
from metacrm.runtime.api.context import Runtime, Work, runtime_of
from metacrm.runtime.api.http import JSONResponse, read_json

DEFAULT_NAME = "sign-in"
_FIELDS = {"email", "password", "name"}


def _credentials(body: Any) -> tuple[str, str, str]:
    """email, password and token name from the body, or a 422 naming each bad part. Says
    nothing about whether they are right: that is the sign-in's business."""
    if not isinstance(body, dict):
        raise Unprocessable(
            "a sign-in must be a JSON object",
            errors=[FieldError("", "type", 'send {"email", "password", "name"?}')],
        )
    errors = [
        FieldError(k, "unknown_field", "not a property of a sign-in")
        for k in sorted(set(body) - _FIELDS)
    ]
    for key in ("email", "password", "name"):
        value = body.get(key)
        if key == "name" and value is None:
            continue
        if not isinstance(value, str) or not (value.strip() if key == "name" else value):
            errors.append(FieldError(key, "required", "must be a non-empty text"))
        elif "\x00" in value or not _encodable(value):
            errors.append(FieldError(key, "text", "must be UTF-8 text without NUL"))
        elif key == "name" and len(value) > 200:
            errors.append(FieldError(key, "max_length", "at most 200 characters"))
    if errors:
        raise Unprocessable("the sign-in is not valid", errors=errors)
    return body["email"], body["password"], body.get("name") or DEFAULT_NAME


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


async def create_token(request: Request) -> Response:
    email, password, name = _credentials(await read_json(request))
    address = request.client.host if request.client else None
    issued = await run_in_threadpool(
        _sign_in_and_issue, runtime_of(request), email, password, name, address
    )
    # The secret is in this body: no cache may keep it.
    return JSONResponse(issued.as_json(), status_code=201, headers={"Cache-Control": "no-store"})


def _sign_in_and_issue(
    runtime: Runtime, email: str, password: str, name: str, address: str | None
) -> IssuedToken:
    user = sign_in(
        runtime.engine,
        runtime.limiter,
        runtime.signin_policy,
        email=email,
        password=password,
        address=address,
    )
    with writing(runtime.engine) as conn:
        return issue_token(conn, user, name)


async def list_tokens(request: Request) -> Response:
    user_id = request.query_params.get("user")

    def tokens(work: Work) -> list[dict[str, Any]]:
        return [t.as_json() for t in visible_tokens(work.conn, work.user, user_id)]

    return JSONResponse({"data": await runtime_of(request).run(request, tokens)})


async def delete_token(request: Request) -> Response:
    token_id = request.path_params["id"]
    await runtime_of(request).run(
        request, lambda work: revoke_token(work.conn, work.user, token_id), write=True
    )
    return Response(status_code=204)
