"""Approval workflows over HTTP on SQLite and PostgreSQL: designing processes, submitting,
every approver kind and mode, step conditions, actions and notifications, the record lock,
recall, the inbox, auto-submission, and that running approvals keep their process version."""

from __future__ import annotations

from typing import Any

from conftest import Api
from test_approvals_support import (
    APPROVALS,
    DIRECTORS,
    MANAGER,
    PROCESSES,
    RECORDS,
    World,
    process_doc,
    step,
    world,
)

assert world  # the fixture, imported for pytest


def field_errors(response: Any) -> set[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return {(e["field"], e["code"]) for e in response.json()["errors"]}


# ---- designing processes --------------------------------------------------------------------


def test_processes_are_designed_versioned_and_listed_through_the_metadata_api(
    world: World,
) -> None:
    doc = process_doc("discount", [step("manager", [MANAGER])])
    created = world.process(doc)
    assert created == {**doc, "version": 1}
    listed = world.api.get(PROCESSES).json()["data"]
    assert listed == [
        {
            "name": "discount",
            "label": {"en": "Discount"},
            "entity": "deal",
            "trigger": "manual",
            "steps": 1,
            "version": 1,
        }
    ]
    changed = world.api.put(f"{PROCESSES}/discount", {**doc, "submitters": ["rep"]})
    assert changed.status_code == 200 and changed.json()["version"] == 2
    versions = world.api.get(f"{PROCESSES}/discount/versions").json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    assert world.get("rep", PROCESSES).status_code == 403


def test_an_invalid_process_is_refused_with_every_problem_at_its_pointer(world: World) -> None:
    doc = process_doc(
        "broken",
        [
            step("one", [{"type": "user", "users": ["nobody-here"]}], mode="quorum"),
            step("one", [{"type": "field", "field": "note"}], condition="discount"),
        ],
        submitters=["ghost"],
        trigger="auto",
        on_approve=[{"type": "move_stage", "field": "stage", "stage": "lost"}],
    )
    response = world.api.post(PROCESSES, doc)
    assert field_errors(response) == {
        ("/auto_condition", "required"),
        ("/submitters/0", "unknown_role"),
        ("/steps/0/quorum", "required"),
        ("/steps/0/approvers/0/users/0", "unknown_user"),
        ("/steps/1/name", "duplicate"),
        ("/steps/1/condition", "expression"),
        ("/steps/1/approvers/0/field", "not_user_field"),
        ("/on_approve/0/stage", "unknown_option"),
    }
    assert world.api.get(f"{PROCESSES}/broken").status_code == 404
    unknown_entity = world.api.post(PROCESSES, {**doc, "entity": "ghost"})
    assert field_errors(unknown_entity) == {("/entity", "unknown_entity")}


# ---- a whole approval -----------------------------------------------------------------------


def test_a_manager_approves_and_the_final_actions_and_notifications_run(world: World) -> None:
    world.process(
        process_doc(
            "discount",
            [step("manager", [MANAGER])],
            on_submit=[{"type": "move_stage", "field": "stage", "stage": "review"}],
            on_approve=[
                {"type": "move_stage", "field": "stage", "stage": "won"},
                {"type": "set_field", "field": "approved", "expression": "discount < 50"},
                {"type": "set_field", "field": "note", "expression": 'concat("ok ", name)'},
                {
                    "type": "notify",
                    "to": ["owner", {"role": "director"}, {"user": world.ids["head"]}],
                    "message": {"en": "Discount approved"},
                },
            ],
        )
    )
    deal = world.deal(discount=30)
    approval = world.submit("rep", deal["id"], "discount", comment="please")
    assert approval["status"] == "pending"
    assert approval["submitted_by"] == world.ids["rep"]
    assert world.holders(approval) == {"mgr"}
    assert world.record(deal["id"])["stage"] == "review"
    assert len(world.notifications("mgr", "approval.assigned")) == 1

    done = world.answer("mgr", approval["id"], comment="fine")
    assert done["status"] == "approved" and done["finished_at"]
    record = world.record(deal["id"])
    assert (record["stage"], record["approved"], record["note"]) == ("won", True, "ok Deal")
    assert len(world.notifications("rep", "approval.approved")) == 1
    for who in ("rep", "dir1", "dir2", "dir3", "head"):
        assert [n["title"] for n in world.notifications(who, "approval.notice")] == [
            "Discount approved"
        ]
    actions = [(e["action"], e["by"], e["comment"]) for e in done["log"]]
    assert ("submitted", world.ids["rep"], "please") in actions
    assert ("approved", world.ids["mgr"], "fine") in actions
    assert [e["type"] for e in world.events()] == [
        "approval.submitted",
        "approval.step_approved",
        "approval.approved",
    ]
    # The actions wrote through the record service: audited like any change.
    history = world.api.get(f"{RECORDS}/deal/{deal['id']}/history").json()["data"]
    assert [(h["changed_by"], sorted(h["changes"])) for h in history[:4]] == [
        (world.ids["mgr"], ["note"]),
        (world.ids["mgr"], ["approved"]),
        (world.ids["mgr"], ["stage"]),
        (world.ids["rep"], ["stage"]),
    ]


def test_approvers_come_from_users_roles_managers_unit_heads_and_fields(world: World) -> None:
    world.process(
        process_doc(
            "everyone",
            [
                step(
                    "all_kinds",
                    [
                        {"type": "manager", "levels": 2},
                        {"type": "org_unit_head"},
                        {"type": "field", "field": "reviewer"},
                        {"type": "user", "users": [world.ids["outsider"]]},
                        DIRECTORS,
                    ],
                )
            ],
        )
    )
    deal = world.deal(reviewer=world.ids["loner"])
    approval = world.submit("rep", deal["id"], "everyone")
    assert world.holders(approval) == {"boss", "head", "loner", "outsider", "dir1", "dir2", "dir3"}


def test_all_mode_needs_everyone_and_one_rejection_rejects(world: World) -> None:
    world.process(
        process_doc(
            "board",
            [
                step(
                    "directors",
                    [DIRECTORS],
                    mode="all",
                    on_reject=[{"type": "set_field", "field": "discount", "expression": "0"}],
                )
            ],
            on_reject=[{"type": "set_field", "field": "note", "expression": '"rejected"'}],
        )
    )
    deal = world.deal(discount=40)
    approval = world.submit("rep", deal["id"], "board")
    after_one = world.answer("dir1", approval["id"])
    assert after_one["status"] == "pending"
    assert world.holders(after_one) == {"dir2", "dir3"}
    rejected = world.answer("dir2", approval["id"], "reject", comment="too much")
    assert rejected["status"] == "rejected"
    assert world.holders(rejected, "cancelled") == {"dir3"}
    record = world.record(deal["id"])
    assert (record["discount"], record["note"]) == (0, "rejected")
    assert len(world.notifications("rep", "approval.rejected")) == 1
    world.answer("dir3", approval["id"], expect=409)


def test_all_mode_approves_when_everyone_has(world: World) -> None:
    world.process(process_doc("board", [step("directors", [DIRECTORS], mode="all")]))
    approval = world.submit("rep", world.deal()["id"], "board")
    for who in ("dir1", "dir2"):
        assert world.answer(who, approval["id"])["status"] == "pending"
    assert world.answer("dir3", approval["id"])["status"] == "approved"


def test_quorum_approves_at_n_and_rejects_once_n_is_out_of_reach(world: World) -> None:
    world.process(
        process_doc("two_of_three", [step("directors", [DIRECTORS], mode="quorum", quorum=2)])
    )
    first = world.submit("rep", world.deal()["id"], "two_of_three")
    assert world.answer("dir1", first["id"], "reject")["status"] == "pending"
    assert world.answer("dir2", first["id"])["status"] == "pending"
    assert world.answer("dir3", first["id"])["status"] == "approved"

    second = world.submit("rep", world.deal()["id"], "two_of_three")
    assert world.answer("dir1", second["id"], "reject")["status"] == "pending"
    done = world.answer("dir2", second["id"], "reject")
    assert done["status"] == "rejected"
    assert world.holders(done, "cancelled") == {"dir3"}


def test_steps_run_in_order_and_a_false_condition_skips_a_step_when_it_would_start(
    world: World,
) -> None:
    world.process(
        process_doc(
            "tiers",
            [
                step(
                    "manager",
                    [MANAGER],
                    on_approve=[{"type": "set_field", "field": "discount", "expression": "60"}],
                ),
                step("board", [DIRECTORS], condition="discount > 50"),
                step("head", [{"type": "org_unit_head"}], condition="discount > 90"),
            ],
        )
    )
    # At submission the board's condition is false; the manager's action makes it true.
    approval = world.submit("rep", world.deal(discount=10)["id"], "tiers")
    assert world.holders(approval) == {"mgr"}
    moved = world.answer("mgr", approval["id"])
    assert (moved["status"], moved["step_name"]) == ("pending", "board")
    assert world.holders(moved) == {"dir1", "dir2", "dir3"}
    done = world.answer("dir2", approval["id"])
    assert done["status"] == "approved"
    assert [e["step"] for e in done["log"] if e["action"] == "step_skipped"] == [2]
    assert [e["type"] for e in world.events()] == [
        "approval.submitted",
        "approval.step_approved",
        "approval.step_approved",
        "approval.approved",
    ]


# ---- refusals -------------------------------------------------------------------------------


def test_submissions_are_refused_with_the_reason(world: World) -> None:
    world.process(
        process_doc(
            "gated",
            [step("manager", [MANAGER])],
            entry_condition="discount >= 10",
            submitters=["rep"],
        )
    )
    world.process(process_doc("quorum", [step("directors", [DIRECTORS], mode="quorum", quorum=4)]))
    deal = world.deal(discount=20)
    path = f"{RECORDS}/deal/{deal['id']}/approvals"
    assert world.post("rep", path, {"process": "ghost"}).status_code == 404
    assert world.post("loner", path, {"process": "gated"}).status_code == 404
    assert world.post("outsider", path, {"process": "gated"}).status_code == 403
    assert world.post("dir1", path, {"process": "gated"}).status_code == 403
    assert field_errors(world.post("rep", path, {})) == {("process", "required")}
    assert field_errors(world.post("rep", path, {"process": "gated", "x": 1})) == {
        ("x", "unknown_field")
    }
    low = world.deal(discount=5)
    refused = world.post("rep", f"{RECORDS}/deal/{low['id']}/approvals", {"process": "gated"})
    assert field_errors(refused) == {("entry_condition", "entry_condition")}
    assert "discount >= 10" in refused.json()["errors"][0]["message"]
    lonely = world.deal("loner", discount=20)
    no_manager = world.post(
        "loner", f"{RECORDS}/deal/{lonely['id']}/approvals", {"process": "gated"}
    )
    assert field_errors(no_manager) == {("steps/0", "no_approver")}
    assert "manager" in no_manager.json()["errors"][0]["message"]
    unreachable = world.post("rep", path, {"process": "quorum"})
    assert field_errors(unreachable) == {("steps/0", "quorum_unreachable")}

    world.submit("rep", deal["id"], "gated")
    assert world.post("rep", path, {"process": "gated"}).status_code == 409
    # An admin may submit what the role list doesn't name; nothing changed by the refusals.
    world.submit("admin", low["id"], "gated", expect=422)
    assert world.get("rep", path).json()["data"][0]["status"] == "pending"
    assert len(world.get("rep", path).json()["data"]) == 1


def test_only_a_pending_holder_of_the_current_step_answers(world: World) -> None:
    world.process(process_doc("discount", [step("manager", [MANAGER])]))
    approval = world.submit("rep", world.deal()["id"], "discount")
    world.answer("dir1", approval["id"], expect=403)
    world.answer("rep", approval["id"], expect=403)
    world.answer("outsider", approval["id"], expect=404)
    world.answer("admin", approval["id"], expect=403)
    world.answer("mgr", approval["id"])
    world.answer("mgr", approval["id"], "reject", expect=409)
    assert world.post("mgr", f"{APPROVALS}/nope/approve").status_code == 404
    bad = world.post("mgr", f"{APPROVALS}/{approval['id']}/approve", {"comment": 5})
    assert field_errors(bad) == {("comment", "type")}


# ---- lock and recall ------------------------------------------------------------------------


def test_a_pending_approval_locks_the_record_except_for_admins(world: World) -> None:
    world.process(process_doc("discount", [step("manager", [MANAGER])]))
    deal = world.deal()
    path = f"{RECORDS}/deal/{deal['id']}"
    world.submit("rep", deal["id"], "discount")
    locked = world.patch("rep", path, {"note": "sneaky"})
    assert locked.status_code == 423, locked.text
    assert "Discount" in locked.json()["detail"] and "discount" in locked.json()["detail"]
    assert world.patch("mgr", path, {"note": "approver"}).status_code == 423
    assert world.patch("dir1", path, {"note": "director"}).status_code == 423
    assert world.delete("rep", path).status_code == 423
    assert world.patch("admin", path, {"note": "admin"}).status_code == 200
    assert world.record(deal["id"])["note"] == "admin"


def test_approver_may_edit_lets_only_the_current_steps_pending_approvers_edit(
    world: World,
) -> None:
    world.process(
        process_doc(
            "discount",
            [step("manager", [MANAGER]), step("board", [DIRECTORS])],
            lock={"approver_may_edit": True},
        )
    )
    deal = world.deal()
    path = f"{RECORDS}/deal/{deal['id']}"
    approval = world.submit("rep", deal["id"], "discount")
    assert world.patch("dir1", path, {"note": "not yet"}).status_code == 423
    assert world.patch("mgr", path, {"discount": 15}).status_code == 200
    world.answer("mgr", approval["id"])
    assert world.patch("mgr", path, {"discount": 16}).status_code == 423
    assert world.patch("dir1", path, {"discount": 12}).status_code == 200
    assert world.patch("rep", path, {"note": "owner"}).status_code == 423
    world.answer("dir2", approval["id"])
    assert world.patch("rep", path, {"note": "free again"}).status_code == 200


def test_the_submitter_recalls_and_the_approvers_tasks_end(world: World) -> None:
    world.process(
        process_doc(
            "discount",
            [step("manager", [MANAGER])],
            on_recall=[{"type": "notify", "to": ["approvers"], "message": {"en": "Recalled"}}],
        )
    )
    deal = world.deal()
    approval = world.submit("rep", deal["id"], "discount")
    recall = f"{APPROVALS}/{approval['id']}/recall"
    assert world.post("mgr", recall).status_code == 403
    assert world.post("outsider", recall).status_code == 404
    response = world.post("rep", recall, {"comment": "wrong numbers"})
    assert response.status_code == 200, response.text
    recalled = response.json()
    assert recalled["status"] == "recalled"
    assert world.holders(recalled, "cancelled") == {"mgr"}
    assert len(world.notifications("mgr", "approval.recalled")) == 1
    assert len(world.notifications("mgr", "approval.notice")) == 1
    assert world.post("rep", recall).status_code == 409
    world.answer("mgr", approval["id"], expect=409)
    assert world.patch("rep", f"{RECORDS}/deal/{deal['id']}", {"note": "x"}).status_code == 200
    assert world.events()[-1]["type"] == "approval.recalled"
    # Recalled, it may be submitted again; an admin may recall anyone's.
    again = world.submit("rep", deal["id"], "discount")
    assert world.post("admin", f"{APPROVALS}/{again['id']}/recall").status_code == 200


# ---- reading approvals ----------------------------------------------------------------------


def test_a_records_approvals_come_newest_first_and_only_to_its_readers(world: World) -> None:
    world.process(process_doc("discount", [step("manager", [MANAGER])]))
    deal = world.deal()
    first = world.submit("rep", deal["id"], "discount")
    world.answer("mgr", first["id"], "reject")
    second = world.submit("rep", deal["id"], "discount")
    path = f"{RECORDS}/deal/{deal['id']}/approvals"
    listed = world.get("rep", path).json()["data"]
    assert [a["id"] for a in listed] == [second["id"], first["id"]]
    assert listed[1]["tasks"][0]["status"] == "rejected"
    assert [e["action"] for e in listed[1]["log"]][:2] == ["submitted", "step_started"]
    assert world.get("loner", path).status_code == 404
    assert world.get("outsider", path).status_code == 403
    assert world.get("loner", f"{APPROVALS}/{first['id']}").status_code == 404
    assert world.get("outsider", f"{APPROVALS}/{first['id']}").status_code == 404
    assert world.get("mgr", f"{APPROVALS}/{first['id']}").json()["status"] == "rejected"


def test_the_inbox_lists_my_tasks_with_record_titles_where_i_may_read(world: World) -> None:
    world.process(
        process_doc(
            "discount",
            [step("review", [MANAGER, {"type": "user", "users": [world.ids["outsider"]]}])],
        )
    )
    deal = world.deal(name="Acme renewal")
    approval = world.submit("rep", deal["id"], "discount")
    mine = world.get("mgr", APPROVALS, params={"assigned_to": "me"}).json()["data"]
    assert [(t["approval"], t["record_title"], t["status"]) for t in mine] == [
        (approval["id"], "Acme renewal", "pending")
    ]
    assert mine[0]["process"] == "discount" and mine[0]["entity"] == "deal"
    assert mine[0]["record_id"] == deal["id"]
    # Notifications name the record by its title to whoever may read it, by its kind alone to
    # an approver who may not (a title is record data), and never by its id.
    [to_manager] = world.notifications("mgr", "approval.assigned")
    [to_outsider] = world.notifications("outsider", "approval.assigned")
    assert to_manager["body"] == "Step Review for Deal “Acme renewal”"
    assert to_outsider["body"] == "Step Review for Deal"
    assert deal["id"] not in to_manager["body"] + to_outsider["body"]
    # The item's id is what the decision endpoints take; its task is named apart.
    assert mine[0]["id"] == approval["id"]
    [task] = [t for t in approval["tasks"] if t["approver"] == world.ids["mgr"]]
    assert mine[0]["task"] == task["id"] != approval["id"]
    hidden = world.get("outsider", APPROVALS).json()["data"]
    assert [(t["record_id"], t["record_title"]) for t in hidden] == [(deal["id"], None)]
    world.answer("outsider", hidden[0]["id"])  # decided straight from the inbox item
    assert world.get("mgr", APPROVALS).json()["data"] == []
    cancelled = world.get("mgr", APPROVALS, params={"status": "all"}).json()["data"]
    assert [t["status"] for t in cancelled] == ["cancelled"]
    approved = world.get("outsider", APPROVALS, params={"status": "approved"}).json()["data"]
    assert [t["approval"] for t in approved] == [approval["id"]]
    assert world.get(
        "admin", APPROVALS, params={"assigned_to": world.ids["outsider"], "status": "all"}
    ).json()["data"]
    assert world.get("mgr", APPROVALS, params={"assigned_to": world.ids["rep"]}).status_code == 403
    assert world.get("mgr", APPROVALS, params={"status": "odd"}).status_code == 400


# ---- versions and auto-submission -----------------------------------------------------------


def test_editing_a_process_changes_new_submissions_only(world: World) -> None:
    doc = process_doc("discount", [step("manager", [MANAGER])])
    world.process(doc)
    running = world.submit("rep", world.deal()["id"], "discount")
    changed = {**doc, "steps": [step("board", [DIRECTORS])]}
    assert world.api.put(f"{PROCESSES}/discount", changed).status_code == 200
    fresh = world.submit("rep", world.deal()["id"], "discount")
    assert (running["process_version"], fresh["process_version"]) == (1, 2)
    assert world.holders(fresh) == {"dir1", "dir2", "dir3"}
    done = world.answer("mgr", running["id"])
    assert (done["status"], done["step_name"]) == ("approved", "manager")
    assert world.api.delete(f"{PROCESSES}/discount").status_code == 204
    assert world.answer("dir1", fresh["id"])["status"] == "approved"


def test_an_auto_process_submits_when_its_condition_becomes_true(world: World) -> None:
    world.process(
        process_doc(
            "big_discount",
            [step("manager", [MANAGER])],
            trigger="auto",
            auto_condition="discount > 20",
        )
    )
    created = world.deal(discount=30)
    path = f"{RECORDS}/deal/{created['id']}/approvals"
    found = world.get("rep", path).json()["data"]
    assert [(a["status"], a["submitted_by"]) for a in found] == [("pending", world.ids["rep"])]
    # Still pending: the condition turning true again submits nothing more.
    record = f"{RECORDS}/deal/{created['id']}"
    assert world.patch("admin", record, {"discount": 10}).status_code == 200
    assert world.patch("admin", record, {"discount": 40}).status_code == 200
    assert len(world.get("rep", path).json()["data"]) == 1

    small = world.deal(discount=5)
    small_path = f"{RECORDS}/deal/{small['id']}/approvals"
    assert world.get("rep", small_path).json()["data"] == []
    assert world.patch("rep", f"{RECORDS}/deal/{small['id']}", {"discount": 25}).status_code == 200
    assert [a["status"] for a in world.get("rep", small_path).json()["data"]] == ["pending"]
    # A write that keeps the condition true is not a new reason to submit.
    approval = world.get("rep", small_path).json()["data"][0]
    world.answer("mgr", approval["id"])
    assert world.patch("rep", f"{RECORDS}/deal/{small['id']}", {"discount": 26}).status_code == 200
    assert len(world.get("rep", small_path).json()["data"]) == 1


def test_an_auto_process_without_approvers_refuses_the_write(world: World) -> None:
    world.process(
        process_doc(
            "big_discount",
            [step("manager", [MANAGER])],
            trigger="auto",
            auto_condition="discount > 20",
        )
    )
    refused = world.post("loner", f"{RECORDS}/deal", {"name": "x", "discount": 50})
    assert field_errors(refused) == {("steps/0", "no_approver")}
    assert world.get("loner", f"{RECORDS}/deal").json()["data"] == []


def test_unused_api_fixture_guard(api: Api) -> None:
    """The approval routes answer problem+json to anonymous callers like every other route."""
    response = api.client.get(APPROVALS)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_later_step_left_without_approvers_goes_to_the_admins(world: World) -> None:
    world.process(
        process_doc(
            "late",
            [
                step(
                    "manager",
                    [MANAGER],
                    on_approve=[{"type": "set_field", "field": "discount", "expression": "60"}],
                ),
                step(
                    "reviewer", [{"type": "field", "field": "reviewer"}], condition="discount > 50"
                ),
            ],
        )
    )
    # No reviewer: fine at submission, where the reviewer step would be skipped.
    approval = world.submit("rep", world.deal(discount=10)["id"], "late")
    moved = world.answer("mgr", approval["id"])
    assert (moved["status"], moved["step_name"]) == ("pending", "reviewer")
    assert world.holders(moved) == {"admin"}
    assert [e["detail"] for e in moved["log"] if e["action"] == "no_approver"] == [
        {"assigned_to": [world.ids["admin"]]}
    ]
    assert world.answer("admin", approval["id"])["status"] == "approved"
