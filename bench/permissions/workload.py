"""The permissions benchmark's data: an org tree and a reporting line of users, a role that reads
by `subordinates`, and a million deals spread over the users' ownership, built on PostgreSQL.

The platform tables come from `install` and the deal table from the `EntityDesigner` (the path the
metadata API takes); the role is a role document saved by the `RoleDesigner`. Users, org units
and records are bulk-inserted straight into those tables (creating 2,000 users one by one would
hash 2,000 passwords; a million records through the service would take far too long), then
the database is `ANALYZE`d.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

from bench.setup import DEAL
from metacrm.metadata.entities import EntityDesigner
from metacrm.metadata.roles import RoleDesigner
from metacrm.platform.db import writing
from metacrm.platform.ids import new_id
from metacrm.platform.install import install
from metacrm.platform.security import hash_password
from metacrm.platform.systables import org_units, user_roles, users
from metacrm.platform.users import create_user
from metacrm.runtime.catalog import build_catalog
from metacrm.runtime.rule_checks import expression_checker

ENTITY = DEAL["name"]
ROLE_NAME = "manager"
ADMIN_EMAIL = "admin@example.com"
LEVELS = 6  # depth of the reporting line and of the org tree (levels 0 … 5)
# Each manager at levels 0-3 has this many manager reports; the leaves (level 5) are whatever
# is left of the user count, spread evenly over the level-4 managers.
MANAGER_FANOUT = 4
ROLE = {
    "name": ROLE_NAME,
    "label": {"en": "Manager"},
    "entities": {ENTITY: {"actions": {"read": "subordinates"}}},
}
# Record timestamps: created over two years before this instant, updated some time after.
EPOCH = datetime(2025, 6, 1, tzinfo=UTC)
SEED = 0.4242
INSERT_CHUNK = 250_000


@dataclass(frozen=True)
class Person:
    id: str
    level: int
    manager: str | None


@dataclass(frozen=True)
class Org:
    admin: str
    people: list[Person]
    units: int

    def at_level(self, level: int) -> list[Person]:
        return [p for p in self.people if p.level == level]

    def subordinates(self, user_id: str) -> set[str]:
        """The user and everyone below them (computed here, to check the product's walk)."""
        below: dict[str | None, list[str]] = {}
        for p in self.people:
            below.setdefault(p.manager, []).append(p.id)
        found, todo = set(), [user_id]
        while todo:
            current = todo.pop()
            found.add(current)
            todo.extend(below.get(current, ()))
        return found


def level_sizes(user_count: int) -> list[int]:
    """Users per level: 1, 4, 16, 64, 256 managers, then the leaves."""
    sizes = [MANAGER_FANOUT**level for level in range(LEVELS - 1)]
    leaves = user_count - sum(sizes)
    if leaves < sizes[-1]:
        raise RuntimeError(f"{user_count} users are too few for {LEVELS} levels")
    return [*sizes, leaves]


def create_schema(engine: Engine) -> str:
    """Platform tables, the admin, the deal entity and the role; the admin's id."""
    install(engine)
    with writing(engine) as conn:
        admin = create_user(
            conn, email=ADMIN_EMAIL, password=secrets.token_urlsafe(16), is_admin=True
        )
        catalog = build_catalog(conn, -1)
        check = expression_checker(catalog)
        EntityDesigner(conn, author=admin.id, check_expression=check).create(DEAL)
        catalog = build_catalog(conn, -1)
        RoleDesigner(
            conn,
            author=admin.id,
            entities=catalog.entities,
            check_expression=expression_checker(catalog),
        ).create(ROLE)
    return admin.id


def build_org(conn: Connection, admin: str, user_count: int, rng: random.Random) -> Org:
    """A reporting line six levels deep and an org tree that mirrors it: every manager heads a
    unit at their level's depth, below their own manager's unit; the leaves of one level-4
    manager sit in a team unit (depth 5) under that manager's unit. All hold the role."""
    now = datetime.now(UTC)
    password_hash = hash_password(secrets.token_urlsafe(16))  # one hash, shared: nobody logs in
    people: list[Person] = []
    user_rows: list[dict[str, object]] = []
    unit_rows: list[dict[str, object]] = []
    unit_of: dict[str, str] = {}  # manager id -> the unit they head
    previous: list[Person] = []
    for level, size in enumerate(level_sizes(user_count)):
        current = []
        for n in range(size):
            boss = previous[n % len(previous)] if previous else None
            person = Person(new_id(), level, boss.id if boss else None)
            current.append(person)
            parent_unit = unit_of.get(boss.id) if boss else None
            if level < LEVELS - 1:
                unit = new_id()
                unit_of[person.id] = unit
                unit_rows.append(_unit_row(unit, f"unit_l{level}_{n}", parent_unit, person.id, now))
            else:
                assert boss is not None
                team = f"team_{boss.id.lower()}"
                if team not in unit_of:
                    unit_of[team] = new_id()
                    unit_rows.append(_unit_row(unit_of[team], team, parent_unit, boss.id, now))
                unit = unit_of[team]
            user_rows.append(
                {
                    "id": person.id,
                    "email": f"l{level}.{n}@example.com",
                    "name": f"Level {level} person {n}",
                    "password_hash": password_hash,
                    "is_admin": False,
                    "is_active": True,
                    "org_unit_id": unit,
                    "manager_id": person.manager,
                    "created_at": now,
                }
            )
        people.extend(current)
        previous = current
    rng.shuffle(people)  # so that ownership below is not ordered by level
    # Units parent-first, then users manager-first: every foreign key points at a row already in.
    conn.execute(org_units.insert(), unit_rows)
    conn.execute(users.insert(), user_rows)
    conn.execute(user_roles.insert(), [{"user_id": r["id"], "role": ROLE_NAME} for r in user_rows])
    return Org(admin, people, len(unit_rows))


def _unit_row(
    unit_id: str, name: str, parent: str | None, head: str, now: datetime
) -> dict[str, object]:
    return {
        "id": unit_id,
        "name": name,
        "label": name,
        "parent_id": parent,
        "head_user_id": head,
        "created_at": now,
    }


def insert_records(conn: Connection, org: Org, count: int) -> None:
    """`count` deals, each owned by a user drawn uniformly at random, with created/updated
    timestamps spread over two years independently of the owner. One INSERT … SELECT over
    generate_series per chunk, with the values computed by PostgreSQL."""
    conn.exec_driver_sql("CREATE TEMP TABLE bench_owner (n integer PRIMARY KEY, id text)")
    conn.execute(
        text("INSERT INTO bench_owner (n, id) VALUES (:n, :id)"),
        [{"n": n, "id": p.id} for n, p in enumerate(org.people)],
    )
    conn.execute(text("SELECT setseed(:seed)"), {"seed": SEED})
    stages = "ARRAY[" + ",".join(f"'{o['value']}'" for o in _options("stage")) + "]"
    regions = "ARRAY[" + ",".join(f"'{o['value']}'" for o in _options("region")) + "]"
    for start in range(0, count, INSERT_CHUNK):
        stop = min(count, start + INSERT_CHUNK)
        conn.execute(
            text(
                f"""
                INSERT INTO {ENTITY} (id, owner, created_at, created_by, updated_at, updated_by,
                    version, deleted_at, name, amount, stage, close_date, probability,
                    owner_email, region, notes)
                SELECT 'D' || lpad(r.g::text, 25, '0'), o.id, r.created, :admin,
                    r.created + random() * (:epoch - r.created), o.id,
                    1 + floor(random() * 5)::int, NULL, 'Deal ' || r.g,
                    round((random() * 100000)::numeric, 2),
                    ({stages})[1 + floor(random() * {len(_options("stage"))})::int],
                    date '2024-01-01' + floor(random() * 900)::int,
                    floor(random() * 101)::int, 'rep' || (r.g % 40) || '@example.com',
                    ({regions})[1 + floor(random() * {len(_options("region"))})::int],
                    repeat('note ', 1 + floor(random() * 20)::int)
                FROM (
                    -- random() in a subquery's select list keeps it from being flattened: one
                    -- draw per row, in order, so setseed makes the data the same every run.
                    SELECT g, floor(random() * :users)::int AS n,
                        :epoch - random() * interval '730 days' AS created
                    FROM generate_series(CAST(:start AS integer), CAST(:stop AS integer)) AS g
                ) AS r
                JOIN bench_owner AS o ON o.n = r.n
                """
            ),
            {
                "admin": org.admin,
                "epoch": EPOCH,
                "start": start + 1,
                "stop": stop,
                "users": len(org.people),
            },
        )
    conn.exec_driver_sql("DROP TABLE bench_owner")


def _options(field: str) -> list[dict[str, str]]:
    return next(f["options"] for f in DEAL["fields"] if f["name"] == field)


def build(engine: Engine, user_count: int, record_count: int) -> Org:
    admin = create_schema(engine)
    with writing(engine) as conn:
        org = build_org(conn, admin, user_count, random.Random(20250601))
        insert_records(conn, org, record_count)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM ANALYZE")
    return org
