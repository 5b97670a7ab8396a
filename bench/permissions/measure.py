"""Timing `RecordService.list` in-process, call by call, with every SQL statement it sends timed
and sorted by what it is for; and the plans PostgreSQL chooses for the list statement."""

from __future__ import annotations

import random
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event, text

from bench.permissions.workload import ENTITY
from metacrm.platform.db import reading
from metacrm.platform.settings import Settings
from metacrm.platform.users import User
from metacrm.runtime.listing import ListQuery, SortKey
from metacrm.runtime.records import RecordService
from metacrm.runtime.startup import build_services

PAGE = 50
FIRST_PAGE = ListQuery(sort=(SortKey("updated_at", descending=True),), limit=PAGE)
LIST_STATEMENT = re.compile(rf"\bFROM {ENTITY}\b.*\bORDER BY\b", re.DOTALL)
# What each statement a list call sends is for, by a name the product's SQL carries.
KINDS = (
    ("list query", LIST_STATEMENT),
    ("subordinates walk", re.compile(r"\breports\b")),  # platform/org.py's CTE
    ("org-unit walk", re.compile(r"\bunit_up\b")),
    ("shares lookup", re.compile(r"\bmc_record_shares\b")),
)
OTHER = "other SQL"
REST = "Python + transaction"
COLUMNS = (*(name for name, _ in KINDS), OTHER, REST)


@dataclass
class Series:
    """One measured call: a user listing one page, and what each of its calls cost."""

    key: str
    label: str
    user: User
    query: ListQuery
    samples: list[float] = field(default_factory=list)
    sql: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    statements: int = 0

    def p50(self) -> float:
        return statistics.median(self.samples) * 1000

    def p99(self) -> float:
        return statistics.quantiles(self.samples, n=100, method="inclusive")[98] * 1000

    def breakdown(self) -> dict[str, float]:
        """Mean milliseconds per call by kind of statement, the rest being Python + commit."""
        calls = len(self.samples)
        shares = {kind: seconds * 1000 / calls for kind, seconds in self.sql.items()}
        shares[REST] = statistics.fmean(self.samples) * 1000 - sum(shares.values())
        return shares


class Lister:
    """Calls the record service the way a request does after authentication: one read-only
    transaction, the catalog snapshot for the metadata stamp (which authentication reads in the
    same query as the token, so it is given here), the service, the commit."""

    def __init__(self, engine: Engine, secret: str, stamp: int) -> None:
        self.engine, self.secret, self.stamp = engine, secret, stamp
        self.services = build_services(Settings(secret_key=secret), engine)
        self._current: Series | None = None
        self._started = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def list(self, user: User, query: ListQuery) -> dict[str, Any]:
        with reading(self.engine) as conn:
            catalog = self.services.catalog(conn, self.stamp)
            ctx = self.services.context(conn, user, catalog=catalog)
            return RecordService(ctx).list(ENTITY, query)

    def timed(self, series: Series) -> None:
        self._current = series
        try:
            started = time.perf_counter()
            self.list(series.user, series.query)
            series.samples.append(time.perf_counter() - started)
        finally:
            self._current = None

    # The statements of a timed call are timed too (execute to results received); two clock
    # reads per statement, a few microseconds per call, the same for every series.
    def _before(self, *_args: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        series = self._current
        if series is None:
            return
        elapsed = time.perf_counter() - self._started
        kind = next((name for name, pattern in KINDS if pattern.search(statement)), OTHER)
        series.sql[kind] += elapsed
        series.statements += 1


def run_series(lister: Lister, series: list[Series], iterations: int, warmup: int) -> None:
    """Warm up, then time `iterations` calls of every series, round-robin in a shuffled order
    each round, so that every series meets the same conditions (caches, other load)."""
    for _ in range(warmup):
        for each in series:
            lister.list(each.user, each.query)
    for each in series:
        each.samples.clear()
        each.sql.clear()
        each.statements = 0
    order = list(series)
    rng = random.Random(7)
    for _ in range(iterations):
        rng.shuffle(order)
        for each in order:
            lister.timed(each)


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (with their parameters) sent on the engine inside the block."""
    found: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        found.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", grab)


def list_statement(lister: Lister, user: User, query: ListQuery) -> tuple[str, Any]:
    """The list statement the service sends for this call, exactly, with its parameters."""
    with captured(lister.engine) as found:
        lister.list(user, query)
    for statement, parameters in found:
        if LIST_STATEMENT.search(statement):
            return statement, parameters
    raise RuntimeError(f"no list statement among the {len(found)} statements the service sent")


def explain(lister: Lister, user: User, query: ListQuery) -> list[str]:
    statement, parameters = list_statement(lister, user, query)
    with lister.engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        return [_short_arrays(line) for line in plan.scalars()]


def plan_shape(lines: list[str]) -> str:
    """The plan's nodes, top down: 'Limit > Sort > Seq Scan on deal'."""
    nodes = []
    for line in lines:
        stripped = line.strip()
        if nodes and not stripped.startswith("->"):
            continue
        node = re.sub(r"\s*\(cost=.*", "", stripped.removeprefix("->").strip())
        nodes.append(node)
    return " > ".join(nodes)


def _short_arrays(line: str) -> str:
    """Array literals of hundreds of ids, shortened to their size."""
    return re.sub(
        r"'\{([^}]{200,})\}'",
        lambda m: f"'{{<{m.group(1).count(',') + 1} ids>}}'",
        line,
    )


def reference_ids(engine: Engine, owners: set[str] | None, count: int) -> list[str]:
    """The first `count` ids in list order, by a plain query (no permissions code involved)."""
    where = "deleted_at IS NULL" + ("" if owners is None else " AND owner = ANY(:owners)")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT id FROM {ENTITY} WHERE {where} ORDER BY updated_at DESC, id LIMIT :count"
            ),
            {"owners": sorted(owners or ()), "count": count},
        )
        return list(rows.scalars())
