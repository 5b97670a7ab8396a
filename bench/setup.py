"""Building the two databases: metacrm's (through its own CLI and entity designer) and the
baseline's, both holding the same seeded deals, with a check that their tables are identical."""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, text

from bench import baseline_app
from metacrm.metadata.entities import EntityDesigner
from metacrm.platform.db import make_engine, reading, writing
from metacrm.platform.ids import new_id
from metacrm.platform.users import find_user
from metacrm.runtime.catalog import build_catalog
from metacrm.runtime.rule_checks import expression_checker

ADMIN_EMAIL = "admin@example.com"
BATCH = 5_000

DEAL: dict[str, Any] = {
    "name": "deal",
    "label": {"en": "Deal"},
    "plural_label": {"en": "Deals"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True, "max_length": 200},
        {"name": "amount", "type": "decimal", "precision": 14, "scale": 2, "indexed": True},
        {
            "name": "stage",
            "type": "picklist",
            "indexed": True,
            "default": "qualify",
            "options": [{"value": v} for v in baseline_app.STAGES],
        },
        {"name": "close_date", "type": "date"},
        {"name": "probability", "type": "integer", "min": 0, "max": 100},
        {"name": "owner_email", "type": "email"},
        {
            "name": "region",
            "type": "picklist",
            "options": [{"value": v} for v in baseline_app.REGIONS],
        },
        {"name": "notes", "type": "textarea"},
    ],
}

_WORDS = ("acme", "globex", "initech", "umbrella", "stark", "wayne", "tyrell", "soylent", "hooli")


@dataclass(frozen=True)
class Databases:
    metacrm_url: str
    baseline_url: str
    token: str
    user_id: str
    ids_file: Path


def metacrm_cli(args: list[str], url: str, cwd: Path) -> str:
    """Run `metacrm …` as a user would (its own process); its stdout, or an error naming why."""
    env = {**os.environ, "METACRM_DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "metacrm.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"metacrm {args[0]} failed: {done.stderr.strip() or done.stdout}")
    return done.stdout


def seed_rows(count: int, user_id: str, seed: int = 20240601) -> list[dict[str, Any]]:
    """The deals both databases get: same ids, same values."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for n in range(count):
        created = start + timedelta(seconds=n * 37)
        rows.append(
            {
                "id": new_id(),
                "owner": user_id,
                "created_at": created,
                "created_by": user_id,
                "updated_at": created,
                "updated_by": user_id,
                "version": 1,
                "deleted_at": None,
                "name": f"{rng.choice(_WORDS).title()} deal {n}",
                "amount": Decimal(rng.randint(0, 10_000_000)) / 100,
                "stage": rng.choice(baseline_app.STAGES),
                "close_date": date(2024, 1, 1) + timedelta(days=rng.randint(0, 900)),
                "probability": rng.randint(0, 100),
                "owner_email": f"rep{rng.randint(1, 40)}@example.com",
                "region": rng.choice(baseline_app.REGIONS),
                "notes": " ".join(rng.choices(_WORDS, k=rng.randint(4, 20))),
            }
        )
    return rows


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), BATCH):
        conn.execute(insert(table), rows[i : i + BATCH])


def create_metacrm(url: str, workdir: Path) -> tuple[Engine, str]:
    """`metacrm init`, then the deal entity through the entity designer; the admin's id."""
    metacrm_cli(
        ["init", "--admin-email", ADMIN_EMAIL, "--admin-password", secrets.token_urlsafe(16)],
        url,
        workdir,
    )
    engine = make_engine(url)
    with writing(engine) as conn:
        user = find_user(conn, ADMIN_EMAIL)
        catalog = build_catalog(conn, -1)
        designer = EntityDesigner(
            conn, author=user.id, check_expression=expression_checker(catalog)
        )
        designer.create(DEAL)
    return engine, user.id


def table_ddl(engine: Engine, table: str) -> list[str]:
    """The CREATE statements of a table and its indexes, whitespace normalised and with index
    and constraint names left out: the structure is what must match, and metacrm names its
    indexes after ids (mc_ix_1_2) where a hand-written table names them after columns."""
    with engine.connect() as conn:
        sql = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE tbl_name = :t AND sql IS NOT NULL"),
            {"t": table},
        ).scalars()
        normal = (re.sub(r"\s+", " ", s).strip() for s in sql)
        unnamed = (
            re.sub(
                r"CONSTRAINT \S+ ",
                "",
                re.sub(r"^CREATE (UNIQUE )?INDEX \S+ ", r"CREATE \1INDEX ", s),
            )
            for s in normal
        )
        return sorted(unnamed)


def prepare(workdir: Path, rows: int, *, analyze: bool = False) -> Databases:
    metacrm_url = f"sqlite:///{workdir / 'metacrm.db'}"
    baseline_url = f"sqlite:///{workdir / 'baseline.db'}"
    engine, user_id = create_metacrm(metacrm_url, workdir)
    data = seed_rows(rows, user_id)
    with reading(engine) as conn:
        table = build_catalog(conn, -1).table("deal")
    with writing(engine) as conn:
        bulk_insert(conn, table, data)

    baseline = baseline_app.make_engine(baseline_url)
    with baseline.begin() as conn:
        baseline_app.metadata.create_all(conn)
        bulk_insert(conn, baseline_app.deal, data)

    if analyze:
        for each in (engine, baseline):
            with each.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
    ours, theirs = table_ddl(engine, "deal"), table_ddl(baseline, "deal")
    engine.dispose()
    baseline.dispose()
    if ours != theirs:
        raise RuntimeError(
            "the baseline table differs from metacrm's:\n  metacrm:  "
            + "\n            ".join(ours)
            + "\n  baseline: "
            + "\n            ".join(theirs)
        )
    token = metacrm_cli(["token", "create", "--user", ADMIN_EMAIL], metacrm_url, workdir).strip()
    ids_file = workdir / "ids.json"
    ids_file.write_text(json.dumps([r["id"] for r in data]))
    return Databases(metacrm_url, baseline_url, token, user_id, ids_file)
