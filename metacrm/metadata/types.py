"""The field types as data: how each is stored, which options it takes, what it holds.

Policies live in these tables so the validator, the planner and the runtime read one truth.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldType:
    name: str
    # The kind of value the rule language and coercion see: text, integer, decimal, boolean,
    # date, datetime, list (multipicklist).
    value_kind: str
    # Options that only make sense for this type (beyond the common ones).
    options: frozenset[str] = frozenset()
    # Stored in a column of its own (formula fields are computed on read).
    stored: bool = True
    # Searched by `q`.
    searchable: bool = False


_TEXT_OPTS = frozenset({"max_length"})
_NUM_OPTS = frozenset({"min", "max"})

FIELD_TYPES: dict[str, FieldType] = {
    t.name: t
    for t in (
        FieldType("text", "text", _TEXT_OPTS, searchable=True),
        FieldType("textarea", "text", _TEXT_OPTS, searchable=True),
        FieldType("email", "text", _TEXT_OPTS, searchable=True),
        FieldType("phone", "text", _TEXT_OPTS, searchable=True),
        FieldType("url", "text", _TEXT_OPTS),
        FieldType("integer", "integer", _NUM_OPTS),
        FieldType("decimal", "decimal", _NUM_OPTS | {"precision", "scale"}),
        FieldType("boolean", "boolean"),
        # follow_up: the date says when the record needs attention next (the app's home page
        # lists the user's records past it).
        FieldType("date", "date", _NUM_OPTS | {"follow_up"}),
        FieldType("datetime", "datetime", _NUM_OPTS | {"follow_up"}),
        FieldType("picklist", "text", frozenset({"options"})),
        FieldType("multipicklist", "list", frozenset({"options"})),
        # inherit_sharing: a share of the looked-up record reaches this one (permissions.py).
        FieldType("lookup", "text", frozenset({"target", "inherit_sharing"})),
        FieldType("user", "text"),
        FieldType("autonumber", "text", frozenset({"pattern"}), searchable=True),
        FieldType("formula", "computed", frozenset({"expression", "result_type"}), stored=False),
    )
}

# Result types a formula may declare.
FORMULA_RESULT_TYPES = ("text", "integer", "decimal", "boolean", "date", "datetime")

# Present on every entity, written only by the platform.
SYSTEM_FIELDS: dict[str, str] = {
    "id": "text",
    "owner": "user",
    "created_at": "datetime",
    "created_by": "user",
    "updated_at": "datetime",
    "updated_by": "user",
    "version": "integer",
    "deleted_at": "datetime",
}

RESERVED_FIELD_NAMES = frozenset(SYSTEM_FIELDS)

# Table names that an entity may not take: the platform's own tables start with mc_, and the
# databases keep their catalogues under sqlite_ and pg_.
RESERVED_ENTITY_PREFIXES = ("mc_", "sqlite_", "pg_")
# Words the rule language or the URL scheme give a meaning of their own.
RESERVED_ENTITY_NAMES = frozenset({"meta", "me", "old", "user", "users", "null", "true", "false"})

DEFAULT_DECIMAL_PRECISION = 18
DEFAULT_DECIMAL_SCALE = 2
DEFAULT_TEXT_LENGTH = 255
TEXTAREA_MAX_LENGTH = 100_000
