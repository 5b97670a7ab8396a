"""Form layouts: how an entity's record page and forms lay out its fields — sections of one or
two columns, each shown or hidden by a rule, and related lists (the records whose lookups point
here) — and the layout every entity has when none is designed (`derived_layout`).

A layout needn't place every field: an admin leaves out what a page shouldn't show. It must
place every field a create can't do without (required, no default), or its form could never be
saved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from metacrm.metadata.documents import DocumentDesigner, DocumentKind
from metacrm.metadata.list_views import sort_errors
from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.validate import (
    ExpressionChecker,
    ExpressionSite,
    SchemaCheck,
    pointer,
    schema_check,
    text_errors,
)
from metacrm.platform.errors import FieldError

FORM_LAYOUT = "form_layout"
DERIVED = "derived"
DEFAULT_COLUMNS = 2
# A layout may place any field but this one (a page shows records that are not deleted).
NOT_PLACED = "deleted_at"
# The system fields the derived layout shows, in its "System" section.
SYSTEM_SECTION = ("owner", "created_at", "created_by", "updated_at", "updated_by")
DETAILS_LABEL = {"en": "Details", "zh-CN": "详细信息"}
SYSTEM_LABEL = {"en": "System", "zh-CN": "系统信息"}
# Columns a derived related list shows at most.
RELATED_COLUMNS = 4
NOT_A_COLUMN = ("textarea", "multipicklist")


@dataclass(frozen=True)
class Section:
    key: str
    label: Mapping[str, str]
    columns: int
    fields: tuple[str, ...]
    collapsed: bool
    visible_if: str | None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Section:
        return cls(
            doc["key"],
            doc["label"],
            int(doc.get("columns", DEFAULT_COLUMNS)),
            tuple(doc.get("fields") or ()),
            bool(doc.get("collapsed", False)),
            doc.get("visible_if"),
        )


@dataclass(frozen=True)
class RelatedList:
    entity: str
    lookup: str
    label: Mapping[str, str] | None
    columns: tuple[str, ...]
    sort: str | None
    limit: int | None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> RelatedList:
        return cls(
            doc["entity"],
            doc["lookup"],
            doc.get("label"),
            tuple(doc.get("columns") or ()),
            doc.get("sort"),
            doc.get("limit"),
        )


@dataclass(frozen=True)
class FormLayoutDef:
    name: str
    entity: str
    doc: Mapping[str, Any]
    version: int = 0
    # Made by `derived_layout` from the entity's fields, not designed (it is in no store).
    derived: bool = False

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], version: int = 0) -> FormLayoutDef:
        return cls(doc["name"], doc["entity"], doc, version)

    @property
    def label(self) -> Mapping[str, str]:
        return self.doc.get("label") or {"en": self.name}

    @property
    def sections(self) -> tuple[Section, ...]:
        return tuple(Section.from_doc(s) for s in self.doc["sections"])

    @property
    def related_lists(self) -> tuple[RelatedList, ...]:
        return tuple(RelatedList.from_doc(r) for r in self.doc.get("related_lists") or ())

    @property
    def is_default(self) -> bool:
        return bool(self.doc.get("default", False))

    @property
    def placed(self) -> tuple[str, ...]:
        return tuple(name for section in self.sections for name in section.fields)


def derived_layout(entity: EntityDef, entities: Iterable[EntityDef] = ()) -> FormLayoutDef:
    """The layout of an entity no designed layout covers: every field of its own in document
    order in one section (formulas and autonumbers too, which forms show read-only), the system
    fields in a collapsed "System" section, and a related list for every lookup of any entity in
    `entities` that points here. A pure function of the metadata."""
    sections: list[dict[str, Any]] = []
    own = [f.name for f in entity.fields]
    if own:
        sections.append(
            {"key": "details", "label": DETAILS_LABEL, "columns": DEFAULT_COLUMNS, "fields": own}
        )
    sections.append(
        {
            "key": "system",
            "label": SYSTEM_LABEL,
            "columns": DEFAULT_COLUMNS,
            "fields": list(SYSTEM_SECTION),
            "collapsed": True,
        }
    )
    doc = {
        "name": DERIVED,
        "label": entity.label,
        "entity": entity.name,
        "sections": sections,
        "related_lists": derived_related_lists(entity, entities),
        "default": True,
    }
    return FormLayoutDef(DERIVED, entity.name, doc, derived=True)


def derived_related_lists(entity: EntityDef, entities: Iterable[EntityDef]) -> list[dict[str, Any]]:
    """A related list per lookup pointing at `entity`, ordered by entity and field."""
    found = []
    for other in sorted(entities, key=lambda e: e.name):
        lookups = [f for f in other.fields if f.type == "lookup" and f.target == entity.name]
        for field in lookups:
            label = other.plural_label if len(lookups) == 1 else _qualified(other, field)
            found.append(
                {
                    "entity": other.name,
                    "lookup": field.name,
                    "label": dict(label),
                    "columns": _related_columns(other, field.name),
                }
            )
    return found


def _qualified(other: EntityDef, field: FieldDef) -> dict[str, str]:
    """ "Contacts (Primary account)": an entity with two lookups here has two related lists."""
    plural, named = other.plural_label, field.label
    return {loc: f"{text} ({named.get(loc, named['en'])})" for loc, text in plural.items()}


def _related_columns(other: EntityDef, lookup: str) -> list[str]:
    title = other.title_field if other.field(other.title_field or "") else None
    names = [title] if title and title != lookup else []
    for field in other.fields:
        if len(names) >= RELATED_COLUMNS:
            break
        if field.name not in (lookup, *names) and field.type not in NOT_A_COLUMN:
            names.append(field.name)
    return names


# ---- validation ---------------------------------------------------------------------------


def validate_form_layout(
    doc: Any,
    entities: Mapping[str, EntityDef],
    layouts: Mapping[str, FormLayoutDef],
    check_expression: ExpressionChecker | None = None,
) -> list[FieldError]:
    """Every problem with a layout, each with a JSON Pointer: schema errors and the errors of
    meaning of the parts the schema leaves sound. `layouts` are those that exist (the one being
    replaced may be among them): one layout per entity may be its default."""
    check = schema_check(FORM_LAYOUT, doc)
    errors = check.errors + text_errors(doc)
    if not isinstance(doc, dict) or not check.sound("entity"):
        return errors
    entity = entities.get(doc["entity"])
    if entity is None:
        return [
            *errors,
            FieldError("/entity", "unknown_entity", f"no entity named {doc['entity']!r}"),
        ]
    errors.extend(_section_errors(doc, check, entity, check_expression))
    for i, related in enumerate(check.items(doc, "related_lists")):
        if check.sound_place("related_lists", i):
            errors.extend(_related_errors(related, ("related_lists", i), check, entity, entities))
    errors.extend(_repeated_related(doc, check))
    if doc.get("default") is True and check.sound("default"):
        errors.extend(_default_errors(doc, layouts))
    return errors


def _section_errors(
    doc: dict[str, Any],
    check: SchemaCheck,
    entity: EntityDef,
    check_expression: ExpressionChecker | None,
) -> list[FieldError]:
    errors = []
    keys: set[str] = set()
    placed: dict[str, str] = {}
    sections = check.items(doc, "sections")
    for i, section in enumerate(sections):
        if not check.sound_place("sections", i):
            continue
        at = pointer("sections", i)
        if check.sound("sections", i, "key"):
            if section["key"] in keys:
                errors.append(FieldError(f"{at}/key", "duplicate", f"{section['key']!r} repeated"))
            keys.add(section["key"])
        for j, name in enumerate(check.items(section, "sections", i, "fields")):
            if not check.sound("sections", i, "fields", j):
                continue
            field = entity.field(name)
            if field is None or field.name == NOT_PLACED:
                errors.append(
                    FieldError(
                        f"{at}/fields/{j}", "unknown_field", f"{entity.name} has no field {name!r}"
                    )
                )
            elif name in placed:
                errors.append(
                    FieldError(
                        f"{at}/fields/{j}", "duplicate", f"{name} is already at {placed[name]}"
                    )
                )
            else:
                placed[name] = f"{at}/fields/{j}"
        condition = section.get("visible_if") if check.sound("sections", i, "visible_if") else None
        if condition is not None and check_expression is not None:
            site = ExpressionSite(f"{at}/visible_if", condition, "boolean")
            errors.extend(check_expression(entity.doc, site))
    every_section_sound = len(sections) == len(doc.get("sections") or ()) and all(
        check.sound("sections", i, "fields") for i in range(len(sections))
    )
    if sections and every_section_sound:
        errors.extend(
            FieldError(
                "/sections",
                "required_field",
                f"{f.name} is required and has no default: place it, or a create can't be saved",
            )
            for f in needed_on_create(entity)
            if f.name not in placed
        )
    return errors


def needed_on_create(entity: EntityDef) -> list[FieldDef]:
    """The fields a create form can't do without: required, writable, with no default."""
    return [
        f
        for f in entity.fields
        if f.required
        and not f.read_only
        and f.type != "formula"
        and not f.has_default
        and "default_expr" not in f.doc
    ]


def _related_errors(
    related: dict[str, Any],
    at_path: tuple[str, int],
    check: SchemaCheck,
    entity: EntityDef,
    entities: Mapping[str, EntityDef],
) -> list[FieldError]:
    at = pointer(*at_path)
    if not check.sound(*at_path, "entity"):
        return []
    other = entities.get(related["entity"])
    if other is None:
        return [
            FieldError(f"{at}/entity", "unknown_entity", f"no entity named {related['entity']!r}")
        ]
    errors = []
    if check.sound(*at_path, "lookup"):
        field = other.field(related["lookup"])
        if field is None or field.type != "lookup" or field.target != entity.name:
            errors.append(
                FieldError(
                    f"{at}/lookup",
                    "not_lookup",
                    f"{other.name} has no lookup {related['lookup']!r} to {entity.name}",
                )
            )
    for j, name in enumerate(check.items(related, *at_path, "columns")):
        if not check.sound(*at_path, "columns", j):
            continue
        found = other.field(name)
        if found is None or found.name == NOT_PLACED:
            errors.append(
                FieldError(f"{at}/columns/{j}", "unknown_field", f"{other.name} has no {name!r}")
            )
    if "sort" in related and check.sound(*at_path, "sort"):
        errors.extend(sort_errors(other, related["sort"], f"{at}/sort"))
    return errors


def _repeated_related(doc: dict[str, Any], check: SchemaCheck) -> list[FieldError]:
    errors = []
    seen: set[tuple[str, str]] = set()
    for i, related in enumerate(check.items(doc, "related_lists")):
        if not (
            check.sound("related_lists", i, "entity") and check.sound("related_lists", i, "lookup")
        ):
            continue
        key = (related["entity"], related["lookup"])
        if key in seen:
            errors.append(
                FieldError(f"/related_lists/{i}", "duplicate", f"{'.'.join(key)} is listed twice")
            )
        seen.add(key)
    return errors


def _default_errors(doc: dict[str, Any], layouts: Mapping[str, FormLayoutDef]) -> list[FieldError]:
    others = sorted(
        layout.name
        for layout in layouts.values()
        if layout.entity == doc["entity"] and layout.is_default and layout.name != doc.get("name")
    )
    if not others:
        return []
    return [
        FieldError(
            "/default",
            "duplicate_default",
            f"{others[0]} is already the layout of {doc['entity']}; unset its default first",
        )
    ]


class FormLayoutDesigner(DocumentDesigner[FormLayoutDef]):
    """Create, replace, delete and restore form layouts; every change a new version."""

    def __init__(
        self,
        conn: Connection,
        author: str | None,
        entities: Mapping[str, EntityDef],
        layouts: Mapping[str, FormLayoutDef],
        check_expression: ExpressionChecker | None = None,
    ) -> None:
        kind = DocumentKind(
            FORM_LAYOUT,
            "form layout",
            lambda doc: validate_form_layout(doc, entities, layouts, check_expression),
            FormLayoutDef.from_doc,
        )
        super().__init__(conn, author, kind)
