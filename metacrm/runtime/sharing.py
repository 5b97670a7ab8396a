"""Sharing one record with a user, a role or an org unit (and the units below it), to read or to
edit: the "related team members" of a customer. Shares widen what the permission condition
selects (see permissions.py); granting or taking one back is audited in the record's history.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update

from metacrm.metadata.model import EntityDef
from metacrm.platform.clock import iso_utc
from metacrm.platform.errors import FieldError, NotFound, Unprocessable
from metacrm.platform.ids import new_id
from metacrm.platform.org import unit_exists
from metacrm.platform.systables import record_shares, users
from metacrm.runtime.records import RecordService

PRINCIPAL_TYPES = ("user", "role", "org_unit")
ACCESS = ("read", "edit")


def list_shares(service: RecordService, entity_name: str, record_id: str) -> list[dict[str, Any]]:
    entity = service.ctx.catalog.entity(entity_name)
    service.get(entity.name, record_id, fields=("id",))
    rows = service.ctx.conn.execute(
        select(record_shares)
        .where(record_shares.c.entity == entity.name, record_shares.c.record_id == record_id)
        .order_by(record_shares.c.created_at, record_shares.c.id)
    )
    return [_share_json(r) for r in rows]


def add_share(
    service: RecordService, entity_name: str, record_id: str, body: Any
) -> dict[str, Any]:
    """Share the record; sharing again with the same principal changes the access."""
    entity = service.ctx.catalog.entity(entity_name)
    row = _shareable(service, entity_name, record_id)
    kind, principal, access = _parse(service, body)
    table = record_shares
    same = (
        table.c.entity == entity.name,
        table.c.record_id == record_id,
        table.c.principal_type == kind,
        table.c.principal == principal,
    )
    existing = service.ctx.conn.execute(select(table).where(*same)).first()
    if existing is None:
        service.ctx.conn.execute(
            table.insert().values(
                id=new_id(),
                entity=entity.name,
                record_id=record_id,
                principal_type=kind,
                principal=principal,
                access=access,
                created_at=service.ctx.now,
                created_by=service.ctx.user.id,
            )
        )
    else:
        service.ctx.conn.execute(update(table).where(*same).values(access=access))
    old = f"{existing.access}" if existing is not None else None
    _audit(service, entity, row, "share", f"{kind}:{principal}", old, access)
    found = service.ctx.conn.execute(select(table).where(*same)).one()
    return _share_json(found)


def remove_share(service: RecordService, entity_name: str, record_id: str, share_id: str) -> None:
    entity = service.ctx.catalog.entity(entity_name)
    row = _shareable(service, entity_name, record_id)
    mine = (
        record_shares.c.id == share_id,
        record_shares.c.entity == entity.name,
        record_shares.c.record_id == record_id,
    )
    found = service.ctx.conn.execute(select(record_shares).where(*mine)).first()
    if found is None:
        raise NotFound(f"no share {share_id!r} on this {entity.name}")
    service.ctx.conn.execute(delete(record_shares).where(*mine))
    who = f"{found.principal_type}:{found.principal}"
    _audit(service, entity, row, "unshare", who, found.access, None)


def _shareable(service: RecordService, entity_name: str, record_id: str) -> Any:
    """The record, when the caller may read it (else 404) and share it (else 403)."""
    entity = service.ctx.catalog.entity(entity_name)
    row, _ = service.read_row(entity, record_id)
    service.permissions.require(entity, "share")
    service.require_on(entity, "share", record_id, "share")
    return row


def _parse(service: RecordService, body: Any) -> tuple[str, str, str]:
    if not isinstance(body, dict):
        raise Unprocessable("a share is a JSON object", errors=[FieldError("", "type", "object")])
    errors = []
    kind, principal, access = body.get("principal_type"), body.get("principal"), body.get("access")
    unknown = sorted(set(body) - {"principal_type", "principal", "access"})
    errors += [FieldError(k, "unknown_field", "not a property of a share") for k in unknown]
    if kind not in PRINCIPAL_TYPES:
        errors.append(FieldError("principal_type", "enum", f"one of {', '.join(PRINCIPAL_TYPES)}"))
    if access not in ACCESS:
        errors.append(FieldError("access", "enum", f"one of {', '.join(ACCESS)}"))
    if not isinstance(principal, str) or not 0 < len(principal) <= 63 or "\x00" in principal:
        errors.append(FieldError("principal", "type", "must be a user id, role name or unit id"))
    elif kind in PRINCIPAL_TYPES and not _principal_exists(service, kind, principal):
        errors.append(FieldError("principal", "not_found", f"no {kind} {principal!r}"))
    if errors:
        raise Unprocessable("the share is not valid", errors=errors)
    return kind, principal, access  # type: ignore[return-value]


def _principal_exists(service: RecordService, kind: str, principal: str) -> bool:
    if kind == "role":
        return principal in service.ctx.catalog.roles
    if kind == "org_unit":
        return unit_exists(service.ctx.conn, principal)
    active = select(users.c.id).where(users.c.id == principal, users.c.is_active.is_(True))
    return service.ctx.conn.execute(active).first() is not None


def _audit(
    service: RecordService,
    entity: EntityDef,
    row: Any,
    action: str,
    who: str,
    old: str | None,
    new: str | None,
) -> None:
    service.record_history(entity, row.id, row.version, action, {f"share {who}": [old, new]})


def _share_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "principal_type": row.principal_type,
        "principal": row.principal,
        "access": row.access,
        "created_at": iso_utc(row.created_at),
        "created_by": row.created_by,
    }
