"""Delegations: "while I'm away, my approvals go to …" for a period.

Delegation acts when a task is assigned: a task given to someone with an active delegation
goes to their delegate, and the task remembers whom the step named. It does not follow chains
(a delegate's own delegation is not applied) and does not move tasks assigned before the
period began; reassigning does that.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from metacrm.metadata.values import to_json
from metacrm.platform.clock import as_utc
from metacrm.platform.errors import FieldError, NotFound, Unprocessable
from metacrm.platform.ids import is_valid_id, new_id
from metacrm.platform.systables import delegations, users
from metacrm.platform.users import User

FIELDS = {"delegate", "starts_at", "ends_at"}


def delegate_for(conn: Connection, user_id: str, at: datetime) -> str | None:
    """Whom the user's tasks go to at this moment, if anyone: the newest delegation whose
    period holds `at` and whose delegate is still active."""
    row = conn.execute(
        select(delegations.c.delegate_id)
        .join(users, users.c.id == delegations.c.delegate_id)
        .where(
            delegations.c.user_id == user_id,
            delegations.c.starts_at <= at,
            delegations.c.ends_at > at,
            users.c.is_active.is_(True),
        )
        .order_by(delegations.c.created_at.desc(), delegations.c.id.desc())
    ).first()
    return row.delegate_id if row else None


def _json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "user": row.user_id,
        "delegate": row.delegate_id,
        "starts_at": to_json(as_utc(row.starts_at)),
        "ends_at": to_json(as_utc(row.ends_at)),
        "created_at": to_json(as_utc(row.created_at)),
    }


def list_delegations(conn: Connection, user: User) -> list[dict[str, Any]]:
    """The caller's delegations, given and received, latest start first."""
    rows = conn.execute(
        select(delegations)
        .where((delegations.c.user_id == user.id) | (delegations.c.delegate_id == user.id))
        .order_by(delegations.c.starts_at.desc(), delegations.c.id)
    )
    return [_json(r) for r in rows]


def create_delegation(conn: Connection, user: User, body: Any, now: datetime) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Unprocessable(
            "a delegation must be a JSON object", errors=[FieldError("", "type", "not an object")]
        )
    errors = [
        FieldError(k, "unknown_field", "not a property of a delegation")
        for k in sorted(set(body) - FIELDS)
    ]
    delegate = body.get("delegate")
    if not isinstance(delegate, str) or not delegate:
        errors.append(FieldError("delegate", "required", "name the delegate's user id"))
    elif delegate == user.id:
        errors.append(FieldError("delegate", "self", "you can't delegate to yourself"))
    elif not _active_user(conn, delegate):
        errors.append(FieldError("delegate", "not_found", f"no active user with id {delegate!r}"))
    starts, ends = _moment(body, "starts_at", errors), _moment(body, "ends_at", errors)
    if starts and ends and ends <= starts:
        errors.append(FieldError("ends_at", "order", "must be after starts_at"))
    if errors:
        raise Unprocessable("the delegation is not valid", errors=errors)
    delegation_id = new_id()
    conn.execute(
        delegations.insert().values(
            id=delegation_id,
            user_id=user.id,
            delegate_id=delegate,
            starts_at=starts,
            ends_at=ends,
            created_at=now,
        )
    )
    row = conn.execute(select(delegations).where(delegations.c.id == delegation_id)).one()
    return _json(row)


def delete_delegation(conn: Connection, user: User, delegation_id: str) -> None:
    """Only the delegator (or an admin) ends a delegation; anyone else learns nothing of it."""
    stmt = delete(delegations).where(delegations.c.id == delegation_id)
    if not user.is_admin:
        stmt = stmt.where(delegations.c.user_id == user.id)
    if conn.execute(stmt).rowcount != 1:
        raise NotFound(f"no delegation with id {delegation_id!r}")


def _active_user(conn: Connection, user_id: str) -> bool:
    if not is_valid_id(user_id):
        return False
    found = select(users.c.id).where(users.c.id == user_id, users.c.is_active.is_(True))
    return conn.execute(found).first() is not None


def _moment(body: dict[str, Any], name: str, errors: list[FieldError]) -> datetime | None:
    """An ISO 8601 date-time; one without an offset is taken as UTC."""
    raw = body.get(name)
    try:
        if not isinstance(raw, str):
            raise ValueError
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        errors.append(FieldError(name, "format", "must be an ISO 8601 date-time"))
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
