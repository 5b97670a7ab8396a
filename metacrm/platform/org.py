"""The org tree (departments, business units) and the reporting line, with the tree walks the
permission model needs: a unit's subtree and ancestors, a user's subordinates and managers.

Walks are recursive SQL (`WITH RECURSIVE`), so they stay one round trip however deep the tree.
Both trees are kept free of cycles on every change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CTE, Connection, Select, delete, func, select, update

from metacrm.platform.clock import utcnow
from metacrm.platform.errors import Conflict, FieldError, NotFound, Unprocessable
from metacrm.platform.ids import is_valid_id, new_id
from metacrm.platform.systables import org_units, users

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class OrgUnit:
    id: str
    name: str
    label: str
    parent: str | None
    head: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "label": self.label,
            "parent": self.parent,
            "head": self.head,
        }


def create_unit(
    conn: Connection,
    *,
    name: str,
    label: str | None = None,
    parent: str | None = None,
    head: str | None = None,
) -> OrgUnit:
    errors = _name_errors(name) + _label_errors(label)
    errors += _reference_errors(conn, None, parent, head)
    if errors:
        raise Unprocessable("invalid org unit", errors=errors)
    if conn.execute(select(org_units.c.id).where(org_units.c.name == name)).first():
        raise Conflict(f"an org unit named {name!r} already exists")
    unit_id = new_id()
    conn.execute(
        org_units.insert().values(
            id=unit_id,
            name=name,
            label=label or name,
            parent_id=parent,
            head_user_id=head,
            created_at=utcnow(),
        )
    )
    return get_unit(conn, unit_id)


def change_unit(
    conn: Connection,
    unit_id: str,
    *,
    label: str | None = None,
    parent: str | None = None,
    head: str | None = None,
    clear: frozenset[str] = frozenset(),
) -> OrgUnit:
    """Relabel, move (never under itself or its own subtree) or change the head of a unit."""
    current = get_unit(conn, unit_id)
    new_parent = None if "parent" in clear else current.parent if parent is None else parent
    new_head = None if "head" in clear else current.head if head is None else head
    errors = _label_errors(label) + _reference_errors(conn, unit_id, new_parent, new_head)
    if errors:
        raise Unprocessable("invalid org unit", errors=errors)
    values: dict[str, Any] = {"parent_id": new_parent, "head_user_id": new_head}
    if label is not None:
        values["label"] = label
    conn.execute(update(org_units).where(org_units.c.id == unit_id).values(values))
    return get_unit(conn, unit_id)


def delete_unit(conn: Connection, unit_id: str) -> None:
    """Only an empty leaf goes: units below it or users in it must move first."""
    get_unit(conn, unit_id)
    children = conn.execute(
        select(func.count()).where(org_units.c.parent_id == unit_id)
    ).scalar_one()
    members = conn.execute(select(func.count()).where(users.c.org_unit_id == unit_id)).scalar_one()
    if children or members:
        raise Conflict(
            f"the org unit still has {children} unit(s) below it and {members} user(s) in it; "
            "move them first"
        )
    conn.execute(delete(org_units).where(org_units.c.id == unit_id))


def get_unit(conn: Connection, unit_id: str) -> OrgUnit:
    row = conn.execute(select(org_units).where(org_units.c.id == unit_id)).first()
    if row is None:
        raise NotFound(f"no org unit with id {unit_id!r}")
    return _unit(row)


def find_unit(conn: Connection, name: str) -> OrgUnit:
    row = conn.execute(select(org_units).where(org_units.c.name == name)).first()
    if row is None:
        raise NotFound(f"no org unit named {name!r}")
    return _unit(row)


def list_units(conn: Connection) -> list[OrgUnit]:
    return [_unit(r) for r in conn.execute(select(org_units).order_by(org_units.c.name))]


def unit_exists(conn: Connection, unit_id: str) -> bool:
    return conn.execute(select(org_units.c.id).where(org_units.c.id == unit_id)).first() is not None


def _unit(row: Any) -> OrgUnit:
    return OrgUnit(row.id, row.name, row.label, row.parent_id, row.head_user_id)


def _name_errors(name: Any) -> list[FieldError]:
    if not isinstance(name, str) or not NAME.match(name):
        return [FieldError("name", "pattern", "must match ^[a-z][a-z0-9_]{0,62}$")]
    return []


def _label_errors(label: Any) -> list[FieldError]:
    if label is not None and (
        not isinstance(label, str) or not 0 < len(label) <= 200 or "\x00" in label
    ):
        return [FieldError("label", "type", "must be text of 1 to 200 characters, no NUL")]
    return []


def _reference_errors(
    conn: Connection, unit_id: str | None, parent: str | None, head: str | None
) -> list[FieldError]:
    errors = []
    for name, value in (("parent", parent), ("head", head)):
        if value is not None and not is_valid_id(value):
            return [FieldError(name, "not_found", f"no {name} {value!r}")]
    if parent is not None:
        if not unit_exists(conn, parent):
            errors.append(FieldError("parent", "not_found", f"no org unit with id {parent!r}"))
        elif unit_id is not None and parent in unit_subtree(conn, unit_id):
            errors.append(FieldError("parent", "cycle", "can't move a unit under itself"))
    if head is not None and not conn.execute(select(users.c.id).where(users.c.id == head)).first():
        errors.append(FieldError("head", "not_found", f"no user with id {head!r}"))
    return errors


# ---- tree walks ---------------------------------------------------------------------------


def _walk(start: Any, start_id: str, step_from: Any, step_to: Any, name: str) -> CTE:
    """Rows reachable from `start_id` following step_from -> step_to, the start included."""
    seed = select(start.label("id")).where(start == start_id)
    tree = seed.cte(name, recursive=True)
    return tree.union(select(step_to.label("id")).where(step_from == tree.c.id))


def unit_subtree_query(unit_id: str) -> Select[Any]:
    """Ids of the unit and every unit below it."""
    tree = _walk(org_units.c.id, unit_id, org_units.c.parent_id, org_units.c.id, "unit_tree")
    return select(tree.c.id)


def unit_subtree(conn: Connection, unit_id: str) -> set[str]:
    return set(conn.execute(unit_subtree_query(unit_id)).scalars())


def unit_ancestors(conn: Connection, unit_id: str) -> set[str]:
    """The unit and every unit above it."""
    tree = _walk(org_units.c.id, unit_id, org_units.c.id, org_units.c.parent_id, "unit_up")
    return {i for i in conn.execute(select(tree.c.id)).scalars() if i is not None}


def subordinates(conn: Connection, user_id: str) -> set[str]:
    """The user and everyone below them in the reporting line, transitively."""
    tree = _walk(users.c.id, user_id, users.c.manager_id, users.c.id, "reports")
    return set(conn.execute(select(tree.c.id)).scalars())


def ancestors_of_user(conn: Connection, user_id: str) -> set[str]:
    """The user's manager, their manager, and so on up (the user excluded)."""
    tree = _walk(users.c.id, user_id, users.c.id, users.c.manager_id, "managers")
    return {i for i in conn.execute(select(tree.c.id)).scalars() if i not in (None, user_id)}


def members(conn: Connection, unit_ids: set[str]) -> set[str]:
    """Users whose unit is one of these."""
    if not unit_ids:
        return set()
    return set(conn.execute(select(users.c.id).where(users.c.org_unit_id.in_(unit_ids))).scalars())
