"""Role documents through the metadata API: list, create, read, replace, delete, versions and
restore. Roles decide what everyone may see, so only admins read or change them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.metadata import store
from metacrm.metadata.roles import ROLE, RoleDef, RoleDesigner
from metacrm.platform.errors import BadRequest, NotFound
from metacrm.runtime.api.context import Runtime, Work
from metacrm.runtime.api.http import JSONResponse, read_json
from metacrm.runtime.rule_checks import expression_checker


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _designer(work: Work) -> RoleDesigner:
    return RoleDesigner(
        work.conn,
        author=work.user.id,
        entities=work.catalog.entities,
        check_expression=expression_checker(work.catalog),
    )


def _role_json(work: Work, role: RoleDef) -> dict[str, Any]:
    found = store.get(work.conn, ROLE, role.name)
    document = dict(found.document) if found else {}
    document["version"] = role.version
    return document


async def list_roles(request: Request) -> Response:
    def roles(work: Work) -> list[dict[str, Any]]:
        return [
            {
                "name": r.name,
                "label": dict(r.label),
                "version": r.version,
                "entities": len(r.entities),
            }
            for r in sorted(work.catalog.roles.values(), key=lambda r: r.name)
        ]

    return JSONResponse({"data": await _runtime(request).run(request, roles, admin=True)})


async def create_role(request: Request) -> Response:
    body = await read_json(request)
    document = await _runtime(request).run(
        request, lambda w: _role_json(w, _designer(w).create(body)), write=True, admin=True
    )
    return JSONResponse(document, status_code=201)


async def get_role(request: Request) -> Response:
    name = request.path_params["name"]

    def document(work: Work) -> dict[str, Any]:
        found = _designer(work).current(name)
        return {**found.document, "version": found.version}

    return JSONResponse(await _runtime(request).run(request, document, admin=True))


async def replace_role(request: Request) -> Response:
    name = request.path_params["name"]
    body = await read_json(request)
    document = await _runtime(request).run(
        request, lambda w: _role_json(w, _designer(w).replace(name, body)), write=True, admin=True
    )
    return JSONResponse(document)


async def delete_role(request: Request) -> Response:
    name = request.path_params["name"]

    def remove(work: Work) -> None:
        _designer(work).delete(name)

    await _runtime(request).run(request, remove, write=True, admin=True)
    return Response(status_code=204)


async def role_versions(request: Request) -> Response:
    name = request.path_params["name"]

    def history(work: Work) -> list[dict[str, Any]]:
        found = [v.as_json() for v in store.versions(work.conn, ROLE, name)]
        if not found:
            raise NotFound(f"no role named {name!r}")
        return found

    return JSONResponse({"data": await _runtime(request).run(request, history, admin=True)})


async def restore_role(request: Request) -> Response:
    name, raw = request.path_params["name"], request.path_params["version"]
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest("the version must be a whole number")
    if len(raw) > 9:
        raise NotFound(f"role {name!r} has no version {raw}")
    document = await _runtime(request).run(
        request,
        lambda w: _role_json(w, _designer(w).restore(name, int(raw))),
        write=True,
        admin=True,
    )
    return JSONResponse(document)
