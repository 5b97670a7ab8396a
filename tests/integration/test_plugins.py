"""Plugins on SQLite and PostgreSQL: installing the CRM templates leaves exactly their package in
the metadata; upgrading to a newer version merges it with what the admin changed since, the
admin's edits kept and every conflict listed; a dry run changes nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from conftest import ADMIN_EMAIL, Api

from metacrm.metadata import store
from metacrm.metadata.packages import export_package
from metacrm.platform.db import reading
from metacrm.platform.errors import Conflict, NotFound
from metacrm.platform.users import find_user
from metacrm.plugins.crm import plugin as crm
from metacrm.plugins.installer import Outcome, install, installed, upgrade
from metacrm.plugins.model import Plugin
from metacrm.runtime.records import RecordService

V1 = "/api/v1"
META = f"{V1}/meta"


class RolledBack(Exception):
    pass


def as_admin(
    api: Api, step: Callable[[RecordService], Outcome], *, dry_run: bool = False
) -> Outcome:
    """Run an installer step as the admin in one transaction (rolled back for a dry run)."""
    found: list[Outcome] = []
    try:
        with api.services.writing() as conn:
            found.append(step(api.records(conn, find_user(conn, ADMIN_EMAIL))))
            if dry_run:
                raise RolledBack
    except RolledBack:
        pass
    return found[0]


def version(number: str, package: dict[str, Any]) -> Plugin:
    """The CRM plugin at another version, shipping `package`."""
    return Plugin(crm.name, number, crm.label, lambda: copy.deepcopy(package))


def sections(package: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keys = [k for k in package if k not in ("format", "format_version")]
    return {k: {d["name"]: d for d in package[k]} for k in keys if package[k]}


def in_package(package: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    return next(d for d in package[section] if d["name"] == name)


def field(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in doc["fields"] if f["name"] == name)


@pytest.fixture
def crm_api(api: Api) -> Api:
    as_admin(api, lambda records: install(records, crm))
    return api


def test_the_templates_install_as_exactly_their_package(crm_api: Api) -> None:
    with reading(crm_api.engine) as conn:
        exported = export_package(conn)
        assert installed(conn)["crm"].version == crm.version
    assert sections(exported) == sections(crm.package())
    # Installing the same version again is a merge with nothing to do.
    again = as_admin(crm_api, lambda records: upgrade(records, crm))
    assert again.changes == [] and again.conflicts == []


def test_installing_twice_or_upgrading_what_is_not_installed_is_refused(api: Api) -> None:
    with pytest.raises(NotFound, match="not installed"):
        as_admin(api, lambda records: upgrade(records, crm))
    as_admin(api, lambda records: install(records, crm))
    with pytest.raises(Conflict, match="installed already"):
        as_admin(api, lambda records: install(records, crm))
    older = version("0.9.0", crm.package())
    with pytest.raises(Conflict, match="older"):
        as_admin(api, lambda records: upgrade(records, older))


def newer_package() -> dict[str, Any]:
    """Version 1.1.0: a Chinese label and an English one changed, a field added, a gate and a
    probability changed, a role given more, a list view of its own dropped."""
    package = copy.deepcopy(crm.package())
    lead = in_package(package, "entities", "lead")
    field(lead, "company")["label"] = {"en": "Company name", "zh-CN": "企业名称"}
    lead["fields"].insert(3, {"name": "wechat", "type": "text", "label": {"en": "WeChat"}})
    sales = in_package(package, "pipelines", "opportunity_sales")
    proposal = next(s for s in sales["stages"] if s["key"] == "proposal")
    proposal["probability"] = 55
    proposal["entry_condition"] = "amount > 100 and close_date is not null"
    rep = in_package(package, "roles", "sales_rep")
    rep["entities"]["lead"]["actions"]["import"] = "own"
    return package


def admin_edits(api: Api) -> None:
    """What an admin changes in the installed templates through the metadata API."""
    changed = api.patch(
        f"{META}/entities/lead/fields/company", {"label": {"en": "Account", "zh-CN": "公司名称"}}
    )
    assert changed.status_code == 200, changed.text
    added = api.post(f"{META}/entities/customer/fields", {"name": "vat_id", "type": "text"})
    assert added.status_code == 201, added.text
    sales = api.get(f"{META}/pipelines/opportunity_sales").json()
    proposal = next(s for s in sales["stages"] if s["key"] == "proposal")
    proposal["entry_condition"] = "amount > 0 and close_date is not null and contact is not null"
    assert api.put(f"{META}/pipelines/opportunity_sales", sales).status_code == 200
    ticket = api.get(f"{META}/pipelines/ticket_status").json()
    ticket["stages"] = [s for s in ticket["stages"] if s["key"] != "reopened"]
    ticket["transitions"] = [
        {"from": t["from"], "to": [s for s in t["to"] if s != "reopened"]}
        for t in ticket["transitions"]
        if t["from"] != "reopened"
    ]
    assert api.put(f"{META}/pipelines/ticket_status", ticket).status_code == 200
    rep = api.get(f"{META}/roles/sales_rep").json()
    del rep["entities"]["lead"]["actions"]["export"]
    assert api.put(f"{META}/roles/sales_rep", rep).status_code == 200


def test_an_upgrade_keeps_the_admins_edits_brings_the_rest_and_lists_conflicts(
    crm_api: Api,
) -> None:
    api = crm_api
    admin_edits(api)
    newer = version("1.1.0", newer_package())
    outcome = as_admin(api, lambda records: upgrade(records, newer))
    assert (outcome.from_version, outcome.to_version) == ("1.0.0", "1.1.0")
    # Both changed the company's English label: the admin's stays, and it is listed.
    assert [(c.document, c.where, c.yours, c.theirs) for c in outcome.conflicts] == [
        ("entity lead", "/fields/company/label/en", "Account", "Company name"),
        (
            "pipeline opportunity_sales",
            "/stages/proposal/entry_condition",
            "amount > 0 and close_date is not null and contact is not null",
            "amount > 100 and close_date is not null",
        ),
    ]
    lead = api.get(f"{META}/entities/lead").json()
    assert field(lead, "company")["label"] == {"en": "Account", "zh-CN": "企业名称"}
    assert [f["name"] for f in lead["fields"]][:4] == ["company", "contact_name", "title", "wechat"]
    assert "vat_id" in [f["name"] for f in api.get(f"{META}/entities/customer").json()["fields"]]
    sales = api.get(f"{META}/pipelines/opportunity_sales").json()
    proposal = next(s for s in sales["stages"] if s["key"] == "proposal")
    assert proposal["probability"] == 55
    assert proposal["entry_condition"].endswith("contact is not null")
    ticket = api.get(f"{META}/pipelines/ticket_status").json()
    assert "reopened" not in [s["key"] for s in ticket["stages"]]  # removed by the admin, kept so
    rep = api.get(f"{META}/roles/sales_rep").json()
    assert rep["entities"]["lead"]["actions"].get("import") == "own"
    assert "export" not in rep["entities"]["lead"]["actions"]
    with reading(api.engine) as conn:
        assert installed(conn)["crm"].version == "1.1.0"
    # Upgrading again to the same version finds nothing more to do.
    again = as_admin(api, lambda records: upgrade(records, newer))
    assert again.changes == []


def test_a_dry_run_prints_the_plan_and_changes_nothing(crm_api: Api) -> None:
    api = crm_api
    admin_edits(api)
    with reading(api.engine) as conn:
        before = export_package(conn)
        stamp = store.current_stamp(conn)
    newer = version("1.1.0", newer_package())
    outcome = as_admin(api, lambda records: upgrade(records, newer), dry_run=True)
    lines = outcome.lines()
    assert lines[0] == "upgrade crm 1.0.0 → 1.1.0"
    assert any("lead" in line and "wechat" in line for line in lines)
    assert any(line.startswith("2 conflict(s)") for line in lines)
    with reading(api.engine) as conn:
        assert export_package(conn) == before
        assert store.current_stamp(conn) == stamp
        assert installed(conn)["crm"].version == "1.0.0"


def test_what_the_new_version_drops_goes_unless_the_admin_changed_it(crm_api: Api) -> None:
    api = crm_api
    package = copy.deepcopy(crm.package())
    package["roles"] = [r for r in package["roles"] if r["name"] not in ("service_agent",)]
    package["approval_processes"] = []
    process = api.get(f"{META}/approval-processes/discount_approval").json()
    process["label"] = {"en": "Discount sign-off"}
    assert api.put(f"{META}/approval-processes/discount_approval", process).status_code == 200
    outcome = as_admin(api, lambda records: upgrade(records, version("1.2.0", package)))
    assert api.get(f"{META}/roles/service_agent").status_code == 404
    assert api.get(f"{META}/approval-processes/discount_approval").status_code == 200
    assert outcome.kept == ["approval_process discount_approval (you changed it)"]
    assert "role service_agent: removed (the new version has no such document)" in outcome.changes
