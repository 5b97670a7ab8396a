"""Role documents: what users holding a role may do, per entity.

Per entity a role grants actions, each with a data scope; record rules (rule-language
conditions) narrow or widen what the scope selects; field permissions hide, mask or freeze
fields, and a hiding or masking one may spare the record's owner (`except_owner`). Roles are
metadata: validated against `role.schema.json` and the entities they name, versioned in the
store, and designed through `RoleDesigner`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from metacrm.metadata import store
from metacrm.metadata.documents import DocumentDesigner, DocumentKind
from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.validate import (
    ExpressionChecker,
    ExpressionSite,
    SchemaCheck,
    pointer,
    schema_check,
    text_errors,
)
from metacrm.platform.errors import Conflict, FieldError
from metacrm.platform.systables import user_roles
from metacrm.platform.users import ADMIN_ROLE

ROLE = "role"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ACTIONS = ("read", "create", "update", "delete", "export", "import", "transfer", "share")
SCOPES = ("own", "subordinates", "org_unit", "org_unit_tree", "all")
# What reading a field shows, from least to most: nothing, a masked value, the value.
HIDDEN, MASKED, VISIBLE = 0, 1, 2
_READ_LEVEL = {"hidden": HIDDEN, "masked": MASKED, "read_only": VISIBLE}
MASKABLE_TYPES = frozenset({"text", "textarea", "email", "phone", "url"})
# Accesses an `except_owner` may lift for the record's owner.
SPARING_ACCESS = frozenset({"hidden", "masked"})


@dataclass(frozen=True)
class RecordRule:
    name: str
    condition: str
    # "narrow": only records the condition selects; "widen": those records besides the scope.
    effect: str
    # The actions it applies to; None means every action the role grants.
    actions: frozenset[str] | None = None

    def applies_to(self, action: str) -> bool:
        return self.actions is None or action in self.actions


@dataclass(frozen=True)
class FieldRule:
    access: str
    mask: Any = None
    # The reader who owns the record sees (and may write) the field as if there were no rule.
    except_owner: bool = False

    def read_level(self, owned: bool = False) -> int:
        return VISIBLE if owned and self.except_owner else _READ_LEVEL[self.access]


@dataclass(frozen=True)
class EntityPermissions:
    actions: Mapping[str, str] = field(default_factory=dict)
    record_rules: tuple[RecordRule, ...] = ()
    fields: Mapping[str, FieldRule] = field(default_factory=dict)

    def rules(self, action: str, effect: str) -> list[RecordRule]:
        return [r for r in self.record_rules if r.effect == effect and r.applies_to(action)]

    def read_level(self, name: str, owned: bool = False) -> int:
        """What reading the field shows: on a record the reader owns (`owned`) or on any."""
        rule = self.fields.get(name)
        return VISIBLE if rule is None else rule.read_level(owned)

    def writable(self, name: str, owned: bool = False) -> bool:
        """Whether the field is free to write; a rule freezes it, except for the owner of the
        record when the rule spares them (they see it in full, so they write what they see)."""
        rule = self.fields.get(name)
        return rule is None or (owned and rule.except_owner)

    @property
    def spares_owners(self) -> bool:
        """Whether owning a record changes what some field shows."""
        return any(rule.except_owner for rule in self.fields.values())


@dataclass(frozen=True)
class RoleDef:
    name: str
    label: Mapping[str, str]
    entities: Mapping[str, EntityPermissions]
    version: int = 0

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], version: int = 0) -> RoleDef:
        entities = {}
        for entity, spec in (doc.get("entities") or {}).items():
            entities[entity] = EntityPermissions(
                actions=dict(spec.get("actions") or {}),
                record_rules=tuple(
                    RecordRule(
                        r["name"],
                        r["condition"],
                        r["effect"],
                        frozenset(r["actions"]) if "actions" in r else None,
                    )
                    for r in spec.get("record_rules") or ()
                ),
                fields={
                    name: FieldRule(
                        rule["access"], rule.get("mask"), bool(rule.get("except_owner", False))
                    )
                    for name, rule in (spec.get("fields") or {}).items()
                },
            )
        return cls(doc["name"], doc["label"], entities, version)

    def on(self, entity: str) -> EntityPermissions | None:
        return self.entities.get(entity)


def role_errors(conn: Connection, roles: Any, at: str = "roles") -> list[FieldError]:
    """Problems with a list of role names given to a user: each must be a role document (or
    "admin", which callers turn into the admin flag)."""
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        return [FieldError(at, "type", "must be a list of role names")]
    return [
        FieldError(at, "unknown_role", f"no role named {r!r}")
        for r in roles
        if r != ADMIN_ROLE and (not _NAME.match(r) or store.get(conn, ROLE, r) is None)
    ]


def validate_role(
    doc: Any,
    entities: Mapping[str, EntityDef],
    check_expression: ExpressionChecker | None = None,
) -> list[FieldError]:
    """Every problem with a role document, each with a JSON Pointer: schema errors and the
    errors of meaning of every part the schema finds sound."""
    check = schema_check(ROLE, doc)
    errors = check.errors + text_errors(doc)
    if not isinstance(doc, dict):
        return errors
    if check.sound("name") and doc["name"] == ADMIN_ROLE:
        errors.append(FieldError("/name", "reserved", "'admin' is the admin flag, not a role"))
    for entity_name, spec in check.members(doc, "entities").items():
        at = ("entities", entity_name)
        entity = entities.get(entity_name)
        if entity is None:
            errors.append(
                FieldError(pointer(*at), "unknown_entity", f"no entity named {entity_name!r}")
            )
            continue
        errors.extend(_record_rule_errors(check, spec, at, entity, check_expression))
        errors.extend(_field_rule_errors(check, spec, at, entity))
    return errors


def _record_rule_errors(
    check: SchemaCheck,
    spec: Any,
    at: tuple[str, str],
    entity: EntityDef,
    check_expression: ExpressionChecker | None,
) -> list[FieldError]:
    errors = []
    names: set[str] = set()
    for i, rule in enumerate(check.items(spec, *at, "record_rules")):
        where = (*at, "record_rules", i)
        if check.sound(*where, "name"):
            if rule["name"] in names:
                errors.append(FieldError(pointer(*where, "name"), "duplicate", "repeated"))
            names.add(rule["name"])
        if check_expression is not None and check.sound(*where, "condition"):
            site = ExpressionSite(
                pointer(*where, "condition"), rule["condition"], "boolean", needs_sql=True
            )
            errors.extend(check_expression(entity.doc, site))
    return errors


def _field_rule_errors(
    check: SchemaCheck, spec: Any, at: tuple[str, str], entity: EntityDef
) -> list[FieldError]:
    errors = []
    for name, rule in check.members(spec, *at, "fields").items():
        found = entity.field(name)
        where = pointer(*at, "fields", name)
        if found is None:
            errors.append(FieldError(where, "unknown_field", f"{entity.name} has no {name!r}"))
        elif found.system:
            errors.append(FieldError(where, "reserved", "system fields are always visible"))
        elif check.sound(*at, "fields", name, "access"):
            errors.extend(_access_errors(rule, found, where))
    return errors


def _access_errors(rule: Mapping[str, Any], found: FieldDef, where: str) -> list[FieldError]:
    """What the rest of a field permission says that its access can't mean."""
    errors = []
    access = rule["access"]
    if access == "masked" and found.type not in MASKABLE_TYPES:
        errors.append(
            FieldError(
                f"{where}/access",
                "not_maskable",
                f"a {found.type} field can't be masked; hide it instead",
            )
        )
    elif "mask" in rule and access != "masked":
        errors.append(FieldError(f"{where}/mask", "unused", "only masked fields mask"))
    if rule.get("except_owner") is True and access not in SPARING_ACCESS:
        errors.append(
            FieldError(
                f"{where}/except_owner",
                "unused",
                "only a hidden or masked field can spare the record's owner; "
                f"{access} applies to every reader",
            )
        )
    return errors


class RoleDesigner(DocumentDesigner[RoleDef]):
    """Create, replace, delete and restore role documents; every change is a new version."""

    def __init__(
        self,
        conn: Connection,
        author: str | None,
        entities: Mapping[str, EntityDef],
        check_expression: ExpressionChecker | None = None,
    ) -> None:
        kind = DocumentKind(
            ROLE,
            "role",
            lambda doc: validate_role(doc, entities, check_expression),
            RoleDef.from_doc,
        )
        super().__init__(conn, author, kind)

    def delete(self, name: str) -> None:
        self.current(name)
        holders = self.conn.execute(
            select(func.count()).where(user_roles.c.role == name)
        ).scalar_one()
        if holders:
            raise Conflict(f"{holders} user(s) hold role {name!r}; take it from them first")
        super().delete(name)
