"""Which field type may change into which, as a table; and how one stored value converts.

`revalidate`: the column stays, every value must be valid for the new type.
`rewrite`: a new column of the new type is filled with converted values.
"""

from __future__ import annotations

from typing import Any

from metacrm.metadata.model import FieldDef
from metacrm.metadata.values import ValueProblem, coerce, to_json

REVALIDATE = "revalidate"
REWRITE = "rewrite"

_TEXTS = ("text", "textarea", "email", "phone", "url", "picklist")
_FREE_TEXT = ("text", "textarea")
_SCALARS = ("integer", "decimal", "boolean", "date", "datetime")

CONVERSIONS: dict[tuple[str, str], str] = {
    **{(a, b): REVALIDATE for a in _TEXTS for b in _TEXTS if a != b},
    **{(a, b): REWRITE for a in _TEXTS for b in (*_SCALARS, "multipicklist")},
    **{(a, b): REWRITE for a in _SCALARS for b in _FREE_TEXT},
    ("integer", "decimal"): REWRITE,
    ("decimal", "integer"): REWRITE,
    ("integer", "boolean"): REWRITE,
    ("boolean", "integer"): REWRITE,
    ("date", "datetime"): REWRITE,
    ("datetime", "date"): REWRITE,
    ("multipicklist", "text"): REWRITE,
    ("multipicklist", "textarea"): REWRITE,
    ("multipicklist", "picklist"): REWRITE,
    ("autonumber", "text"): REVALIDATE,
    ("autonumber", "textarea"): REVALIDATE,
}


def allowed_targets(type_name: str) -> list[str]:
    return sorted(b for (a, b) in CONVERSIONS if a == type_name)


def convert(old: FieldDef, new: FieldDef, value: Any) -> Any:
    """The value `new` stores for a value stored under `old`; ValueProblem when it can't."""
    if value is None:
        return None
    if new.value_kind == "text":
        if isinstance(value, list):
            if new.type == "picklist" and len(value) > 1:
                raise ValueProblem("lossy", "holds several choices; a picklist keeps one")
            value = ";".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        else:
            value = str(to_json(value))
        return coerce(new, value or None)
    if (
        old.type == "datetime"
        and new.type == "date"
        and (value.hour, value.minute, value.second, value.microsecond) != (0, 0, 0, 0)
    ):
        raise ValueProblem("lossy", "has a time of day that a date can't keep")
    if new.type == "boolean" and isinstance(value, int):
        if value not in (0, 1):
            raise ValueProblem("type", "only 0 and 1 become true or false")
        return bool(value)
    if new.type == "integer" and isinstance(value, bool):
        return int(value)
    return coerce(new, value)
