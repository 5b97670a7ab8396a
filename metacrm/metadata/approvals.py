"""Approval process documents: who must approve a record, in which steps, and what happens then.

Processes are metadata: validated against `approval_process.schema.json` and the entity, roles
and users they name, versioned in the store, and designed through `ApprovalProcessDesigner`.
The runtime reads a running approval's steps from the document stored with it, so these views
must read any version that once validated.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, select

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
from metacrm.platform.systables import users
from metacrm.platform.users import ADMIN_ROLE

APPROVAL_PROCESS = "approval_process"
MODES = ("any", "all", "quorum")
# When a process action fires: process-level moments, and per step.
PROCESS_MOMENTS = ("on_submit", "on_approve", "on_reject", "on_recall")
STEP_MOMENTS = ("on_approve", "on_reject")
RECIPIENT_WORDS = ("submitter", "owner", "approvers")


@dataclass(frozen=True)
class StepDef:
    index: int
    doc: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.doc["name"])

    @property
    def label(self) -> Mapping[str, str]:
        return self.doc.get("label") or {"en": self.name}

    @property
    def condition(self) -> str | None:
        return self.doc.get("condition")

    @property
    def approvers(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(self.doc.get("approvers") or ())

    @property
    def mode(self) -> str:
        return str(self.doc.get("mode", "any"))

    @property
    def quorum(self) -> int:
        """Approvals a `quorum` step needs (other modes don't count)."""
        return int(self.doc.get("quorum", 1))

    @property
    def sla_hours(self) -> float | None:
        return self.doc.get("sla_hours")

    @property
    def escalate_after_hours(self) -> float | None:
        """Escalation waits twice the SLA unless the step says otherwise; no SLA, no default."""
        explicit = self.doc.get("escalate_after_hours")
        if explicit is not None:
            return float(explicit)
        return 2 * float(self.sla_hours) if self.sla_hours is not None else None

    def actions(self, moment: str) -> tuple[Mapping[str, Any], ...]:
        return tuple(self.doc.get(moment) or ())


@dataclass(frozen=True)
class ApprovalProcessDef:
    name: str
    entity: str
    doc: Mapping[str, Any]
    version: int = 0

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], version: int = 0) -> ApprovalProcessDef:
        return cls(doc["name"], doc["entity"], doc, version)

    @property
    def label(self) -> Mapping[str, str]:
        return self.doc.get("label") or {"en": self.name}

    @property
    def title(self) -> str:
        return str(self.label.get("en") or self.name)

    @property
    def trigger(self) -> str:
        return str(self.doc.get("trigger", "manual"))

    @property
    def entry_condition(self) -> str | None:
        return self.doc.get("entry_condition")

    @property
    def auto_condition(self) -> str | None:
        return self.doc.get("auto_condition")

    @property
    def submitters(self) -> tuple[str, ...]:
        return tuple(self.doc.get("submitters") or ())

    @property
    def approver_may_edit(self) -> bool:
        return bool((self.doc.get("lock") or {}).get("approver_may_edit", False))

    @cached_property
    def steps(self) -> tuple[StepDef, ...]:
        return tuple(StepDef(i, s) for i, s in enumerate(self.doc.get("steps") or ()))

    def actions(self, moment: str) -> tuple[Mapping[str, Any], ...]:
        return tuple(self.doc.get(moment) or ())


# ---- validation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class References:
    """What a process document may name besides its entity: roles, and users (by id)."""

    entities: Mapping[str, EntityDef]
    roles: Collection[str]
    user_exists: Callable[[str], bool]
    check_expression: ExpressionChecker | None = None


def validate_approval_process(doc: Any, refs: References) -> list[FieldError]:
    """Every problem with a process document, each with a JSON Pointer: schema errors and the
    errors of meaning of every part the schema finds sound."""
    check = schema_check(APPROVAL_PROCESS, doc)
    errors = check.errors + text_errors(doc)
    if not isinstance(doc, dict) or not check.sound("entity"):
        return errors
    entity = refs.entities.get(doc["entity"])
    if entity is None:
        return [
            *errors,
            FieldError("/entity", "unknown_entity", f"no entity named {doc['entity']!r}"),
        ]
    if check.sound("trigger") and check.sound("auto_condition"):
        errors.extend(_trigger_errors(doc))
    for key in ("entry_condition", "auto_condition"):
        if key in doc and check.sound(key):
            errors.extend(_condition_errors(refs, entity, f"/{key}", doc[key]))
    for i, role in enumerate(check.items(doc, "submitters")):
        if check.sound("submitters", i):
            errors.extend(_role_errors(refs, f"/submitters/{i}", role))
    names: set[str] = set()
    for i, step in enumerate(check.items(doc, "steps")):
        if not check.sound_place("steps", i):
            continue
        if check.sound("steps", i, "name"):
            if step["name"] in names:
                errors.append(
                    FieldError(f"/steps/{i}/name", "duplicate", "step names must be unique")
                )
            names.add(step["name"])
        errors.extend(_step_errors(refs, entity, ("steps", i), step, check))
    for moment in PROCESS_MOMENTS:
        for j, action in enumerate(check.items(doc, moment)):
            if check.sound(moment, j):
                errors.extend(_action_errors(refs, entity, f"/{moment}/{j}", action))
    return errors


def _trigger_errors(doc: dict[str, Any]) -> list[FieldError]:
    auto = doc.get("trigger") == "auto"
    if auto and "auto_condition" not in doc:
        return [FieldError("/auto_condition", "required", "an auto trigger needs auto_condition")]
    if not auto and "auto_condition" in doc:
        return [FieldError("/auto_condition", "unused", "only an auto trigger uses it")]
    return []


def _condition_errors(refs: References, entity: EntityDef, at: str, text: str) -> list[FieldError]:
    if refs.check_expression is None:
        return []
    return refs.check_expression(entity.doc, ExpressionSite(at, text, "boolean"))


def _role_errors(refs: References, at: str, role: str) -> list[FieldError]:
    if role == ADMIN_ROLE or role in refs.roles:
        return []
    return [FieldError(at, "unknown_role", f"no role named {role!r}")]


def _user_errors(refs: References, at: str, user_id: str) -> list[FieldError]:
    if refs.user_exists(user_id):
        return []
    return [FieldError(at, "unknown_user", f"no user with id {user_id!r}")]


def _step_errors(
    refs: References,
    entity: EntityDef,
    at: tuple[str, int],
    step: dict[str, Any],
    check: SchemaCheck,
) -> list[FieldError]:
    errors = []
    where = pointer(*at)
    if "condition" in step and check.sound(*at, "condition"):
        errors.extend(_condition_errors(refs, entity, f"{where}/condition", step["condition"]))
    if check.sound(*at, "mode") and check.sound(*at, "quorum"):
        mode = step.get("mode", "any")
        if mode == "quorum" and "quorum" not in step:
            errors.append(FieldError(f"{where}/quorum", "required", "a quorum step needs quorum"))
        if mode != "quorum" and "quorum" in step:
            errors.append(FieldError(f"{where}/quorum", "unused", "only mode quorum uses a quorum"))
    for k, source in enumerate(check.items(step, *at, "approvers")):
        if check.sound(*at, "approvers", k):
            errors.extend(_approver_errors(refs, entity, f"{where}/approvers/{k}", source))
    for moment in STEP_MOMENTS:
        for j, action in enumerate(check.items(step, *at, moment)):
            if check.sound(*at, moment, j):
                errors.extend(_action_errors(refs, entity, f"{where}/{moment}/{j}", action))
    return errors


def _approver_errors(
    refs: References, entity: EntityDef, at: str, source: dict[str, Any]
) -> list[FieldError]:
    kind = source["type"]
    if kind == "user":
        return [
            e
            for i, u in enumerate(source["users"])
            for e in _user_errors(refs, f"{at}/users/{i}", u)
        ]
    if kind == "role":
        return _role_errors(refs, f"{at}/role", source["role"])
    if kind == "field":
        found = entity.field(source["field"])
        if found is None or found.type != "user":
            return [
                FieldError(
                    f"{at}/field",
                    "not_user_field",
                    f"{entity.name} has no user field {source['field']!r} (owner is one)",
                )
            ]
    return []


def _action_errors(
    refs: References, entity: EntityDef, at: str, action: dict[str, Any]
) -> list[FieldError]:
    kind = action["type"]
    if kind == "notify":
        errors: list[FieldError] = []
        for i, to in enumerate(action["to"]):
            if isinstance(to, dict) and "user" in to:
                errors.extend(_user_errors(refs, f"{at}/to/{i}/user", to["user"]))
            elif isinstance(to, dict):
                errors.extend(_role_errors(refs, f"{at}/to/{i}/role", to["role"]))
        return errors
    found = entity.field(action["field"])
    if found is None:
        return [
            FieldError(f"{at}/field", "unknown_field", f"{entity.name} has no {action['field']!r}")
        ]
    if found.name != "owner" and (found.read_only or found.type == "formula"):
        return [FieldError(f"{at}/field", "read_only", f"{found.name} can't be written")]
    if kind == "move_stage":
        if found.type != "picklist":
            return [FieldError(f"{at}/field", "not_picklist", f"{found.name} is not a picklist")]
        if action["stage"] not in found.options:
            choices = ", ".join(found.options)
            return [FieldError(f"{at}/stage", "unknown_option", f"choose one of: {choices}")]
        return []
    if refs.check_expression is None:
        return []
    expect = found.value_kind if found.value_kind != "list" else None
    return refs.check_expression(
        entity.doc, ExpressionSite(f"{at}/expression", action["expression"], expect)
    )


def user_lookup(conn: Connection) -> Callable[[str], bool]:
    """Whether a user id names a user (active or not: freezing someone mustn't break saving)."""

    def exists(user_id: str) -> bool:
        found = conn.execute(select(users.c.id).where(users.c.id == user_id)).first()
        return found is not None

    return exists


class ApprovalProcessDesigner(DocumentDesigner[ApprovalProcessDef]):
    """Create, replace, delete and restore approval processes; every change is a new version.
    Running approvals keep the version they started with."""

    def __init__(
        self,
        conn: Connection,
        author: str | None,
        entities: Mapping[str, EntityDef],
        roles: Collection[str],
        check_expression: ExpressionChecker | None = None,
    ) -> None:
        refs = References(entities, roles, user_lookup(conn), check_expression)
        kind = DocumentKind(
            APPROVAL_PROCESS,
            "approval process",
            lambda doc: validate_approval_process(doc, refs),
            ApprovalProcessDef.from_doc,
        )
        super().__init__(conn, author, kind)
