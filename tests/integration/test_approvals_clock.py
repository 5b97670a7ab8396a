"""Approvals over time, on SQLite and PostgreSQL: delegations while someone is away, reassigning
a task, and the escalation job run with an explicit clock (a reminder once past the SLA, then the
task goes to the approver's manager; without a manager it stays, logged once)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from test_approvals_support import (
    APPROVALS,
    MANAGER,
    V1,
    World,
    process_doc,
    step,
    world,
)

from metacrm.platform.db import writing
from metacrm.platform.systables import approval_log
from metacrm.platform.users import get_user
from metacrm.runtime import approvals

assert world  # the fixture, imported for pytest

DELEGATIONS = f"{V1}/me/delegations"
T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def submit_at(world: World, who: str, deal_id: str, process: str, now: datetime) -> dict[str, Any]:
    with world.api.services.writing() as conn:
        service = world.api.records(conn, get_user(conn, world.ids[who]), now)
        return approvals.submit(service, "deal", deal_id, process)


def escalate(world: World, now: datetime) -> dict[str, int]:
    with world.api.services.writing() as conn:
        ctx = world.api.services.system_context(conn)
        return approvals.run_escalations(replace(ctx, now=now))


def approval(world: World, approval_id: str) -> dict[str, Any]:
    response = world.api.get(f"{APPROVALS}/{approval_id}")
    assert response.status_code == 200, response.text
    return response.json()


# ---- delegations ----------------------------------------------------------------------------


def test_a_delegation_sends_tasks_assigned_in_its_period_to_the_delegate(world: World) -> None:
    world.process(process_doc("discount", [step("manager", [MANAGER])]))
    now = datetime.now(UTC)
    response = world.post(
        "mgr",
        DELEGATIONS,
        {
            "delegate": world.ids["head"],
            "starts_at": iso(now - timedelta(hours=1)),
            "ends_at": iso(now + timedelta(days=1)),
        },
    )
    assert response.status_code == 201, response.text
    delegation = response.json()
    assert (delegation["user"], delegation["delegate"]) == (world.ids["mgr"], world.ids["head"])
    assert [d["id"] for d in world.get("mgr", DELEGATIONS).json()["data"]] == [delegation["id"]]
    assert [d["id"] for d in world.get("head", DELEGATIONS).json()["data"]] == [delegation["id"]]
    assert world.get("rep", DELEGATIONS).json()["data"] == []

    submitted = world.submit("rep", world.deal()["id"], "discount")
    [task] = submitted["tasks"]
    assert (task["approver"], task["original_approver"]) == (world.ids["head"], world.ids["mgr"])
    assert world.notifications("mgr", "approval.assigned") == []
    world.answer("mgr", submitted["id"], expect=403)
    assert world.answer("head", submitted["id"])["status"] == "approved"

    assert world.delete("rep", f"{DELEGATIONS}/{delegation['id']}").status_code == 404
    assert world.delete("mgr", f"{DELEGATIONS}/{delegation['id']}").status_code == 204
    assert world.delete("mgr", f"{DELEGATIONS}/{delegation['id']}").status_code == 404
    after = world.submit("rep", world.deal()["id"], "discount")
    assert world.holders(after) == {"mgr"}


def test_a_delegation_outside_its_period_changes_nothing(world: World) -> None:
    world.process(process_doc("discount", [step("manager", [MANAGER])]))
    future = datetime.now(UTC) + timedelta(days=3)
    created = world.post(
        "mgr",
        DELEGATIONS,
        {
            "delegate": world.ids["head"],
            "starts_at": iso(future),
            "ends_at": iso(future + timedelta(days=1)),
        },
    )
    assert created.status_code == 201, created.text
    assert world.holders(world.submit("rep", world.deal()["id"], "discount")) == {"mgr"}


def test_invalid_delegations_are_refused_with_every_problem(world: World) -> None:
    now = datetime.now(UTC)
    response = world.post(
        "mgr",
        DELEGATIONS,
        {"delegate": world.ids["mgr"], "starts_at": "soon", "ends_at": iso(now), "why": "x"},
    )
    assert response.status_code == 422, response.text
    assert {(e["field"], e["code"]) for e in response.json()["errors"]} == {
        ("delegate", "self"),
        ("starts_at", "format"),
        ("why", "unknown_field"),
    }
    backwards = world.post(
        "mgr",
        DELEGATIONS,
        {"delegate": "ghost", "starts_at": iso(now), "ends_at": iso(now - timedelta(hours=1))},
    )
    assert {(e["field"], e["code"]) for e in backwards.json()["errors"]} == {
        ("delegate", "not_found"),
        ("ends_at", "order"),
    }


# ---- reassigning ----------------------------------------------------------------------------


def test_a_holder_reassigns_their_task_and_an_admin_reassigns_anyones(world: World) -> None:
    world.process(process_doc("discount", [step("manager", [MANAGER])]))
    submitted = world.submit("rep", world.deal()["id"], "discount")
    path = f"{APPROVALS}/{submitted['id']}/reassign"
    assert world.post("loner", path, {"to": world.ids["loner"]}).status_code == 404
    assert world.post("dir1", path, {"to": world.ids["dir1"]}).status_code == 403
    assert world.post("rep", path, {"to": world.ids["dir1"]}).status_code == 403
    refused = world.post("mgr", path, {"to": "ghost"})
    assert refused.status_code == 422, refused.text
    assert world.post("mgr", path, {"to": world.ids["mgr"]}).status_code == 409
    assert world.post("mgr", path, {}).status_code == 422

    moved = world.post("mgr", path, {"to": world.ids["dir1"], "comment": "away"})
    assert moved.status_code == 200, moved.text
    tasks = {(t["status"], t["approver"], t["original_approver"]) for t in moved.json()["tasks"]}
    assert tasks == {
        ("reassigned", world.ids["mgr"], None),
        ("pending", world.ids["dir1"], world.ids["mgr"]),
    }
    assert len(world.notifications("dir1", "approval.assigned")) == 1
    world.answer("mgr", submitted["id"], expect=409)
    assert (
        world.post("dir2", path, {"from": world.ids["dir1"], "to": world.ids["dir2"]}).status_code
        == 403
    )

    again = world.post("admin", path, {"from": world.ids["dir1"], "to": world.ids["dir2"]})
    assert again.status_code == 200, again.text
    pending = [t for t in again.json()["tasks"] if t["status"] == "pending"]
    assert [(t["approver"], t["original_approver"]) for t in pending] == [
        (world.ids["dir2"], world.ids["mgr"])
    ]
    assert [e["type"] for e in world.events()].count("approval.reassigned") == 2
    assert world.answer("dir2", submitted["id"])["status"] == "approved"
    assert (
        world.post("admin", path, {"from": world.ids["dir2"], "to": world.ids["dir3"]}).status_code
        == 409
    )


# ---- escalation -----------------------------------------------------------------------------


def test_a_task_past_its_sla_is_reminded_once_then_escalated_to_the_manager(
    world: World,
) -> None:
    world.process(process_doc("discount", [step("manager", [MANAGER], sla_hours=2)]))
    submitted = submit_at(world, "rep", world.deal()["id"], "discount", T0)
    assert submitted["submitted_at"] == iso(T0)
    [task] = submitted["tasks"]
    assert task["due_at"] == iso(T0 + timedelta(hours=2))

    assert escalate(world, T0 + timedelta(hours=1)) == {
        "reminded": 0,
        "escalated": 0,
        "not_escalated": 0,
    }
    assert escalate(world, T0 + timedelta(hours=2, minutes=1))["reminded"] == 1
    assert len(world.notifications("mgr", "approval.reminder")) == 1
    assert escalate(world, T0 + timedelta(hours=3))["reminded"] == 0
    assert len(world.notifications("mgr", "approval.reminder")) == 1

    # Escalation waits twice the SLA: four hours.
    counts = escalate(world, T0 + timedelta(hours=4))
    assert (counts["escalated"], counts["reminded"]) == (1, 0)
    after = approval(world, submitted["id"])
    assert {(t["status"], t["approver"], t["original_approver"]) for t in after["tasks"]} == {
        ("reassigned", world.ids["mgr"], None),
        ("pending", world.ids["boss"], world.ids["mgr"]),
    }
    assert len(world.notifications("boss", "approval.escalated")) == 1
    assert "escalated" in [e["action"] for e in after["log"]]
    assert world.events()[-1]["type"] == "approval.reassigned"
    world.answer("mgr", submitted["id"], expect=409)

    # The boss has no manager: the task stays with them, and the log says so once.
    later = T0 + timedelta(hours=9)
    assert escalate(world, later)["not_escalated"] == 1
    assert escalate(world, later + timedelta(hours=1))["not_escalated"] == 1
    with writing(world.api.engine) as conn:
        failed = conn.execute(
            select(approval_log.c.detail).where(approval_log.c.action == "escalation_failed")
        ).all()
    assert len(failed) == 1
    assert world.holders(approval(world, submitted["id"])) == {"boss"}
    assert world.answer("boss", submitted["id"])["status"] == "approved"
    assert escalate(world, later + timedelta(days=5)) == {
        "reminded": 0,
        "escalated": 0,
        "not_escalated": 0,
    }


def test_an_explicit_escalation_time_and_a_step_without_sla_are_respected(world: World) -> None:
    world.process(
        process_doc(
            "quick",
            [step("manager", [MANAGER], sla_hours=10, escalate_after_hours=1)],
        )
    )
    world.process(process_doc("patient", [step("manager", [MANAGER])]))
    quick = submit_at(world, "rep", world.deal()["id"], "quick", T0)
    patient = submit_at(world, "rep", world.deal()["id"], "patient", T0)
    counts = escalate(world, T0 + timedelta(hours=1))
    assert (counts["escalated"], counts["reminded"]) == (1, 0)
    assert world.holders(approval(world, quick["id"])) == {"boss"}
    # The boss has no manager to escalate to, but is reminded once; no SLA, no clock.
    assert escalate(world, T0 + timedelta(days=30)) == {
        "reminded": 1,
        "escalated": 0,
        "not_escalated": 1,
    }
    assert world.holders(approval(world, patient["id"])) == {"mgr"}
