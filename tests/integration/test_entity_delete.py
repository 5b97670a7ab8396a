"""Deleting an entity (issue 10, defect 6) on SQLite and PostgreSQL: refused with every blocker
while other metadata uses it; soft by default (gone from every API, table and records kept,
restorable, its name held); purged for good on request; all or nothing."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import ACCOUNT, Api, start_api
from sqlalchemy import Engine, MetaData, Table, func, inspect, select, text
from starlette.testclient import TestClient

from metacrm.metadata import store
from metacrm.platform.db import make_engine, reading, writing
from metacrm.platform.settings import Settings
from metacrm.platform.systables import (
    approval_log,
    approval_tasks,
    approvals,
    autonumbers,
    notifications,
    record_history,
    record_shares,
    stage_history,
)
from metacrm.runtime import entity_removal
from metacrm.runtime.api.app import build_app
from metacrm.runtime.catalog import build_catalog

V1 = "/api/v1"
ENTITIES = f"{V1}/meta/entities"
RECORDS = f"{V1}/records"
REGIONS = f"{RECORDS}/region"

REGION: dict[str, Any] = {
    "name": "region",
    "label": {"en": "Region"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True, "max_length": 100},
        {"name": "code", "type": "text", "unique": True},
        {
            "name": "status",
            "type": "picklist",
            "default": "open",
            "options": [{"value": "open"}, {"value": "closed"}],
        },
        {"name": "number", "type": "autonumber", "pattern": "R-{seq:3}"},
    ],
}
SHOP: dict[str, Any] = {
    "name": "shop",
    "label": {"en": "Shop"},
    "fields": [
        {"name": "name", "type": "text"},
        {"name": "stage", "type": "picklist", "options": [{"value": "a"}, {"value": "b"}]},
    ],
}
# The pointer of the lookup shop_with() adds.
LOOKUP = "/entities/shop/fields/2/target"
NORTH = 'region.code == "N"'


def shop_with(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The shop, looking up a region, with more fields and top-level keys."""
    doc = copy.deepcopy(SHOP)
    doc["fields"] += [{"name": "region", "type": "lookup", "target": "region"}, *fields]
    return {**doc, **extra}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def seed(api: Api) -> list[dict[str, Any]]:
    api.make_entity(REGION)
    north = ok(api.post(REGIONS, {"name": "North", "code": "N"}), 201)
    south = ok(api.post(REGIONS, {"name": "South", "code": "S"}), 201)
    ok(api.patch(f"{REGIONS}/{south['id']}", {"status": "closed"}))
    return [north, ok(api.get(f"{REGIONS}/{south['id']}"))]


def rows_about(engine: Engine, table: Any, entity: str = "region") -> int:
    with reading(engine) as conn:
        return conn.execute(
            select(func.count()).select_from(table).where(table.c.entity == entity)
        ).scalar_one()


def table_rows(engine: Engine, name: str = "region") -> list[tuple[Any, ...]] | None:
    """The table's rows in id order (system and field columns), or None when it is gone."""
    if name not in inspect(engine).get_table_names():
        return None
    with reading(engine) as conn:
        table = Table(name, MetaData(), autoload_with=conn)
        return [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]


def state(api: Api) -> dict[str, Any]:
    """Everything a refused or failed delete must leave as it was."""
    return {
        "document": api.get(f"{ENTITIES}/region").json(),
        "versions": api.get(f"{ENTITIES}/region/versions").json(),
        "listed": [e["name"] for e in api.get(ENTITIES).json()["data"]],
        "records": api.get(REGIONS).json(),
        "rows": table_rows(api.engine),
        "history": rows_about(api.engine, record_history),
        "autonumbers": rows_about(api.engine, autonumbers),
    }


# ---- refused while other metadata depends on it ----------------------------------------------


@dataclass(frozen=True)
class Dependent:
    """Something that uses the region: `add` makes it and returns the pointers a refusal must
    list; `remove` takes it away again."""

    add: Callable[[Api], set[str]]
    remove: Callable[[Api], None]


def _put_shop(doc: dict[str, Any]) -> Callable[[Api], set[str]]:
    def add(api: Api) -> set[str]:
        ok(api.put(f"{ENTITIES}/shop", doc))
        return {LOOKUP}

    return add


def _plain_shop(api: Api) -> None:
    ok(api.put(f"{ENTITIES}/shop", SHOP))


def _document(
    collection: str, doc: dict[str, Any], *pointers: str, shop: bool = False
) -> Dependent:
    """A role, pipeline or approval process; with `shop`, the shop looks up a region first."""

    def add(api: Api) -> set[str]:
        expected = _put_shop(shop_with())(api) if shop else set()
        ok(api.post(f"{V1}/meta/{collection}", doc), 201)
        return expected | set(pointers)

    def remove(api: Api) -> None:
        ok(api.delete(f"{V1}/meta/{collection}/{doc['name']}"), 204)
        if shop:
            _plain_shop(api)

    return Dependent(add, remove)


def _webhook(entity: str, condition: str | None = None) -> Dependent:
    made: list[str] = []

    def add(api: Api) -> set[str]:
        expected = _put_shop(shop_with())(api) if entity == "shop" else set()
        body = {"name": "sync", "url": "https://hooks.example.com/in", "events": ["*"]}
        hook = ok(
            api.post(f"{V1}/webhooks", {**body, "entity": entity, "condition": condition}), 201
        )
        made.append(hook["id"])
        return expected | {f"/webhooks/{hook['id']}/{'condition' if condition else 'entity'}"}

    def remove(api: Api) -> None:
        ok(api.delete(f"{V1}/webhooks/{made.pop()}"), 204)
        if entity == "shop":
            _plain_shop(api)

    return Dependent(add, remove)


def _shop_document(doc: dict[str, Any], pointer: str) -> Dependent:
    def add(api: Api) -> set[str]:
        return _put_shop(doc)(api) | {pointer}

    return Dependent(add, _plain_shop)


def _stage(key: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "label": {"en": key}, "category": "open", "probability": 10, **extra}


STEPS = [{"name": "boss", "label": {"en": "Boss"}, "approvers": [{"type": "manager", "levels": 1}]}]
REGION_FLOW = {
    "name": "region_flow",
    "label": {"en": "Flow"},
    "entity": "region",
    "field": "status",
    "stages": [_stage("open"), _stage("closed")],
}
REGION_OK = {"name": "region_ok", "label": {"en": "OK"}, "entity": "region", "steps": STEPS}
MAPPER = {
    "name": "mapper",
    "label": {"en": "Mapper"},
    "entities": {"region": {"actions": {"read": "all"}}},
}
CODE = {"name": "code", "type": "formula", "result_type": "text", "expression": "region.code"}
RULE = {"name": "north", "condition": NORTH, "message": {"en": "North only"}}
SHARING = {"name": "north", "condition": NORTH, "share_with": {"org_unit": "n"}, "access": "read"}
SHOPPER = {
    "name": "shopper",
    "label": {"en": "Shopper"},
    "entities": {
        "shop": {
            "actions": {"read": "all"},
            "record_rules": [{"name": "north", "condition": NORTH, "effect": "narrow"}],
        }
    },
}
MAKES_REGIONS = {"type": "create_record", "entity": "region", "values": {"name": '"x"'}}
SHOP_MAKES = {
    "name": "shop_flow",
    "label": {"en": "Flow"},
    "entity": "shop",
    "field": "stage",
    "stages": [_stage("a"), _stage("b", actions=[MAKES_REGIONS])],
}
SHOP_GATE = {**SHOP_MAKES, "stages": [_stage("a"), _stage("b", entry_condition=NORTH)]}
SHOP_OK = {**REGION_OK, "name": "shop_ok", "entity": "shop", "entry_condition": NORTH}

DEPENDENTS: dict[str, Dependent] = {
    "a lookup of another entity": Dependent(_put_shop(shop_with()), _plain_shop),
    "a pipeline on it": _document("pipelines", REGION_FLOW, "/pipelines/region_flow/entity"),
    "an approval process on it": _document(
        "approval-processes", REGION_OK, "/approval-processes/region_ok/entity"
    ),
    "a role naming it": _document("roles", MAPPER, "/roles/mapper/entities/region"),
    "a webhook subscribed to it": _webhook("region"),
    "a formula reading through a lookup": _shop_document(
        shop_with(CODE), "/entities/shop/fields/3/expression"
    ),
    "a validation rule reading through a lookup": _shop_document(
        shop_with(validation_rules=[RULE]), "/entities/shop/validation_rules/0/condition"
    ),
    "a sharing rule reading through a lookup": _shop_document(
        shop_with(sharing_rules=[SHARING]), "/entities/shop/sharing_rules/0/condition"
    ),
    "a role's record rule reading through a lookup": _document(
        "roles", SHOPPER, "/roles/shopper/entities/shop/record_rules/0/condition", shop=True
    ),
    "a webhook condition reading through a lookup": _webhook("shop", NORTH),
    "a pipeline action creating its records": _document(
        "pipelines", SHOP_MAKES, "/pipelines/shop_flow/stages/1/actions/0/entity"
    ),
    "a pipeline gate reading through a lookup": _document(
        "pipelines", SHOP_GATE, "/pipelines/shop_flow/stages/1/entry_condition", shop=True
    ),
    "an approval condition reading through a lookup": _document(
        "approval-processes", SHOP_OK, "/approval-processes/shop_ok/entry_condition", shop=True
    ),
}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """One app per database for the refusals: each case adds its dependent and takes it away."""
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('entities')}/world.db", None
    else:
        server = request.getfixturevalue("postgres_server")
        database = f"t_entity_delete_{secrets.token_hex(4)}"
        url, drop = server.create_database(database), lambda: server.drop_database(database)
    instance = start_api(url)
    with instance.client:
        seed(instance)
        instance.make_entity(SHOP)
        yield instance
    instance.engine.dispose()
    if drop is not None:
        drop()


def refusal(response: Any) -> set[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert all(e["message"] and e["code"] for e in errors)
    pointers = [e["field"] for e in errors]
    assert len(pointers) == len(set(pointers)), "a blocker is listed twice"
    return set(pointers)


@pytest.mark.parametrize("kind", list(DEPENDENTS))
def test_each_kind_of_dependent_refuses_the_delete_and_changes_nothing(
    world: Api, kind: str
) -> None:
    dependent = DEPENDENTS[kind]
    expected = dependent.add(world)
    try:
        before = state(world)
        assert refusal(world.delete(f"{ENTITIES}/region")) == expected
        assert refusal(world.delete(f"{ENTITIES}/region", params={"purge": "true"})) == expected
        assert state(world) == before
    finally:
        dependent.remove(world)
    # With the dependent gone nothing else holds the entity (checked without deleting it).
    with reading(world.engine) as conn:
        catalog = build_catalog(conn, store.current_stamp(conn))
        assert entity_removal.blockers(catalog, "region", entity_removal.subscriptions(conn)) == []


def test_every_blocker_is_listed_at_once(sqlite_api: Api) -> None:
    api = sqlite_api
    seed(api)
    api.make_entity(SHOP)
    ok(
        api.put(
            f"{ENTITIES}/shop", shop_with(CODE, validation_rules=[RULE], sharing_rules=[SHARING])
        )
    )
    both = {
        **SHOP_MAKES,
        "stages": [_stage("a"), _stage("b", entry_condition=NORTH, actions=[MAKES_REGIONS])],
    }
    for collection, doc in (
        ("pipelines", REGION_FLOW),
        ("pipelines", both),
        ("approval-processes", REGION_OK),
        ("approval-processes", SHOP_OK),
        ("roles", MAPPER),
        ("roles", SHOPPER),
    ):
        ok(api.post(f"{V1}/meta/{collection}", doc), 201)
    hook = {"name": "sync", "url": "https://hooks.example.com/in", "events": ["*"]}
    on_region = ok(api.post(f"{V1}/webhooks", {**hook, "entity": "region"}), 201)["id"]
    on_shop = ok(api.post(f"{V1}/webhooks", {**hook, "entity": "shop", "condition": NORTH}), 201)[
        "id"
    ]
    before = state(api)
    assert refusal(api.delete(f"{ENTITIES}/region")) == {
        LOOKUP,
        "/entities/shop/fields/3/expression",
        "/entities/shop/validation_rules/0/condition",
        "/entities/shop/sharing_rules/0/condition",
        "/pipelines/region_flow/entity",
        "/pipelines/shop_flow/stages/1/entry_condition",
        "/pipelines/shop_flow/stages/1/actions/0/entity",
        "/approval-processes/region_ok/entity",
        "/approval-processes/shop_ok/entry_condition",
        "/roles/mapper/entities/region",
        "/roles/shopper/entities/shop/record_rules/0/condition",
        f"/webhooks/{on_region}/entity",
        f"/webhooks/{on_shop}/condition",
    }
    assert state(api) == before


# ---- soft delete, restore, name held ---------------------------------------------------------


def test_soft_delete_hides_the_entity_everywhere_and_keeps_its_table_and_records(api: Api) -> None:
    api.make_entity(ACCOUNT)
    records = seed(api)
    rows = table_rows(api.engine)
    deleted = ok(api.delete(f"{ENTITIES}/region"))
    assert deleted["deleted"] is True and deleted["purged"] is False
    assert deleted["version"] == 2
    assert [op["op"] for op in deleted["plan"]["operations"]] == ["hide_entity"]

    assert api.get(f"{ENTITIES}/region").status_code == 404
    assert [e["name"] for e in api.get(ENTITIES).json()["data"]] == ["account"]
    for response in (
        api.get(REGIONS),
        api.get(f"{REGIONS}/{records[0]['id']}"),
        api.post(REGIONS, {"name": "West"}),
        api.patch(f"{REGIONS}/{records[0]['id']}", {"name": "x"}),
        api.delete(f"{REGIONS}/{records[0]['id']}"),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
    document = api.get(f"{V1}/openapi.json").json()
    assert not [p for p in document["paths"] if p.startswith(REGIONS)]
    assert "Region" not in document["components"]["schemas"]
    assert "region" not in ok(api.get(f"{V1}/me/permissions"))["entities"]

    # The table and everything about its records stay.
    assert table_rows(api.engine) == rows
    assert rows_about(api.engine, record_history) == 3
    versions = ok(api.get(f"{ENTITIES}/region/versions"))["data"]
    assert [(v["version"], v["action"]) for v in versions] == [(2, "delete"), (1, "create")]
    assert versions[0]["diff"] == {"deleted": True}

    # The name is held, and the entity can't be changed until it is restored.
    taken = api.post(ENTITIES, REGION)
    assert taken.status_code == 409
    assert "restore it, or purge it" in taken.json()["detail"]
    assert "region" in inspect(api.engine).get_table_names()
    assert api.put(f"{ENTITIES}/region", REGION).status_code == 404
    assert api.post(f"{ENTITIES}/region/fields", {"name": "x", "type": "text"}).status_code == 404
    assert api.delete(f"{ENTITIES}/region").status_code == 404
    lookup = {"name": "region", "type": "lookup", "target": "region"}
    refused = api.post(f"{ENTITIES}/account/fields", lookup)
    assert refused.status_code == 422


def test_restore_brings_the_entity_back_with_its_records_intact(api: Api) -> None:
    records = seed(api)
    before = state(api)
    ok(api.delete(f"{ENTITIES}/region"))
    restored = ok(api.post(f"{ENTITIES}/region/restore"))
    assert restored["version"] == 3
    assert {**restored, "version": 1, "plan": None} == {**before["document"], "plan": None}
    assert restored["plan"]["operations"] == []
    assert ok(api.get(REGIONS)) == before["records"]
    assert table_rows(api.engine) == before["rows"]
    assert ok(api.get(f"{REGIONS}/{records[1]['id']}/history"))["data"]
    versions = ok(api.get(f"{ENTITIES}/region/versions"))["data"]
    assert [(v["version"], v["action"]) for v in versions[:2]] == [(3, "restore"), (2, "delete")]
    assert versions[0]["diff"] == {}
    # Records keep working, numbering goes on where it stopped, unique values still hold.
    third = ok(api.post(REGIONS, {"name": "East", "code": "E"}), 201)
    assert third["number"] == "R-003"
    assert api.post(REGIONS, {"name": "Again", "code": "N"}).status_code == 409
    # Only a deleted entity can be restored.
    assert api.post(f"{ENTITIES}/region/restore").status_code == 409
    assert api.post(f"{ENTITIES}/nowhere/restore").status_code == 404


def test_a_deleted_entity_comes_back_at_any_past_version(api: Api) -> None:
    seed(api)
    ok(api.post(f"{ENTITIES}/region/fields", {"name": "area", "type": "integer"}), 201)
    ok(api.patch(f"{REGIONS}/{ok(api.get(REGIONS))['data'][0]['id']}", {"area": 7}))
    ok(api.delete(f"{ENTITIES}/region"))
    back = ok(api.post(f"{ENTITIES}/region/versions/1/restore"))
    assert back["version"] == 4
    assert "area" not in {f["name"] for f in back["fields"]}
    assert back["hidden_fields"] == ["area"]
    # The kept column comes back with its data when the field does.
    ok(api.post(f"{ENTITIES}/region/fields", {"name": "area", "type": "integer"}), 201)
    assert [r.get("area") for r in ok(api.get(REGIONS, params={"sort": "name"}))["data"]] == [
        7,
        None,
    ]


def test_other_processes_drop_a_deleted_entity_from_their_cache(api: Api) -> None:
    seed(api)
    engine = make_engine(api.url)
    other = TestClient(build_app(Settings(database_url=api.url), engine))
    with other:
        assert other.get(REGIONS, headers=api.headers()).status_code == 200
        ok(api.delete(f"{ENTITIES}/region"))
        assert other.get(REGIONS, headers=api.headers()).status_code == 404
        ok(api.post(f"{ENTITIES}/region/restore"))
        assert other.get(REGIONS, headers=api.headers()).status_code == 200
    engine.dispose()


def test_only_admins_delete_purge_and_restore_entities(api: Api) -> None:
    seed(api)
    token = api.new_user("rep@example.com")
    before = state(api)
    for params in ({}, {"purge": "true"}):
        refused = api.delete(
            f"{ENTITIES}/region", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 403
    assert state(api) == before
    ok(api.delete(f"{ENTITIES}/region"))
    restore = api.post(f"{ENTITIES}/region/restore", headers={"Authorization": f"Bearer {token}"})
    assert restore.status_code == 403
    assert api.get(f"{ENTITIES}/region").status_code == 404


# ---- purge -----------------------------------------------------------------------------------


def _records_with_everything(api: Api) -> None:
    """Region records with history, numbers, a share, stage history, an approval with its tasks
    and log, and a notification — then the pipeline and the process taken away again."""
    records = seed(api)
    admin = ok(api.get(f"{V1}/me"))["id"]
    token = api.new_user("rep@example.com")
    rep = ok(api.get(f"{V1}/me", headers={"Authorization": f"Bearer {token}"}))["id"]
    ok(api.post(REGIONS, {"name": "Rep's", "owner": rep}), 201)
    share = {"principal_type": "user", "principal": rep, "access": "read"}
    ok(api.post(f"{REGIONS}/{records[0]['id']}/shares", share), 201)
    flow = DEPENDENTS["a pipeline on it"]
    flow.add(api)
    ok(api.patch(f"{REGIONS}/{records[0]['id']}", {"status": "closed"}))
    flow.remove(api)
    process = {
        "name": "region_ok",
        "label": {"en": "OK"},
        "entity": "region",
        "steps": [
            {"name": "me", "label": {"en": "Me"}, "approvers": [{"type": "user", "users": [admin]}]}
        ],
    }
    ok(api.post(f"{V1}/meta/approval-processes", process), 201)
    submitted = ok(
        api.post(f"{REGIONS}/{records[1]['id']}/approvals", {"process": "region_ok"}), 201
    )
    ok(api.post(f"{V1}/approvals/{submitted['id']}/approve", {"comment": "fine"}))
    ok(api.delete(f"{V1}/meta/approval-processes/region_ok"), 204)


ABOUT_RECORDS = (
    record_history,
    autonumbers,
    record_shares,
    stage_history,
    approvals,
    notifications,
)


def test_purge_drops_the_table_and_everything_about_its_records(api: Api) -> None:
    _records_with_everything(api)
    for table in ABOUT_RECORDS:
        assert rows_about(api.engine, table) > 0, table.name
    purged = ok(api.delete(f"{ENTITIES}/region", params={"purge": "true"}))
    assert purged["purged"] is True
    assert [op["op"] for op in purged["plan"]["operations"]] == ["drop_table"]
    assert table_rows(api.engine) is None
    for table in ABOUT_RECORDS:
        assert rows_about(api.engine, table) == 0, table.name
    with reading(api.engine) as conn:
        for table in (approval_tasks, approval_log):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
    assert api.get(f"{ENTITIES}/region").status_code == 404
    assert api.get(REGIONS).status_code == 404
    assert api.post(f"{ENTITIES}/region/restore").status_code == 404
    versions = ok(api.get(f"{ENTITIES}/region/versions"))["data"]
    assert (versions[0]["action"], versions[0]["diff"]) == ("purge", {"purged": True})
    # The name is free again: a new entity starts empty, its numbering from the start.
    api.make_entity(REGION)
    assert ok(api.get(REGIONS))["data"] == []
    assert ok(api.post(REGIONS, {"name": "New", "code": "N"}), 201)["number"] == "R-001"


def test_purge_finishes_a_soft_delete(api: Api) -> None:
    seed(api)
    ok(api.delete(f"{ENTITIES}/region"))
    purged = ok(api.delete(f"{ENTITIES}/region", params={"purge": "true"}))
    assert purged["version"] == 3
    assert table_rows(api.engine) is None
    assert rows_about(api.engine, record_history) == 0
    assert api.post(f"{ENTITIES}/region/restore").status_code == 404
    assert api.delete(f"{ENTITIES}/region", params={"purge": "true"}).status_code == 404
    actions = [v["action"] for v in ok(api.get(f"{ENTITIES}/region/versions"))["data"]]
    assert actions == ["purge", "delete", "create"]
    # Its metadata can still come back from history, with an empty table.
    back = ok(api.post(f"{ENTITIES}/region/versions/1/restore"))
    assert back["version"] == 4
    assert ok(api.get(REGIONS))["data"] == []


def test_a_failure_midway_through_a_purge_leaves_everything_as_it_was(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _records_with_everything(api)
    before = state(api)
    counts = [rows_about(api.engine, t) for t in ABOUT_RECORDS]
    forget = entity_removal.forget_records

    def forget_then_fail(conn: Any, name: str) -> None:
        forget(conn, name)  # the table is dropped and the rows deleted by now
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(entity_removal, "forget_records", forget_then_fail)
    assert api.delete(f"{ENTITIES}/region", params={"purge": "true"}).status_code == 500
    assert state(api) == before
    assert [rows_about(api.engine, t) for t in ABOUT_RECORDS] == counts
    monkeypatch.undo()
    ok(api.delete(f"{ENTITIES}/region", params={"purge": "true"}))
    assert table_rows(api.engine) is None


def test_a_drop_the_database_refuses_is_a_409_and_changes_nothing(postgres_url: str) -> None:
    api = start_api(postgres_url)
    with api.client:
        seed(api)
        with writing(api.engine) as conn:
            conn.execute(text("CREATE VIEW region_report AS SELECT name FROM region"))
        before = state(api)
        refused = api.delete(f"{ENTITIES}/region", params={"purge": "true"})
        assert refused.status_code == 409, refused.text
        assert "region_report" in refused.json()["detail"]
        assert state(api) == before
    api.engine.dispose()
