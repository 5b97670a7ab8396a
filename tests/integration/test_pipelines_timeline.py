"""A record's stage timeline and stage plan over HTTP on SQLite and PostgreSQL: what it shows,
who may read it and who may plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import Api
from sqlalchemy import select, update
from test_pipelines_common import DEALS, V1, errors, move, new_deal, setup, user_id

from metacrm.platform.db import reading, writing
from metacrm.platform.systables import stage_history, stage_plans

REP_ROLE = {
    "name": "rep",
    "label": {"en": "Rep"},
    "entities": {"deal": {"actions": {"read": "own", "create": "own", "update": "own"}}},
}
VIEWER_ROLE = {
    "name": "viewer",
    "label": {"en": "Viewer"},
    "entities": {"deal": {"actions": {"read": "all"}}},
}


def test_the_timeline_shows_the_current_stage_visits_and_plan(api: Api) -> None:
    setup(api)
    admin = user_id(api, api.token)
    deal = new_deal(api, next_step="call")
    for target in ("develop", "qualify", "develop"):
        assert move(api, deal["id"], stage=target).status_code == 200
    # The first visit to qualify lasted two days.
    with writing(api.engine) as conn:
        first = conn.execute(select(stage_history.c.id).order_by(stage_history.c.id)).first()
        assert first is not None
        exited = conn.execute(
            select(stage_history.c.exited_at).where(stage_history.c.id == first.id)
        ).scalar_one()
        conn.execute(
            update(stage_history)
            .where(stage_history.c.id == first.id)
            .values(entered_at=exited - timedelta(days=2))
        )
    planned = api.put(
        f"{DEALS}/{deal['id']}/stage-plan", {"proposal": "2027-02-01", "won": "2027-03-01"}
    )
    assert planned.status_code == 200, planned.text
    body = api.get(f"{DEALS}/{deal['id']}/stages").json()
    assert planned.json() == body
    assert (body["entity"], body["id"], body["pipeline"]) == ("deal", deal["id"], "sales")
    assert body["current"]["stage"] == "develop"
    assert body["current"]["days_in_stage"] == 0
    assert body["current"]["entered_at"] == body["history"][-1]["entered_at"]
    by_key = {s["key"]: s for s in body["stages"]}
    assert [s["key"] for s in body["stages"]] == ["qualify", "develop", "proposal", "won", "lost"]
    assert by_key["qualify"]["visits"] == 2 and by_key["develop"]["visits"] == 2
    assert 2.0 <= by_key["qualify"]["days_spent"] < 2.01
    assert by_key["qualify"]["target_days"] == 7
    assert by_key["qualify"]["first_entered_at"] == body["history"][0]["entered_at"]
    assert by_key["qualify"]["last_exited_at"] == body["history"][2]["exited_at"]
    assert by_key["develop"]["last_exited_at"] == body["history"][1]["exited_at"]
    assert (by_key["proposal"]["planned_date"], by_key["proposal"]["visits"]) == ("2027-02-01", 0)
    assert by_key["proposal"]["first_entered_at"] is None
    assert by_key["proposal"]["forecast_category"] == "best_case"
    assert (by_key["won"]["category"], by_key["won"]["probability"]) == ("won", 100)
    assert by_key["won"]["planned_date"] == "2027-03-01"
    assert [(h["stage"], h["entered_by"]) for h in body["history"]] == [
        ("qualify", admin),
        ("develop", admin),
        ("qualify", admin),
        ("develop", admin),
    ]
    assert body["history"][-1]["exited_at"] is None


def test_a_null_plan_date_removes_it_and_bad_plans_change_nothing(api: Api) -> None:
    setup(api)
    deal = new_deal(api)
    path = f"{DEALS}/{deal['id']}/stage-plan"
    assert api.put(path, {"proposal": "2027-02-01", "won": "2027-03-01"}).status_code == 200
    removed = api.put(path, {"proposal": None}).json()
    assert [(s["key"], s["planned_date"]) for s in removed["stages"] if s["planned_date"]] == [
        ("won", "2027-03-01")
    ]
    bad = api.put(path, {"nowhere": "2027-01-01", "won": "next week", "lost": "2027-01-01"})
    assert sorted(errors(bad)) == [("nowhere", "unknown_stage"), ("won", "format")]
    assert errors(api.put(path, ["won"])) == [("", "type")]
    with reading(api.engine) as conn:
        rows = conn.execute(select(stage_plans.c.stage, stage_plans.c.planned_date)).all()
    assert [(r.stage, r.planned_date.isoformat()) for r in rows] == [("won", "2027-03-01")]


def test_only_users_who_may_change_the_record_plan_it(api: Api) -> None:
    setup(api)
    for role in (REP_ROLE, VIEWER_ROLE):
        assert api.post(f"{V1}/meta/roles", role).status_code == 201
    owner = api.new_user("owner@example.com", roles=("rep",))
    viewer = api.new_user("viewer@example.com", roles=("viewer",))
    other_rep = api.new_user("other@example.com", roles=("rep",))
    deal = new_deal(api, owner)
    path = f"{DEALS}/{deal['id']}"
    plan = {"won": "2027-03-01"}
    assert (
        api.get(f"{path}/stages", headers={"Authorization": f"Bearer {viewer}"}).status_code == 200
    )
    refused = api.put(f"{path}/stage-plan", plan, headers={"Authorization": f"Bearer {viewer}"})
    assert refused.status_code == 403, refused.text
    allowed = api.put(f"{path}/stage-plan", plan, headers={"Authorization": f"Bearer {owner}"})
    assert allowed.status_code == 200, allowed.text
    # A rep who can't read someone else's deal learns nothing about it.
    for method, target in (("get", "stages"), ("put", "stage-plan")):
        kwargs = {"json": plan} if method == "put" else {}
        response = getattr(api, method)(
            f"{path}/{target}", headers={"Authorization": f"Bearer {other_rep}"}, **kwargs
        )
        assert response.status_code == 404, response.text
    with reading(api.engine) as conn:
        assert conn.execute(select(stage_plans.c.stage)).scalars().all() == ["won"]


def test_no_timeline_for_a_missing_record_or_an_entity_without_pipeline(api: Api) -> None:
    setup(api)
    assert api.get(f"{DEALS}/nope/stages").status_code == 404
    assert api.put(f"{DEALS}/nope/stage-plan", {"won": None}).status_code == 404
    task = api.post(f"{V1}/records/task", {"subject": "Call"}).json()
    assert api.get(f"{V1}/records/task/{task['id']}/stages").status_code == 404
    deal = new_deal(api)
    assert api.get(f"{DEALS}/{deal['id']}/stages", params={"pipeline": "other"}).status_code == 404
    assert api.delete(f"{DEALS}/{deal['id']}").status_code == 204
    assert api.get(f"{DEALS}/{deal['id']}/stages").status_code == 404


def test_days_in_stage_on_the_timeline_counts_calendar_days(api: Api) -> None:
    setup(api)
    deal = new_deal(api)
    with writing(api.engine) as conn:
        conn.execute(update(stage_history).values(entered_at=datetime.now(UTC) - timedelta(days=3)))
    assert api.get(f"{DEALS}/{deal['id']}/stages").json()["current"]["days_in_stage"] == 3
