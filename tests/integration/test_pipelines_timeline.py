"""A record's stage timeline and stage plan over HTTP on SQLite and PostgreSQL: what it shows,
who may read it and who may plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import Api
from sqlalchemy import select, update
from test_pipelines_common import (
    DEALS,
    PIPELINES,
    SALES,
    V1,
    errors,
    move,
    new_deal,
    setup,
    user_id,
)

from metacrm.platform.clock import as_utc
from metacrm.platform.db import reading, writing
from metacrm.platform.systables import record_history, stage_history, stage_plans

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


def test_a_pipeline_put_on_live_records_starts_from_their_history(api: Api) -> None:
    """Records already in a stage get `stage_entered_at` and an open visit from the last change
    of the field (or their creation), so days in stage and the timeline are true at once."""
    setup(api, {})  # the entities, no pipeline yet
    rep_token = api.new_user("rep@example.com", admin=True)
    rep = user_id(api, rep_token)
    untouched = new_deal(api)
    moved = new_deal(api)
    assert move(api, moved["id"], stage="closed").status_code == 200
    assert move(api, moved["id"], rep_token, stage="qualify").status_code == 200
    renamed = new_deal(api)
    assert move(api, renamed["id"], name="Renamed").status_code == 200  # not a stage change
    # Time passes: the records were made and moved five days before the pipeline comes.
    earlier = timedelta(days=5)
    with writing(api.engine) as conn:
        # In Python: SQLite can't subtract an interval from its stored timestamps.
        for row in conn.execute(select(record_history.c.id, record_history.c.changed_at)).all():
            conn.execute(
                update(record_history)
                .where(record_history.c.id == row.id)
                .values(changed_at=row.changed_at - earlier)
            )
        table = api.services.catalog(conn).table("deal")
        for row in conn.execute(select(table.c.id, table.c.created_at)).all():
            conn.execute(
                update(table)
                .where(table.c.id == row.id)
                .values(created_at=row.created_at - earlier)
            )
    created = api.post(PIPELINES, SALES)
    assert created.status_code == 201, created.text

    def entered(deal: dict[str, Any]) -> tuple[str, str, int]:
        record = api.get(f"{DEALS}/{deal['id']}").json()
        return record["stage"], record["stage_entered_at"], record["days_in_stage"]

    with reading(api.engine) as conn:
        changes: dict[tuple[str, str], Any] = {}
        for row in conn.execute(
            select(record_history)
            .where(record_history.c.entity == "deal")
            .order_by(record_history.c.id)
        ):
            changes[(row.record_id, row.action)] = row  # the last of each kind
    moved_at = iso(changes[(moved["id"], "update")].changed_at)  # back to qualify, by the rep
    assert entered(moved) == ("qualify", moved_at, 5)
    for deal in (untouched, renamed):
        assert entered(deal) == ("qualify", iso(changes[(deal["id"], "create")].changed_at), 5)
    timeline = api.get(f"{DEALS}/{moved['id']}/stages").json()
    assert [(h["stage"], h["entered_at"], h["entered_by"]) for h in timeline["history"]] == [
        ("qualify", moved_at, rep)
    ]
    assert timeline["current"]["stage"] == "qualify"
    # Putting the pipeline back after a delete finds the open visits and adds none.
    assert api.delete(f"{PIPELINES}/sales").status_code == 204
    assert api.post(PIPELINES, SALES).status_code == 201
    again = api.get(f"{DEALS}/{moved['id']}/stages").json()
    assert [h["stage"] for h in again["history"]] == ["qualify"]


def iso(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")
