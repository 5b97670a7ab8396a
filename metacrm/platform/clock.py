"""The current time, always timezone-aware UTC; and the one place that normalises stored times."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: datetime | None) -> str | None:
    """A stored time as the API writes times: ISO 8601 in UTC with a `Z`."""
    if value is None:
        return None
    return as_utc(value).isoformat().replace("+00:00", "Z")
