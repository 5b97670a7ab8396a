"""Records as pages show them: columns with their labels, cells as text for the locale, record
titles, and the names of the users a page mentions (looked up once per page)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from metacrm.app.fields import Shown, field_label, show
from metacrm.app.i18n import Locale
from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.platform.users import user_names
from metacrm.runtime.catalog import Catalog

USER_COLUMNS = ("owner", "created_by", "updated_by")


@dataclass(frozen=True)
class Column:
    """A list column: a field of the entity, or `lookup.field` of the record it points to."""

    key: str
    field: FieldDef
    label: str
    via: FieldDef | None = None
    numeric: bool = False


@dataclass
class Row:
    id: str
    record: dict[str, Any]
    title: str
    cells: list[Shown] = field(default_factory=list)


def title_of(entity: EntityDef, record: dict[str, Any], locale: Locale) -> str:
    """What names a record: its title field, else its id."""
    name = entity.title_field
    value = record.get(name) if name else None
    if value not in (None, ""):
        return str(value)
    return f"{locale.label(entity.label, entity.name)} {str(record.get('id', ''))[-6:]}"


def columns_for(
    catalog: Catalog, entity: EntityDef, shown: EntityDef, keys: Sequence[str], locale: Locale
) -> list[Column]:
    """The columns of `keys` the caller may see (`shown` is the entity as they see it)."""
    found = []
    for key in keys:
        head, _, tail = key.partition(".")
        f = shown.field(head)
        if f is None:
            continue
        if tail:
            target = catalog.find(f.doc.get("target", ""))
            inner = target.field(tail) if target else None
            if inner is None:
                continue
            label = f"{field_label(f, locale)} · {field_label(inner, locale)}"
            found.append(Column(key, inner, label, via=f, numeric=_numeric(inner)))
        else:
            found.append(Column(key, f, field_label(f, locale), numeric=_numeric(f)))
    return found


def default_columns(entity: EntityDef, shown: EntityDef, limit: int = 6) -> list[str]:
    """Columns for an entity no list view describes: its title, then its first short fields,
    then the owner."""
    keys = [entity.title_field] if entity.title_field and shown.field(entity.title_field) else []
    for f in entity.fields:
        if len(keys) >= limit:
            break
        if f.name in keys or f.type in ("textarea", "multipicklist") or shown.field(f.name) is None:
            continue
        keys.append(f.name)
    return [*keys, "owner"]


def _numeric(f: FieldDef) -> bool:
    kind = f.doc.get("result_type") if f.type == "formula" else f.type
    return kind in ("integer", "decimal")


def expansions(columns: Iterable[Column]) -> list[str]:
    """The lookups a page must expand: those shown (for their titles) and those read through."""
    names = []
    for c in columns:
        lookup = c.via or (c.field if c.field.type == "lookup" else None)
        if lookup is not None and lookup.name not in names:
            names.append(lookup.name)
    return names


def user_ids(records: Iterable[dict[str, Any]], fields: Iterable[FieldDef]) -> set[str]:
    names = [f.name for f in fields if f.name in USER_COLUMNS or f.type == "user"]
    return {r[n] for r in records for n in names if isinstance(r.get(n), str)}


class Presenter:
    """Turns records of one entity into what a page shows, for one locale."""

    def __init__(self, conn: Any, catalog: Catalog, entity: EntityDef, locale: Locale) -> None:
        self.conn, self.catalog, self.entity, self.locale = conn, catalog, entity, locale
        self.users: dict[str, str] = {}

    def learn_users(self, records: Iterable[dict[str, Any]], fields: Iterable[FieldDef]) -> None:
        wanted = user_ids(records, fields) - set(self.users)
        if wanted:
            self.users.update(user_names(self.conn, wanted))

    def cell(self, column: Column, record: dict[str, Any]) -> Shown:
        if column.via is not None:
            linked = record.get(column.via.name)
            value = linked.get(column.field.name) if isinstance(linked, dict) else None
            return show(column.field, value, self.locale, users=self.users)
        value = record.get(column.field.name)
        if column.field.type == "lookup" and isinstance(value, dict):
            target = self.catalog.find(column.field.doc.get("target", ""))
            if target is not None and len(value) > 1:
                value = {**value, "_title": title_of(target, value, self.locale)}
        return show(column.field, value, self.locale, users=self.users)

    def rows(self, records: list[dict[str, Any]], columns: list[Column]) -> list[Row]:
        self.learn_users(records, [c.field for c in columns if c.via is None])
        self.learn_users(
            [
                r[c.via.name]
                for c in columns
                if c.via
                for r in records
                if isinstance(r.get(c.via.name), dict)
            ],
            [c.field for c in columns if c.via is not None],
        )
        return [
            Row(
                str(r["id"]),
                r,
                title_of(self.entity, r, self.locale),
                [self.cell(c, r) for c in columns],
            )
            for r in records
        ]
