"""The rules of an entity applied to one write: default expressions, conditional field logic
(`required_if`, `visible_if`, `read_only_if`) and validation rules.

Conditions are compiled once per entity snapshot into Python callables (rules/compile_py.py).
A validation rule fails only when its condition is false — like a SQL CHECK constraint, an
unknown (null) result lets the record through; `when` must be true for the rule to apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.values import ValueProblem, coerce
from metacrm.platform.errors import FieldError
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rules.check import Checked
from metacrm.runtime.rules.compile_py import Env, Fn, compiled, holds
from metacrm.runtime.rules.operators import BOOLEAN

BLANK_VALUES: tuple[Any, ...] = (None, "", [])


@dataclass
class WriteContext:
    """What the rules of one write can see."""

    conn: Connection
    catalog: Catalog
    user: Mapping[str, Any]
    now: datetime

    def env(
        self, entity: EntityDef, record: Mapping[str, Any], old: Mapping[str, Any] | None
    ) -> Env:
        return Env(
            record=record,
            user=self.user,
            now=self.now,
            old=old,
            related=self._related(entity, record),
        )

    def _related(
        self, entity: EntityDef, record: Mapping[str, Any]
    ) -> Callable[[tuple[str, ...]], Any]:
        """Values at lookup paths (account.industry), read from the database on demand."""
        cache: dict[tuple[str, ...], Any] = {}

        def value_at(path: tuple[str, ...]) -> Any:
            if path in cache:
                return cache[path]
            current_entity = entity
            current: Mapping[str, Any] | None = record
            for name in path[:-1]:
                field = current_entity.field(name)
                target_id = current.get(name) if current is not None else None
                if field is None or field.type != "lookup" or target_id is None:
                    current = None
                    break
                current_entity = self.catalog.entity(field.target or "")
                table = self.catalog.table(current_entity.name)
                row = self.conn.execute(select(table).where(table.c.id == target_id)).first()
                current = dict(row._mapping) if row else None
            found = current.get(path[-1]) if current is not None else None
            cache[path] = _from_column(current_entity.field(path[-1]), found)
            return cache[path]

        return value_at

    def compiled(
        self,
        entity: EntityDef,
        text: str,
        *,
        expect: str | None,
        sees_change: bool,
        inputs: Mapping[tuple[str, ...], str | None] | None = None,
    ) -> tuple[Checked, Fn]:
        """The expression checked and compiled, once per metadata snapshot; `inputs` puts a
        record action's input in scope (`input.<key>`)."""
        return compiled(
            entity,
            text,
            expect=expect,
            allow_change_refs=sees_change,
            resolve_entity=self.catalog.find,
            cache=self.catalog.memo(("rules", entity.name), dict),
            inputs=inputs,
        )

    def condition(self, entity: EntityDef, text: str, *, sees_change: bool = False) -> Fn:
        return self.compiled(entity, text, expect=BOOLEAN, sees_change=sees_change)[1]

    def value(
        self,
        entity: EntityDef,
        text: str,
        record: Mapping[str, Any],
        old: Mapping[str, Any] | None = None,
        *,
        sees_change: bool = False,
    ) -> Any:
        """The value of an expression over a record (a stage's or an approval's `set_field`);
        with `sees_change`, `old.` and `changed()` see `old` (nothing on a create)."""
        fn = self.compiled(entity, text, expect=None, sees_change=sees_change)[1]
        return fn(self.env(entity, record, old))


def _from_column(field: FieldDef | None, value: Any) -> Any:
    if field is None or value is None:
        return value
    try:
        return coerce(field, value) if field.type != "multipicklist" else value
    except ValueProblem:
        return value


def apply_default_expressions(
    ctx: WriteContext, entity: EntityDef, values: dict[str, Any], sent: Mapping[str, Any]
) -> list[FieldError]:
    """On create: fields the client left out that have a `default_expr` get its value."""
    errors = []
    for field in entity.fields:
        text = field.doc.get("default_expr")
        if text is None or field.name in sent:
            continue
        fn = ctx.compiled(entity, text, expect=None, sees_change=False)[1]
        try:
            values[field.name] = coerce(field, fn(ctx.env(entity, values, None)))
        except ValueProblem as problem:
            errors.append(FieldError(field.name, "default", f"default_expr {problem.message}"))
    return errors


def rule_errors(
    ctx: WriteContext,
    entity: EntityDef,
    after: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    sent: Mapping[str, Any],
) -> list[FieldError]:
    """Conditional field logic and validation rules for a record about to be saved."""
    errors: list[FieldError] = []
    env_after = ctx.env(entity, after, before)
    env_before = ctx.env(entity, before, None) if before is not None else None
    for field in entity.fields:
        doc = field.doc
        if "visible_if" in doc and not holds(ctx.condition(entity, doc["visible_if"]), env_after):
            if field.name in sent and sent[field.name] not in BLANK_VALUES:
                errors.append(FieldError(field.name, "hidden", "is hidden for this record"))
            continue
        if "read_only_if" in doc and before is not None and field.name in sent:
            # Judged on the stored record: a field locks once the record is, say, won.
            assert env_before is not None  # there is a stored record: this is an update
            locked = holds(ctx.condition(entity, doc["read_only_if"]), env_before)
            if locked and before.get(field.name) != after.get(field.name):
                errors.append(FieldError(field.name, "read_only", "is read-only for this record"))
        blank = after.get(field.name) in BLANK_VALUES
        if (
            blank
            and "required_if" in doc
            and holds(ctx.condition(entity, doc["required_if"]), env_after)
        ):
            errors.append(FieldError(field.name, "required", "is required for this record"))
    for rule in entity.doc.get("validation_rules", []):
        if "condition" not in rule:
            continue  # a validator hook's rule (runtime/validators.py)
        if "when" in rule and not holds(
            ctx.condition(entity, rule["when"], sees_change=True), env_after
        ):
            continue
        result = ctx.condition(entity, rule["condition"], sees_change=True)(env_after)
        if result is False:
            message = rule["message"].get("en") or next(iter(rule["message"].values()))
            errors.append(FieldError(rule.get("field", ""), rule["name"], message))
    return errors
