"""What values each field type holds: turning input (JSON or CSV text) into stored values and
stored values back into JSON. Record writes, defaults and type changes all go through here."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from metacrm.metadata.model import FieldDef
from metacrm.metadata.types import DEFAULT_TEXT_LENGTH, TEXTAREA_MAX_LENGTH
from metacrm.platform.clock import as_utc
from metacrm.platform.ids import is_valid_id

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ().\-/]{3,40}$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class ValueProblem(ValueError):
    """A value a field cannot hold; `code` is machine-readable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def default_max_length(field: FieldDef) -> int:
    if field.max_length:
        return field.max_length
    return TEXTAREA_MAX_LENGTH if field.type == "textarea" else DEFAULT_TEXT_LENGTH


def _text(field: FieldDef, value: Any) -> str | None:
    if not isinstance(value, str):
        raise ValueProblem("type", "must be a string")
    if "\x00" in value:
        raise ValueProblem("format", "must not contain NUL characters")
    limit = default_max_length(field)
    if len(value) > limit:
        raise ValueProblem("max_length", f"must be at most {limit} characters")
    return value


def _blank_is_null(check: Callable[[FieldDef, str], str]) -> Callable[[FieldDef, Any], Any]:
    def coerce(field: FieldDef, value: Any) -> str | None:
        text = _text(field, value)
        if text is None or text.strip() == "":
            return None
        return check(field, text.strip())

    return coerce


def _email(_field: FieldDef, value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueProblem("format", "must be an email address")
    return value


def _phone(_field: FieldDef, value: str) -> str:
    if not _PHONE.match(value):
        raise ValueProblem("format", "must be a phone number (digits, spaces, + - ( ) . /)")
    return value


def _url(_field: FieldDef, value: str) -> str:
    if not _URL.match(value):
        raise ValueProblem("format", "must be an http or https URL")
    return value


def _picklist(field: FieldDef, value: str) -> str:
    if value not in field.options:
        raise ValueProblem("choice", f"must be one of {', '.join(field.options)}")
    return value


def _reference(_field: FieldDef, value: str) -> str:
    if not is_valid_id(value):
        raise ValueProblem("format", "must be a record id")
    return value


def _integer(field: FieldDef, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueProblem("type", "must be an integer")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueProblem("type", "must be an integer")
        value = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?\d{1,20}", text):
            raise ValueProblem("type", "must be an integer")
        value = int(text)
    elif isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise ValueProblem("type", "must be an integer")
        value = int(value)
    elif not isinstance(value, int):
        raise ValueProblem("type", "must be an integer")
    if not INT_MIN <= value <= INT_MAX:
        raise ValueProblem("range", "is out of range for an integer")
    return _bounded(field, value, int)


def _decimal(field: FieldDef, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueProblem("type", "must be a number")
    try:
        if isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, int | Decimal):
            number = Decimal(value)
        elif isinstance(value, str) and len(value) <= 100:
            number = Decimal(value.strip())
        else:
            raise ValueProblem("type", "must be a number")
    except InvalidOperation:
        raise ValueProblem("type", "must be a number") from None
    if not number.is_finite():
        raise ValueProblem("type", "must be a finite number")
    # Magnitude first, from the exponent alone: huge exponents must not cost time or crash.
    whole_digits = max(number.adjusted() + 1, 0) if number else 0
    if whole_digits > field.precision - field.scale:
        raise ValueProblem(
            "range", f"must have at most {field.precision - field.scale} digits before the point"
        )
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > field.scale:
        rounded = round(number, field.scale)
        if rounded != number:
            raise ValueProblem("scale", f"must have at most {field.scale} decimal places")
        number = rounded
    return _bounded(field, number, _decimal_bound)


def _decimal_bound(bound: Any) -> Decimal:
    """A bound written as a JSON number means the decimal it shows, not its binary float."""
    return Decimal(repr(bound)) if isinstance(bound, float) else Decimal(str(bound))


def _boolean(_field: FieldDef, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueProblem("type", "must be true or false")


def _date(field: FieldDef, value: Any) -> date:
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        if not isinstance(value, str) or not _DATE.match(value.strip()):
            raise ValueProblem("format", "must be a date as YYYY-MM-DD")
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise ValueProblem("format", "is not a real date") from None
    return _bounded(field, value, date.fromisoformat)


def _datetime(field: FieldDef, value: Any) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        if not _DATETIME.match(text):
            raise ValueProblem("format", "must be an ISO 8601 date and time")
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueProblem("format", "is not a real date and time") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise ValueProblem("format", "must be an ISO 8601 date and time")
    value = as_utc(value)
    return _bounded(field, value, lambda s: _datetime_bound(s))


def _datetime_bound(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _multipicklist(field: FieldDef, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(";") if v.strip()]
    if not isinstance(value, list):
        raise ValueProblem("type", "must be a list of strings")
    chosen: list[str] = []
    for item in value:
        if not isinstance(item, str) or item not in field.options:
            raise ValueProblem("choice", f"every item must be one of {', '.join(field.options)}")
        if item not in chosen:
            chosen.append(item)
    return chosen


def _bounded(field: FieldDef, value: Any, parse: Callable[[Any], Any]) -> Any:
    low, high = field.minimum, field.maximum
    if low is not None and value < parse(low):
        raise ValueProblem("min", f"must be at least {low}")
    if high is not None and value > parse(high):
        raise ValueProblem("max", f"must be at most {high}")
    return value


def _free_text(field: FieldDef, value: Any) -> str | None:
    return _text(field, value)


COERCERS: dict[str, Callable[[FieldDef, Any], Any]] = {
    "text": _free_text,
    "textarea": _free_text,
    "email": _blank_is_null(_email),
    "phone": _blank_is_null(_phone),
    "url": _blank_is_null(_url),
    "picklist": _blank_is_null(_picklist),
    "lookup": _blank_is_null(_reference),
    "user": _blank_is_null(_reference),
    "autonumber": _free_text,
    "integer": _integer,
    "decimal": _decimal,
    "boolean": _boolean,
    "date": _date,
    "datetime": _datetime,
    "multipicklist": _multipicklist,
}


def coerce(field: FieldDef, value: Any) -> Any:
    """The stored value for an input value, or ValueProblem. None stays None."""
    if value is None:
        return None
    return COERCERS[field.type](field, value)


def to_storage(field: FieldDef, value: Any) -> Any:
    """Coerced value → column value (multipicklists are a JSON array in a text column)."""
    if field.type == "multipicklist" and value is not None:
        return json.dumps(value, ensure_ascii=False)
    return value


def from_storage(field: FieldDef, value: Any) -> Any:
    """Column value → the coerced Python value."""
    if value is None:
        return None
    if field.type == "multipicklist":
        return json.loads(value) if isinstance(value, str) else value
    if isinstance(value, datetime):
        return as_utc(value)
    if field.type == "decimal" and not isinstance(value, Decimal):
        return Decimal(str(value))
    return value


def to_json(value: Any) -> Any:
    """A coerced value as JSON: decimals as strings (exact), dates and times as ISO 8601."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value
