"""`metacrm user create` with roles, org unit and manager, and `metacrm org create`, run as real
processes against SQLite and PostgreSQL: what they make, and one-line refusals that make
nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import start_api
from sqlalchemy import func, select

from metacrm.platform.db import make_engine, reading
from metacrm.platform.org import find_unit, list_units
from metacrm.platform.systables import users
from metacrm.platform.users import find_user

PASSWORD = "long-enough-pw"


def metacrm(url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METACRM_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "metacrm.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def installed(database_url: str) -> str:
    """An installed database with the roles `rep` and `viewer` (role documents come from the
    metadata API; the command only hands them out)."""
    api = start_api(database_url)
    with api.client:
        for name in ("rep", "viewer"):
            response = api.post("/api/v1/meta/roles", {"name": name, "label": {"en": name}})
            assert response.status_code == 201, response.text
    api.engine.dispose()
    return database_url


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return lines[0]


def refused(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode != 0, result.stdout
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("metacrm: ")
    assert reason in result.stderr, result.stderr


def user_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with reading(engine) as conn:
            return conn.execute(select(func.count()).select_from(users)).scalar_one()
    finally:
        engine.dispose()


def test_org_create_builds_the_tree(installed: str, tmp_path: Path) -> None:
    sales = ok(metacrm(installed, tmp_path, "org", "create", "sales", "--label", "Sales"))
    east = ok(metacrm(installed, tmp_path, "org", "create", "east", "--parent", "sales"))
    boston = ok(metacrm(installed, tmp_path, "org", "create", "boston", "--parent", "east"))
    engine = make_engine(installed)
    with reading(engine) as conn:
        units = {u.name: u for u in list_units(conn)}
    engine.dispose()
    assert set(units) == {"sales", "east", "boston"}
    assert (units["sales"].id, units["sales"].label, units["sales"].parent) == (
        sales,
        "Sales",
        None,
    )
    assert (units["east"].id, units["east"].label, units["east"].parent) == (east, "east", sales)
    assert (units["boston"].id, units["boston"].parent) == (boston, east)


def test_org_create_refuses_with_one_line_and_makes_nothing(installed: str, tmp_path: Path) -> None:
    ok(metacrm(installed, tmp_path, "org", "create", "sales"))
    refused(
        metacrm(installed, tmp_path, "org", "create", "east", "--parent", "nowhere"),
        "no org unit named 'nowhere'",
    )
    refused(metacrm(installed, tmp_path, "org", "create", "sales"), "already exists")
    refused(metacrm(installed, tmp_path, "org", "create", "East Coast"), "name: must match")
    engine = make_engine(installed)
    with reading(engine) as conn:
        assert [u.name for u in list_units(conn)] == ["sales"]
    engine.dispose()


def test_user_create_with_roles_org_unit_and_manager(installed: str, tmp_path: Path) -> None:
    ok(metacrm(installed, tmp_path, "org", "create", "sales"))
    boss_id = ok(
        metacrm(
            installed,
            tmp_path,
            "user",
            "create",
            "--email",
            "boss@example.com",
            "--password",
            PASSWORD,
            "--org-unit",
            "sales",
        )
    )
    rep_id = ok(
        metacrm(
            installed,
            tmp_path,
            "user",
            "create",
            "--email",
            "Rep@Example.com",
            "--password",
            PASSWORD,
            "--name",
            "Rita Rep",
            "--role",
            "viewer",
            "--role",
            "rep",
            "--org-unit",
            "sales",
            "--manager",
            "BOSS@example.com",
        )
    )
    admin_id = ok(
        metacrm(
            installed,
            tmp_path,
            "user",
            "create",
            "--email",
            "chief@example.com",
            "--password",
            PASSWORD,
            "--role",
            "admin",
            "--role",
            "rep",
        )
    )
    engine = make_engine(installed)
    with reading(engine) as conn:
        sales = find_unit(conn, "sales")
        boss, rep, chief = (
            find_user(conn, e) for e in ("boss@example.com", "rep@example.com", "chief@example.com")
        )
    engine.dispose()
    assert (boss.id, boss.org_unit, boss.manager, boss.roles) == (boss_id, sales.id, None, ())
    assert rep.id == rep_id and rep.name == "Rita Rep"
    assert rep.roles == ("rep", "viewer") and rep.is_admin is False
    assert (rep.org_unit, rep.manager) == (sales.id, boss_id)
    # "admin" is the admin flag, not a role document.
    assert chief.id == admin_id and chief.is_admin is True and chief.roles == ("rep",)
    # The new user can sign in with a token from the command.
    token = ok(metacrm(installed, tmp_path, "token", "create", "--user", "rep@example.com"))
    assert token.startswith("mcrm_")


UNKNOWN_REFERENCES = [
    (("--role", "rep", "--role", "ghost"), "unknown role; --role: no role named 'ghost'"),
    (
        ("--role", "ghost", "--role", "phantom"),
        "--role: no role named 'ghost'; --role: no role named 'phantom'",
    ),
    (("--org-unit", "nowhere"), "no org unit named 'nowhere'"),
    (("--manager", "nobody@example.com"), "no user with email nobody@example.com"),
    (
        ("--role", "rep", "--org-unit", "sales", "--manager", "nobody@example.com"),
        "no user with email nobody@example.com",
    ),
]


def test_user_create_with_unknown_references_fails_with_one_line(
    installed: str, tmp_path: Path
) -> None:
    ok(metacrm(installed, tmp_path, "org", "create", "sales"))
    before = user_count(installed)
    add = ("user", "create", "--email", "new@example.com", "--password", PASSWORD)
    for extra, reason in UNKNOWN_REFERENCES:
        refused(metacrm(installed, tmp_path, *add, *extra), reason)
    assert user_count(installed) == before


def test_user_create_refuses_bad_input_with_one_line(installed: str, tmp_path: Path) -> None:
    base = ("user", "create", "--email", "new@example.com")
    refused(
        metacrm(installed, tmp_path, *base, "--password", "short"), "password: must be at least 8"
    )
    refused(
        metacrm(installed, tmp_path, "user", "create", "--email", "nope", "--password", PASSWORD),
        "email: must be an email address",
    )
    ok(metacrm(installed, tmp_path, *base, "--password", PASSWORD))
    refused(
        metacrm(
            installed,
            tmp_path,
            "user",
            "create",
            "--email",
            "NEW@example.com",
            "--password",
            PASSWORD,
        ),
        "already exists",
    )
    assert user_count(installed) == 2  # the admin and new@
