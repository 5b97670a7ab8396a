"""Stage moves over HTTP on SQLite and PostgreSQL: gates, transitions, required fields, lost
reasons, stage history and events, the derived fields, probabilities and entry actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import Api
from sqlalchemy import update
from test_pipelines_common import (
    DEAL,
    DEALS,
    PIPELINES,
    TASK,
    V1,
    audit,
    errors,
    messages,
    move,
    new_deal,
    sales,
    setup,
    stage,
    stage_events,
    user_id,
    visits,
)

from metacrm.platform.db import writing
from metacrm.runtime.catalog import build_catalog


def test_a_gate_names_each_unmet_condition_and_changes_nothing(api: Api) -> None:
    setup(api)
    deal = new_deal(api)
    refused = move(api, deal["id"], stage="proposal")
    assert errors(refused) == [("stage", "gate"), ("stage", "gate")]
    assert messages(refused) == [
        "entering Proposal needs amount > 0",
        "entering Proposal needs close_date is not null",
    ]
    half = move(api, deal["id"], stage="proposal", amount="10")
    assert messages(half) == ["entering Proposal needs close_date is not null"]
    current = api.get(f"{DEALS}/{deal['id']}").json()
    assert (current["stage"], current["version"], current["amount"]) == ("qualify", 1, None)
    assert [v["stage"] for v in visits(api, deal["id"])] == ["qualify"]
    moved = move(api, deal["id"], stage="proposal", amount="10", close_date="2027-01-31")
    assert moved.status_code == 200, moved.text
    assert moved.json()["stage"] == "proposal"


def test_a_gate_applies_to_the_stage_a_record_is_created_in(api: Api) -> None:
    setup(api)
    refused = api.post(DEALS, {"name": "Big", "stage": "proposal", "amount": "5"})
    assert messages(refused) == ["entering Proposal needs close_date is not null"]
    assert api.get(DEALS).json()["data"] == []


def test_without_transitions_any_move_forward_and_back_is_allowed(api: Api) -> None:
    setup(api)
    deal = new_deal(api, next_step="call")
    for target in ("won", "develop", "qualify", "develop"):
        response = move(api, deal["id"], stage=target)
        assert response.status_code == 200, (target, response.text)
    assert [v["stage"] for v in visits(api, deal["id"])] == [
        "qualify",
        "won",
        "develop",
        "qualify",
        "develop",
    ]


def test_restricted_transitions_allow_only_the_listed_moves(api: Api) -> None:
    setup(
        api,
        sales(
            transitions=[
                {"from": "qualify", "to": ["develop", "lost"]},
                {"from": "develop", "to": ["qualify", "won"]},
            ]
        ),
    )
    deal = new_deal(api, next_step="call")
    refused = move(api, deal["id"], stage="won")
    assert errors(refused) == [("stage", "transition")]
    assert "may move to develop, lost" in messages(refused)[0]
    assert move(api, deal["id"], stage="develop").status_code == 200
    assert move(api, deal["id"], stage="qualify").status_code == 200
    assert move(api, deal["id"], stage="develop").status_code == 200
    assert move(api, deal["id"], stage="won").status_code == 200
    dead_end = move(api, deal["id"], stage="develop")
    assert errors(dead_end) == [("stage", "transition")]
    assert "may move to nowhere" in messages(dead_end)[0]
    # Other fields of a record in a dead-end stage still change.
    assert move(api, deal["id"], next_step="celebrate").status_code == 200


def test_every_unmet_condition_is_reported_at_once(api: Api) -> None:
    setup(api, sales(transitions=[{"from": "qualify", "to": ["develop"]}]))
    deal = new_deal(api)
    refused = move(api, deal["id"], stage="proposal")
    assert sorted(errors(refused)) == [
        ("stage", "gate"),
        ("stage", "gate"),
        ("stage", "transition"),
    ]
    required = move(api, deal["id"], stage="develop")
    assert errors(required) == [("next_step", "required_for_stage")]
    assert messages(required) == ["is required to enter Develop"]
    assert api.get(f"{DEALS}/{deal['id']}").json()["version"] == 1


def test_entering_a_lost_stage_needs_a_lost_reason(api: Api) -> None:
    setup(api)
    deal = new_deal(api)
    refused = move(api, deal["id"], stage="lost")
    assert errors(refused) == [("lost_reason", "lost_reason")]
    assert move(api, deal["id"], stage="lost", lost_reason="").status_code == 422
    lost = move(api, deal["id"], stage="lost", lost_reason="price")
    assert lost.status_code == 200, lost.text
    assert (lost.json()["stage"], lost.json()["lost_reason"]) == ("lost", "price")


def test_history_records_each_entry_and_exit_with_its_user_and_publishes_events(
    api: Api,
) -> None:
    setup(api)
    rep = api.new_user("rep@example.com", admin=True)
    admin_id, rep_id = user_id(api, api.token), user_id(api, rep)
    deal = new_deal(api, next_step="call")
    assert move(api, deal["id"], rep, stage="develop").status_code == 200
    assert move(api, deal["id"], stage="won").status_code == 200
    rows = visits(api, deal["id"])
    assert [(r["stage"], r["entered_by"], r["exited_by"]) for r in rows] == [
        ("qualify", admin_id, rep_id),
        ("develop", rep_id, admin_id),
        ("won", admin_id, None),
    ]
    assert rows[0]["exited_at"] is not None and rows[2]["exited_at"] is None
    assert rows[1]["entered_at"] == rows[0]["exited_at"]
    assert all(r["pipeline"] == "sales" and r["entity"] == "deal" for r in rows)
    published = stage_events(api)
    assert [(e["payload"]["from"], e["payload"]["to"], e["actor"]) for e in published] == [
        (None, "qualify", admin_id),
        ("qualify", "develop", rep_id),
        ("develop", "won", admin_id),
    ]
    assert published[2]["payload"] == {
        "entity": "deal",
        "id": deal["id"],
        "pipeline": "sales",
        "from": "develop",
        "to": "won",
        "category": "won",
    }
    # A write that leaves the stage alone is no move.
    assert move(api, deal["id"], next_step="send contract").status_code == 200
    assert len(visits(api, deal["id"])) == 3 and len(stage_events(api)) == 3


def test_stage_entered_at_and_days_in_stage_follow_moves_and_filter(api: Api) -> None:
    setup(api)
    old, fresh = new_deal(api, name="Old"), new_deal(api, name="Fresh")
    assert old["days_in_stage"] == 0 and old["stage_entered_at"] == old["created_at"]
    # Pretend the old deal entered its stage five days ago.
    five_days_ago = datetime.now(UTC) - timedelta(days=5)
    with writing(api.engine) as conn:
        table = build_catalog(conn, 0).table("deal")
        conn.execute(
            update(table).where(table.c.id == old["id"]).values(stage_entered_at=five_days_ago)
        )
    stale = api.get(DEALS, params={"filter": "days_in_stage >= 5"}).json()["data"]
    assert [d["id"] for d in stale] == [old["id"]]
    ordered = api.get(DEALS, params={"sort": "stage_entered_at"}).json()["data"]
    assert [d["id"] for d in ordered] == [old["id"], fresh["id"]]
    moved = move(api, old["id"], stage="won").json()
    assert moved["days_in_stage"] == 0 and moved["stage_entered_at"] == moved["updated_at"]
    assert api.get(DEALS, params={"filter": "days_in_stage >= 5"}).json()["data"] == []
    # The field is the platform's: nobody writes it.
    assert errors(move(api, old["id"], stage_entered_at="2020-01-01T00:00:00Z")) == [
        ("stage_entered_at", "read_only")
    ]


def test_probability_takes_the_stage_default_unless_the_write_sets_it(api: Api) -> None:
    setup(api)
    assert new_deal(api)["probability"] == 10
    assert new_deal(api, probability=25)["probability"] == 25
    deal = new_deal(api, next_step="call")
    assert move(api, deal["id"], stage="develop").json()["probability"] == 30
    assert move(api, deal["id"], stage="won", probability=90).json()["probability"] == 90
    # Changing the probability alone is no move: it stays as set.
    assert move(api, deal["id"], probability=95).json()["probability"] == 95


def test_set_field_and_create_record_actions_run_on_entry(api: Api) -> None:
    actions = [
        {"type": "set_field", "field": "next_step", "expression": 'concat("Send to ", name)'},
        {
            "type": "create_record",
            "entity": "task",
            "values": {
                "subject": 'concat("Follow up ", name)',
                "due": "add_days(close_date, -7)",
                "deal": "id",
            },
        },
    ]
    doc = sales()
    doc["stages"][2] = stage(
        "proposal", probability=60, entry_condition="amount > 0", actions=actions
    )
    setup(api, doc)
    rep = api.new_user("rep@example.com", admin=True)
    deal = new_deal(api, name="Acme")
    moved = move(api, deal["id"], rep, stage="proposal", amount="100", close_date="2027-03-10")
    assert moved.status_code == 200, moved.text
    assert moved.json()["next_step"] == "Send to Acme"
    tasks = api.get(f"{V1}/records/task").json()["data"]
    assert [(t["subject"], t["due"], t["deal"]) for t in tasks] == [
        ("Follow up Acme", "2027-03-03", deal["id"])
    ]
    # The task went through the record service: audited, made by the user who moved the deal.
    rep_id = user_id(api, rep)
    assert tasks[0]["created_by"] == rep_id
    assert [a["action"] for a in audit(api, tasks[0]["id"])] == ["create"]
    # Leaving and re-entering runs the actions again; staying doesn't.
    assert move(api, deal["id"], next_step="call").status_code == 200
    assert len(api.get(f"{V1}/records/task").json()["data"]) == 1


def test_a_failing_entry_action_refuses_the_move_naming_the_field(api: Api) -> None:
    doc = sales()
    doc["stages"][1] = stage(
        "develop",
        probability=30,
        actions=[{"type": "create_record", "entity": "task", "values": {"subject": "name"}}],
    )
    doc["stages"][3] = stage(
        "won",
        "won",
        100,
        actions=[{"type": "set_field", "field": "next_step", "expression": "concat(name, name)"}],
    )
    setup(api, doc)
    deal = new_deal(api, name="n" * 200)
    too_long = move(api, deal["id"], stage="won")
    assert errors(too_long) == [("next_step", "stage_action")]
    assert messages(too_long)[0].startswith("entering Won: ")
    # The task's subject holds at most 100 characters: the created record is validated too.
    long_subject = move(api, deal["id"], stage="develop")
    assert errors(long_subject) == [("task.subject", "max_length")]
    current = api.get(f"{DEALS}/{deal['id']}").json()
    assert (current["stage"], current["version"]) == ("qualify", 1)
    assert api.get(f"{V1}/records/task").json()["data"] == []
    assert move(api, deal["id"], stage="develop", name="Short").status_code == 200
    assert len(api.get(f"{V1}/records/task").json()["data"]) == 1


def test_start_approval_action_submits_the_record_as_the_process(api: Api) -> None:
    """Entering the stage submits the record to the approval process, acting for the process
    (a rep who may not submit still starts it, in their name), and only on entry."""
    api.make_entity(DEAL)
    api.make_entity(TASK)
    admin = user_id(api, api.token)
    process = {
        "name": "discount",
        "label": {"en": "Discount"},
        "entity": "deal",
        "trigger": "manual",
        "submitters": ["nobody_holds_this"],
        "steps": [
            {
                "name": "boss",
                "label": {"en": "Boss"},
                "mode": "any",
                "approvers": [{"type": "user", "users": [admin]}],
            }
        ],
    }
    role = {
        "name": "rep",
        "label": {"en": "Rep"},
        "entities": {"deal": {"actions": {"read": "own", "create": "own", "update": "own"}}},
    }
    assert api.post(f"{V1}/meta/roles", role).status_code == 201
    role_only = {**role, "name": "nobody_holds_this", "label": {"en": "Nobody"}}
    assert api.post(f"{V1}/meta/roles", role_only).status_code == 201
    assert api.post(f"{V1}/meta/approval-processes", process).status_code == 201
    doc = sales()
    doc["stages"][3] = stage(
        "won", "won", 100, actions=[{"type": "start_approval", "process": "discount"}]
    )
    assert api.post(PIPELINES, doc).status_code == 201
    rep_token = api.new_user("rep@example.com", roles=("rep",))
    rep = user_id(api, rep_token)
    deal = new_deal(api, rep_token)
    approvals_of = f"{DEALS}/{deal['id']}/approvals"
    assert api.get(approvals_of).json()["data"] == []
    assert move(api, deal["id"], rep_token, stage="won").status_code == 200
    [started] = api.get(approvals_of).json()["data"]
    assert (started["process"], started["status"], started["submitted_by"]) == (
        "discount",
        "pending",
        rep,
    )
    # A later write that doesn't enter the stage starts nothing (an admin's: the record is
    # locked for the rep while the approval is pending).
    assert move(api, deal["id"], rep_token, next_step="party").status_code == 423
    assert move(api, deal["id"], next_step="party").status_code == 200
    assert len(api.get(approvals_of).json()["data"]) == 1


def test_a_record_created_in_no_stage_enters_none(api: Api) -> None:
    doc = api.make_entity(
        {
            "name": "lead",
            "label": {"en": "Lead"},
            "fields": [{"name": "status", "type": "picklist", "options": [{"value": "new"}]}],
        }
    )
    assert doc["name"] == "lead"
    pipeline = {
        "name": "leads",
        "label": {"en": "Leads"},
        "entity": "lead",
        "field": "status",
        "stages": [stage("new"), stage("done", "won", 100)],
    }
    assert api.post(PIPELINES, pipeline).status_code == 201
    lead = api.post(f"{V1}/records/lead", {}).json()
    assert lead["status"] is None and lead["stage_entered_at"] is None
    assert visits(api, lead["id"]) == [] and stage_events(api) == []
    entered = api.patch(f"{V1}/records/lead/{lead['id']}", {"status": "new"}).json()
    assert entered["stage_entered_at"] is not None
    assert [(e["payload"]["from"], e["payload"]["to"]) for e in stage_events(api)] == [
        (None, "new")
    ]


def test_start_approval_action_submits_through_the_approval_engine(api: Api) -> None:
    """Needs metacrm.runtime.approvals (written alongside): end to end, entering the stage
    leaves the record with a pending approval of the named process."""
    doc = sales()
    doc["stages"][3] = stage(
        "won", "won", 100, actions=[{"type": "start_approval", "process": "discount"}]
    )
    setup(api, doc)
    approver = user_id(api, api.new_user("boss@example.com", admin=True))
    process = {
        "name": "discount",
        "label": {"en": "Discount"},
        "entity": "deal",
        "steps": [
            {
                "name": "review",
                "label": {"en": "Review"},
                "approvers": [{"type": "user", "users": [approver]}],
            }
        ],
    }
    created = api.post(f"{V1}/meta/approval-processes", process)
    assert created.status_code == 201, created.text
    deal = new_deal(api)
    assert api.get(f"{DEALS}/{deal['id']}/approvals").json()["data"] == []
    assert move(api, deal["id"], stage="won").status_code == 200, "entering won"
    found = api.get(f"{DEALS}/{deal['id']}/approvals").json()["data"]
    assert [(a["process"], a["status"]) for a in found] == [("discount", "pending")]


def test_a_gate_can_ask_for_time_spent_in_the_stage_being_left(api: Api) -> None:
    doc = sales()
    doc["stages"][3] = stage("won", "won", 100, entry_condition="days_in_stage >= 2")
    setup(api, doc)
    deal = new_deal(api)
    assert messages(move(api, deal["id"], stage="won")) == ["entering Won needs days_in_stage >= 2"]
    with writing(api.engine) as conn:
        table = build_catalog(conn, 0).table("deal")
        two_days_ago = datetime.now(UTC) - timedelta(days=2)
        conn.execute(
            update(table).where(table.c.id == deal["id"]).values(stage_entered_at=two_days_ago)
        )
    won = move(api, deal["id"], stage="won")
    assert won.status_code == 200, won.text
    assert won.json()["days_in_stage"] == 0


def test_entry_actions_that_trigger_each_other_forever_are_refused(api: Api) -> None:
    # Entering develop creates a deal in develop, which enters develop, which creates …
    doc = sales()
    doc["stages"][1] = stage(
        "develop",
        probability=30,
        actions=[
            {
                "type": "create_record",
                "entity": "deal",
                "values": {"name": "name", "stage": '"develop"', "next_step": '"again"'},
            }
        ],
    )
    setup(api, doc)
    deal = new_deal(api, name="Acme")
    refused = move(api, deal["id"], stage="develop", next_step="call")
    assert refused.status_code == 422, refused.text
    assert "levels deep" in refused.text
    # Nothing of the chain was kept: one deal, still where it was.
    deals = api.get(DEALS).json()["data"]
    assert [(d["id"], d["stage"]) for d in deals] == [(deal["id"], "qualify")]
