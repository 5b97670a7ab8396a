"""Metadata packages carry entities with the roles, pipelines, approval processes and record
actions built on them: export from one database, import into another, all or nothing."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ADMIN_EMAIL, Api, start_api
from test_pipelines_common import DEAL, SALES, TASK

from metacrm.metadata import store
from metacrm.metadata.actions import ACTION
from metacrm.metadata.approvals import APPROVAL_PROCESS
from metacrm.metadata.packages import export_package
from metacrm.metadata.pipelines import PIPELINE
from metacrm.metadata.roles import ROLE
from metacrm.platform.db import reading
from metacrm.platform.errors import Unprocessable
from metacrm.platform.users import find_user
from metacrm.runtime.packages import apply_package
from metacrm.runtime.records import RecordService

V1 = "/api/v1"
MANAGER_ROLE = {
    "name": "sales_manager",
    "label": {"en": "Sales manager"},
    "entities": {"deal": {"actions": {"read": "all", "update": "all"}}},
}
DISCOUNT = {
    "name": "big_deal",
    "label": {"en": "Big deal"},
    "entity": "deal",
    "trigger": "manual",
    "submitters": ["sales_manager"],
    "steps": [
        {
            "name": "managers",
            "label": {"en": "Managers"},
            "approvers": [{"type": "role", "role": "sales_manager"}],
            "mode": "any",
        }
    ],
}
# A record action on deals, importable only after the process it submits to.
NEXT_STEP = {
    "name": "plan",
    "label": {"en": "Plan the next step"},
    "entity": "deal",
    "permission": "update",
    "input_schema": {"type": "object", "properties": {"step": {"type": "string"}}},
    "steps": [
        {"type": "set_fields", "values": {"next_step": "input.step"}},
        {"type": "create_record", "entity": "task", "values": {"subject": "input.step"}},
    ],
}


def _designed(api: Api) -> None:
    api.make_entity(DEAL)
    api.make_entity(TASK)
    for path, doc in (
        ("roles", MANAGER_ROLE),
        ("pipelines", SALES),
        ("approval-processes", DISCOUNT),
        ("actions", NEXT_STEP),
    ):
        response = api.post(f"{V1}/meta/{path}", doc)
        assert response.status_code == 201, response.text


@pytest.fixture
def other(database_url: str, request: pytest.FixtureRequest) -> Iterator[Api]:
    """A second, empty installation on the same kind of database."""
    if database_url.startswith("sqlite"):
        url, drop = database_url.replace("test.db", "other.db"), None
    else:
        server = request.getfixturevalue("postgres_server")
        drop = f"other_{secrets.token_hex(6)}"
        url = server.create_database(drop)
    instance = start_api(url)
    with instance.client:
        yield instance
    instance.engine.dispose()
    if drop:
        server.drop_database(drop)


def _package(api: Api) -> dict[str, Any]:
    with reading(api.engine) as conn:
        return export_package(conn)


def _documents(api: Api, kind: str) -> dict[str, dict[str, Any]]:
    with reading(api.engine) as conn:
        return {d.name: d.document for d in store.load_all(conn, kind)}


def admin_records(api: Api, conn: Any) -> RecordService:
    """The record service of the installation's admin, who imports the package."""
    return api.records(conn, find_user(conn, ADMIN_EMAIL))


def test_a_package_carries_pipelines_processes_and_roles(api: Api, other: Api) -> None:
    _designed(api)
    package = _package(api)
    assert [d["name"] for d in package["pipelines"]] == ["sales"]
    assert [d["name"] for d in package["approval_processes"]] == ["big_deal"]
    assert [d["name"] for d in package["roles"]] == ["sales_manager"]

    with other.services.writing() as conn:
        changes = apply_package(admin_records(other, conn), package)
    assert "pipeline sales: created" in changes
    assert "approval_process big_deal: created" in changes
    assert "action deal.plan: created" in changes
    for kind in (ROLE, PIPELINE, APPROVAL_PROCESS, ACTION):
        assert _documents(other, kind) == _documents(api, kind)
    assert list(_documents(other, ACTION)) == ["deal.plan"]
    # The imported pipeline behaves: its gate holds in the other installation too.
    deal = other.post(f"{V1}/records/deal", {"name": "Acme"}).json()
    moved = other.patch(f"{V1}/records/deal/{deal['id']}", {"stage": "proposal"})
    assert moved.status_code == 422
    assert any(e["code"] == "gate" for e in moved.json()["errors"])

    with other.services.writing() as conn:
        assert apply_package(admin_records(other, conn), _package(other)) == []
    changed = copy.deepcopy(package)
    changed["actions"][0]["label"] = {"en": "Plan"}
    with other.services.writing() as conn:
        assert apply_package(admin_records(other, conn), changed) == ["action deal.plan: changed"]
    ran = other.post(f"{V1}/records/deal/{deal['id']}/actions/plan", {"step": "Call"})
    assert ran.status_code == 200, ran.text
    assert ran.json()["result"]["record"]["next_step"] == "Call"


def test_an_entity_export_takes_only_its_pipelines_and_processes(api: Api) -> None:
    _designed(api)
    with reading(api.engine) as conn:
        task_only = export_package(conn, ["task"])
        deal_only = export_package(conn, ["deal"])
    assert task_only["pipelines"] == [] and task_only["approval_processes"] == []
    assert task_only["actions"] == []
    assert [d["name"] for d in deal_only["actions"]] == ["plan"]
    assert "roles" not in deal_only
    assert [d["name"] for d in deal_only["pipelines"]] == ["sales"]


def test_a_package_with_a_bad_pipeline_changes_nothing(api: Api, other: Api) -> None:
    _designed(api)
    package = copy.deepcopy(_package(api))
    package["pipelines"][0]["stages"][2]["entry_condition"] = "amount >"
    with pytest.raises(Unprocessable) as refused, other.services.writing() as conn:
        apply_package(admin_records(other, conn), package)
    assert any(e.field.startswith("/stages/2/entry_condition") for e in refused.value.errors)
    with reading(other.engine) as conn:
        assert store.load_all(conn, store.ENTITY) == []
        assert store.load_all(conn, ROLE) == []


def test_a_package_whose_documents_are_not_a_list_is_refused(api: Api) -> None:
    _designed(api)
    package = {**_package(api), "pipelines": {"sales": SALES}}
    with pytest.raises(Unprocessable) as refused, api.services.writing() as conn:
        apply_package(admin_records(api, conn), package)
    assert refused.value.errors[0].field == "/pipelines"


def test_a_rule_may_read_through_a_lookup_to_an_entity_the_same_package_creates(
    api: Api,
) -> None:
    """Entities are created one after the other: a validation rule on the first reads a field
    of the second through a lookup, and that field is itself a lookup added in the second
    pass. The import checks it against the entities as they stand, not as they stood."""
    company = {
        "name": "company",
        "label": {"en": "Company"},
        "fields": [{"name": "name", "type": "text"}],
    }
    person = {
        "name": "person",
        "label": {"en": "Person"},
        "fields": [
            {"name": "name", "type": "text"},
            {"name": "company", "type": "lookup", "target": "company"},
        ],
    }
    deal = {
        "name": "deal",
        "label": {"en": "Deal"},
        "fields": [
            {"name": "company", "type": "lookup", "target": "company"},
            {"name": "contact", "type": "lookup", "target": "person"},
        ],
        "validation_rules": [
            {
                "name": "contact_of_company",
                "condition": "contact is null or contact.company == company",
                "message": {"en": "The contact must work for the company"},
                "field": "contact",
            }
        ],
    }
    package = {
        "format": "metacrm.package",
        "format_version": 1,
        "entities": [deal, company, person],
    }
    with api.services.writing() as conn:
        apply_package(admin_records(api, conn), package)
    acme = api.post(f"{V1}/records/company", {"name": "Acme"}).json()
    other_co = api.post(f"{V1}/records/company", {"name": "Other"}).json()
    ann = api.post(f"{V1}/records/person", {"name": "Ann", "company": acme["id"]}).json()
    ok = api.post(f"{V1}/records/deal", {"company": acme["id"], "contact": ann["id"]})
    assert ok.status_code == 201, ok.text
    wrong = api.post(f"{V1}/records/deal", {"company": other_co["id"], "contact": ann["id"]})
    assert wrong.status_code == 422
    assert [e["field"] for e in wrong.json()["errors"]] == ["contact"]

    # A rule reading a field the package doesn't give the target is still refused.
    broken = copy.deepcopy(package)
    broken["entities"][0]["validation_rules"][0]["condition"] = "contact.nickname == null"
    broken["entities"][0]["name"] = "deal2"
    with pytest.raises(Unprocessable) as refused, api.services.writing() as conn:
        apply_package(admin_records(api, conn), broken)
    assert any("nickname" in e.message for e in refused.value.errors)
