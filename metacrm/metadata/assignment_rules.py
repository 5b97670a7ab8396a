"""Assignment rules: who a new record of an entity goes to. The first rule whose condition holds
for the record gives it to the next user of its queue — a list of users or a role's active
holders, taken in turn (round-robin) or by who holds the fewest open records (least loaded).

The rules are metadata (validated, versioned, in packages); applying them is the runtime's
write hook (`runtime/assignment.py`), which also keeps each queue's turn.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from metacrm.metadata.approvals import References, user_lookup
from metacrm.metadata.documents import DocumentDesigner, DocumentKind
from metacrm.metadata.model import EntityDef
from metacrm.metadata.validate import (
    ExpressionChecker,
    ExpressionSite,
    SchemaCheck,
    pointer,
    schema_check,
    text_errors,
)
from metacrm.platform.errors import FieldError
from metacrm.platform.users import ADMIN_ROLE

ASSIGNMENT_RULE = "assignment_rule"
OWNER = "owner"
ON_CREATE, CREATE_OR_UNASSIGNED = "create", "create_or_unassigned"
ROUND_ROBIN, LEAST_LOADED = "round_robin", "least_loaded"
# The key under which the fallback queue keeps its turn (rules keep theirs by position).
FALLBACK = "fallback"


@dataclass(frozen=True)
class Queue:
    """One rule (or the fallback): when it applies and whom it hands records to."""

    # Where its turn is kept: the rule's position ("0", "1", …) or "fallback".
    key: str
    condition: str | None
    users: tuple[str, ...]
    role: str | None
    method: str
    open_condition: str | None

    @classmethod
    def from_doc(cls, key: str, doc: Mapping[str, Any]) -> Queue:
        return cls(
            key,
            doc.get("condition"),
            tuple(doc.get("users") or ()),
            doc.get("role"),
            str(doc.get("method", ROUND_ROBIN)),
            doc.get("open_condition"),
        )


@dataclass(frozen=True)
class AssignmentRuleDef:
    name: str
    entity: str
    doc: Mapping[str, Any]
    version: int = 0

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], version: int = 0) -> AssignmentRuleDef:
        return cls(doc["name"], doc["entity"], doc, version)

    @property
    def field(self) -> str:
        return str(self.doc.get("field", OWNER))

    @property
    def when(self) -> str:
        return str(self.doc.get("when", ON_CREATE))

    @property
    def active(self) -> bool:
        return bool(self.doc.get("active", True))

    @property
    def queues(self) -> tuple[Queue, ...]:
        """The rules in order, then the fallback (a queue with no condition), if any."""
        rules = [Queue.from_doc(str(i), r) for i, r in enumerate(self.doc["rules"])]
        fallback = self.doc.get(FALLBACK)
        return (*rules, *([Queue.from_doc(FALLBACK, fallback)] if fallback else []))


def validate_assignment_rule(
    doc: Any, refs: References, others: Mapping[str, AssignmentRuleDef]
) -> list[FieldError]:
    """Every problem with an assignment rule, each with a JSON Pointer: schema errors and the
    errors of meaning of the parts the schema leaves sound. `others` are the rules that exist
    (the one being replaced may be among them): one active rule assigns a field."""
    check = schema_check(ASSIGNMENT_RULE, doc)
    errors = check.errors + text_errors(doc)
    if not isinstance(doc, dict) or not check.sound("entity"):
        return errors
    entity = refs.entities.get(doc["entity"])
    if entity is None:
        return [
            *errors,
            FieldError("/entity", "unknown_entity", f"no entity named {doc['entity']!r}"),
        ]
    if check.sound("field") and check.sound("active"):
        errors.extend(_field_errors(doc, entity, others))
    for i, rule in enumerate(check.items(doc, "rules")):
        if check.sound_place("rules", i):
            errors.extend(_queue_errors(refs, entity, ("rules", i), rule, check))
    if FALLBACK in doc and check.sound_place(FALLBACK):
        errors.extend(_queue_errors(refs, entity, (FALLBACK,), doc[FALLBACK], check))
    return errors


def _field_errors(
    doc: dict[str, Any], entity: EntityDef, others: Mapping[str, AssignmentRuleDef]
) -> list[FieldError]:
    name = doc.get("field", OWNER)
    field = entity.field(name)
    if field is None or field.type != "user" or (field.system and name != OWNER):
        return [
            FieldError(
                "/field",
                "not_user_field",
                f"{entity.name} has no user field {name!r} (owner is one)",
            )
        ]
    if doc.get("active", True) is False:
        return []
    taken = sorted(
        other.name
        for other in others.values()
        if other.name != doc.get("name")
        and other.active
        and (other.entity, other.field) == (entity.name, name)
    )
    if taken:
        return [
            FieldError(
                "/field",
                "duplicate",
                f"assignment rule {taken[0]} already assigns {entity.name}.{name}; "
                "make one of them inactive",
            )
        ]
    return []


def _queue_errors(
    refs: References,
    entity: EntityDef,
    at_path: tuple[str | int, ...],
    queue: dict[str, Any],
    check: SchemaCheck,
) -> list[FieldError]:
    at = pointer(*at_path)
    errors = []
    if ("users" in queue) == ("role" in queue):
        errors.append(FieldError(at, "queue", "give either users (ids) or a role, not both"))
    for j, user in enumerate(check.items(queue, *at_path, "users")):
        if check.sound(*at_path, "users", j) and not refs.user_exists(user):
            errors.append(
                FieldError(f"{at}/users/{j}", "unknown_user", f"no user with id {user!r}")
            )
    role = queue.get("role")
    if (
        role is not None
        and check.sound(*at_path, "role")
        and role != ADMIN_ROLE
        and role not in refs.roles
    ):
        errors.append(FieldError(f"{at}/role", "unknown_role", f"no role named {role!r}"))
    method = queue.get("method", ROUND_ROBIN)
    if (
        "open_condition" in queue
        and check.sound(*at_path, "method")
        and check.sound(*at_path, "open_condition")
        and method != LEAST_LOADED
    ):
        errors.append(
            FieldError(f"{at}/open_condition", "unused", "only least_loaded counts open records")
        )
    if refs.check_expression is None:
        return errors
    for key, needs_sql in (("condition", False), ("open_condition", True)):
        if key in queue and check.sound(*at_path, key):
            site = ExpressionSite(f"{at}/{key}", queue[key], "boolean", needs_sql=needs_sql)
            errors.extend(refs.check_expression(entity.doc, site))
    return errors


class AssignmentRuleDesigner(DocumentDesigner[AssignmentRuleDef]):
    """Create, replace, delete and restore assignment rules; every change a new version. A
    queue's turn outlives changes to its rule (it is kept by the rule's name and position)."""

    def __init__(
        self,
        conn: Connection,
        author: str | None,
        entities: Mapping[str, EntityDef],
        roles: Collection[str],
        others: Mapping[str, AssignmentRuleDef],
        check_expression: ExpressionChecker | None = None,
    ) -> None:
        refs = References(entities, roles, user_lookup(conn), check_expression)
        kind = DocumentKind(
            ASSIGNMENT_RULE,
            "assignment rule",
            lambda doc: validate_assignment_rule(doc, refs, others),
            AssignmentRuleDef.from_doc,
        )
        super().__init__(conn, author, kind)
