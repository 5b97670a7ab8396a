"""Who a step's approver sources name, resolved when the step starts: listed users, a role's
holders, the submitter's manager N levels up, the head of the owner's org unit, or the user in a
field of the record. Only active users approve; the union keeps the sources' order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from metacrm.platform.systables import org_units, user_roles, users


def resolve(
    conn: Connection,
    sources: Sequence[Mapping[str, Any]],
    *,
    submitter: str,
    record: Mapping[str, Any],
) -> list[str]:
    found: list[str] = []
    for source in sources:
        found.extend(_SOURCES[source["type"]](conn, source, submitter, record))
    return _active(conn, list(dict.fromkeys(found)))


def role_holders(conn: Connection, role: str) -> list[str]:
    rows = conn.execute(
        select(user_roles.c.user_id)
        .join(users, users.c.id == user_roles.c.user_id)
        .where(user_roles.c.role == role, users.c.is_active.is_(True))
        .order_by(user_roles.c.user_id)
    )
    return list(rows.scalars())


def admins(conn: Connection) -> list[str]:
    stmt = select(users.c.id).where(users.c.is_admin.is_(True), users.c.is_active.is_(True))
    return list(conn.execute(stmt.order_by(users.c.id)).scalars())


def manager_of(conn: Connection, user_id: str) -> str | None:
    return conn.execute(select(users.c.manager_id).where(users.c.id == user_id)).scalar()


def _active(conn: Connection, ids: list[str]) -> list[str]:
    if not ids:
        return []
    stmt = select(users.c.id).where(users.c.id.in_(ids), users.c.is_active.is_(True))
    active = set(conn.execute(stmt).scalars())
    return [i for i in ids if i in active]


def _users(
    _conn: Connection, source: Mapping[str, Any], _submitter: str, _record: Mapping[str, Any]
) -> list[str]:
    return list(source["users"])


def _role(
    conn: Connection, source: Mapping[str, Any], _submitter: str, _record: Mapping[str, Any]
) -> list[str]:
    return role_holders(conn, source["role"])


def _manager(
    conn: Connection, source: Mapping[str, Any], submitter: str, _record: Mapping[str, Any]
) -> list[str]:
    current: str | None = submitter
    for _ in range(int(source.get("levels", 1))):
        current = manager_of(conn, current) if current else None
    return [current] if current else []


def _org_unit_head(
    conn: Connection, _source: Mapping[str, Any], _submitter: str, record: Mapping[str, Any]
) -> list[str]:
    owner = record.get("owner")
    if not owner:
        return []
    head = conn.execute(
        select(org_units.c.head_user_id)
        .join(users, users.c.org_unit_id == org_units.c.id)
        .where(users.c.id == owner)
    ).scalar()
    return [head] if head else []


def _field(
    _conn: Connection, source: Mapping[str, Any], _submitter: str, record: Mapping[str, Any]
) -> list[str]:
    value = record.get(source["field"])
    return [value] if isinstance(value, str) and value else []


_SOURCES = {
    "user": _users,
    "role": _role,
    "manager": _manager,
    "org_unit_head": _org_unit_head,
    "field": _field,
}
