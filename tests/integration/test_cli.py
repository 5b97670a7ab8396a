"""The `metacrm` command, run as a real process against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ACCOUNT, OPPORTUNITY, start_api
from sqlalchemy import inspect

from metacrm.platform.db import make_engine
from metacrm.platform.signin import check_password

ADD_REP = ("user", "create", "--email", "rep@example.com", "--password", "long-enough-pw")


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


def test_init_is_idempotent_and_users_get_tokens(database_url: str, tmp_path: Path) -> None:
    first = metacrm(database_url, tmp_path, "init", "--no-templates")
    assert first.returncode == 0, first.stderr
    assert "admin login: admin@example.com / " in first.stdout
    password = first.stdout.split("admin login: admin@example.com / ")[1].split()[0]
    again = metacrm(database_url, tmp_path, "init")
    assert again.returncode == 0, again.stderr
    assert "admin login: admin@example.com" in again.stdout
    assert password not in again.stdout and "metacrm user password" in again.stdout
    # Shown once, kept nowhere in plain text: not in a file, not in the (SQLite) database.
    assert not (tmp_path / ".metacrm/admin-credentials.json").exists()
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or password.encode() not in path.read_bytes(), path
    engine = make_engine(database_url)
    assert check_password(engine, "admin@example.com", password) is not None
    engine.dispose()
    made = metacrm(database_url, tmp_path, *ADD_REP)
    assert made.returncode == 0, made.stderr
    token = metacrm(database_url, tmp_path, "token", "create", "--user", "rep@example.com")
    assert token.returncode == 0
    lines = token.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcrm_")
    duplicate = metacrm(database_url, tmp_path, *ADD_REP)
    assert duplicate.returncode != 0
    assert duplicate.stderr.count("\n") == 1 and "already exists" in duplicate.stderr
    unknown = metacrm(database_url, tmp_path, "token", "create", "--user", "nobody@example.com")
    assert unknown.returncode != 0 and "no user" in unknown.stderr


def test_commands_on_an_uninitialised_database_fail_with_a_reason(tmp_path: Path) -> None:
    result = metacrm(f"sqlite:///{tmp_path}/empty.db", tmp_path, "meta", "export")
    assert result.returncode != 0
    assert "metacrm init" in result.stderr


def test_meta_export_then_import_into_another_database(
    database_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    source = start_api(database_url)
    with source.client:
        source.make_entity(ACCOUNT)
        source.make_entity(OPPORTUNITY)
    source.engine.dispose()
    exported = metacrm(database_url, tmp_path, "meta", "export")
    assert exported.returncode == 0, exported.stderr
    package = json.loads(exported.stdout)
    assert [e["name"] for e in package["entities"]] == ["account", "opportunity"]
    path = tmp_path / "package.json"
    path.write_text(exported.stdout)

    target_dir = tmp_path / "target"
    target_dir.mkdir()
    target = f"sqlite:///{target_dir}/target.db"
    assert metacrm(target, target_dir, "init", "--no-templates").returncode == 0
    dry = metacrm(target, target_dir, "meta", "import", str(path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "opportunity: create the table" in dry.stdout
    assert "dry run" in dry.stdout
    assert "opportunity" not in inspect(make_engine(target)).get_table_names()
    applied = metacrm(target, target_dir, "meta", "import", str(path))
    assert applied.returncode == 0, applied.stderr
    assert {"account", "opportunity"} <= set(inspect(make_engine(target)).get_table_names())
    again = metacrm(target, target_dir, "meta", "import", str(path))
    assert again.returncode == 0 and "nothing to change" in again.stdout
    round_trip = metacrm(target, target_dir, "meta", "export", "opportunity")
    assert json.loads(round_trip.stdout)["entities"] == package["entities"][1:]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json", "can't read"),
        ('{"format": "other"}', "not a metacrm package"),
        ('{"format": "metacrm.package", "entities": [{"name": "x", "label": {}}]}', "not valid"),
    ],
    ids=["not-json", "wrong-format", "invalid-entity"],
)
def test_bad_packages_are_refused_and_change_nothing(
    sqlite_url: str, tmp_path: Path, content: str, reason: str
) -> None:
    assert metacrm(sqlite_url, tmp_path, "init", "--no-templates").returncode == 0
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = metacrm(sqlite_url, tmp_path, "meta", "import", str(path))
    assert result.returncode != 0
    assert reason in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert json.loads(metacrm(sqlite_url, tmp_path, "meta", "export").stdout)["entities"] == []


def test_init_installs_the_crm_templates_once_and_no_templates_leaves_the_platform_empty(
    sqlite_url: str, tmp_path: Path
) -> None:
    first = metacrm(sqlite_url, tmp_path, "init")
    assert first.returncode == 0, first.stderr
    assert "installed the crm templates 1.0.0" in first.stdout
    listed = metacrm(sqlite_url, tmp_path, "plugins", "list")
    assert listed.stdout.splitlines() == ["crm\t1.0.0\t1.0.0\tCRM templates"]
    exported = json.loads(metacrm(sqlite_url, tmp_path, "meta", "export").stdout)
    names = [e["name"] for e in exported["entities"]]
    assert names == ["activity", "contact", "customer", "lead", "opportunity", "ticket"]
    again = metacrm(sqlite_url, tmp_path, "init")
    assert again.returncode == 0 and "installed the crm" not in again.stdout
    planned = metacrm(sqlite_url, tmp_path, "plugins", "upgrade", "crm", "--dry-run")
    assert planned.stdout.splitlines() == [
        "upgrade crm 1.0.0 → 1.0.0",
        "  no change to the metadata",
        "dry run: nothing was changed",
    ]
    twice = metacrm(sqlite_url, tmp_path, "plugins", "install", "crm")
    assert twice.returncode == 1 and "installed already" in twice.stderr
    missing = metacrm(sqlite_url, tmp_path, "plugins", "install", "nothing_here")
    assert missing.returncode == 1 and "no plugin named 'nothing_here'" in missing.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    url = f"sqlite:///{empty / 'empty.db'}"
    assert metacrm(url, empty, "init", "--no-templates").returncode == 0
    assert json.loads(metacrm(url, empty, "meta", "export").stdout)["entities"] == []
    assert metacrm(url, empty, "plugins", "list").stdout.split("\t")[2] == "not installed"
    installed_later = metacrm(url, empty, "plugins", "install", "crm")
    assert installed_later.returncode == 0 and installed_later.stdout.startswith(
        "install crm 1.0.0"
    )


def test_user_password_sets_a_new_password_that_signs_in(sqlite_url: str, tmp_path: Path) -> None:
    assert metacrm(sqlite_url, tmp_path, "init", "--no-templates").returncode == 0
    made = metacrm(sqlite_url, tmp_path, "user", "password", "--email", "Admin@Example.com")
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert len(lines) == 1 and len(lines[0]) >= 12
    engine = make_engine(sqlite_url)
    assert check_password(engine, "admin@example.com", lines[0]) is not None
    chosen = metacrm(
        sqlite_url,
        tmp_path,
        "user",
        "password",
        "--email",
        "admin@example.com",
        "--password",
        "chosen-password",
    )
    assert chosen.returncode == 0 and chosen.stdout == ""
    assert check_password(engine, "admin@example.com", "chosen-password") is not None
    assert check_password(engine, "admin@example.com", lines[0]) is None
    short = metacrm(
        sqlite_url,
        tmp_path,
        "user",
        "password",
        "--email",
        "admin@example.com",
        "--password",
        "short",
    )
    assert short.returncode != 0 and "at least 8" in short.stderr
    unknown = metacrm(sqlite_url, tmp_path, "user", "password", "--email", "no@example.com")
    assert unknown.returncode != 0 and "no user" in unknown.stderr


def test_init_with_a_password_for_an_existing_admin_changes_nothing_and_says_so(
    sqlite_url: str, tmp_path: Path
) -> None:
    first = metacrm(sqlite_url, tmp_path, "init", "--admin-password", "first-password")
    assert first.returncode == 0 and "first-password" in first.stdout
    again = metacrm(sqlite_url, tmp_path, "init", "--admin-password", "second-password")
    assert again.returncode == 0
    assert "changed nothing" in again.stderr and "second-password" not in again.stdout
    engine = make_engine(sqlite_url)
    assert check_password(engine, "admin@example.com", "first-password") is not None
    assert check_password(engine, "admin@example.com", "second-password") is None


@pytest.mark.parametrize("still_valid", [True, False], ids=["valid", "stale"])
def test_init_removes_the_plain_text_file_of_earlier_versions(
    sqlite_url: str, tmp_path: Path, still_valid: bool
) -> None:
    """Earlier versions left the generated password in .metacrm/admin-credentials.json. The
    next init shows it one last time (only if it still signs in) and removes the file."""
    assert (
        metacrm(sqlite_url, tmp_path, "init", "--admin-password", "real-password").returncode == 0
    )
    legacy = tmp_path / ".metacrm/admin-credentials.json"
    legacy.parent.mkdir()
    saved = "real-password" if still_valid else "old-password"
    legacy.write_text(json.dumps({"email": "admin@example.com", "password": saved}))
    again = metacrm(sqlite_url, tmp_path, "init")
    assert again.returncode == 0, again.stderr
    assert not legacy.exists()
    assert (f"admin login: admin@example.com / {saved}" in again.stdout) is still_valid
    assert "metacrm user password" in again.stdout
