"""Two approvers answering the same approval at the same moment, over real HTTP calls in two
threads: exactly one outcome. On PostgreSQL both requests are held until each has passed its
checks and is about to claim the approval, so they truly race on the version guard; SQLite
serialises writers, so there the calls merely overlap."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from test_approvals_support import APPROVALS, World, process_doc, step, world

from metacrm.platform.db import is_sqlite, reading
from metacrm.platform.systables import events
from metacrm.runtime.approvals import instances

assert world  # the fixture, imported for pytest


@pytest.fixture
def racing(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Arms a barrier for the next two claims (PostgreSQL only); call it before each race."""
    state: dict[str, threading.Barrier | None] = {"barrier": None}
    real_claim = instances.claim

    def claim(conn: Any, approval_id: str) -> instances.Approval:
        barrier = state["barrier"]
        if barrier is not None:
            barrier.wait(timeout=20)
        return real_claim(conn, approval_id)

    def arm() -> None:
        if not is_sqlite(world.api.engine):
            state["barrier"] = threading.Barrier(2)

    monkeypatch.setattr(instances, "claim", claim)
    yield arm


def race(world: World, calls: list[tuple[str, str]]) -> list[httpx.Response]:
    """Each (who, path) posted from its own thread and client at once."""
    app = world.api.client.app

    def call(who: str, path: str) -> httpx.Response:
        client = TestClient(app, raise_server_exceptions=False)
        return client.post(path, json={"comment": who}, headers=world.headers(who))

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda c: call(*c), calls))


def final_events(world: World, approval_id: str) -> list[str]:
    with reading(world.api.engine) as conn:
        rows = conn.execute(select(events.c.type, events.c.payload)).all()
    return [
        t
        for t, payload in rows
        if t in ("approval.approved", "approval.rejected") and payload["approval"] == approval_id
    ]


def test_an_approve_and_a_reject_at_once_give_exactly_one_outcome(
    world: World, racing: Callable[[], None]
) -> None:
    users = {"type": "user", "users": [world.ids["dir1"], world.ids["dir2"]]}
    world.process(process_doc("either", [step("pair", [users])]))
    for _ in range(3):
        approval = world.submit("rep", world.deal()["id"], "either")
        racing()
        approve, reject = race(
            world,
            [
                ("dir1", f"{APPROVALS}/{approval['id']}/approve"),
                ("dir2", f"{APPROVALS}/{approval['id']}/reject"),
            ],
        )
        assert sorted([approve.status_code, reject.status_code]) == [200, 409], (
            approve.text,
            reject.text,
        )
        winner = approve if approve.status_code == 200 else reject
        expected = "approved" if winner is approve else "rejected"
        assert winner.json()["status"] == expected
        stored = world.api.get(f"{APPROVALS}/{approval['id']}").json()
        assert stored["status"] == expected
        assert sorted(t["status"] for t in stored["tasks"]) == sorted([expected, "cancelled"])
        assert final_events(world, approval["id"]) == [f"approval.{expected}"]
        assert len(world.notifications("rep", f"approval.{expected}")) >= 1


def test_two_approvals_at_once_in_an_all_step_both_count(
    world: World, racing: Callable[[], None]
) -> None:
    users = {"type": "user", "users": [world.ids["dir1"], world.ids["dir2"]]}
    world.process(process_doc("both", [step("pair", [users], mode="all")]))
    approval = world.submit("rep", world.deal()["id"], "both")
    racing()
    first, second = race(
        world,
        [
            ("dir1", f"{APPROVALS}/{approval['id']}/approve"),
            ("dir2", f"{APPROVALS}/{approval['id']}/approve"),
        ],
    )
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    stored = world.api.get(f"{APPROVALS}/{approval['id']}").json()
    assert stored["status"] == "approved"
    assert [t["status"] for t in stored["tasks"]] == ["approved", "approved"]
    assert final_events(world, approval["id"]) == ["approval.approved"]
