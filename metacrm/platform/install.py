"""Creating and upgrading the platform's own tables, and the settings kept in the database."""

from __future__ import annotations

import secrets

from sqlalchemy import Connection, Engine, inspect, select

from metacrm.platform.db import writing
from metacrm.platform.systables import meta_stamp, settings_table, system_metadata

SECRET_KEY = "secret_key"


def install(engine: Engine) -> None:
    """Idempotent: creates what is missing, leaves what exists."""
    with writing(engine) as conn:
        system_metadata.create_all(conn, checkfirst=True)
        if conn.execute(select(meta_stamp.c.id)).first() is None:
            conn.execute(meta_stamp.insert().values(id=1, stamp=1))
        if stored_setting(conn, SECRET_KEY) is None:
            conn.execute(
                settings_table.insert().values(key=SECRET_KEY, value=secrets.token_hex(32))
            )


def is_installed(engine: Engine) -> bool:

    return inspect(engine).has_table(meta_stamp.name)


def stored_setting(conn: Connection, key: str) -> str | None:
    return conn.execute(select(settings_table.c.value).where(settings_table.c.key == key)).scalar()
