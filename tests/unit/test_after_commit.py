"""`after_commit` callbacks run once the `writing` transaction committed — never after a
rollback, and never for a transaction that wasn't opened with `writing`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from metacrm.platform.db import after_commit, make_engine, writing


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite", pool_size=1, max_overflow=0)
    with writing(engine) as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    return engine


def test_callbacks_run_after_commit_in_order(engine: Engine) -> None:
    seen: list[str] = []
    with writing(engine) as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        after_commit(conn, lambda: seen.append("first"))
        after_commit(conn, lambda: seen.append("second"))
        assert seen == []
    assert seen == ["first", "second"]
    with writing(engine) as conn:
        pass
    assert seen == ["first", "second"]


def test_a_rollback_drops_the_callbacks(engine: Engine) -> None:
    seen: list[str] = []
    with pytest.raises(RuntimeError), writing(engine) as conn:
        after_commit(conn, lambda: seen.append("rolled back"))
        raise RuntimeError("boom")
    with writing(engine) as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
    assert seen == []


def test_state_of_a_foreign_transaction_does_not_leak_into_the_next_one(engine: Engine) -> None:
    seen: list[str] = []
    with engine.begin() as conn:
        after_commit(conn, lambda: seen.append("foreign"))
    # The pool has one connection: the next `writing` gets the same DBAPI connection.
    with writing(engine) as conn:
        conn.execute(text("INSERT INTO t VALUES (3)"))
    assert seen == []
