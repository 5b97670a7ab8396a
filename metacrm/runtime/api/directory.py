"""Users, the org tree, and what the caller may do: `/users`, `/org-units`, `/me`,
`/me/permissions`. Admins manage users and units; everyone may see the tree (pickers need it),
themselves, and their own permissions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.metadata.model import EntityDef
from metacrm.metadata.roles import ACTIONS, HIDDEN, MASKED, VISIBLE, role_errors
from metacrm.platform.errors import FieldError, Forbidden, Unprocessable
from metacrm.platform.org import change_unit, create_unit, delete_unit, get_unit, list_units
from metacrm.platform.users import (
    ADMIN_ROLE,
    UserChange,
    change_user,
    create_user,
    get_user,
    list_users,
)
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.http import JSONResponse, read_json
from metacrm.runtime.api.operation import Body, operation, page, ref
from metacrm.runtime.permissions import Permissions

USER_FIELDS = {"email", "password", "name", "roles", "is_admin", "org_unit", "manager"}
USER_CHANGES = {"password", "name", "roles", "is_admin", "org_unit", "manager", "is_active"}
UNIT_FIELDS = {"name", "label", "parent", "head"}
UNIT_CHANGES = {"label", "parent", "head"}
READ_LEVEL_NAMES = {HIDDEN: "hidden", MASKED: "masked"}


TAG = "users"


def _object(body: Any, allowed: set[str], what: str) -> dict[str, Any]:
    """The body as an object of known keys, each of the right JSON type."""
    if not isinstance(body, dict):
        raise Unprocessable(f"{what} must be a JSON object", errors=[FieldError("", "type", "")])
    errors = [
        FieldError(k, "unknown_field", f"not a property of {what}")
        for k in sorted(set(body) - allowed)
    ]
    for key, value in body.items():
        expected = _TYPES.get(key)
        if expected and value is not None and not isinstance(value, expected[0]):
            errors.append(FieldError(key, "type", f"must be {expected[1]}"))
        elif key in _REQUIRED_NOT_NULL and value is None:
            errors.append(FieldError(key, "type", f"must be {_TYPES[key][1]}"))
    if errors:
        raise Unprocessable(f"{what} is not valid", errors=errors)
    return body


_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "email": (str, "text"),
    "password": (str, "text"),
    "name": (str, "text"),
    "label": (str, "text"),
    "roles": (list, "a list of role names"),
    "is_admin": (bool, "true or false"),
    "is_active": (bool, "true or false"),
    "org_unit": (str, "an org unit id"),
    "manager": (str, "a user id"),
    "parent": (str, "an org unit id"),
    "head": (str, "a user id"),
}
_REQUIRED_NOT_NULL = {"email", "password", "name", "label", "roles", "is_admin", "is_active"}


def _roles(work: Work, body: dict[str, Any]) -> tuple[list[str] | None, bool | None]:
    """Role names to store and the admin flag: "admin" in the list means the flag."""
    if "roles" not in body:
        return None, body.get("is_admin")
    errors = role_errors(work.conn, body["roles"])
    if errors:
        raise Unprocessable("unknown role", errors=errors)
    roles = body["roles"]
    admin = body.get("is_admin", ADMIN_ROLE in roles or None)
    return [r for r in roles if r != ADMIN_ROLE], admin


# ---- users ----------------------------------------------------------------------------------


@operation("list_users", TAG, "All users (admins)", response=page(ref("User")))
async def list_all_users(request: Request) -> Response:
    def users(work: Work) -> list[dict[str, Any]]:
        return [u.as_json() for u in list_users(work.conn)]

    return JSONResponse({"data": await runtime_of(request).run(request, users, admin=True)})


@operation(
    "create_user",
    TAG,
    "Add a user (admins)",
    status=201,
    body=Body(
        ref("UserInput"),
        example={
            "email": "ann@example.com",
            "password": "a-long-password",
            "name": "Ann",
            "roles": ["sales_rep"],
        },
    ),
    response=ref("User"),
    headers=("Location",),
    errors=(409,),
)
async def create_one_user(request: Request) -> Response:
    raw = await read_json(request)

    def create(work: Work) -> dict[str, Any]:
        body = _object(raw, USER_FIELDS, "a user")
        roles, admin = _roles(work, body)
        return create_user(
            work.conn,
            email=body.get("email", ""),
            password=body.get("password", ""),
            name=body.get("name", ""),
            roles=roles or (),
            is_admin=bool(admin),
            org_unit=body.get("org_unit"),
            manager=body.get("manager"),
        ).as_json()

    user = await runtime_of(request).run(request, create, write=True, admin=True)
    return JSONResponse(user, status_code=201, headers={"Location": f"/api/v1/users/{user['id']}"})


@operation("get_user", TAG, "A user (admins, or the user)", response=ref("User"))
async def get_one_user(request: Request) -> Response:
    user_id = request.path_params["id"]

    def one(work: Work) -> dict[str, Any]:
        if not work.user.is_admin and work.user.id != user_id:
            raise Forbidden("only admins may see other users' accounts")
        return get_user(work.conn, user_id).as_json()

    return JSONResponse(await runtime_of(request).run(request, one))


@operation(
    "change_user",
    TAG,
    "Change a user (admins)",
    description='{"is_active": false} freezes a user: every token stops working at once.',
    body=Body(ref("UserChange"), example={"roles": ["sales_manager"]}),
    response=ref("User"),
)
async def change_one_user(request: Request) -> Response:
    user_id = request.path_params["id"]
    raw = await read_json(request)

    def change(work: Work) -> dict[str, Any]:
        body = _object(raw, USER_CHANGES, "a user change")
        roles, admin = _roles(work, body)
        if user_id == work.user.id and (admin is False or body.get("is_active") is False):
            raise Unprocessable(
                "you can't take your own admin rights or freeze yourself",
                errors=[FieldError("is_admin" if admin is False else "is_active", "self", "")],
            )
        clear = frozenset(k for k in ("org_unit", "manager") if k in body and body[k] is None)
        return change_user(
            work.conn,
            user_id,
            UserChange(
                name=body.get("name"),
                roles=roles,
                is_admin=admin,
                org_unit=body.get("org_unit"),
                manager=body.get("manager"),
                is_active=body.get("is_active"),
                password=body.get("password"),
                clear=clear,
            ),
        ).as_json()

    return JSONResponse(await runtime_of(request).run(request, change, write=True, admin=True))


# ---- org units ------------------------------------------------------------------------------


@operation("list_org_units", TAG, "The org tree", response=page(ref("OrgUnit")))
async def list_org_units(request: Request) -> Response:
    def units(work: Work) -> list[dict[str, Any]]:
        return [u.as_json() for u in list_units(work.conn)]

    return JSONResponse({"data": await runtime_of(request).run(request, units)})


@operation(
    "create_org_unit",
    TAG,
    "Add an org unit (admins)",
    status=201,
    body=Body(ref("OrgUnitInput"), example={"name": "east", "label": "East region"}),
    response=ref("OrgUnit"),
    headers=("Location",),
    errors=(409,),
)
async def create_org_unit(request: Request) -> Response:
    raw = await read_json(request)

    def create(work: Work) -> dict[str, Any]:
        body = _object(raw, UNIT_FIELDS, "an org unit")
        return create_unit(
            work.conn,
            name=body.get("name", ""),
            label=body.get("label"),
            parent=body.get("parent"),
            head=body.get("head"),
        ).as_json()

    unit = await runtime_of(request).run(request, create, write=True, admin=True)
    location = f"/api/v1/org-units/{unit['id']}"
    return JSONResponse(unit, status_code=201, headers={"Location": location})


@operation("get_org_unit", TAG, "An org unit", response=ref("OrgUnit"))
async def get_org_unit(request: Request) -> Response:
    unit_id = request.path_params["id"]
    unit = await runtime_of(request).run(request, lambda w: get_unit(w.conn, unit_id).as_json())
    return JSONResponse(unit)


@operation(
    "change_org_unit",
    TAG,
    "Change an org unit (admins)",
    description="Cycles in the tree are refused (422).",
    body=Body(ref("OrgUnitChange"), example={"label": "East and central"}),
    response=ref("OrgUnit"),
)
async def change_org_unit(request: Request) -> Response:
    unit_id = request.path_params["id"]
    raw = await read_json(request)

    def change(work: Work) -> dict[str, Any]:
        body = _object(raw, UNIT_CHANGES, "an org unit change")
        clear = frozenset(k for k in ("parent", "head") if k in body and body[k] is None)
        return change_unit(
            work.conn,
            unit_id,
            label=body.get("label"),
            parent=body.get("parent"),
            head=body.get("head"),
            clear=clear,
        ).as_json()

    return JSONResponse(await runtime_of(request).run(request, change, write=True, admin=True))


@operation("delete_org_unit", TAG, "Delete an org unit (admins)", status=204, errors=(409,))
async def delete_org_unit(request: Request) -> Response:
    unit_id = request.path_params["id"]

    def remove(work: Work) -> None:
        delete_unit(work.conn, unit_id)

    await runtime_of(request).run(request, remove, write=True, admin=True)
    return Response(status_code=204)


# ---- me -------------------------------------------------------------------------------------


@operation("me", TAG, "The caller", response=ref("User"))
async def me(request: Request) -> Response:
    return JSONResponse(await runtime_of(request).run(request, lambda w: w.user.as_json()))


@operation(
    "my_permissions",
    TAG,
    "What the caller may do",
    description="Per entity, the actions with their scopes, and per field whether the caller "
    "sees it, may filter on it and may write it.",
    response=ref("MyPermissions"),
)
async def my_permissions(request: Request) -> Response:
    return JSONResponse(await runtime_of(request).run(request, permissions_of))


def permissions_of(work: Work) -> dict[str, Any]:
    """Per entity: each action the caller may take with the scopes that grant it (and whether
    record rules or shares shape it), and per field whether they see it and may write it."""
    permissions = work.records().permissions
    entities = {}
    for entity in sorted(work.catalog.entities.values(), key=lambda e: e.name):
        actions: dict[str, Any] = {}
        for action in ACTIONS:
            roles = permissions.grants(entity, action)
            if permissions.is_admin:
                actions[action] = {"scopes": ["all"], "rules": False}
            elif roles:
                actions[action] = {
                    "scopes": sorted({p.actions[action] for p in roles}),
                    "rules": any(
                        p.rules(action, "narrow") or p.rules(action, "widen") for p in roles
                    ),
                }
        if not actions:
            continue
        fields = {}
        for f in entity.fields:
            rights = _field_rights(permissions, entity, f.name, owned=False)
            own = _field_rights(permissions, entity, f.name, owned=True)
            fields[f.name] = {
                "read": rights["read"],
                "filter": rights["read"] == "visible",
                "create": rights["create"],
                "update": rights["update"],
                # A rule sparing the owner: what the records they own show and let them write.
                **({"own": own} if own != rights else {}),
            }
        entities[entity.name] = {"actions": actions, "fields": fields}
    return {"user": work.user.as_json(), "is_admin": work.user.is_admin, "entities": entities}


def _field_rights(
    permissions: Permissions, entity: EntityDef, name: str, *, owned: bool
) -> dict[str, Any]:
    """Whether the caller sees a field and may write it, on records they own or on any."""
    levels = {p.read_level(name, owned) for p in permissions.grants(entity, "read")}
    if permissions.is_admin or levels == {VISIBLE}:
        read = "visible"
    elif not levels:
        read = "hidden"  # no role lets them read this entity
    elif len(levels) == 1:
        read = READ_LEVEL_NAMES[levels.pop()]
    else:
        read = "varies"  # the roles granting each record decide
    return {
        "read": read,
        "create": permissions.may(entity, "create")
        and permissions.writable(entity, "create", name, owned=owned),
        "update": permissions.may(entity, "update")
        and permissions.writable(entity, "update", name, owned=owned),
    }
