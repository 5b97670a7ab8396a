"""The migration runner: checks a plan against existing data, then applies it with Alembic's
operations inside the caller's transaction (SQLite and PostgreSQL both roll DDL back)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from metacrm.metadata.conversions import convert
from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.planner import Operation, Plan
from metacrm.metadata.storage import (
    SYSTEM_INDEXES,
    build_table,
    column_type,
    index_name,
    primary_key_name,
    system_index_name,
    table_name,
    unique_index_name,
    wants_index,
    wants_unique,
)
from metacrm.metadata.values import ValueProblem, coerce, from_storage, to_storage
from metacrm.platform.errors import Conflict, FieldError, Unprocessable

SAMPLE_IDS = 5
BATCH = 1000


@dataclass(frozen=True)
class _Before:
    """The table as it is before the plan runs, seen through the plan's renames and type
    changes, so each check reads the column where the data is now."""

    table: Table
    plan: Plan

    def column(self, name: str) -> Any:
        renamed_from = {
            op.field.name: op.old_field.name
            for op in self.plan.operations
            if op.kind == "rename_column" and op.field and op.old_field
        }
        source = renamed_from.get(name, name)
        return self.table.c.get(source)

    def type_change(self, name: str) -> Operation | None:
        return next(
            (
                op
                for op in self.plan.operations
                if op.kind == "change_type" and op.field and op.field.name == name
            ),
            None,
        )


def check_plan(conn: Connection, old: EntityDef | None, plan: Plan) -> list[FieldError]:
    """What existing rows stand in the way of the plan, with counts and sample ids."""
    if old is None:
        return []
    before = _Before(build_table(old, MetaData()), plan)
    positions = {f.name: i for i, f in enumerate(plan.entity.fields)}
    errors = []
    for op in plan.operations:
        for check in op.checks:
            problem = _CHECKS[check](conn, before, op)
            if problem:
                where = f"/fields/{positions.get(op.field.name, 0)}" if op.field else ""
                errors.append(FieldError(where, check, problem))
    return errors


def _converted_values(
    conn: Connection, before: _Before, old: FieldDef, new: FieldDef
) -> tuple[dict[str, Any], list[str], str]:
    """Each row's value as `new` would store it; the ids that can't convert, and why."""
    column = before.column(new.name)
    table = before.table
    converted: dict[str, Any] = {}
    failures: list[str] = []
    first_reason = ""
    if column is None:
        return converted, failures, first_reason
    verdicts: dict[Any, tuple[Any, str | None]] = {}
    rows = conn.execute(select(table.c.id, column).where(column.is_not(None)).order_by(table.c.id))
    for record_id, stored in rows:
        key = stored if not isinstance(stored, list) else tuple(stored)
        if key not in verdicts:
            try:
                verdicts[key] = (convert(old, new, from_storage(old, stored)), None)
            except ValueProblem as problem:
                verdicts[key] = (None, f"{stored!r} {problem.message}")
        value, reason = verdicts[key]
        if reason is None:
            converted[record_id] = value
        else:
            first_reason = first_reason or reason
            failures.append(record_id)
    return converted, failures, first_reason


def _check_values(conn: Connection, before: _Before, op: Operation) -> str | None:
    old, new = op.old_field, op.field
    assert old is not None and new is not None
    _, failures, first_reason = _converted_values(conn, before, old, new)
    if not failures:
        return None
    return (
        f"{len(failures)} record(s) have a value of {old.name} that {new.type} can't take "
        f"(e.g. {first_reason}); ids: {', '.join(failures[:SAMPLE_IDS])}"
    )


def _check_required(conn: Connection, before: _Before, op: Operation) -> str | None:
    assert op.field is not None
    column = before.column(op.field.name)
    if column is None:
        return None
    source = op.old_field or op.field
    blank = column.is_(None)
    if source.value_kind in ("text", "list"):
        blank = blank | (column == "") | (column == "[]")
    table = before.table
    ids = conn.execute(select(table.c.id).where(blank).order_by(table.c.id)).scalars().all()
    if not ids:
        return None
    return (
        f"{len(ids)} record(s) have no value for {op.field.name}, which would become required; "
        f"ids: {', '.join(ids[:SAMPLE_IDS])}"
    )


def _check_rows_need_default(conn: Connection, before: _Before, op: Operation) -> str | None:
    assert op.field is not None
    table = before.table
    ids = conn.execute(select(table.c.id).order_by(table.c.id).limit(SAMPLE_IDS)).scalars().all()
    if not ids:
        return None
    total = conn.execute(select(func.count()).select_from(table)).scalar_one()
    return (
        f"{total} existing record(s) would have no value for the required field "
        f"{op.field.name}; give it a default; ids: {', '.join(ids)}"
    )


def _check_unique(conn: Connection, before: _Before, op: Operation) -> str | None:
    assert op.field is not None
    name = op.field.name
    column = before.column(name)
    if column is None:
        return None  # a new column is empty
    table = before.table
    live = table.c.deleted_at.is_(None) & column.is_not(None)
    change = before.type_change(name)
    if change is not None and change.old_field is not None:
        # Values that differ now may collide once converted ("1" and "01" both become 1).
        converted, _, _ = _converted_values(conn, before, change.old_field, op.field)
        alive = set(conn.execute(select(table.c.id).where(live)).scalars())
        holders: dict[Any, list[str]] = {}
        for record_id, value in converted.items():
            if record_id in alive:
                holders.setdefault(value, []).append(record_id)
        ids = sorted(i for group in holders.values() if len(group) > 1 for i in group)
    else:
        dupes = select(column).where(live).group_by(column).having(func.count() > 1).subquery()
        ids = list(
            conn.execute(
                select(table.c.id).where(live, column.in_(select(dupes.c[0]))).order_by(table.c.id)
            ).scalars()
        )
    if not ids:
        return None
    return (
        f"{len(ids)} record(s) share a value of {name} with another record, so it can't be "
        f"unique; ids: {', '.join(ids[:SAMPLE_IDS])}"
    )


_CHECKS: dict[str, Callable[[Connection, _Before, Operation], str | None]] = {
    "values": _check_values,
    "required": _check_required,
    "rows_need_default": _check_rows_need_default,
    "unique": _check_unique,
}


def apply_plan(conn: Connection, old: EntityDef | None, plan: Plan) -> None:
    """Check, then apply. Raises Unprocessable (and changes nothing) when data stands in the way."""
    if plan.errors:
        raise Unprocessable("the change can't be made", errors=plan.errors)
    problems = check_plan(conn, old, plan)
    if problems:
        raise Unprocessable("existing records can't take this change", errors=problems)
    ops = Operations(MigrationContext.configure(conn))
    runner = _Runner(conn, ops, plan.entity)
    for op in plan.operations:
        runner.run(op)


class _Runner:
    def __init__(self, conn: Connection, ops: Operations, entity: EntityDef) -> None:
        self.conn, self.ops, self.entity = conn, ops, entity
        self.table = table_name(entity.name)

    def run(self, op: Operation) -> None:
        getattr(self, f"_{op.kind}")(op)

    def _create_table(self, _op: Operation) -> None:
        table = build_table(self.entity, MetaData())
        columns = [Column(c.name, c.type, nullable=c.nullable) for c in table.columns]
        key = PrimaryKeyConstraint("id", name=primary_key_name(self.entity))
        self.ops.create_table(self.table, *columns, key)
        # Field indexes come as operations of their own; these are the ones every table has.
        for name, columns in SYSTEM_INDEXES.items():
            self.ops.create_index(system_index_name(self.entity, name), self.table, list(columns))

    def _add_column(self, op: Operation) -> None:
        assert op.field is not None
        self.ops.add_column(self.table, Column(op.field.name, column_type(op.field)))

    def _backfill(self, op: Operation) -> None:
        field = op.field
        assert field is not None
        value = to_storage(field, coerce(field, field.default))
        table = self._live_table()
        self.conn.execute(
            update(table).where(table.c[field.name].is_(None)).values({field.name: value})
        )

    def _hide_field(self, _op: Operation) -> None:
        """Metadata only: the column and its data stay until a purge."""

    _unhide_field = _hide_field
    _hide_entity = _hide_field
    _check_values = _hide_field
    _check_required = _hide_field

    def _drop_table(self, _op: Operation) -> None:
        """Its indexes go with it. Inside the caller's transaction, as every operation here:
        a later failure brings table and rows back."""
        try:
            self.ops.drop_table(self.table)
        except DBAPIError as error:
            # Something outside metacrm depends on the table (a view, a foreign key).
            lines = str(error.orig or error).strip().splitlines()
            reason = " ".join(line.strip() for line in lines if not line.startswith("HINT"))
            raise Conflict(
                f"the database refused to drop table {self.table!r}: {reason}; "
                "remove what depends on it first"
            ) from error

    def _drop_column(self, op: Operation) -> None:
        assert op.field is not None
        self.ops.drop_column(self.table, op.field.name)

    def _rename_column(self, op: Operation) -> None:
        old, new = op.old_field, op.field
        assert old is not None and new is not None
        renamed = FieldDef.from_doc({**old.doc, "name": new.name})
        # Both databases move an index along with its column; only a name made from the field's
        # name (an entity not yet upgraded to storage ids) has to be made again.
        moved = self._index_names(old) != self._index_names(renamed)
        if moved:
            self._drop_indexes(old)
        self.ops.alter_column(self.table, old.name, new_column_name=new.name)
        if moved:
            self._create_indexes(renamed)

    def _create_index(self, op: Operation) -> None:
        assert op.field is not None
        self.ops.create_index(index_name(self.entity, op.field), self.table, [op.field.name])

    def _drop_index(self, op: Operation) -> None:
        assert op.field is not None
        self.ops.drop_index(index_name(self.entity, op.field), table_name=self.table)

    def _create_unique(self, op: Operation) -> None:
        assert op.field is not None
        live = Column("deleted_at").is_(None)
        self.ops.create_index(
            unique_index_name(self.entity, op.field),
            self.table,
            [op.field.name],
            unique=True,
            sqlite_where=live,
            postgresql_where=live,
        )

    def _drop_unique(self, op: Operation) -> None:
        assert op.field is not None
        self.ops.drop_index(unique_index_name(self.entity, op.field), table_name=self.table)

    def _change_type(self, op: Operation) -> None:
        """Fill a new column with converted values, then swap it in for the old one."""
        old, new = op.old_field, op.field
        assert old is not None and new is not None
        temp = f"{new.name[:50]}__mc_new"
        self.ops.add_column(self.table, Column(temp, column_type(new)))
        meta = MetaData()
        table = Table(
            self.table,
            meta,
            Column("id"),
            Column(old.name, column_type(old)),
            Column(temp, column_type(new)),
        )
        rows = self.conn.execute(select(table.c.id, table.c[old.name])).all()
        for batch in _batches(rows, BATCH):
            values = [
                {"rid": rid, "value": to_storage(new, convert(old, new, from_storage(old, v)))}
                for rid, v in batch
            ]

            self.conn.execute(
                update(table)
                .where(table.c.id == bindparam("rid"))
                .values({temp: bindparam("value")}),
                values,
            )
        self.ops.drop_column(self.table, old.name)
        self.ops.alter_column(self.table, temp, new_column_name=new.name)

    def _index_names(self, field: FieldDef) -> tuple[str | None, str | None]:
        return (
            index_name(self.entity, field) if wants_index(field) else None,
            unique_index_name(self.entity, field) if wants_unique(field) else None,
        )

    def _drop_indexes(self, field: FieldDef) -> None:
        if wants_index(field):
            self._drop_index(Operation("drop_index", field))
        if wants_unique(field):
            self._drop_unique(Operation("drop_unique", field))

    def _create_indexes(self, field: FieldDef) -> None:
        if wants_index(field):
            self._create_index(Operation("create_index", field))
        if wants_unique(field):
            self._create_unique(Operation("create_unique", field))

    def _live_table(self) -> Table:
        return build_table(self.entity, MetaData())


def _batches(rows: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
