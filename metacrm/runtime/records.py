"""The record service: the only code that writes records, and the one way to read them.

Every write coerces and validates every field, applies defaults and autonumbers, checks lookups,
guards the version (optimistic concurrency), and writes the row and its history together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, Connection, FromClause, Select, Table, select, update
from sqlalchemy.exc import IntegrityError

from metacrm.metadata.model import EntityDef
from metacrm.metadata.storage import violated_unique_field
from metacrm.metadata.values import ValueProblem, coerce, from_storage, to_json, to_storage
from metacrm.platform.clock import as_utc, utcnow
from metacrm.platform.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from metacrm.platform.ids import new_id
from metacrm.platform.systables import record_history, users
from metacrm.platform.users import User
from metacrm.runtime import processes
from metacrm.runtime.autonumber import next_autonumber
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.listing import ListQuery, check_names, list_records
from metacrm.runtime.output import records_json
from metacrm.runtime.permissions import Permissions, Reading
from metacrm.runtime.record_rules import WriteContext, apply_default_expressions, rule_errors
from metacrm.runtime.record_schema import input_validator, writable
from metacrm.runtime.rules import SqlCompiler

MAX_ACTION_DEPTH = 8


@dataclass
class RecordService:
    conn: Connection
    catalog: Catalog
    user: User
    secret: str
    now: datetime = field(default_factory=utcnow)
    # How many process actions deep this write is (a stage action creating a record that
    # enters a stage whose action …); bounded so a cycle in metadata can't recurse forever.
    depth: int = 0

    def elevated(self) -> RecordService:
        """The same caller acting for a process (an approval's or a stage's actions): the
        caller's permissions and the approval lock don't apply; validation, rules, history and
        events do, and history names the caller."""
        if self.depth >= MAX_ACTION_DEPTH:
            raise Unprocessable(
                f"process actions triggered each other more than {MAX_ACTION_DEPTH} levels "
                "deep; check the stage and approval actions for a cycle"
            )
        admin = replace(self.user, is_admin=True)
        return RecordService(self.conn, self.catalog, admin, self.secret, self.now, self.depth + 1)

    # ---- reading -------------------------------------------------------------------------

    def get(
        self,
        entity_name: str,
        record_id: str,
        *,
        fields: Sequence[str] | None = None,
        expand: Sequence[str] = (),
    ) -> dict[str, Any]:
        entity = self.catalog.entity(entity_name)
        if fields:
            check_names(self.permissions.view(entity, probe=False), fields, "fields")
        row, reading = self.read_row(entity, record_id)
        record = self.output(entity, reading, [row], fields)[0]
        if expand:
            self.expand(entity, [record], expand)
        return record

    def list(self, entity_name: str, query: ListQuery) -> dict[str, Any]:
        entity = self.catalog.entity(entity_name)
        return list_records(self, entity, query)

    def history(self, entity_name: str, record_id: str) -> list[dict[str, Any]]:
        entity = self.catalog.entity(entity_name)
        row, reading = self.read_row(entity, record_id, include_deleted=True)
        policy = reading.policy(row)
        rows = self.conn.execute(
            select(record_history)
            .where(record_history.c.entity == entity.name, record_history.c.record_id == record_id)
            .order_by(record_history.c.id.desc())
        )
        return [
            {
                "version": r.version,
                "action": r.action,
                "changed_at": to_json(as_utc(r.changed_at)),
                "changed_by": r.changed_by,
                "changes": policy.changes(
                    entity,
                    {name: {"old": old, "new": new} for name, (old, new) in r.changes.items()},
                ),
            }
            for r in rows
        ]

    def output(
        self,
        entity: EntityDef,
        reading: Reading,
        rows: Sequence[Any],
        fields: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Rows as JSON records, each showing its fields as the caller's permissions allow."""
        records = records_json(entity, rows, fields)
        if reading.unrestricted:
            return records
        if not reading.grant_columns:
            policy = reading.policy()
            return [policy.apply(entity, r) for r in records]
        return [reading.policy(row).apply(entity, r) for row, r in zip(rows, records, strict=True)]

    def expand(
        self, entity: EntityDef, records: list[dict[str, Any]], names: Sequence[str]
    ) -> None:
        """Replace lookup ids with the target records (one query per lookup field)."""
        shown = self.permissions.view(entity, probe=False)
        for name in names:
            f = shown.field(name)
            if f is None or f.type != "lookup":
                raise BadRequest(
                    f"can't expand {name!r}: it is not a lookup field of {entity.name}"
                )
            target = self.catalog.entity(f.target or "")
            table = self.catalog.table(target.name)
            ids = {r[name] for r in records if isinstance(r.get(name), str)}
            found: dict[str, dict[str, Any]] = {}
            if ids and self.permissions.may(target, "read"):
                compiler = self.compiler(target)
                stmt, reading = self.readable(target, compiler)
                rows = self.conn.execute(stmt.where(table.c.id.in_(ids))).all()
                found = {r["id"]: r for r in self.output(target, reading, rows)}
            for record in records:
                value = record.get(name)
                if isinstance(value, str):
                    record[name] = found.get(value, {"id": value})

    def write_context(self) -> WriteContext:
        return WriteContext(self.conn, self.catalog, self.user_values(), self.now)

    def user_values(self) -> dict[str, Any]:
        return {"id": self.user.id, "role": self.user.role, "org_unit": self.user.org_unit}

    @cached_property
    def permissions(self) -> Permissions:
        return Permissions(self.conn, self.catalog, self.user, self._plain_compiler)

    def compiler(self, entity: EntityDef) -> SqlCompiler:
        """Compiles the caller's filters and sorts (and formulas) over the entity's table; a
        looked-up record the caller may not read joins as absent."""
        return self._plain_compiler(entity, guarded=True)

    def _plain_compiler(self, entity: EntityDef, *, guarded: bool = False) -> SqlCompiler:
        return SqlCompiler(
            entity,
            self.catalog.table(entity.name),
            self.catalog.table,
            self.user_values(),
            self.now,
            resolve_entity=self.catalog.find,
            join_guard=self._readable_ids if guarded and not self.user.is_admin else None,
        )

    def _readable_ids(self, target: EntityDef, alias: FromClause) -> ColumnElement[bool] | None:
        """For a joined lookup: the looked-up record is one the caller may read."""
        compiler = self._plain_compiler(target)
        condition = self.permissions.condition(target, "read", compiler)
        if condition is None:
            return None
        table = compiler.table
        readable = compiler.apply(select(table.c.id).where(condition))
        return alias.c.id.in_(readable)

    def select_records(self, entity: EntityDef, compiler: SqlCompiler, *extra: Any) -> Select[Any]:
        """The table's columns plus every formula field, computed by the database."""
        formulas = [
            compiler.column_for((f.name,)).label(f.name)
            for f in entity.fields
            if f.type == "formula"
        ]
        return select(self.catalog.table(entity.name), *formulas, *extra)

    def readable(
        self, entity: EntityDef, compiler: SqlCompiler, *, include_deleted: bool = False
    ) -> tuple[Select[Any], Reading]:
        """The records the caller may read, as a statement ready for more conditions: the
        permission condition is in its WHERE clause, per-role grant flags among its columns.
        Compile the caller's filter with `compiler` first: its joins are fixed here."""
        reading = self.permissions.reading(entity, compiler)
        stmt = self.select_records(entity, compiler, *reading.grant_columns)
        if reading.condition is not None:
            stmt = stmt.where(reading.condition)
        if not include_deleted:
            stmt = stmt.where(self.catalog.table(entity.name).c.deleted_at.is_(None))
        return compiler.apply(stmt), reading

    def read_row(
        self, entity: EntityDef, record_id: str, *, include_deleted: bool = False
    ) -> tuple[Any, Reading]:
        """One record the caller may read; any other is not found, whether it exists or not."""
        table = self.catalog.table(entity.name)
        stmt, reading = self.readable(
            entity, self.compiler(entity), include_deleted=include_deleted
        )
        row = self.conn.execute(stmt.where(table.c.id == record_id)).first()
        if row is None:
            raise NotFound(f"no {entity.name} with id {record_id!r}")
        return row, reading

    def _row(self, entity: EntityDef, record_id: str, *, include_deleted: bool = False) -> Any:
        return self.read_row(entity, record_id, include_deleted=include_deleted)[0]

    def _allows(self, entity: EntityDef, action: str, record_id: str) -> bool:
        """Whether the action's permission condition selects the record as it is now."""
        compiler = self._plain_compiler(entity)
        condition = self.permissions.condition(entity, action, compiler)
        if condition is None:
            return True
        table = compiler.table
        stmt = compiler.apply(select(table.c.id).where(table.c.id == record_id, condition))
        return self.conn.execute(stmt).first() is not None

    def require_on(self, entity: EntityDef, action: str, record_id: str, what: str) -> None:
        if not self._allows(entity, action, record_id):
            raise Forbidden(f"you may not {what} this {entity.name}")

    # ---- writing -------------------------------------------------------------------------

    def create(self, entity_name: str, data: Any) -> dict[str, Any]:
        entity = self.catalog.entity(entity_name)
        self.permissions.require(entity, "create")
        table = self.catalog.table(entity.name)
        record_id = new_id()
        system = {
            "id": record_id,
            "owner": self.user.id,
            "created_at": self.now,
            "created_by": self.user.id,
            "updated_at": self.now,
            "updated_by": self.user.id,
            "version": 1,
        }
        values = self._validated(entity, data, existing=None, base=system, action="create")
        for f in entity.fields:
            if f.type == "autonumber":
                values[f.name] = next_autonumber(self.conn, entity.name, f, self.now)
        system["owner"] = values.pop("owner", None) or self.user.id
        values.update(processes.before_write(self, entity, None, {**system, **values}))
        row = {**system, **{k: to_storage(entity.field_map[k], v) for k, v in values.items()}}
        self._write(entity, lambda: self.conn.execute(table.insert().values(row)))
        # The scope is checked on the record as written (its owner, its values): one SQL
        # condition decides, the same that filters reads.
        self.require_on(entity, "create", record_id, "create")
        changes = {k: [None, to_json(v)] for k, v in values.items() if v is not None}
        changes["owner"] = [None, system["owner"]]
        self.record_history(entity, record_id, 1, "create", changes)
        processes.after_write(
            self, entity, record_id, "create", None, {**system, **values}, changes
        )
        return self._written(entity, record_id, 1)

    def update(
        self, entity_name: str, record_id: str, data: Any, *, if_match: int | None = None
    ) -> dict[str, Any]:
        entity = self.catalog.entity(entity_name)
        table = self.catalog.table(entity.name)
        row = self._row(entity, record_id)
        self.permissions.require(entity, "update")
        self.require_on(entity, "update", record_id, "change")
        self._check_version(entity, row, if_match)
        processes.before_change(self, entity, record_id)
        current = {f.name: from_storage(f, row._mapping[f.name]) for f in entity.stored_columns}
        values = self._validated(entity, data, existing=current, base=current, action="update")
        values.update(processes.before_write(self, entity, current, {**current, **values}))
        changed = {k: v for k, v in values.items() if current.get(k) != v}
        if not changed:
            return self.get(entity.name, record_id)
        transfer = "owner" in changed
        if transfer:
            self.permissions.require(entity, "transfer")
            self.require_on(entity, "transfer", record_id, "transfer")
        version = row.version + 1
        stored = {k: to_storage(entity.field_map[k], v) for k, v in changed.items()}
        stored.update(version=version, updated_at=self.now, updated_by=self.user.id)
        stmt = (
            update(table)
            .where(table.c.id == record_id, table.c.version == row.version)
            .values(stored)
        )
        if self._write(entity, lambda: self.conn.execute(stmt)).rowcount != 1:
            raise PreconditionFailed(f"{entity.name} {record_id} was changed by someone else")
        if not transfer and not self._allows(entity, "update", record_id):
            raise Forbidden(f"the change would take this {entity.name} out of what you may change")
        changes = {k: [to_json(current.get(k)), to_json(v)] for k, v in changed.items()}
        self.record_history(entity, record_id, version, "update", changes)
        after = {**current, **changed}
        after.update(version=version, updated_at=self.now, updated_by=self.user.id)
        processes.after_write(self, entity, record_id, "update", current, after, changes)
        return self._written(entity, record_id, version)

    def _written(self, entity: EntityDef, record_id: str, version: int) -> dict[str, Any]:
        """The record after a write, as the caller may now read it; a writer who may not read
        the result (it went to another owner) learns only its id and version."""
        if not self.permissions.may(entity, "read"):
            return {"id": record_id, "version": version}
        try:
            return self.get(entity.name, record_id)
        except NotFound:
            return {"id": record_id, "version": version}

    def delete(self, entity_name: str, record_id: str, *, if_match: int | None = None) -> None:
        entity = self.catalog.entity(entity_name)
        row = self._row(entity, record_id)
        self.permissions.require(entity, "delete")
        self.require_on(entity, "delete", record_id, "delete")
        self._check_version(entity, row, if_match)
        processes.before_change(self, entity, record_id)
        self._set_deleted(entity, row, self.now, "delete")

    def restore(self, entity_name: str, record_id: str) -> dict[str, Any]:
        entity = self.catalog.entity(entity_name)
        row = self._row(entity, record_id, include_deleted=True)
        self.permissions.require(entity, "delete")
        self.require_on(entity, "delete", record_id, "restore")
        if row.deleted_at is None:
            raise Conflict(f"{entity.name} {record_id} is not deleted")
        processes.before_change(self, entity, record_id)
        self._set_deleted(entity, row, None, "restore")
        return self.get(entity.name, record_id)

    def _set_deleted(self, entity: EntityDef, row: Any, when: datetime | None, action: str) -> None:
        table = self.catalog.table(entity.name)
        version = row.version + 1
        stmt = (
            update(table)
            .where(table.c.id == row.id, table.c.version == row.version)
            .values(deleted_at=when, version=version, updated_at=self.now, updated_by=self.user.id)
        )
        if self._write(entity, lambda: self.conn.execute(stmt)).rowcount != 1:
            raise PreconditionFailed(f"{entity.name} {row.id} was changed by someone else")
        old = to_json(as_utc(row.deleted_at)) if row.deleted_at else None
        changes = {"deleted_at": [old, to_json(when)]}
        self.record_history(entity, row.id, version, action, changes)
        processes.publish_record_event(self, entity, row.id, action, changes)

    def _check_version(self, entity: EntityDef, row: Any, if_match: int | None) -> None:
        if if_match is not None and if_match != row.version:
            raise PreconditionFailed(
                f"{entity.name} {row.id} is at version {row.version}, not {if_match}",
                extra={"current_version": row.version},
            )

    def _write(self, entity: EntityDef, statement: Any) -> Any:
        """Run a write; a unique index that refuses it becomes a 409 naming the field."""
        try:
            return statement()
        except IntegrityError as exc:
            field = violated_unique_field(entity, exc)
            raise Conflict(
                f"another {entity.name} already has this {field.name if field else 'value'}",
                errors=[FieldError(field.name, "unique", "must be unique")] if field else None,
            ) from None

    def record_history(
        self, entity: EntityDef, record_id: str, version: int, action: str, changes: dict[str, Any]
    ) -> None:
        self.conn.execute(
            record_history.insert(),
            {
                "entity": entity.name,
                "record_id": record_id,
                "version": version,
                "action": action,
                "changed_at": self.now,
                "changed_by": self.user.id,
                "changes": changes,
            },
        )

    # ---- validation ----------------------------------------------------------------------

    def _validated(
        self,
        entity: EntityDef,
        data: Any,
        existing: dict[str, Any] | None,
        base: dict[str, Any],
        action: str,
    ) -> dict[str, Any]:
        """Coerced values for every field the client sent (and defaults on create); raises with
        every field error at once."""
        if not isinstance(data, dict):
            raise Unprocessable(
                "the record must be a JSON object", errors=[FieldError("", "type", "not an object")]
            )
        errors, data = self._field_permission_errors(entity, data, action)
        for err in input_validator(entity).iter_errors(data):
            errors.extend(_schema_error(entity, err))
        reported = {e.field for e in errors}
        values: dict[str, Any] = {}
        for name, raw in data.items():
            f = entity.field(name)
            if f is None or name in reported or (f.system and name != "owner"):
                continue
            try:
                values[name] = coerce(f, raw) if name != "owner" else _owner(raw)
            except ValueProblem as problem:
                errors.append(FieldError(name, problem.code, problem.message))
        context = self.write_context()
        if existing is None:
            for f in entity.fields:
                if f.name not in data and f.has_default and writable(f):
                    values[f.name] = coerce(f, f.default)
            errors.extend(apply_default_expressions(context, entity, values, data))
        after = {**base, **values}
        for f in entity.fields:
            if f.required and writable(f) and f.name not in reported and _blank(after.get(f.name)):
                errors.append(FieldError(f.name, "required", "is required"))
        if not errors:
            # Rules see a record whose every value is valid; a rule can't judge garbage.
            errors.extend(rule_errors(context, entity, after, existing, data))
        errors.extend(self._reference_errors(entity, values))
        if errors:
            raise Unprocessable(f"the {entity.name} is not valid", errors=_dedupe(errors))
        return values

    def _field_permission_errors(
        self, entity: EntityDef, data: dict[str, Any], action: str
    ) -> tuple[list[FieldError], dict[str, Any]]:
        """A field the caller can't see is as unknown as a missing one (422); one they see but
        may not write is refused outright (403). Returns the errors and the data left."""
        if self.user.is_admin:
            return [], data
        shown = self.permissions.view(entity, probe=False).field_map
        # A field is known to a writer who sees it or may write it (a create-only role).
        writable = {n for n in data if self.permissions.writable(entity, action, n)}
        unknown = [
            n for n in data if n in entity.field_map and n not in shown and n not in writable
        ]
        frozen = [n for n in data if n in shown and not shown[n].system and n not in writable]
        if frozen:
            raise Forbidden(
                f"you may not change {', '.join(frozen)} of this {entity.name}",
                errors=[
                    FieldError(n, "forbidden", "you may not change this field") for n in frozen
                ],
            )
        errors = [
            FieldError(n, "unknown_field", f"{entity.name} has no field {n!r}") for n in unknown
        ]
        return errors, {k: v for k, v in data.items() if k not in unknown}

    def _reference_errors(self, entity: EntityDef, values: dict[str, Any]) -> list[FieldError]:
        errors = []
        for name, value in values.items():
            if value is None:
                continue
            f = entity.field_map[name]
            if f.type == "lookup":
                table: Table = self.catalog.table(f.target or "")
                exists = select(table.c.id).where(table.c.id == value, table.c.deleted_at.is_(None))
                if self.conn.execute(exists).first() is None:
                    errors.append(FieldError(name, "not_found", f"no {f.target} with id {value!r}"))
            elif f.type == "user" or name == "owner":
                found = select(users.c.id).where(users.c.id == value, users.c.is_active.is_(True))
                if self.conn.execute(found).first() is None:
                    errors.append(
                        FieldError(name, "not_found", f"no active user with id {value!r}")
                    )
        return errors


def _owner(raw: Any) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > 26 or "\x00" in raw:
        raise ValueProblem("type", "must be a user id")
    return raw


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def _schema_error(entity: EntityDef, err: Any) -> list[FieldError]:
    if err.validator == "additionalProperties":
        known = set(entity.field_map)
        extra = [k for k in err.instance if k not in known]
        return [FieldError(k, "unknown_field", f"{entity.name} has no field {k!r}") for k in extra]
    name = str(err.path[0]) if err.path else ""
    f = entity.field(name)
    if err.validator == "not":
        return [FieldError(name, "read_only", "is read-only")]
    if f is not None and err.validator in ("type", "enum", "maxLength", "pattern", "format"):
        # The coercer's message says it better (and names the choices); let it speak.
        try:
            coerce(f, err.instance if len(err.path) == 1 else None)
        except ValueProblem as problem:
            return [FieldError(name, problem.code, problem.message)]
    return [FieldError(name, str(err.validator), err.message)]


def _dedupe(errors: list[FieldError]) -> list[FieldError]:
    seen: set[tuple[str, str]] = set()
    out = []
    for e in errors:
        if (e.field, e.code) not in seen:
            seen.add((e.field, e.code))
            out.append(e)
    return out
