"""Fields as people see and type them: a record's value shown for a locale, the input that fits
a field type, and a submitted form turned back into the record's JSON (the same JSON the API
takes, so the record service validates both alike).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.datastructures import FormData

from metacrm.app.i18n import Locale
from metacrm.metadata.model import EntityDef, FieldDef

# Types shown as plain text (after formatting); the template gives the others their own markup.
TEXTUAL = frozenset({"text", "textarea", "phone", "autonumber"})
# Fields no form offers: the system's own and those computed from others.
COMPUTED = frozenset({"formula", "autonumber"})


@dataclass(frozen=True)
class Shown:
    """A value as a page shows it: its text, and where it links (a record, a URL, a mail)."""

    text: str
    href: str | None = None
    kind: str = "text"  # text | link | external | mail | bool | empty | masked | choice
    tone: str | None = None


EMPTY = Shown("", kind="empty")


def field_label(field: FieldDef, locale: Locale) -> str:
    if field.system:
        return system_label(field.name, locale)
    return locale.label(field.doc.get("label"), field.name.replace("_", " ").capitalize())


def system_label(name: str, locale: Locale) -> str:
    """The label of a field every entity has (the platform's, not the metadata's)."""
    _ = locale.gettext
    labels = {
        "owner": _("Owner"),
        "created_at": _("Created"),
        "created_by": _("Created by"),
        "updated_at": _("Last changed"),
        "updated_by": _("Changed by"),
        "version": _("Version"),
        "id": _("ID"),
        "deleted_at": _("Deleted"),
    }
    return labels.get(name, name)


def option_label(field: FieldDef, value: str, locale: Locale) -> str:
    for option in field.doc.get("options", ()):
        if option.get("value") == value:
            return locale.label(option.get("label"), value)
    return value


def value_kind(field: FieldDef) -> str:
    """The type a value of the field has (a formula's result type)."""
    if field.type == "formula":
        return str(field.doc.get("result_type", "text"))
    return field.type


def show(
    field: FieldDef,
    value: Any,
    locale: Locale,
    *,
    users: Mapping[str, str] | None = None,
    titles: Mapping[str, str] | None = None,
) -> Shown:
    """The value of `field` as text for the locale. Lookups show the target's title (from
    `titles`, by id, or an expanded record), users their name (`users`)."""
    if value is None or value == "" or value == []:
        return EMPTY
    kind = value_kind(field)
    if field.name in ("owner", "created_by", "updated_by") or kind == "user":
        name = (users or {}).get(str(value))
        return Shown(name or locale.gettext("Unknown user"), kind="text")
    if kind == "lookup":
        record_id = value.get("id") if isinstance(value, dict) else str(value)
        title = (titles or {}).get(str(record_id)) if record_id else None
        if isinstance(value, dict):
            title = title or value.get("_title")
        target = field.doc.get("target", "")
        href = f"/app/{target}/{record_id}" if record_id else None
        return Shown(title or locale.gettext("(no access)"), href, kind="link")
    if kind in ("picklist",):
        return Shown(option_label(field, str(value), locale), kind="choice")
    if kind == "multipicklist":
        items = value if isinstance(value, list) else [value]
        return Shown(", ".join(option_label(field, str(v), locale) for v in items), kind="choice")
    if kind == "boolean":
        return Shown(locale.gettext("Yes") if value else locale.gettext("No"), kind="bool")
    if kind == "datetime":
        moment = _datetime(value)
        return Shown(locale.datetime_text(moment, "medium") if moment else str(value))
    if kind == "date":
        day = _date(value)
        return Shown(locale.date_text(day, "medium") if day else str(value))
    if kind in ("integer", "decimal"):
        number = _number(value)
        if number is None:
            return Shown(str(value), kind="masked")
        scale = field.scale if kind == "decimal" and field.type == "decimal" else None
        if kind == "decimal" and field.type == "formula":
            scale = 2
        return Shown(locale.number(number, scale))
    if kind == "email" and "*" not in str(value):
        return Shown(str(value), f"mailto:{value}", kind="mail")
    if kind == "url" and str(value).startswith(("http://", "https://")):
        return Shown(str(value), str(value), kind="external")
    return Shown(str(value))


def input_value(field: FieldDef, value: Any, locale: Locale) -> Any:
    """The value as the field's input holds it (a string, or a list for multi-selects)."""
    if value is None:
        return [] if field.type == "multipicklist" else ""
    if field.type == "datetime":
        moment = _datetime(value)
        return locale.local_input(moment) if moment else str(value)
    if field.type in ("lookup", "user") and isinstance(value, dict):
        return str(value.get("id", ""))
    if field.type == "multipicklist":
        return list(value) if isinstance(value, list) else [str(value)]
    if field.type == "boolean":
        return bool(value)
    return str(value)


def editable(field: FieldDef) -> bool:
    """Whether a form offers the field at all (roles may still make it read-only)."""
    if field.system:
        return field.name == "owner"
    return not (field.read_only or field.type in COMPUTED)


def parse_form(
    entity: EntityDef, fields: list[FieldDef], form: FormData, locale: Locale
) -> dict[str, Any]:
    """The record JSON a form submitted for `fields` (those it offered). Values the form
    can't have typed wrong are converted; the rest go as typed, for the record service to
    judge with its usual field errors."""
    data: dict[str, Any] = {}
    for field in fields:
        name = field.name
        if field.type == "boolean":
            # A hidden input sends "false" first; a ticked box sends "true" after it.
            sent = form.getlist(name)
            if sent:
                data[name] = str(sent[-1]).lower() == "true"
            continue
        if field.type == "multipicklist":
            if f"{name}__present" in form:
                data[name] = [str(v) for v in form.getlist(name) if str(v)]
            continue
        if name not in form:
            continue
        raw = str(form.get(name) or "").strip()
        if raw == "":
            data[name] = None
        elif field.type == "datetime":
            data[name] = _from_local(raw, locale)
        elif field.type in ("integer", "decimal"):
            data[name] = _plain_number(raw)
        else:
            data[name] = raw
    return data


def _from_local(raw: str, locale: Locale) -> str:
    """A datetime-local input's value (in the user's zone) as ISO 8601 UTC; anything else is
    passed on for the record service to refuse with its message."""
    try:
        local = datetime.fromisoformat(raw)
    except ValueError:
        return raw
    if local.tzinfo is None:
        local = local.replace(tzinfo=locale.zone)
    return local.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain_number(raw: str) -> str:
    """Typed numbers may carry group separators (1,234.50, 1 234,50 is not accepted)."""
    return raw.replace(",", "").replace("\u00a0", "").replace(" ", "")


def _datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def _number(value: Any) -> Decimal | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
