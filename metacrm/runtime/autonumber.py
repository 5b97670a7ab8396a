"""Autonumbers such as OPP-2026-00042: a counter per entity, field and period, taken atomically."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from metacrm.metadata.model import FieldDef
from metacrm.platform.systables import autonumbers

_TOKEN = re.compile(r"\{(YYYY|YY|MM|DD|seq:(\d{1,2}))\}")


def render(pattern: str, when: datetime, seq: int) -> str:
    def token(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("seq"):
            return str(seq).zfill(int(match.group(2)))
        return {
            "YYYY": f"{when.year:04d}",
            "YY": f"{when.year % 100:02d}",
            "MM": f"{when.month:02d}",
            "DD": f"{when.day:02d}",
        }[name]

    return _TOKEN.sub(token, pattern)


def period(pattern: str, when: datetime) -> str:
    """The counter restarts when the date part of the pattern changes (yearly for {YYYY})."""
    return (
        render(
            _TOKEN.sub(lambda m: "" if m.group(1).startswith("seq") else m.group(0), pattern),
            when,
            0,
        )
        if "{" in pattern
        else ""
    )


def next_autonumber(conn: Connection, entity: str, field: FieldDef, when: datetime) -> str:
    pattern = field.pattern or "{seq:6}"
    key = {"entity": entity, "field": field.name, "period": period(pattern, when)[:16]}
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(autonumbers)
        .values(**key, value=1)
        .on_conflict_do_update(
            index_elements=["entity", "field", "period"],
            set_={"value": autonumbers.c.value + 1},
        )
        .returning(autonumbers.c.value)
    )
    return render(pattern, when, conn.execute(stmt).scalar_one())
