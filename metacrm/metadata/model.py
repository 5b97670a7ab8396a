"""Typed, read-only views over entity documents.

The stored JSON document stays the source of truth; these views only make it easy to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from metacrm.metadata.types import (
    DEFAULT_DECIMAL_PRECISION,
    DEFAULT_DECIMAL_SCALE,
    FIELD_TYPES,
    SYSTEM_FIELDS,
)

# Where the platform keeps the stable ids that index and constraint names are made from (see
# storage.py): the entity's id and the next free field id under this key of the entity document,
# each field's id under FIELD_STORAGE_KEY of its own document. Admins never see or send them.
STORAGE_KEY = "storage"
FIELD_STORAGE_KEY = "storage_id"


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    doc: dict[str, Any] = field(compare=False, repr=False)
    system: bool = False

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> FieldDef:
        return cls(name=doc["name"], type=doc["type"], doc=doc)

    @property
    def label(self) -> dict[str, str]:
        return self.doc.get("label") or {"en": self.name.replace("_", " ").capitalize()}

    @property
    def required(self) -> bool:
        return bool(self.doc.get("required", False))

    @property
    def unique(self) -> bool:
        return bool(self.doc.get("unique", False))

    @property
    def indexed(self) -> bool:
        return bool(self.doc.get("indexed", False))

    @property
    def read_only(self) -> bool:
        return self.system or bool(self.doc.get("read_only", False)) or self.type == "autonumber"

    @property
    def default(self) -> Any:
        return self.doc.get("default")

    @property
    def has_default(self) -> bool:
        return "default" in self.doc

    @property
    def max_length(self) -> int | None:
        return self.doc.get("max_length")

    @property
    def minimum(self) -> Any:
        return self.doc.get("min")

    @property
    def maximum(self) -> Any:
        return self.doc.get("max")

    @property
    def precision(self) -> int:
        return int(self.doc.get("precision", DEFAULT_DECIMAL_PRECISION))

    @property
    def scale(self) -> int:
        return int(self.doc.get("scale", DEFAULT_DECIMAL_SCALE))

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(o["value"] for o in self.doc.get("options", ()))

    @property
    def target(self) -> str | None:
        return self.doc.get("target")

    @property
    def follow_up(self) -> bool:
        """A date or datetime saying when the record needs attention next."""
        return self.type in ("date", "datetime") and self.doc.get("follow_up") is True

    @property
    def inherits_sharing(self) -> bool:
        """A lookup whose target's shares reach this record too (one level: see permissions)."""
        return self.type == "lookup" and self.doc.get("inherit_sharing") is True

    @property
    def pattern(self) -> str | None:
        return self.doc.get("pattern")

    @property
    def expression(self) -> str | None:
        return self.doc.get("expression")

    @property
    def value_kind(self) -> str:
        """What the value is to the rule language; formulas take their result type."""
        if self.type == "formula":
            return FIELD_TYPES[self.doc.get("result_type", "text")].value_kind
        return FIELD_TYPES[self.type].value_kind

    @property
    def stored(self) -> bool:
        return self.system or FIELD_TYPES[self.type].stored

    @property
    def searchable(self) -> bool:
        return not self.system and FIELD_TYPES[self.type].searchable

    @property
    def storage_id(self) -> int | None:
        """The field's stable id within its entity; None for system fields and for entities
        stored before ids existed."""
        return self.doc.get(FIELD_STORAGE_KEY)


SYSTEM_FIELD_DEFS: tuple[FieldDef, ...] = tuple(
    FieldDef(name=name, type=type_, doc={"name": name, "type": type_}, system=True)
    for name, type_ in SYSTEM_FIELDS.items()
)


@dataclass(frozen=True)
class EntityDef:
    """An entity as the runtime sees it: its active fields, plus columns kept for hidden ones."""

    name: str
    doc: dict[str, Any] = field(compare=False, repr=False)
    fields: tuple[FieldDef, ...] = ()
    hidden_fields: tuple[FieldDef, ...] = ()
    version: int = 0

    @classmethod
    def from_doc(cls, doc: dict[str, Any], version: int = 0) -> EntityDef:
        return cls(
            name=doc["name"],
            doc=doc,
            fields=tuple(FieldDef.from_doc(f) for f in doc.get("fields", ())),
            hidden_fields=tuple(FieldDef.from_doc(f) for f in doc.get("hidden_fields", ())),
            version=version,
        )

    @property
    def label(self) -> dict[str, str]:
        return self.doc.get("label") or {"en": self.name}

    @property
    def plural_label(self) -> dict[str, str]:
        return self.doc.get("plural_label") or self.label

    @property
    def title_field(self) -> str | None:
        return self.doc.get("title_field")

    @property
    def storage_id(self) -> int | None:
        """The entity's stable id, unique in the database; None until `metacrm init` gives one to
        an entity stored before ids existed."""
        storage = self.doc.get(STORAGE_KEY)
        return storage["id"] if storage else None

    def field(self, name: str) -> FieldDef | None:
        """An active or system field by name; hidden fields are not found."""
        return self.field_map.get(name)

    @cached_property
    def field_map(self) -> dict[str, FieldDef]:
        return {f.name: f for f in (*SYSTEM_FIELD_DEFS, *self.fields)}

    @property
    def all_fields(self) -> tuple[FieldDef, ...]:
        """System fields first, then the entity's own active fields."""
        return (*SYSTEM_FIELD_DEFS, *self.fields)

    @property
    def stored_columns(self) -> tuple[FieldDef, ...]:
        """Every column the table has: system, active and hidden stored fields."""
        return tuple(f for f in (*self.all_fields, *self.hidden_fields) if f.stored)


def without_storage_ids(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of an entity document without the platform's storage ids (as admins see it)."""
    out = {k: v for k, v in doc.items() if k != STORAGE_KEY}
    for key in ("fields", "hidden_fields"):
        if isinstance(out.get(key), list):
            out[key] = [
                {k: v for k, v in f.items() if k != FIELD_STORAGE_KEY} if isinstance(f, dict) else f
                for f in out[key]
            ]
    return out
