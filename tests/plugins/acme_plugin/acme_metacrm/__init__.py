"""Acme warranties: a third-party metacrm plugin, shipped as a distribution of its own.

Its metadata package (`package/`) adds the `warranty` entity, a `warranty_extension` log of
extensions and the `extend` record action; `register` adds what the rule language can't say:
the action's hook step, the serial-number validator and a periodic job that expires warranties.
Every hook writes through the record service it is given (or, for the job, one it opens over
the process's services) — never to the tables.
"""

from __future__ import annotations

import calendar
import os
from collections.abc import Mapping
from datetime import date
from importlib import resources
from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.plugins.model import Plugin, package_from_files
from metacrm.runtime.context import Records
from metacrm.runtime.listing import ListQuery
from metacrm.runtime.records import RecordService
from metacrm.runtime.registry import RuntimeRegistry
from metacrm.runtime.services import Services

VERSION = "1.0.0"
WARRANTY = "warranty"
EXTENSION = "warranty_extension"
# How often the expiry job runs; a deployment (or a test) may run it more often.
EXPIRY_EVERY_VARIABLE = "ACME_EXPIRY_EVERY"
EXPIRY_EVERY_SECONDS = 3600.0
EXPIRY_BATCH = 500


def register(registry: RuntimeRegistry) -> None:
    registry.action_hook("acme.extend_warranty", extend_warranty)
    registry.validator("acme.serial_checksum", serial_checksum)
    every = float(os.environ.get(EXPIRY_EVERY_VARIABLE, EXPIRY_EVERY_SECONDS))
    registry.task("acme.expire_warranties", expire_warranties, every=every)


def extend_warranty(
    records: Records, entity: EntityDef, record_id: str, given: Mapping[str, Any]
) -> dict[str, Any]:
    """The `extend` action's step: a new end date, and the extension logged as a record."""
    warranty = records.get(entity.name, record_id)
    previous = date.fromisoformat(warranty["ends_on"])
    new_end = add_months(previous, given["months"])
    records.update(
        entity.name,
        record_id,
        {"ends_on": new_end.isoformat(), "extensions": (warranty["extensions"] or 0) + 1},
    )
    logged = records.create(
        EXTENSION,
        {
            "warranty": record_id,
            "months": given["months"],
            "previous_end": previous.isoformat(),
            "new_end": new_end.isoformat(),
            "reason": given.get("reason"),
        },
    )
    return {"ends_on": new_end, "extension": logged["id"]}


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day when it is shorter."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def serial_checksum(
    records: Records,
    entity: EntityDef,
    record: Mapping[str, Any],
    old: Mapping[str, Any] | None,
) -> list[str]:
    """Acme serial numbers are digits whose last one is a Luhn check digit."""
    serial = record.get("serial") or ""
    if not serial.isdigit():
        return [f"{serial!r} is not an Acme serial number: only digits"]
    if not luhn_valid(serial):
        return [f"{serial} fails its check digit: mistyped?"]
    return []


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def expire_warranties(services: Services) -> None:
    """Active warranties past their end date become expired, as the platform's system user,
    through the record service (their history and events say so)."""
    with services.writing() as conn:
        records = RecordService(services.system_context(conn))
        if records.ctx.catalog.find(WARRANTY) is None:
            return  # the plugin is in Python but its package isn't installed here
        due = records.list(
            WARRANTY,
            ListQuery(
                filter='status == "active" and ends_on < $today',
                fields=("id",),
                limit=EXPIRY_BATCH,
            ),
        )
        changes = {row["id"]: {"status": "expired"} for row in due["data"]}
        if changes:
            # One warranty that can't take it (its serial no longer checks) doesn't hold the
            # others back; the next run takes what is left of a long backlog.
            records.update_many(WARRANTY, changes, all_or_none=False)


def _package() -> dict[str, Any]:
    return package_from_files(resources.files(__package__) / "package")


plugin = Plugin(
    name="acme",
    version=VERSION,
    label={"en": "Acme warranties", "zh-CN": "Acme 保修"},
    description={
        "en": "Warranties with a serial-number check, extensions and automatic expiry",
        "zh-CN": "保修、序列号校验、延期和自动过期",
    },
    package=_package,
    register=register,
)
