"""Keyset pagination has a law: walking the pages visits every record exactly once, in the
order the sort defines (nulls smallest, `id` last). Checked with generated data and sorts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from metacrm.metadata.entities import EntityDesigner
from metacrm.platform.db import make_engine, reading, writing
from metacrm.platform.ids import new_id
from metacrm.platform.install import install
from metacrm.platform.settings import Settings
from metacrm.platform.users import User
from metacrm.runtime.listing import ListQuery, SortKey
from metacrm.runtime.records import RecordService
from metacrm.runtime.startup import build_services

ENTITY = {
    "name": "deal",
    "label": {"en": "Deal"},
    "fields": [
        {"name": "amount", "type": "decimal", "precision": 10, "scale": 2},
        {"name": "stage", "type": "picklist", "options": [{"value": v} for v in "abc"]},
        {"name": "title", "type": "text"},
    ],
}
SORTABLE = ("amount", "stage", "title", "created_at")
USER = User(id="01TESTUSER0000000000000000", email="t@example.com", is_admin=True)


@pytest.fixture(scope="module")
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    kind = request.param
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('paging')}/paging.db"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"paging_{new_id().lower()}")
    engine = make_engine(url)
    install(engine)
    with writing(engine) as conn:
        EntityDesigner(conn, author=None).create(ENTITY)
    yield engine
    engine.dispose()


rows = st.lists(
    st.fixed_dictionaries(
        {
            "amount": st.one_of(
                st.none(), st.sampled_from([Decimal("1.00"), Decimal("2.50"), Decimal("-3.00")])
            ),
            "stage": st.one_of(st.none(), st.sampled_from("abc")),
            "title": st.one_of(st.none(), st.sampled_from(["x", "X", "é", ""])),
            "created_at": st.sampled_from([datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2)]),
        }
    ),
    max_size=25,
)
sorts = st.lists(
    st.tuples(st.sampled_from(SORTABLE), st.booleans()), max_size=3, unique_by=lambda s: s[0]
)


def expected_order(records: list[dict[str, Any]], sort: list[tuple[str, bool]]) -> list[str]:
    """The order the contract promises, computed independently: nulls smallest, id last."""
    ordered = sorted(records, key=lambda r: r["id"])
    for name, descending in reversed(sort):
        present = [r for r in ordered if r[name] is not None]
        missing = [r for r in ordered if r[name] is None]
        present.sort(key=lambda r: _key(r[name]), reverse=descending)
        if descending:
            # Keep id order within equal values when reversing.
            present = _stable_desc(present, name)
        ordered = present + missing if descending else missing + present
    return [r["id"] for r in ordered]


def _key(value: Any) -> Any:
    return value.encode("utf-8") if isinstance(value, str) else value


def _stable_desc(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(_key(r[name]), []).append(r)
    out: list[dict[str, Any]] = []
    for value in sorted(groups, reverse=True):
        out.extend(groups[value])
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    "engine",
    [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=rows, sort=sorts, limit=st.integers(1, 6))
def test_pages_visit_every_record_once_in_sort_order(
    engine: Any, data: list[dict[str, Any]], sort: list[tuple[str, bool]], limit: int
) -> None:
    services = build_services(Settings(secret_key="secret"), engine)
    with writing(engine) as conn:
        table = services.catalog(conn).table("deal")
        conn.execute(delete(table))
        records = []
        for row in data:
            record = {"id": new_id(), **row}
            records.append(record)
            conn.execute(
                table.insert().values(
                    **record, version=1, owner=USER.id, updated_at=row["created_at"]
                )
            )
    query_sort = tuple(SortKey(name, descending) for name, descending in sort)
    seen: list[str] = []
    cursor = None
    for _ in range(len(data) + 2):
        with reading(engine) as conn:
            service = RecordService(services.context(conn, USER))
            page = service.list("deal", ListQuery(sort=query_sort, limit=limit, cursor=cursor))
        seen.extend(r["id"] for r in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected_order(records, sort)
