"""Experiments, NOT the product: what the same measurement gives with an extra index in the
bench database, or with the `subordinates` scope rendered another way.

Nothing under metacrm/ is edited. An index experiment creates the index in the bench's own
throwaway database and drops it afterwards. A rendering experiment replaces, in this process and
for the duration of the experiment only, `Permissions._scope` (how a data scope becomes SQL); the
last two also replace `Permissions._shared` and the two org walks the permissions module calls
with versions that remember their answers across calls, as a cache would, and the last one the
keyset condition of `metacrm.runtime.listing` (`after`). Pages are checked
against the reference query before anything is timed, so a replacement that changed what a
manager sees would stop the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    String,
    and_,
    any_,
    bindparam,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY

from bench.permissions.workload import ENTITY
from metacrm.metadata.model import EntityDef
from metacrm.metadata.roles import RecordRule
from metacrm.platform import org
from metacrm.platform.systables import record_shares, users
from metacrm.runtime import listing
from metacrm.runtime.listing import SortKey
from metacrm.runtime.permissions import INLINE_SHARES, SHARE_ACCESS, Permissions
from metacrm.runtime.rules import SqlCompiler

# The list orders `sort=-updated_at` as `updated_at DESC NULLS LAST, id ASC NULLS FIRST` on
# PostgreSQL; only an index with exactly that order (or its mirror) can return rows in it.
SORT_INDEX = (
    f"CREATE INDEX bench_exp_updated_desc ON {ENTITY} (updated_at DESC NULLS LAST, id NULLS FIRST)"
)
# The product's own system index with nulls placed as the product sorts them (smallest): the
# descending list can read it backwards, leaving only ties on updated_at to sort by id.
NULLS_FIRST_INDEX = (
    f"CREATE INDEX bench_exp_updated_nulls_first ON {ENTITY}"
    " (updated_at NULLS FIRST, id NULLS FIRST)"
)
OWNER_INDEX = (
    f"CREATE INDEX bench_exp_owner_updated ON {ENTITY}"
    " (owner, updated_at DESC NULLS LAST, id NULLS FIRST)"
)

ScopeFn = Callable[[Permissions, str, SqlCompiler], ColumnElement[bool] | None]
_product_scope = Permissions._scope
_product_after = listing.after
NEVER_NULL = frozenset({"updated_at", "created_at"})


def _scope_any_array(
    self: Permissions, scope: str, compiler: SqlCompiler
) -> ColumnElement[bool] | None:
    """`owner = ANY(:ids)`: one array parameter instead of one bind per subordinate."""
    if scope != "subordinates":
        return _product_scope(self, scope, compiler)
    ids = bindparam(None, self.principal.subordinates, type_=ARRAY(String()))
    return compiler.table.c.owner == any_(ids)


def _scope_walk_in_statement(
    self: Permissions, scope: str, compiler: SqlCompiler
) -> ColumnElement[bool] | None:
    """`owner IN (WITH RECURSIVE … )`: the reporting-line walk inside the list statement, so no
    separate round trip and no id list at all."""
    if scope != "subordinates":
        return _product_scope(self, scope, compiler)
    seed = select(users.c.id.label("id")).where(users.c.id == self.user.id)
    tree = seed.cte("inline_walk", recursive=True)
    tree = tree.union(select(users.c.id).where(users.c.manager_id == tree.c.id))
    return compiler.table.c.owner.in_(select(tree.c.id))


def _shared_remembered() -> Callable[..., list[ColumnElement[bool]]]:
    """`Permissions._shared` with the caller's shared record ids remembered across calls (what
    a cache invalidated by a stamp bumped on every share change would give); the clauses are
    rendered as the product renders them."""
    remembered: dict[tuple[str, str, str], list[str]] = {}

    def shared(
        self: Permissions, entity: EntityDef, action: str, compiler: SqlCompiler
    ) -> list[ColumnElement[bool]]:
        access = SHARE_ACCESS[action]
        query = (
            select(record_shares.c.record_id)
            .where(record_shares.c.entity == entity.name, record_shares.c.access.in_(access))
            .where(or_(*self._share_principals()))
        )
        key = (self.user.id, entity.name, action)
        if key not in remembered:
            remembered[key] = list(self.conn.execute(query.limit(INLINE_SHARES + 1)).scalars())
        ids = remembered[key]
        clauses: list[ColumnElement[bool]] = []
        if len(ids) > INLINE_SHARES:
            clauses.append(compiler.table.c.id.in_(query))
        elif ids:
            clauses.append(compiler.table.c.id.in_(ids))
        for rule in entity.doc.get("sharing_rules") or ():
            if rule["access"] in access and self._shared_with_me(rule["share_with"]):
                widen = RecordRule(rule["name"], rule["condition"], "widen")
                clauses.append(self._rule(entity, widen, compiler))
        return clauses

    return shared


def _after_bounded(
    columns: dict[str, Any], keys: Sequence[SortKey], values: Sequence[Any]
) -> ColumnElement[bool]:
    """The product's keyset condition, ANDed with a plain bound on the first sort key
    (`updated_at <= :v` when descending) that an index scan can start from. Only right for a
    column that is never null, so only for the timestamps the service always sets."""
    condition = _product_after(columns, keys, values)
    first = keys[0]
    if first.field not in NEVER_NULL or len(values) != len(keys):
        return condition
    value = values[0]
    if value is None:
        return condition
    column = columns[first.field]
    return and_(column <= value if first.descending else column >= value, condition)


def _memoized(walk: Callable[[Connection, str], set[str]]) -> Callable[[Connection, str], set[str]]:
    """A tree walk remembered across calls: what a cache of the org, invalidated by a stamp
    bumped on every user or org-unit change (as metadata has), would give."""
    remembered: dict[str, set[str]] = {}

    def cached(conn: Connection, start: str) -> set[str]:
        if start not in remembered:
            remembered[start] = walk(conn, start)
        return remembered[start]

    return cached


@dataclass(frozen=True)
class Experiment:
    key: str
    title: str
    indexes: tuple[str, ...] = ()
    scope: ScopeFn | None = None
    # No round trips besides the list statement: org walks and shares remembered across calls.
    cached: bool = False
    # The 2nd page's keyset condition with a bound an index scan can start from.
    bounded: bool = False

    def unchanged_by(self, plans: str) -> bool:
        """Whether, given the plans it leads to, the experiment changes nothing at all."""
        renders = self.scope is not None or self.cached or self.bounded
        names = [statement.split()[2] for statement in self.indexes]
        return not renders and not any(name in plans for name in names)


EXPERIMENTS = (
    Experiment(
        "sort-index",
        "index (updated_at DESC NULLS LAST, id NULLS FIRST): the order the list asks for",
        (SORT_INDEX,),
    ),
    Experiment(
        "nulls-first-index",
        "index (updated_at NULLS FIRST, id NULLS FIRST): the system index with nulls smallest",
        (NULLS_FIRST_INDEX,),
    ),
    Experiment(
        "owner-index",
        "index (owner, updated_at DESC NULLS LAST, id NULLS FIRST) alone",
        (OWNER_INDEX,),
    ),
    Experiment(
        "sort-index+any",
        "the sort index, and `owner = ANY(:array)` instead of `owner IN (:id1, …, :idN)`",
        (SORT_INDEX,),
        _scope_any_array,
    ),
    Experiment(
        "sort-index+walk",
        "the sort index, and the reporting-line walk inside the list statement",
        (SORT_INDEX,),
        _scope_walk_in_statement,
    ),
    Experiment(
        "sort-index+any+cached",
        "the sort index, `= ANY(:array)`, and the org walks and the shares lookup remembered"
        " across calls (one statement per call, as the admin's)",
        (SORT_INDEX,),
        _scope_any_array,
        cached=True,
    ),
    Experiment(
        "all",
        "all of the last one, and the 2nd page's cursor condition with a plain bound"
        " `updated_at <= :v` the index scan can start from",
        (SORT_INDEX,),
        _scope_any_array,
        cached=True,
        bounded=True,
    ),
)


@contextmanager
def applied(engine: Engine, experiment: Experiment) -> Iterator[None]:
    """The experiment's indexes exist (analysed) and its scope rendering is in place inside the
    block; afterwards the database and the class are as they were."""
    names = [statement.split()[2] for statement in experiment.indexes]
    with engine.begin() as conn:
        for statement in experiment.indexes:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(f"ANALYZE {ENTITY}")
    scope = experiment.scope or _product_scope
    try:
        with ExitStack() as patches:
            patches.enter_context(mock.patch.object(Permissions, "_scope", scope))
            if experiment.cached:
                patches.enter_context(
                    mock.patch.object(Permissions, "_shared", _shared_remembered())
                )
                for name in ("subordinates", "unit_ancestors"):
                    walk = _memoized(getattr(org, name))
                    patches.enter_context(mock.patch(f"metacrm.runtime.permissions.{name}", walk))
            if experiment.bounded:
                patches.enter_context(mock.patch.object(listing, "after", _after_bounded))
            yield
    finally:
        with engine.begin() as conn:
            for name in names:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
            conn.exec_driver_sql(f"ANALYZE {ENTITY}")


PER_OWNER = f"""
SELECT page.* FROM unnest(CAST(%(owners)s AS text[])) AS team(owner)
CROSS JOIN LATERAL (
    SELECT * FROM {ENTITY}
    WHERE {ENTITY}.owner = team.owner AND {ENTITY}.deleted_at IS NULL
    ORDER BY {ENTITY}.updated_at DESC NULLS LAST, {ENTITY}.id NULLS FIRST
    LIMIT %(limit)s
) AS page
ORDER BY page.updated_at DESC NULLS LAST, page.id NULLS FIRST
LIMIT %(limit)s
"""
PER_OWNER_TITLE = (
    "the list statement alone (no service), 1st page, with both experimental indexes: as the"
    " product renders it, and per owner (a LATERAL join over the team's ids, each owner's"
    " newest 51 rows by the owner index, then the newest 51 of those)"
)


def per_owner_statement(owners: Sequence[str], limit: int) -> tuple[str, dict[str, Any]]:
    """A first page as the newest `limit` rows of each team member's newest `limit` rows."""
    return PER_OWNER, {"owners": list(owners), "limit": limit}
