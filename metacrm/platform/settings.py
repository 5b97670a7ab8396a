"""Settings read from the environment (API.md, "Set-up and configuration").

One frozen object, built once by whoever starts the process and passed down explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///./metacrm.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    # None until `init` generates one and stores it in the database.
    secret_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        port = env.get("METACRM_PORT", "8000")
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValueError(f"METACRM_PORT must be a port number, not {port!r}")
        return cls(
            database_url=env.get("METACRM_DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=env.get("METACRM_REDIS_URL") or None,
            secret_key=env.get("METACRM_SECRET_KEY") or None,
            host=env.get("METACRM_HOST") or "127.0.0.1",
            port=int(port),
        )
