"""`metacrm demo` in-process on SQLite and PostgreSQL: a small-scale load of the CRM templates'
demo data has the expected shape — counts that follow the scale, every record owned by an
active demo user of a fitting role, stages spread, dates within the last year, history written,
signed-in staff seeing what their roles show — the same seed loads the same data, and a
database with records (or the demo users) already is refused and left as it was."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import ADMIN_EMAIL, Api, start_api
from sqlalchemy import func, select

from metacrm.metadata.packages import FORMAT, FORMAT_VERSION
from metacrm.platform.clock import as_utc
from metacrm.platform.errors import BadRequest, Conflict, NotFound
from metacrm.platform.systables import record_history, user_roles, users
from metacrm.platform.users import find_user
from metacrm.plugins.crm import plugin as crm
from metacrm.plugins.crm.demo import PASSWORD
from metacrm.plugins.crm.demo.plan import sizes
from metacrm.plugins.demos import DemoOptions, load_demos
from metacrm.plugins.installer import install
from metacrm.plugins.model import DemoLoaded, DemoRun, Plugin
from metacrm.plugins.progress import LogLines

SCALE = 0.03
ENTITIES = ("lead", "customer", "contact", "opportunity", "activity", "ticket")
# The roles whose people own each entity's records in the demo.
OWNERS = {
    "lead": {"sales_rep", "sales_manager"},
    "customer": {"sales_rep"},
    "contact": {"sales_rep"},
    "opportunity": {"sales_rep"},
    "activity": {"sales_rep", "service_agent"},
    "ticket": {"service_agent", "service_manager"},
}
# A Wednesday noon: tests that compare two loads give both the same clock.
FIXED = datetime(2025, 6, 11, 4, 0, tzinfo=UTC)


def with_templates(api: Api) -> Api:
    with api.services.writing() as conn:
        install(api.records(conn, find_user(conn, ADMIN_EMAIL)), crm)
    return api


def load(api: Api, **options: Any) -> list[str]:
    progress = LogLines(io.StringIO())
    return load_demos(api.services, {"crm": crm}, DemoOptions(**options), progress)


def rows(api: Api, entity: str) -> list[Any]:
    with api.services.reading() as conn:
        table = api.services.catalog(conn).table(entity)
        return list(conn.execute(select(table).order_by(table.c.created_at, table.c.id)))


def counts(api: Api) -> dict[str, int]:
    return {entity: len(rows(api, entity)) for entity in ENTITIES}


def roles_of(api: Api) -> dict[str, tuple[str, set[str], bool]]:
    """user id → (email, roles, active)"""
    with api.services.reading() as conn:
        found = {r.id: (r.email, set(), r.is_active) for r in conn.execute(select(users))}
        for user_id, role in conn.execute(select(user_roles.c.user_id, user_roles.c.role)):
            found[user_id][1].add(role)
    return found


@pytest.fixture(scope="module")
def loaded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, list[str]]]:
    """One small demo on SQLite for the tests that only read it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo')}/demo.db"
    api = with_templates(start_api(url))
    with api.client:
        yield api, load(api, seed=3, scale=SCALE)
    api.engine.dispose()


@pytest.fixture
def crm_api(api: Api) -> Api:
    return with_templates(api)


def test_the_demo_has_the_expected_shape(crm_api: Api) -> None:
    api = crm_api
    began = datetime.now(UTC)
    lines = load(api, seed=3, scale=SCALE)
    made = counts(api)
    wanted = sizes(SCALE)
    assert {e: made[e] for e in wanted} == wanted
    assert wanted["customer"] <= made["contact"] <= 4 * wanted["customer"]
    assert lines[0] == "crm demo (seed 3, scale 0.03):"
    assert lines[1] == "  made " + ", ".join(
        f"{made[e]} {e} records"
        for e in ("lead", "customer", "opportunity", "activity", "ticket", "contact")
    )
    assert "rows/s" in lines[-1] and f"password {PASSWORD}" in lines[2]

    people = roles_of(api)
    demo_users = {i: p for i, p in people.items() if p[0].endswith("@demo.example.com")}
    assert len(demo_users) == 30 and all(active for _, _, active in demo_users.values())
    for entity, fitting in OWNERS.items():
        for row in rows(api, entity):
            email, roles, _ = demo_users[row.owner]
            assert roles & fitting, (entity, email, roles)
            # Made within the last year, by the staff, not in the future.
            created = as_utc(row.created_at)
            assert began - timedelta(days=366) < created <= datetime.now(UTC)
            assert row.created_by in demo_users

    stages = Counter(r.stage for r in rows(api, "opportunity"))
    statuses = Counter(r.status for r in rows(api, "lead"))
    assert len(stages) >= 3 and len(statuses) >= 3, (stages, statuses)
    # Stage gates held: every opportunity past the proposal has an amount and a close date.
    for row in rows(api, "opportunity"):
        if row.stage in ("proposal", "negotiation", "won"):
            assert row.amount and row.close_date
        if row.stage == "lost":
            assert row.lost_reason
    for row in rows(api, "ticket"):
        assert row.number.startswith("TKT-")
        if row.status in ("resolved", "closed"):
            assert row.resolution

    with api.services.reading() as conn:
        by_action = select(record_history.c.action, func.count()).group_by(record_history.c.action)
        written = {action: count for action, count in conn.execute(by_action)}
    assert written["create"] == sum(made.values())
    assert written["update"] > wanted["opportunity"]


def test_staff_sign_in_with_the_demo_password_and_see_what_their_roles_show(
    loaded_sqlite: tuple[Api, list[str]],
) -> None:
    api, _ = loaded_sqlite
    people = roles_of(api)
    by_email = {email: user_id for user_id, (email, _, _) in people.items()}

    def token(email: str) -> str:
        response = api.client.post(
            "/api/v1/tokens", json={"email": email, "password": PASSWORD, "name": "demo"}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def owners(email: str, entity: str) -> set[str]:
        response = api.get(f"/api/v1/records/{entity}?limit=500", headers=auth(token(email)))
        assert response.status_code == 200, response.text
        return {r["owner"] for r in response.json()["data"]}

    def auth(value: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {value}"}

    leads = {r.owner for r in rows(api, "lead")}
    rep = next(people[o][0] for o in leads if "sales_rep" in people[o][1])
    assert owners(rep, "lead") == {by_email[rep]}
    manager_id = next(r.manager_id for r in select_users(api) if r.id == by_email[rep])
    team = {r.id for r in select_users(api) if r.manager_id == manager_id} | {manager_id}
    assert owners(people[manager_id][0], "lead") <= team
    assert owners("vp@demo.example.com", "lead") == leads
    agent = api.get("/api/v1/records/lead", headers=auth(token("agent1@demo.example.com")))
    assert agent.status_code == 403


def select_users(api: Api) -> list[Any]:
    with api.services.reading() as conn:
        return list(conn.execute(select(users)))


def test_the_same_seed_loads_the_same_data(tmp_path: Path) -> None:
    databases = iter(range(3))

    def snapshot(seed: int) -> dict[str, list[tuple[Any, ...]]]:
        url = f"sqlite:///{tmp_path}/demo-{next(databases)}.db"
        api = with_templates(start_api(url, clock=lambda: FIXED))
        with api.client:
            load(api, seed=seed, scale=0.01)
            emails = {i: p[0] for i, p in roles_of(api).items()}
            seen = {
                "lead": [
                    (r.company, r.status, emails[r.owner], r.created_at) for r in rows(api, "lead")
                ],
                "opportunity": [
                    (r.name, r.stage, r.amount, emails[r.owner], r.updated_at)
                    for r in rows(api, "opportunity")
                ],
                "ticket": [(r.number, r.subject, r.status) for r in rows(api, "ticket")],
            }
        api.engine.dispose()
        return seen

    first = snapshot(11)
    assert snapshot(11) == first
    assert snapshot(12) != first


def test_a_second_load_is_refused_and_changes_nothing(
    loaded_sqlite: tuple[Api, list[str]],
) -> None:
    api, _ = loaded_sqlite
    before = counts(api)
    found = r"has records already \(24 customer, \d+ contact, 60 lead, .*\); .*--force"
    with pytest.raises(Conflict, match=found):
        load(api, seed=3, scale=SCALE)
    with pytest.raises(Conflict, match="demo users exist already"):
        load(api, seed=3, scale=SCALE, force=True)
    assert counts(api) == before
    assert len([p for p in roles_of(api).values() if p[0].endswith("demo.example.com")]) == 30


def test_records_in_the_templates_refuse_the_demo_unless_forced(crm_api: Api) -> None:
    api = crm_api
    made = api.post("/api/v1/records/lead", {"company": "Ours", "email": "a@ours.example"})
    assert made.status_code == 201, made.text
    with pytest.raises(Conflict, match=r"\(1 lead\)"):
        load(api, scale=SCALE)
    assert counts(api)["lead"] == 1 and len(roles_of(api)) == 1
    load(api, scale=SCALE, force=True)
    assert counts(api)["lead"] == 1 + sizes(SCALE)["lead"]


def test_without_the_templates_or_with_a_bad_scale_nothing_loads(api: Api) -> None:
    with pytest.raises(NotFound, match=r"no installed plugin has demo data.*crm"):
        load(api, scale=SCALE)
    with_templates(api)
    for scale in (0.0, -1.0, 25.0):
        with pytest.raises(BadRequest, match="--scale must be above 0"):
            load(api, scale=scale)
    assert len(roles_of(api)) == 1


def test_the_command_runs_each_installed_plugins_demo_and_knows_no_template(api: Api) -> None:
    asked: list[DemoRun] = []

    def demo(run: DemoRun) -> DemoLoaded:
        asked.append(run)
        run.progress.start(3)
        run.progress.advance(3)
        run.progress.finish()
        return DemoLoaded(3, ["made 3 widgets"])

    def empty() -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION}

    tiny = Plugin("tiny", "1.0.0", {"en": "Tiny"}, empty, demo=demo)
    absent = Plugin("absent", "1.0.0", {"en": "Not installed"}, empty, demo=demo)
    with api.services.writing() as conn:
        install(api.records(conn, find_user(conn, ADMIN_EMAIL)), tiny)
    moments = iter([10.0, 12.0])
    out = io.StringIO()
    lines = load_demos(
        api.services,
        {"tiny": tiny, "absent": absent},
        DemoOptions(seed=9, scale=0.5),
        LogLines(out),
        clock=lambda: next(moments),
    )
    assert [(r.seed, r.scale, r.services) for r in asked] == [(9, 0.5, api.services)]
    assert lines == [
        "tiny demo (seed 9, scale 0.5):",
        "  made 3 widgets",
        "  3 rows written in 2.0 s (2 rows/s)",
    ]
    assert out.getvalue().splitlines()[-1].startswith("progress: 100% 3/3")
