"""Designing pipelines over HTTP on SQLite and PostgreSQL: the entity follows (options, derived
fields), removed stages need a mapping for the records in them, validation reports every
problem with a pointer, and versions restore."""

from __future__ import annotations

import copy
from typing import Any

from conftest import Api
from sqlalchemy import select
from test_pipelines_common import (
    DEAL,
    DEALS,
    PIPELINES,
    SALES,
    V1,
    audit,
    errors,
    move,
    new_deal,
    sales,
    setup,
    stage,
    stage_events,
    user_id,
    visits,
)

from metacrm.platform.db import reading
from metacrm.platform.systables import events, meta_versions

ENTITY = f"{V1}/meta/entities/deal"


def field(entity: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((f for f in entity["fields"] if f["name"] == name), None)


def test_creating_a_pipeline_makes_its_stages_the_options_and_adds_derived_fields(
    api: Api,
) -> None:
    setup(api)
    entity = api.get(ENTITY).json()
    stage_field = field(entity, "stage")
    assert stage_field is not None
    assert stage_field["options"] == [
        {"value": "qualify", "label": {"en": "Qualify"}, "color": "#aaa"},
        {"value": "develop", "label": {"en": "Develop"}},
        {"value": "proposal", "label": {"en": "Proposal"}},
        {"value": "won", "label": {"en": "Won"}},
        {"value": "lost", "label": {"en": "Lost"}},
    ]
    entered = field(entity, "stage_entered_at")
    days = field(entity, "days_in_stage")
    assert entered is not None and (entered["type"], entered["read_only"]) == ("datetime", True)
    assert days is not None and (days["type"], days["result_type"]) == ("formula", "integer")
    listed = api.get(PIPELINES).json()["data"]
    assert listed == [
        {
            "name": "sales",
            "label": {"en": "Sales"},
            "entity": "deal",
            "field": "stage",
            "stages": ["qualify", "develop", "proposal", "won", "lost"],
            "version": 1,
        }
    ]
    got = api.get(f"{PIPELINES}/sales").json()
    assert got["version"] == 1 and got["stages"][0]["key"] == "qualify"
    # A replace that changes nothing of the entity leaves the entity's version alone.
    version = entity["version"]
    doc = sales(description="Our sales process")
    assert api.put(f"{PIPELINES}/sales", doc).status_code == 200
    assert api.get(ENTITY).json()["version"] == version


def test_fields_of_the_derived_names_are_kept_when_their_type_fits(api: Api) -> None:
    own = {"name": "stage_entered_at", "type": "datetime", "label": {"en": "In stage since"}}
    api.make_entity({**DEAL, "fields": [*DEAL["fields"], own]})
    assert api.post(PIPELINES, sales()).status_code == 201
    assert field(api.get(ENTITY).json(), "stage_entered_at") == own


def test_fields_of_the_derived_names_with_the_wrong_type_are_refused(api: Api) -> None:
    wrong = {"name": "days_in_stage", "type": "text"}
    api.make_entity({**DEAL, "fields": [*DEAL["fields"], wrong]})
    refused = api.post(PIPELINES, sales())
    assert errors(refused) == [("/entity", "derived_field")]
    assert (
        "days_in_stage must be a formula giving integer" in refused.json()["errors"][0]["message"]
    )
    assert api.get(f"{PIPELINES}/sales").status_code == 404


def test_validation_reports_every_problem_with_its_pointer(api: Api) -> None:
    setup(api)
    duplicate = sales(name="again")
    assert errors(api.post(PIPELINES, duplicate)) == [("/field", "duplicate")]
    doc = sales(
        name="broken",
        field="amount",
        lost_reason_field="amount",
        probability_field="name",
        transitions=[
            {"from": "qualify", "to": ["develop", "nowhere"]},
            {"from": "ghost", "to": []},
            {"from": "qualify", "to": []},
        ],
    )
    doc["stages"] = [
        stage("qualify", entry_condition="amount > "),
        stage("develop", entry_condition="amount + 1", required_fields=["nope", "days_in_stage"]),
        stage(
            "develop",
            actions=[
                {"type": "set_field", "field": "stage", "expression": '"won"'},
                {"type": "set_field", "field": "probability", "expression": '"high"'},
                {"type": "create_record", "entity": "nothing", "values": {}},
                {"type": "create_record", "entity": "task", "values": {"bogus": "1", "due": "1"}},
            ],
        ),
        stage(" ", "won", 100),
    ]
    # Problems with the fields the pipeline names come first, on their own.
    assert sorted(errors(api.post(PIPELINES, doc))) == [
        ("/field", "not_picklist"),
        ("/lost_reason_field", "field_type"),
        ("/probability_field", "field_type"),
    ]
    doc.update(lost_reason_field="lost_reason", probability_field="probability", field="stage")
    assert api.delete(f"{PIPELINES}/sales").status_code == 204
    assert sorted(errors(api.post(PIPELINES, doc))) == [
        ("/stages/0/entry_condition", "expression"),
        ("/stages/1/entry_condition", "expression"),
        ("/stages/1/required_fields/0", "unknown_field"),
        ("/stages/1/required_fields/1", "unknown_field"),
        ("/stages/2/actions/0/field", "unknown_field"),
        ("/stages/2/actions/1/expression", "expression"),
        ("/stages/2/actions/2/entity", "unknown_entity"),
        ("/stages/2/actions/3/values/bogus", "unknown_field"),
        ("/stages/2/actions/3/values/due", "expression"),
        ("/stages/2/key", "duplicate"),
        ("/stages/3/key", "empty"),
        ("/transitions/0/to/1", "unknown_stage"),
        ("/transitions/1/from", "unknown_stage"),
        ("/transitions/2/from", "duplicate"),
    ]
    assert api.get(PIPELINES).json()["data"] == []


def test_schema_errors_come_with_pointers_beside_the_meaning_checks(api: Api) -> None:
    setup(api, {})
    doc = sales(stages=[stage("a", "maybe", 101), {"key": "b"}])
    doc["stages"][0]["actions"] = [{"type": "start_approval"}, {"type": "explode"}]
    found = errors(api.post(PIPELINES, doc))
    assert set(found) >= {
        ("/stages/0/category", "enum"),
        ("/stages/0/probability", "maximum"),
        ("/stages/0/actions/0", "required"),
        ("/stages/0/actions/1/type", "enum"),
        ("/stages/1", "required"),
    }
    assert errors(api.post(PIPELINES, sales(stages=[]))) == [("/stages", "minItems")]
    assert errors(api.post(PIPELINES, sales(entity="nothing"))) == [("/entity", "unknown_entity")]
    assert errors(api.post(PIPELINES, sales(field="nothing"))) == [("/field", "unknown_field")]
    assert errors(api.post(PIPELINES, sales(field="name"))) == [("/field", "not_picklist")]
    assert api.get(PIPELINES).json()["data"] == []


def test_removing_a_stage_with_records_and_no_mapping_changes_nothing(api: Api) -> None:
    setup(api)
    in_develop = [new_deal(api, next_step="call") for _ in range(3)]
    for deal in in_develop:
        assert move(api, deal["id"], stage="develop").status_code == 200
    assert api.delete(f"{DEALS}/{in_develop[0]['id']}").status_code == 204
    entity_before = api.get(ENTITY).json()
    rows_before = api.get(DEALS, params={"sort": "id"}).json()["data"]
    doc = sales()
    doc["stages"] = [s for s in doc["stages"] if s["key"] != "develop"]
    refused = api.put(f"{PIPELINES}/sales", doc)
    assert errors(refused) == [("/stage_mapping/develop", "stage_in_use")]
    message = refused.json()["errors"][0]["message"]
    assert message.startswith("3 deal record(s) are in stage 'develop' (e.g. ")
    assert all(d["id"] in message for d in in_develop)
    bad_target = api.put(f"{PIPELINES}/sales", {**doc, "stage_mapping": {"develop": "gone"}})
    assert errors(bad_target) == [("/stage_mapping/develop", "unknown_stage")]
    kept = api.put(f"{PIPELINES}/sales", {**doc, "stage_mapping": {"won": "x"}})
    assert sorted(errors(kept)) == [
        ("/stage_mapping/develop", "stage_in_use"),
        ("/stage_mapping/won", "not_removed"),
        ("/stage_mapping/won", "unknown_stage"),
    ]
    not_a_map = api.put(f"{PIPELINES}/sales", {**doc, "stage_mapping": ["develop"]})
    assert errors(not_a_map) == [("/stage_mapping", "type")]
    assert api.get(f"{PIPELINES}/sales").json()["version"] == 1
    assert api.get(ENTITY).json() == entity_before
    assert api.get(DEALS, params={"sort": "id"}).json()["data"] == rows_before
    assert all(len(visits(api, d["id"])) == 2 for d in in_develop)


def test_removing_a_stage_with_a_mapping_moves_live_and_deleted_records(api: Api) -> None:
    setup(api)
    admin = user_id(api, api.token)
    moved = [new_deal(api, next_step="call") for _ in range(2)]
    for deal in moved:
        assert move(api, deal["id"], stage="develop").status_code == 200
    stays = new_deal(api)
    assert api.delete(f"{DEALS}/{moved[1]['id']}").status_code == 204
    doc = sales()
    # Rename develop to build: remove one, add the other, map between them.
    doc["stages"][1] = stage("build", probability=40)
    response = api.put(f"{PIPELINES}/sales", {**doc, "stage_mapping": {"develop": "build"}})
    assert response.status_code == 200, response.text
    assert "stage_mapping" not in response.json() and response.json()["version"] == 2
    options = [o["value"] for o in field(api.get(ENTITY).json(), "stage")["options"]]
    assert options == ["qualify", "build", "proposal", "won", "lost"]
    live = api.get(f"{DEALS}/{moved[0]['id']}").json()
    assert (live["stage"], live["version"], live["updated_by"]) == ("build", 3, admin)
    assert live["stage_entered_at"] == live["updated_at"]
    assert api.get(f"{DEALS}/{stays['id']}").json()["version"] == 1
    assert api.post(f"{DEALS}/{moved[1]['id']}/restore").json()["stage"] == "build"
    for deal, version in zip(moved, (3, 4), strict=True):
        mapped = [
            a for a in audit(api, deal["id"]) if a["changes"].get("stage", [0])[0] == "develop"
        ]
        assert [(a["action"], a["version"], a["changed_by"]) for a in mapped] == [
            ("update", version, admin)
        ]
        assert mapped[0]["changes"]["stage"] == ["develop", "build"]
        assert [(v["stage"], v["exited_by"]) for v in visits(api, deal["id"])] == [
            ("qualify", admin),
            ("develop", admin),
            ("build", None),
        ]
    # Consumers hear of each moved record as if it had been moved by hand.
    mapped_events = [e for e in stage_events(api) if e["payload"]["to"] == "build"]
    assert sorted(e["record_id"] for e in mapped_events) == sorted(d["id"] for d in moved)
    assert {(e["payload"]["from"], e["payload"]["category"]) for e in mapped_events} == {
        ("develop", "open")
    }
    with reading(api.engine) as conn:
        updated = conn.execute(
            select(events.c.payload).where(
                events.c.type == "record.updated", events.c.record_id == moved[0]["id"]
            )
        ).scalars()
        payloads = [p for p in updated if "stage" in p["changes"]]
    assert payloads[-1]["changes"]["stage"] == ["develop", "build"]
    assert payloads[-1]["record"]["stage"] == "build"
    # The records now move on through the new stage as usual.
    assert move(api, moved[0]["id"], stage="won").status_code == 200


def test_the_field_default_follows_the_mapping(api: Api) -> None:
    setup(api)
    deal = new_deal(api, next_step="call")
    doc = sales()
    doc["stages"][0] = stage("discover")
    response = api.put(f"{PIPELINES}/sales", {**doc, "stage_mapping": {"qualify": "develop"}})
    assert response.status_code == 200, response.text
    assert field(api.get(ENTITY).json(), "stage")["default"] == "develop"
    assert api.get(f"{DEALS}/{deal['id']}").json()["stage"] == "develop"


def test_deleting_a_pipeline_leaves_field_and_data_and_restore_brings_it_back(api: Api) -> None:
    setup(api)
    deal = new_deal(api, next_step="call")
    entity_before = api.get(ENTITY).json()
    assert api.delete(f"{PIPELINES}/sales").status_code == 204
    assert api.get(f"{PIPELINES}/sales").status_code == 404
    assert api.get(ENTITY).json() == entity_before
    # Without the pipeline nothing gates the field.
    assert move(api, deal["id"], stage="proposal").status_code == 200
    restored = api.post(f"{PIPELINES}/sales/versions/1/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["version"] == 3
    versions = api.get(f"{PIPELINES}/sales/versions").json()["data"]
    assert [(v["version"], v["action"]) for v in versions] == [
        (3, "restore"),
        (2, "delete"),
        (1, "create"),
    ]
    assert move(api, deal["id"], stage="develop").status_code == 200
    assert errors(move(api, deal["id"], stage="proposal")) == [("stage", "gate"), ("stage", "gate")]


def test_restoring_a_version_whose_stages_no_longer_hold_the_records_is_refused(
    api: Api,
) -> None:
    setup(api)
    doc = sales()
    doc["stages"].append(stage("parked"))
    assert api.put(f"{PIPELINES}/sales", doc).status_code == 200
    deal = new_deal(api)
    assert move(api, deal["id"], stage="parked").status_code == 200
    refused = api.post(f"{PIPELINES}/sales/versions/1/restore")
    assert errors(refused) == [("/stage_mapping/parked", "stage_in_use")]
    assert api.get(f"{PIPELINES}/sales").json()["version"] == 2
    with reading(api.engine) as conn:
        kinds = conn.execute(select(meta_versions.c.kind, meta_versions.c.version)).all()
    assert ("pipeline", 3) not in kinds


def test_only_admins_design_pipelines(api: Api) -> None:
    setup(api)
    user = api.new_user("someone@example.com")
    headers = {"Authorization": f"Bearer {user}"}
    assert api.get(PIPELINES, headers=headers).status_code == 403
    assert api.post(PIPELINES, sales(name="mine"), headers=headers).status_code == 403
    assert api.delete(f"{PIPELINES}/sales", headers=headers).status_code == 403
    assert api.get(f"{PIPELINES}/sales").status_code == 200


def test_the_entity_api_cannot_take_a_stage_away_from_its_pipeline(api: Api) -> None:
    setup(api)
    before = api.get(ENTITY).json()
    stage_field = f"{ENTITY}/fields/stage"
    options = field(before, "stage")["options"]
    without_won = [o for o in options if o["value"] != "won"]
    refused = api.patch(stage_field, {"options": without_won})
    assert errors(refused) == [("/fields/3/options", "pipeline_stage")]
    assert "'won'" in refused.json()["errors"][0]["message"]
    retyped = api.patch(stage_field, {"type": "text"})
    assert retyped.status_code == 422
    deleted = api.delete(stage_field)
    assert errors(deleted) == [("/fields", "pipeline_field")]
    replaced = copy.deepcopy(before)
    del replaced["version"]
    replaced["fields"] = [f for f in replaced["fields"] if f["name"] != "stage"]
    assert api.put(ENTITY, replaced).status_code == 422
    after = api.get(ENTITY).json()
    assert after == before
    # Offering more than the stages is harmless, and the pipeline still rules the stages.
    more = api.patch(stage_field, {"options": [*options, {"value": "parked"}]})
    assert more.status_code == 200, more.text
    assert api.put(f"{PIPELINES}/sales", sales()).status_code == 200
    values = [o["value"] for o in field(api.get(ENTITY).json(), "stage")["options"]]
    assert values == [s["key"] for s in SALES["stages"]]
