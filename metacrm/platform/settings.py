"""Settings read from the environment (docs/api.md, "Set-up and configuration").

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
    # How long Redis waits for a worker to acknowledge a task before giving it to another
    # (a worker killed mid-task is noticed after this long).
    task_visibility_timeout: int = 300
    # Email for notifications: smtp://user:password@host:port (smtps:// for TLS); unset = none.
    smtp_url: str | None = None
    smtp_from: str = "metacrm@localhost"
    # Sign-in (POST /api/v1/tokens): attempts that didn't succeed, per account and per client
    # address, within a window of this many seconds; more are refused (429) until it closes.
    signin_account_attempts: int = 5
    signin_address_attempts: int = 20
    signin_window: int = 900
    # Browser sessions of the app (/app): closed after this many seconds without a request, and
    # in any case this many seconds after sign-in. `secure_cookies` marks the session cookie
    # Secure: set it when the app is served over HTTPS (behind a proxy that terminates TLS).
    session_idle: int = 12 * 3600
    session_lifetime: int = 14 * 24 * 3600
    secure_cookies: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        port = env.get("METACRM_PORT", "8000")
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValueError(f"METACRM_PORT must be a port number, not {port!r}")
        visibility = env.get("METACRM_TASK_VISIBILITY_TIMEOUT", "300")
        if not (visibility.isascii() and visibility.isdigit()) or int(visibility) < 1:
            raise ValueError(
                f"METACRM_TASK_VISIBILITY_TIMEOUT must be a number of seconds, not {visibility!r}"
            )
        return cls(
            database_url=env.get("METACRM_DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=env.get("METACRM_REDIS_URL") or None,
            secret_key=env.get("METACRM_SECRET_KEY") or None,
            host=env.get("METACRM_HOST") or "127.0.0.1",
            port=int(port),
            task_visibility_timeout=int(visibility),
            smtp_url=env.get("METACRM_SMTP_URL") or None,
            smtp_from=env.get("METACRM_SMTP_FROM") or "metacrm@localhost",
            signin_account_attempts=_positive(env, "METACRM_SIGNIN_ACCOUNT_ATTEMPTS", 5),
            signin_address_attempts=_positive(env, "METACRM_SIGNIN_ADDRESS_ATTEMPTS", 20),
            signin_window=_positive(env, "METACRM_SIGNIN_WINDOW", 900),
            session_idle=_positive(env, "METACRM_SESSION_IDLE", 12 * 3600),
            session_lifetime=_positive(env, "METACRM_SESSION_LIFETIME", 14 * 24 * 3600),
            secure_cookies=_flag(env, "METACRM_SECURE_COOKIES"),
        )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name) or str(default)
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    return int(value)


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = (env.get(name) or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name} must be true or false, not {value!r}")
