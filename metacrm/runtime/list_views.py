"""List views as one user uses them: the shared views admins design (metadata) and the user's
own views (rows of `mc_personal_views`, which only they and admins see or change).

A view is judged against the entity as its user sees it, at use time: a column the user may not
see is left out (a view listing a hidden field simply doesn't show it to them), and a view whose
filter or sort needs a field they may not filter on can't be used by them (`available: false`,
with the reason) — applying it would tell them about a field withheld from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from metacrm.metadata.labels import with_label_maps
from metacrm.metadata.list_views import (
    LIST_VIEW,
    PERSONAL_LIST_VIEW,
    QUICK_FILTER_TYPES,
    ListViewDef,
    ViewScope,
    column_errors,
    sort_errors,
    view_errors,
)
from metacrm.metadata.model import EntityDef
from metacrm.metadata.validate import ExpressionSite, schema_check, text_errors
from metacrm.metadata.values import to_json
from metacrm.platform.clock import as_utc
from metacrm.platform.errors import (
    BadRequest,
    FieldError,
    Forbidden,
    NotFound,
    PreconditionFailed,
    RuleError,
    Unprocessable,
)
from metacrm.platform.ids import is_valid_id, new_id
from metacrm.platform.systables import personal_views
from metacrm.platform.users import get_user
from metacrm.runtime.context import Records
from metacrm.runtime.permissions import Permissions
from metacrm.runtime.rules import Scope, check, parse, sql_compatible
from metacrm.runtime.rules.operators import BOOLEAN

# A user keeps at most this many views of their own.
MAX_PERSONAL_VIEWS = 500


@dataclass(frozen=True)
class Seen:
    """An entity as one user sees it: `shown` for columns, `probe` for filters and sorts."""

    entity: EntityDef
    permissions: Permissions

    @property
    def shown(self) -> EntityDef:
        return self.permissions.view(self.entity, probe=False)

    @property
    def probe(self) -> EntityDef:
        return self.permissions.view(self.entity, probe=True)

    def find_shown(self, name: str) -> EntityDef | None:
        """A lookup's target with the fields the user sees, if they may read it at all."""
        target = self.permissions.catalog.find(name)
        if target is None or not self.permissions.may(target, "read"):
            return None
        return self.permissions.view(target, probe=False)

    def scope(self) -> ViewScope:
        return ViewScope(self.shown, self.probe, self.find_shown, self.check_expression)

    def check_expression(self, _document: dict[str, Any], site: ExpressionSite) -> list[FieldError]:
        """A filter as the list API would take it from this user: against the fields they may
        filter on, and it must run in SQL."""
        scope = Scope(self.probe, self.permissions.find_view)
        try:
            checked = check(parse(site.expression), scope, expect=BOOLEAN)
        except RuleError as error:
            return [FieldError(site.pointer, "expression", error.detail)]
        reason = sql_compatible(checked, scope)
        return [FieldError(site.pointer, "not_sql", reason)] if reason else []


def _seen(records: Records, entity_name: str) -> Seen | None:
    entity = records.ctx.catalog.find(entity_name)
    if entity is None or not records.permissions.may(entity, "read"):
        return None
    return Seen(entity, records.permissions)


# ---- a view as its user may use it ----------------------------------------------------------


def usable(seen: Seen, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The view's parts the user may use — its visible columns and quick filters — whether
    they may use it at all, and the list API's parameters that show it."""
    columns = [c for c in doc["columns"] if not column_errors(seen.shown, seen.find_shown, c, "")]
    quick = [
        name
        for name in doc.get("quick_filters") or ()
        if (f := seen.probe.field(name)) is not None and f.type in QUICK_FILTER_TYPES
    ]
    problems = []
    if "filter" in doc:
        problems += seen.check_expression({}, ExpressionSite("/filter", doc["filter"], "boolean"))
    if "sort" in doc:
        problems += sort_errors(seen.probe, doc["sort"], "/sort")
    reason = None
    if problems:
        reason = f"its {problems[0].field[1:]} names a field you may not filter or sort on"
    elif not columns:
        reason = "you may see none of its columns"
    return {
        "columns": columns,
        "quick_filters": quick,
        "available": reason is None,
        **({"reason": reason} if reason else {}),
        "query": list_query(doc, columns),
    }


def list_query(doc: Mapping[str, Any], columns: list[str]) -> dict[str, Any]:
    """The records list parameters (`GET /records/{entity}`) that show the view."""
    heads = list(dict.fromkeys(c.partition(".")[0] for c in columns))
    expand = list(dict.fromkeys(c.partition(".")[0] for c in columns if "." in c))
    query: dict[str, Any] = {"fields": ",".join(heads)}
    if expand:
        query["expand"] = ",".join(expand)
    for key, param in (("filter", "filter"), ("sort", "sort"), ("page_size", "limit")):
        if key in doc:
            query[param] = doc[key]
    return query


def shared_json(seen: Seen, view: ListViewDef) -> dict[str, Any]:
    return {
        "name": view.name,
        "shared": True,
        "owner": None,
        **{k: v for k, v in view.doc.items() if k not in ("shared", "name")},
        **usable(seen, view.doc),
        "default": view.is_default,
        "version": view.version,
    }


def personal_json(seen: Seen | None, row: Any) -> dict[str, Any]:
    doc = row.document
    found = {
        "id": row.id,
        "shared": False,
        "owner": row.user_id,
        **doc,
        "default": row.is_default,
        "version": row.version,
        "created_at": to_json(as_utc(row.created_at)),
        "updated_at": to_json(as_utc(row.updated_at)),
    }
    if seen is not None:
        found.update(usable(seen, doc))
    else:
        # Its entity is gone (deleted) or out of its owner's reach: nothing to show.
        found.update(available=False, reason="its entity can't be read", query={})
    return found


def views_for(records: Records, entity: str | None = None) -> list[dict[str, Any]]:
    """Every view the records' user may use (of one entity, or of every entity they may read):
    per entity their own views by label, then the shared ones by name. One view per entity
    `applies_by_default`: their own default, else the shared default they may use."""
    catalog = records.ctx.catalog
    if entity is not None and _seen(records, entity) is None:
        raise NotFound(f"no entity named {entity!r}")
    names = [entity] if entity is not None else sorted(catalog.entities)
    rows = _personal_rows(records, records.ctx.user.id, entity)
    found: list[dict[str, Any]] = []
    for name in names:
        seen = _seen(records, name)
        if seen is None:
            continue
        mine = [personal_json(seen, r) for r in rows if r.entity == name]
        mine.sort(key=lambda v: (v["label"].get("en", ""), v["id"]))
        shared = [shared_json(seen, v) for v in catalog.of_kind_for(LIST_VIEW, name)]
        group = [*mine, *shared]
        chosen = next((v for v in group if v["default"] and v["available"]), None)
        for view in group:
            view["applies_by_default"] = view is chosen
        found.extend(group)
    return found


def default_view(records: Records, entity: str) -> dict[str, Any] | None:
    """The view a list of the entity opens with for the records' user, if any."""
    return next((v for v in views_for(records, entity) if v["applies_by_default"]), None)


def _personal_rows(records: Records, user_id: str, entity: str | None) -> list[Any]:
    stmt = select(personal_views).where(personal_views.c.user_id == user_id)
    if entity is not None:
        stmt = stmt.where(personal_views.c.entity == entity)
    return list(records.ctx.conn.execute(stmt.order_by(personal_views.c.id)))


# ---- a user's own views -----------------------------------------------------------------------


def for_user(records: Records, user_id: str | None) -> Records:
    """The records service as the user whose views are asked for: the caller, or (admins only)
    another user, judged as that user would be."""
    if user_id is None or user_id == records.ctx.user.id:
        return records
    if not records.ctx.user.is_admin:
        raise Forbidden("only admins may see or change another user's views")
    if not is_valid_id(user_id):
        raise NotFound(f"no user with id {user_id!r}")
    return records.for_user(get_user(records.ctx.conn, user_id))


def get_personal(records: Records, view_id: str) -> dict[str, Any]:
    row = _own_row(records, view_id)
    owner = _owner_records(records, row.user_id)
    return personal_json(_seen(owner, row.entity), row)


def create_personal(records: Records, body: Any) -> dict[str, Any]:
    doc = with_label_maps(PERSONAL_LIST_VIEW, body)
    owner = for_user(records, _owner_id(doc))
    doc = _checked(owner, doc)
    conn, now, user_id = records.ctx.conn, records.ctx.now, owner.ctx.user.id
    held = select(func.count()).where(personal_views.c.user_id == user_id)
    if conn.execute(held).scalar_one() >= MAX_PERSONAL_VIEWS:
        raise Unprocessable(f"a user keeps at most {MAX_PERSONAL_VIEWS} views of their own")
    view_id = new_id()
    if doc.get("default"):
        _clear_default(records, user_id, doc["entity"], now)
    conn.execute(
        personal_views.insert().values(
            id=view_id,
            user_id=user_id,
            entity=doc["entity"],
            document=_stored(doc),
            is_default=bool(doc.get("default")),
            version=1,
            created_at=now,
            updated_at=now,
        )
    )
    return get_personal(records, view_id)


def replace_personal(records: Records, view_id: str, body: Any) -> dict[str, Any]:
    """Replace a view; a `version` in the body must be the current one (412 otherwise). Its
    owner stays (a view changes hands by being made again)."""
    row = _own_row(records, view_id)
    doc = with_label_maps(PERSONAL_LIST_VIEW, body)
    expected = doc.get("version") if isinstance(doc, dict) else None
    if expected is not None:
        if not isinstance(expected, int) or isinstance(expected, bool):
            raise BadRequest("version must be the integer version the view was read at")
        if expected != row.version:
            raise PreconditionFailed(
                f"the view is at version {row.version}, not {expected}",
                extra={"current_version": row.version},
            )
    if isinstance(doc, dict) and doc.get("owner", row.user_id) != row.user_id:
        raise Unprocessable(
            "a view's owner can't change",
            errors=[FieldError("/owner", "owner", f"must be {row.user_id}")],
        )
    owner = _owner_records(records, row.user_id)
    doc = _checked(owner, doc)
    now = records.ctx.now
    if doc.get("default"):
        _clear_default(records, row.user_id, doc["entity"], now, keep=view_id)
    written = records.ctx.conn.execute(
        update(personal_views)
        .where(personal_views.c.id == view_id, personal_views.c.version == row.version)
        .values(
            entity=doc["entity"],
            document=_stored(doc),
            is_default=bool(doc.get("default")),
            version=row.version + 1,
            updated_at=now,
        )
    )
    if written.rowcount != 1:
        raise PreconditionFailed("the view was changed meanwhile; read it again")
    return get_personal(records, view_id)


def delete_personal(records: Records, view_id: str) -> None:
    _own_row(records, view_id)
    records.ctx.conn.execute(personal_views.delete().where(personal_views.c.id == view_id))


def _owner_id(doc: Any) -> str | None:
    owner = doc.get("owner") if isinstance(doc, dict) else None
    return owner if isinstance(owner, str) else None


def _owner_records(records: Records, user_id: str) -> Records:
    if user_id == records.ctx.user.id:
        return records
    return records.for_user(get_user(records.ctx.conn, user_id))


def _own_row(records: Records, view_id: str) -> Any:
    """The view, if the caller owns it or is an admin; anyone else's is not found."""
    row = None
    if is_valid_id(view_id):
        stmt = select(personal_views).where(personal_views.c.id == view_id)
        row = records.ctx.conn.execute(stmt).first()
    user = records.ctx.user
    if row is None or (row.user_id != user.id and not user.is_admin):
        raise NotFound(f"no view with id {view_id!r}")
    return row


def _checked(owner: Records, doc: Any) -> dict[str, Any]:
    """The document if it is a valid view for its owner (as they see the entity); else 422 with
    every problem."""
    errors = validate_personal(owner, doc)
    if errors:
        raise Unprocessable("the view is not valid", errors=errors)
    return dict(doc)


def validate_personal(owner: Records, doc: Any) -> list[FieldError]:
    """Every problem with a view of `owner`'s own, each with a JSON Pointer; an entity or field
    they may not see is as unknown as a missing one."""
    check = schema_check(PERSONAL_LIST_VIEW, doc)
    errors = check.errors + text_errors(doc)
    if not isinstance(doc, dict) or not check.sound("entity"):
        return errors
    seen = _seen(owner, doc["entity"])
    if seen is None:
        return [
            *errors,
            FieldError("/entity", "unknown_entity", f"no entity named {doc['entity']!r}"),
        ]
    return errors + view_errors(doc, check, seen.scope())


def _stored(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("version", "owner", "default")}


def _clear_default(
    records: Records, user_id: str, entity: str, now: datetime, keep: str | None = None
) -> None:
    """A user has one default view per entity: marking another unmarks the one before."""
    records.ctx.conn.execute(
        update(personal_views)
        .where(
            personal_views.c.user_id == user_id,
            personal_views.c.entity == entity,
            personal_views.c.is_default.is_(True),
            personal_views.c.id != (keep or ""),
        )
        .values(is_default=False, version=personal_views.c.version + 1, updated_at=now)
    )
