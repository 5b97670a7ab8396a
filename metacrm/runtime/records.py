"""The record service: the only code that writes records, and the one way to read them.

Every write coerces and validates every field, applies defaults and autonumbers, checks lookups,
guards the version (optimistic concurrency), runs the write hooks registered at start-up
(approval lock, stage pipelines, auto-submitted approvals), and writes the row, its history and
its event together, in the context's transaction. Reads AND the caller's permission condition
into the query and mask what the caller may not see.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from metacrm.metadata.model import EntityDef
from metacrm.metadata.storage import violated_unique_field
from metacrm.metadata.values import ValueProblem, coerce, from_storage, to_json, to_storage
from metacrm.platform.clock import as_utc
from metacrm.platform.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    MetacrmError,
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
    Unprocessable,
)
from metacrm.platform.ids import is_valid_id, new_id
from metacrm.platform.preconditions import IfMatch
from metacrm.platform.systables import record_history, users
from metacrm.platform.users import User
from metacrm.runtime import listing
from metacrm.runtime.autonumber import next_autonumber
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.context import Draft, RequestContext
from metacrm.runtime.events import publish
from metacrm.runtime.listing import ListQuery, check_names
from metacrm.runtime.output import records_json
from metacrm.runtime.permissions import Permissions, Principal, Reading
from metacrm.runtime.record_rules import WriteContext, apply_default_expressions, rule_errors
from metacrm.runtime.record_schema import input_validator, writable
from metacrm.runtime.rules import Scope, SqlCompiler, check, parse
from metacrm.runtime.rules.operators import BOOLEAN
from metacrm.runtime.validators import validator_errors

# Ids per `IN (…)` list: well under every database's bound-parameter limit.
ID_CHUNK = 500


@dataclass(frozen=True)
class Change:
    """One record's update, validated and ready to write."""

    record_id: str
    version: int
    current: dict[str, Any]
    changed: dict[str, Any]


@dataclass
class BulkOutcome:
    """What a bulk write did: the ids written, and per refused id its errors."""

    written: list[str] = field(default_factory=list)
    refused: dict[str, list[FieldError]] = field(default_factory=dict)


class RecordService:
    def __init__(self, ctx: RequestContext, *, principal: Principal | None = None) -> None:
        self.ctx = ctx
        self._principal = principal

    def at(self, moment: datetime) -> RecordService:
        """The same caller in the same transaction at another moment (past work replayed step
        by step): where the caller stands in the org is resolved once for all the moments."""
        return RecordService(replace(self.ctx, now=moment), principal=self.permissions.principal)

    def elevated(self) -> RecordService:
        """The same caller acting for a process (see RequestContext.elevated)."""
        return RecordService(self.ctx.elevated())

    def for_user(self, user: User) -> RecordService:
        """Another user in the same transaction: what they may read and do (a notification
        names a record to its reader only if they may read it)."""
        return RecordService(replace(self.ctx, user=user))

    def with_catalog(self, catalog: Catalog) -> RecordService:
        """The same caller over another metadata snapshot: one a metadata change made in this
        transaction, before it commits."""
        return RecordService(replace(self.ctx, catalog=catalog))

    # ---- reading -------------------------------------------------------------------------

    def get(
        self,
        entity_name: str,
        record_id: str,
        *,
        fields: Sequence[str] | None = None,
        expand: Sequence[str] = (),
    ) -> dict[str, Any]:
        entity = self.ctx.catalog.entity(entity_name)
        if fields:
            check_names(self.permissions.view(entity, probe=False), fields, "fields")
        row, reading = self.read_row(entity, record_id)
        record = self.output(entity, reading, [row], fields)[0]
        if expand:
            self.expand(entity, [record], expand)
        return record

    def list(self, entity_name: str, query: ListQuery) -> dict[str, Any]:
        """A page of the records the caller may read: filtered, searched, sorted with an `id`
        tie-break, cut by a keyset cursor (listing.py has the pieces)."""
        ctx = self.ctx
        entity = ctx.catalog.entity(entity_name)
        table = ctx.catalog.table(entity.name)
        # Names are checked against the entity as the caller may see it: a field withheld from
        # them is unknown, exactly like a field that doesn't exist.
        probe = self.permissions.view(entity, probe=True)
        keys = listing.sort_keys(probe, query.sort)
        if query.fields:
            check_names(self.permissions.view(entity, probe=False), query.fields, "fields")
        compiler = self.compiler(entity)
        if query.filter:
            scope = Scope(probe, self.permissions.find_view)
            compiler.compile(check(parse(query.filter), scope, BOOLEAN))
        columns = {k.field: compiler.column_for((k.field,)) for k in keys}
        stmt, reading = self.readable(entity, compiler)
        if query.q:
            stmt = stmt.where(listing.search(probe, table, query.q))
        total = None
        if query.count:
            total = ctx.conn.execute(listing.counting(stmt)).scalar_one()
        if query.cursor:
            values = listing.cursor_values(ctx.host.secret, query.cursor, entity, keys)
            stmt = stmt.where(listing.after(columns, keys, values))
        postgres = ctx.conn.dialect.name == "postgresql"
        stmt = stmt.order_by(*listing.ordering(columns, keys, postgres))
        rows = ctx.conn.execute(stmt.limit(query.limit + 1)).all()
        page = rows[: query.limit]
        data = self.output(entity, reading, page, query.fields)
        if query.expand:
            self.expand(entity, data, query.expand)
        next_cursor = None
        if len(rows) > query.limit and page:
            next_cursor = listing.next_cursor(ctx.host.secret, entity, keys, page[-1])
        result: dict[str, Any] = {"data": data, "next_cursor": next_cursor}
        if total is not None:
            result["count"] = total
        return result

    def history(self, entity_name: str, record_id: str) -> builtins.list[dict[str, Any]]:
        entity = self.ctx.catalog.entity(entity_name)
        row, reading = self.read_row(entity, record_id, include_deleted=True)
        policy = reading.policy(row)
        rows = self.ctx.conn.execute(
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
    ) -> builtins.list[dict[str, Any]]:
        """Rows as JSON records, each showing its fields as the caller's permissions allow."""
        # The rows hold every column, `owner` and the grant flags included, whatever `fields`
        # keeps: each row's policy is decided on them.
        records = records_json(self.ctx.catalog, entity, rows, fields)
        if reading.unrestricted:
            return records
        if not reading.per_row:
            policy = reading.policy()
            return [policy.apply(entity, r) for r in records]
        return [reading.policy(row).apply(entity, r) for row, r in zip(rows, records, strict=True)]

    def expand(
        self, entity: EntityDef, records: builtins.list[dict[str, Any]], names: Sequence[str]
    ) -> None:
        """Replace lookup ids with the target records (one query per lookup field)."""
        shown = self.permissions.view(entity, probe=False)
        for name in names:
            f = shown.field(name)
            if f is None or f.type != "lookup":
                raise BadRequest(
                    f"can't expand {name!r}: it is not a lookup field of {entity.name}"
                )
            target = self.ctx.catalog.entity(f.target or "")
            table = self.ctx.catalog.table(target.name)
            ids = {r[name] for r in records if isinstance(r.get(name), str)}
            found: dict[str, dict[str, Any]] = {}
            if ids and self.permissions.may(target, "read"):
                compiler = self.compiler(target)
                stmt, reading = self.readable(target, compiler)
                rows = self.ctx.conn.execute(stmt.where(table.c.id.in_(ids))).all()
                found = {r["id"]: r for r in self.output(target, reading, rows)}
            for record in records:
                value = record.get(name)
                if isinstance(value, str):
                    record[name] = found.get(value, {"id": value})

    def write_context(self) -> WriteContext:
        return self.ctx.rules()

    @cached_property
    def permissions(self) -> Permissions:
        ctx = self.ctx
        return Permissions(ctx.conn, ctx.catalog, ctx.user, self._plain_compiler, self._principal)

    def compiler(self, entity: EntityDef) -> SqlCompiler:
        """Compiles the caller's filters and sorts (and formulas) over the entity's table; a
        looked-up record the caller may not read joins as absent."""
        return self._plain_compiler(entity, guarded=True)

    def _plain_compiler(self, entity: EntityDef, *, guarded: bool = False) -> SqlCompiler:
        ctx = self.ctx
        return SqlCompiler(
            entity,
            ctx.catalog.table(entity.name),
            ctx.catalog.table,
            ctx.user_values(),
            ctx.now,
            resolve_entity=ctx.catalog.find,
            join_guard=self._readable_ids if guarded and not ctx.user.is_admin else None,
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
        return select(self.ctx.catalog.table(entity.name), *formulas, *extra)

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
            stmt = stmt.where(self.ctx.catalog.table(entity.name).c.deleted_at.is_(None))
        return compiler.apply(stmt), reading

    def read_row(
        self, entity: EntityDef, record_id: str, *, include_deleted: bool = False
    ) -> tuple[Any, Reading]:
        """One record the caller may read; any other is not found, whether it exists or not."""
        table = self.ctx.catalog.table(entity.name)
        stmt, reading = self.readable(
            entity, self.compiler(entity), include_deleted=include_deleted
        )
        row = self.ctx.conn.execute(stmt.where(table.c.id == record_id)).first()
        if row is None:
            raise NotFound(f"no {entity.name} with id {record_id!r}")
        return row, reading

    def _row(self, entity: EntityDef, record_id: str, *, include_deleted: bool = False) -> Any:
        return self.read_row(entity, record_id, include_deleted=include_deleted)[0]

    def _allowed(self, entity: EntityDef, action: str, ids: Iterable[str]) -> set[str]:
        """Which of the records the action's permission condition selects as they are now."""
        wanted = list(dict.fromkeys(ids))
        compiler = self._plain_compiler(entity)
        condition = self.permissions.condition(entity, action, compiler)
        if condition is None:
            return set(wanted)
        table = compiler.table
        allowed: set[str] = set()
        for start in range(0, len(wanted), ID_CHUNK):
            chunk = wanted[start : start + ID_CHUNK]
            stmt = compiler.apply(select(table.c.id).where(table.c.id.in_(chunk), condition))
            allowed.update(self.ctx.conn.execute(stmt).scalars())
        return allowed

    def require_on(self, entity: EntityDef, action: str, record_id: str, what: str) -> None:
        if record_id not in self._allowed(entity, action, [record_id]):
            raise Forbidden(f"you may not {what} this {entity.name}")

    # ---- writing -------------------------------------------------------------------------

    def create(self, entity_name: str, data: Any, *, read_back: bool = True) -> dict[str, Any]:
        """The new record as the caller may read it; without `read_back`, only its id and
        version (a writer that doesn't look at the result saves a read)."""
        ctx = self.ctx
        entity = ctx.catalog.entity(entity_name)
        self.permissions.require(entity, "create")
        table = ctx.catalog.table(entity.name)
        record_id = new_id()
        system = {
            "id": record_id,
            "owner": ctx.user.id,
            "created_at": ctx.now,
            "created_by": ctx.user.id,
            "updated_at": ctx.now,
            "updated_by": ctx.user.id,
            "version": 1,
        }
        values = self._validated(entity, data, existing=None, base=system, action="create")
        for f in entity.fields:
            if f.type == "autonumber":
                values[f.name] = next_autonumber(ctx.conn, entity.name, f, ctx.now)
        system["owner"] = values.pop("owner", None) or ctx.user.id
        sent = frozenset(data)
        for hook in self._hooks:
            values.update(hook.before_write(self, entity, None, Draft({**system, **values}, sent)))
        assigned = values.pop("owner", None)
        row = {**system, **{k: to_storage(entity.field_map[k], v) for k, v in values.items()}}
        self._write(entity, lambda: ctx.conn.execute(table.insert().values(row)))
        # The scope is checked on the record as written (its owner, its values): one SQL
        # condition decides, the same that filters reads.
        self.require_on(entity, "create", record_id, "create")
        if assigned is not None and assigned != system["owner"]:
            # A hook gave the record to someone (an assignment rule): the caller's scope was
            # checked on the record as they made it; the assignment acts for the process.
            give = update(table).where(table.c.id == record_id).values(owner=assigned)
            ctx.conn.execute(give)
            system["owner"] = assigned
        changes = {k: [None, to_json(v)] for k, v in values.items() if v is not None}
        changes["owner"] = [None, system["owner"]]
        self.record_history(entity, record_id, 1, "create", changes)
        self.publish_record_event(entity, record_id, "create", changes)
        after = {**system, **values}
        for hook in self._hooks:
            hook.after_write(self, entity, record_id, "create", None, after)
        if not read_back:
            return {"id": record_id, "version": 1}
        return self._written(entity, record_id, 1)

    def update(
        self,
        entity_name: str,
        record_id: str,
        data: Any,
        *,
        if_match: IfMatch | int | None = None,
        read_back: bool = True,
    ) -> dict[str, Any]:
        """The record after the change as the caller may read it; without `read_back`, only
        its id and version."""
        entity = self.ctx.catalog.entity(entity_name)
        row = self._row(entity, record_id)
        self.permissions.require(entity, "update")
        self.require_on(entity, "update", record_id, "change")
        self._check_version(entity, row, if_match)
        change = self._change(entity, row, data)
        version = change.version + 1 if change.changed else change.version
        if change.changed:
            self._apply(entity, [change])
        if not read_back:
            return {"id": record_id, "version": version}
        if not change.changed:
            return self.get(entity.name, record_id)
        return self._written(entity, record_id, version)

    def update_many(
        self,
        entity_name: str,
        changes: Mapping[str, Any],
        *,
        all_or_none: bool = True,
        include_deleted: bool = False,
    ) -> BulkOutcome:
        """Update many records at once: `changes` maps each record id to its data, checked
        exactly as `update` checks one (permissions, the approval lock, validation and rules,
        stage gates). Records that take the same change are written by one statement; history,
        events and the after-write hooks follow for each record.

        With `all_or_none`, one refused record refuses them all (422 listing each record's
        errors as `<id>/<field>`) and nothing is written; otherwise the others are written and
        the outcome lists the refused ones. `include_deleted` reaches records in the recycle bin
        too (an admin's migration of every stored value)."""
        entity = self.ctx.catalog.entity(entity_name)
        self.permissions.require(entity, "update")
        outcome = BulkOutcome()
        rows = self._rows_for_update(entity, list(changes), include_deleted)
        allowed = self._allowed(entity, "update", rows)
        prepared: builtins.list[Change] = []
        for record_id, data in changes.items():
            row = rows.get(record_id)
            if row is None:
                error = FieldError("", "not_found", f"no {entity.name} with id {record_id!r}")
                outcome.refused[record_id] = [error]
                continue
            if record_id not in allowed:
                message = f"you may not change this {entity.name}"
                outcome.refused[record_id] = [FieldError("", "forbidden", message)]
                continue
            try:
                change = self._change(entity, row, data)
            except ServiceUnavailable:
                raise  # the server's lack, not this record's fault: refuse the whole request
            except MetacrmError as error:
                outcome.refused[record_id] = error.errors or [
                    FieldError("", error.title.lower().replace(" ", "_"), error.detail)
                ]
                continue
            if change.changed:
                prepared.append(change)
            outcome.written.append(record_id)
        if outcome.refused and all_or_none:
            raise Unprocessable(
                f"{len(outcome.refused)} {entity.name} record(s) can't take the change",
                errors=[
                    FieldError(f"{record_id}/{e.field}".rstrip("/"), e.code, e.message)
                    for record_id, errors in outcome.refused.items()
                    for e in errors
                ],
            )
        if prepared:
            self._apply(entity, prepared)
        return outcome

    def _rows_for_update(
        self, entity: EntityDef, ids: Sequence[str], include_deleted: bool
    ) -> dict[str, Any]:
        """The records among `ids` the caller may read, locked until the transaction ends."""
        table = self.ctx.catalog.table(entity.name)
        stmt, _ = self.readable(entity, self.compiler(entity), include_deleted=include_deleted)
        found: dict[str, Any] = {}
        wanted = [i for i in dict.fromkeys(ids) if is_valid_id(i)]
        for start in range(0, len(wanted), ID_CHUNK):
            chunk = wanted[start : start + ID_CHUNK]
            locked = stmt.where(table.c.id.in_(chunk)).with_for_update(of=table)
            found.update((row.id, row) for row in self.ctx.conn.execute(locked))
        return found

    def _change(self, entity: EntityDef, row: Any, data: Any) -> Change:
        """Validate an update of one stored record (raising with every error at once)."""
        for hook in self._hooks:
            hook.before_change(self, entity, row.id)
        current = {f.name: from_storage(f, row._mapping[f.name]) for f in entity.stored_columns}
        values = self._validated(entity, data, existing=current, base=current, action="update")
        for hook in self._hooks:
            values.update(hook.before_write(self, entity, current, {**current, **values}))
        changed = {k: v for k, v in values.items() if current.get(k) != v}
        return Change(row.id, row.version, current, changed)

    def _apply(self, entity: EntityDef, changes: Sequence[Change]) -> None:
        """Write validated updates: records taking the same values share one statement."""
        ctx = self.ctx
        table = ctx.catalog.table(entity.name)
        transfers = [c.record_id for c in changes if "owner" in c.changed]
        if transfers:
            self.permissions.require(entity, "transfer")
            if set(transfers) - self._allowed(entity, "transfer", transfers):
                raise Forbidden(f"you may not transfer this {entity.name}")
        stamp = {"updated_at": ctx.now, "updated_by": ctx.user.id}
        if len(changes) == 1:
            # One record: the version in the WHERE clause guards against a concurrent change.
            change = changes[0]
            stored = self._stored(entity, change.changed)
            stmt = (
                update(table)
                .where(table.c.id == change.record_id, table.c.version == change.version)
                .values({**stored, "version": change.version + 1, **stamp})
            )
            if self._write(entity, lambda: ctx.conn.execute(stmt)).rowcount != 1:
                name = f"{entity.name} {change.record_id}"
                raise PreconditionFailed(f"{name} was changed by someone else")
        else:
            # Many: their rows are locked (_rows_for_update), so the versions read still hold.
            for group in _same_changes(entity, changes).values():
                ids = [c.record_id for c in group]
                stored = self._stored(entity, group[0].changed)
                stmt = (
                    update(table)
                    .where(table.c.id.in_(ids))
                    .values({**stored, "version": table.c.version + 1, **stamp})
                )
                if self._write(entity, lambda stmt=stmt: ctx.conn.execute(stmt)).rowcount != len(
                    ids
                ):
                    raise PreconditionFailed(f"some {entity.name} records changed meanwhile")
        kept = [c.record_id for c in changes if "owner" not in c.changed]
        if kept and set(kept) - self._allowed(entity, "update", kept):
            raise Forbidden(f"the change would take this {entity.name} out of what you may change")
        history = []
        for change in changes:
            history.append(
                (
                    change.record_id,
                    change.version + 1,
                    {
                        k: [to_json(change.current.get(k)), to_json(v)]
                        for k, v in change.changed.items()
                    },
                )
            )
        self._record_histories(entity, "update", history)
        for change, (_, version, diff) in zip(changes, history, strict=True):
            self.publish_record_event(entity, change.record_id, "update", diff)
            after = {**change.current, **change.changed, "version": version, **stamp}
            for hook in self._hooks:
                hook.after_write(self, entity, change.record_id, "update", change.current, after)

    @staticmethod
    def _stored(entity: EntityDef, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: to_storage(entity.field_map[k], v) for k, v in values.items()}

    def _written(self, entity: EntityDef, record_id: str, version: int) -> dict[str, Any]:
        """The record after a write, as the caller may now read it; a writer who may not read
        the result (it went to another owner) learns only its id and version."""
        if not self.permissions.may(entity, "read"):
            return {"id": record_id, "version": version}
        try:
            return self.get(entity.name, record_id)
        except NotFound:
            return {"id": record_id, "version": version}

    def delete(
        self, entity_name: str, record_id: str, *, if_match: IfMatch | int | None = None
    ) -> None:
        entity = self.ctx.catalog.entity(entity_name)
        row = self._row(entity, record_id)
        self.permissions.require(entity, "delete")
        self.require_on(entity, "delete", record_id, "delete")
        self._check_version(entity, row, if_match)
        for hook in self._hooks:
            hook.before_change(self, entity, record_id)
        self._set_deleted(entity, row, self.ctx.now, "delete")

    def restore(self, entity_name: str, record_id: str) -> dict[str, Any]:
        entity = self.ctx.catalog.entity(entity_name)
        row = self._row(entity, record_id, include_deleted=True)
        self.permissions.require(entity, "delete")
        self.require_on(entity, "delete", record_id, "restore")
        if row.deleted_at is None:
            raise Conflict(f"{entity.name} {record_id} is not deleted")
        for hook in self._hooks:
            hook.before_change(self, entity, record_id)
        self._set_deleted(entity, row, None, "restore")
        return self.get(entity.name, record_id)

    def _set_deleted(self, entity: EntityDef, row: Any, when: datetime | None, action: str) -> None:
        ctx = self.ctx
        table = ctx.catalog.table(entity.name)
        version = row.version + 1
        stmt = (
            update(table)
            .where(table.c.id == row.id, table.c.version == row.version)
            .values(deleted_at=when, version=version, updated_at=ctx.now, updated_by=ctx.user.id)
        )
        if self._write(entity, lambda: ctx.conn.execute(stmt)).rowcount != 1:
            raise PreconditionFailed(f"{entity.name} {row.id} was changed by someone else")
        old = to_json(as_utc(row.deleted_at)) if row.deleted_at else None
        changes = {"deleted_at": [old, to_json(when)]}
        self.record_history(entity, row.id, version, action, changes)
        self.publish_record_event(entity, row.id, action, changes)

    def _check_version(self, entity: EntityDef, row: Any, if_match: IfMatch | int | None) -> None:
        """An If-Match condition holds for the record as it is (a weak tag never does)."""
        if if_match is None:
            return
        condition = IfMatch.version(if_match) if isinstance(if_match, int) else if_match
        if not condition.matches(row.version):
            raise condition.refusal(f"{entity.name} {row.id}", row.version)

    @property
    def _hooks(self) -> Sequence[Any]:
        return self.ctx.host.registry.write_hooks

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
        self._record_histories(entity, action, [(record_id, version, changes)])

    def _record_histories(
        self, entity: EntityDef, action: str, entries: Sequence[tuple[str, int, dict[str, Any]]]
    ) -> None:
        """History rows (record id, version, changes) for one action, in one statement."""
        ctx = self.ctx
        ctx.conn.execute(
            record_history.insert(),
            [
                {
                    "entity": entity.name,
                    "record_id": record_id,
                    "version": version,
                    "action": action,
                    "changed_at": ctx.now,
                    "changed_by": ctx.user.id,
                    "changes": changes,
                }
                for record_id, version, changes in entries
            ],
        )

    def publish_record_event(
        self, entity: EntityDef, record_id: str, action: str, changes: dict[str, Any]
    ) -> None:
        """`record.created`, `record.updated`, `record.deleted` or `record.restored`, carrying
        the record as stored now and what changed (old → new). The record is read back: the
        database has the last word on its values (a decimal's scale, say)."""
        ctx = self.ctx
        table = ctx.catalog.table(entity.name)
        # Built once per table and snapshot: every write runs it.
        by_id = ctx.catalog.memo(
            ("select_by_id", entity.name),
            lambda: table.select().where(table.c.id == bindparam("record_id")),
        )
        row = ctx.conn.execute(by_id, {"record_id": record_id}).one()
        record = records_json(ctx.catalog, entity, [row])[0]
        publish(
            ctx,
            f"record.{action}d" if action.endswith("e") else f"record.{action}ed",
            entity=entity.name,
            record_id=record_id,
            payload={"entity": entity.name, "id": record_id, "record": record, "changes": changes},
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
        # Whose the record is (or will be, on create) decides what a rule sparing the owner
        # lets the caller write; an update is judged on the record as it is.
        owner = base.get("owner") if existing is not None else data.get("owner") or base["owner"]
        errors, data = self._field_permission_errors(
            entity, data, action, owned=owner == self.ctx.user.id
        )
        validator = self.ctx.catalog.memo(
            ("input_validator", entity.name), lambda: input_validator(entity)
        )
        for err in validator.iter_errors(data):
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
        context = self.ctx.rules()
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
            errors.extend(validator_errors(self, entity, after, existing))
        errors.extend(self._reference_errors(entity, values))
        if errors:
            raise Unprocessable(f"the {entity.name} is not valid", errors=_dedupe(errors))
        return values

    def _field_permission_errors(
        self, entity: EntityDef, data: dict[str, Any], action: str, *, owned: bool
    ) -> tuple[builtins.list[FieldError], dict[str, Any]]:
        """A field the caller can't see is as unknown as a missing one (422); one they see but
        may not write is refused outright (403). Returns the errors and the data left. On a
        record the caller owns (`owned`), a rule sparing the owner doesn't freeze its field."""
        if self.ctx.user.is_admin:
            return [], data
        shown = self.permissions.view(entity, probe=False).field_map
        # A field is known to a writer who sees it or may write it (a create-only role).
        writable = {n for n in data if self.permissions.writable(entity, action, n, owned=owned)}
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

    def _reference_errors(
        self, entity: EntityDef, values: dict[str, Any]
    ) -> builtins.list[FieldError]:
        errors = []
        for name, value in values.items():
            if value is None:
                continue
            f = entity.field_map[name]
            if f.type == "lookup":
                table: Table = self.ctx.catalog.table(f.target or "")
                exists = select(table.c.id).where(table.c.id == value, table.c.deleted_at.is_(None))
                if self.ctx.conn.execute(exists).first() is None:
                    errors.append(FieldError(name, "not_found", f"no {f.target} with id {value!r}"))
            elif f.type == "user" or name == "owner":
                found = select(users.c.id).where(users.c.id == value, users.c.is_active.is_(True))
                if self.ctx.conn.execute(found).first() is None:
                    errors.append(
                        FieldError(name, "not_found", f"no active user with id {value!r}")
                    )
        return errors


def _owner(raw: Any) -> str:
    if not is_valid_id(raw):
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


def _same_changes(
    entity: EntityDef, changes: Sequence[Change]
) -> dict[tuple[Any, ...], list[Change]]:
    """Updates grouped by the values they store, so each group is one statement."""
    groups: dict[tuple[Any, ...], list[Change]] = {}
    for change in changes:
        stored = RecordService._stored(entity, change.changed)
        key = tuple(sorted((k, repr(v)) for k, v in stored.items()))
        groups.setdefault(key, []).append(change)
    return groups
