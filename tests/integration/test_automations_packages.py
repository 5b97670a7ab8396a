"""Automations travel in metadata packages with the entities they run on, and behave the same
in the installation that imports them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from conftest import ADMIN_EMAIL, Api, start_api
from test_automations_common import (
    ACTIVITY_FOLLOWS_UP,
    LEAD_ASSIGNED,
    LEADS,
    automate,
    created,
    crm,
)

from metacrm.metadata import store
from metacrm.metadata.automations import AUTOMATION
from metacrm.metadata.packages import export_package
from metacrm.platform.db import reading
from metacrm.platform.users import find_user
from metacrm.runtime.packages import apply_package


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


def test_a_package_carries_automations_and_they_run_where_imported(api: Api, other: Api) -> None:
    crm(api)
    automate(api, LEAD_ASSIGNED, ACTIVITY_FOLLOWS_UP)
    with reading(api.engine) as conn:
        package = export_package(conn)
        lead_only = export_package(conn, ["lead"])
    assert [d["name"] for d in package["automations"]] == ["activity_follows_up", "lead_assigned"]
    assert [d["name"] for d in lead_only["automations"]] == ["lead_assigned"]

    with other.services.writing() as conn:
        admin = other.records(conn, find_user(conn, ADMIN_EMAIL))
        changes = apply_package(admin, package)
    assert "automation lead_assigned: created" in changes
    with reading(other.engine) as conn:
        imported = {d.name: d.document for d in store.load_all(conn, AUTOMATION)}
    assert imported == {d["name"]: d for d in package["automations"]}
    assert created(other.post(LEADS, {"company": "Acme"}))["status"] == "pending"
