"""List views: a saved list of an entity's records — its columns in order, a filter, a sort, a
page size and quick filters.

Views an admin shares with everyone are metadata (`list_view`, versioned like every document);
a user's own views are their data, kept per user by the runtime (`runtime/list_views.py`) and
checked by the same rules here, against the entity as that user sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from metacrm.metadata.documents import DocumentDesigner, DocumentKind
from metacrm.metadata.model import EntityDef
from metacrm.metadata.validate import (
    ExpressionChecker,
    ExpressionSite,
    SchemaCheck,
    schema_check,
    text_errors,
)
from metacrm.platform.errors import FieldError

LIST_VIEW = "list_view"
# The schema of a user's own view (same parts, no name, an owner instead of `shared`).
PERSONAL_LIST_VIEW = "personal_list_view"
QUICK_FILTER_TYPES = ("picklist", "multipicklist")
UNSORTABLE = ("multipicklist",)
# Columns, sorts and filters never name it: a list shows records that are not deleted.
NOT_LISTED = "deleted_at"


def parse_sort(text: str | None) -> tuple[tuple[str, bool], ...]:
    """`"-amount,name"` → ((amount, descending), (name, ascending))."""
    if not text:
        return ()
    return tuple((part.lstrip("-"), part.startswith("-")) for part in text.split(","))


@dataclass(frozen=True)
class ListViewDef:
    name: str
    entity: str
    doc: Mapping[str, Any]
    version: int = 0

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], version: int = 0) -> ListViewDef:
        return cls(doc["name"], doc["entity"], doc, version)

    @property
    def label(self) -> Mapping[str, str]:
        return self.doc.get("label") or {"en": self.name}

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.doc["columns"])

    @property
    def filter(self) -> str | None:
        return self.doc.get("filter")

    @property
    def sort(self) -> tuple[tuple[str, bool], ...]:
        return parse_sort(self.doc.get("sort"))

    @property
    def page_size(self) -> int | None:
        return self.doc.get("page_size")

    @property
    def quick_filters(self) -> tuple[str, ...]:
        return tuple(self.doc.get("quick_filters") or ())

    @property
    def is_default(self) -> bool:
        return bool(self.doc.get("default", False))


# Finds an entity (a lookup's target) as the one the view is checked for may see it.
EntityFinder = Callable[[str], EntityDef | None]


@dataclass(frozen=True)
class ViewScope:
    """The entity a view is checked against: `shown` has the fields its user may see (columns),
    `probe` those they may filter and sort on; `find` gives a lookup's target the same way.
    For a shared view all three are the whole metadata."""

    shown: EntityDef
    probe: EntityDef
    find: EntityFinder
    check_expression: ExpressionChecker | None = None


def validate_list_view(
    doc: Any,
    entities: Mapping[str, EntityDef],
    views: Mapping[str, ListViewDef],
    check_expression: ExpressionChecker | None = None,
) -> list[FieldError]:
    """Every problem with a shared view, each with a JSON Pointer: schema errors and the errors
    of meaning of every part the schema leaves sound. `views` are those that exist (the one
    being replaced may be among them): one view per entity may be its default."""
    check = schema_check(LIST_VIEW, doc)
    errors = check.errors + text_errors(doc)
    if not isinstance(doc, dict) or not check.sound("entity"):
        return errors
    entity = entities.get(doc["entity"])
    if entity is None:
        return [
            *errors,
            FieldError("/entity", "unknown_entity", f"no entity named {doc['entity']!r}"),
        ]
    if doc.get("shared") is False:
        errors.append(
            FieldError("/shared", "not_shared", "a user's own views are saved at /list-views")
        )
    scope = ViewScope(entity, entity, entities.get, check_expression)
    errors.extend(view_errors(doc, check, scope))
    if doc.get("default") is True and check.sound("default"):
        errors.extend(_default_errors(doc, views))
    return errors


def view_errors(doc: dict[str, Any], check: SchemaCheck, scope: ViewScope) -> list[FieldError]:
    """The errors of meaning of a view's columns, filter, sort and quick filters (shared or
    personal), for the parts `check` finds sound."""
    errors: list[FieldError] = []
    for i, column in enumerate(check.items(doc, "columns")):
        if check.sound("columns", i):
            errors.extend(column_errors(scope.shown, scope.find, column, f"/columns/{i}"))
    if "filter" in doc and check.sound("filter") and scope.check_expression is not None:
        site = ExpressionSite("/filter", doc["filter"], "boolean", needs_sql=True)
        errors.extend(scope.check_expression(dict(scope.probe.doc), site))
    if "sort" in doc and check.sound("sort"):
        errors.extend(sort_errors(scope.probe, doc["sort"], "/sort"))
    for i, name in enumerate(check.items(doc, "quick_filters")):
        if check.sound("quick_filters", i):
            errors.extend(_quick_filter_errors(scope.probe, name, f"/quick_filters/{i}"))
    return errors


def column_errors(entity: EntityDef, find: EntityFinder, column: str, at: str) -> list[FieldError]:
    """A column is a field of the entity, or `lookup.field`: one step through a lookup (what the
    list API can embed with `expand`)."""
    head, _, rest = column.partition(".")
    field = entity.field(head)
    if field is None or field.name == NOT_LISTED:
        return [FieldError(at, "unknown_field", f"{entity.name} has no field {head!r}")]
    if not rest:
        return []
    target = find(field.target or "") if field.type == "lookup" else None
    if target is None:
        return [FieldError(at, "not_lookup", f"{head} is not a lookup; only a lookup has fields")]
    found = target.field(rest)
    if found is None or found.name == NOT_LISTED:
        return [FieldError(at, "unknown_field", f"{target.name} has no field {rest!r}")]
    return []


def sort_errors(entity: EntityDef, text: str, at: str) -> list[FieldError]:
    errors = []
    seen: set[str] = set()
    for name, _ in parse_sort(text):
        field = entity.field(name)
        if field is None or field.name == NOT_LISTED:
            errors.append(FieldError(at, "unknown_field", f"{entity.name} has no field {name!r}"))
        elif field.type in UNSORTABLE:
            errors.append(FieldError(at, "unsortable", f"can't sort by {name}: a {field.type}"))
        elif name in seen:
            errors.append(FieldError(at, "duplicate", f"{name} is sorted on twice"))
        seen.add(name)
    return errors


def _quick_filter_errors(entity: EntityDef, name: str, at: str) -> list[FieldError]:
    field = entity.field(name)
    if field is None:
        return [FieldError(at, "unknown_field", f"{entity.name} has no field {name!r}")]
    if field.type not in QUICK_FILTER_TYPES:
        return [FieldError(at, "not_picklist", f"{name} is a {field.type}, not a picklist")]
    return []


def _default_errors(doc: dict[str, Any], views: Mapping[str, ListViewDef]) -> list[FieldError]:
    others = sorted(
        v.name
        for v in views.values()
        if v.entity == doc["entity"] and v.is_default and v.name != doc.get("name")
    )
    if not others:
        return []
    return [
        FieldError(
            "/default",
            "duplicate_default",
            f"{others[0]} is already the default view of {doc['entity']}; unset it first",
        )
    ]


class ListViewDesigner(DocumentDesigner[ListViewDef]):
    """Create, replace, delete and restore shared list views; every change a new version."""

    def __init__(
        self,
        conn: Connection,
        author: str | None,
        entities: Mapping[str, EntityDef],
        views: Mapping[str, ListViewDef],
        check_expression: ExpressionChecker | None = None,
    ) -> None:
        kind = DocumentKind(
            LIST_VIEW,
            "list view",
            lambda doc: validate_list_view(doc, entities, views, check_expression),
            ListViewDef.from_doc,
        )
        super().__init__(conn, author, kind)
