"""Masked field values: keep a safe part, star the rest (`138****5678`, `a***@example.com`).

How a field is masked is metadata (a role's field permission): `"email"`, or
`{"keep_start": n, "keep_end": m, "char": "*"}`. Without one, emails keep their first letter
and domain, everything else its last four characters. A value too short to keep anything
safely is starred whole.
"""

from __future__ import annotations

from typing import Any

from metacrm.metadata.model import FieldDef

DEFAULT_KEEP = {"keep_start": 0, "keep_end": 4}
PHONE_KEEP = {"keep_start": 3, "keep_end": 4}


def mask(value: Any, how: Any, field: FieldDef | None) -> Any:
    if not isinstance(value, str) or value == "":
        return value
    if how is None:
        kind = field.type if field is not None else "text"
        how = "email" if kind == "email" else PHONE_KEEP if kind == "phone" else DEFAULT_KEEP
    if how == "email":
        return _email(value)
    return _keep(value, how.get("keep_start", 0), how.get("keep_end", 0), how.get("char", "*"))


def _keep(value: str, start: int, end: int, char: str) -> str:
    hidden = len(value) - start - end
    # Star at least a third of the value, so a short one can't be read back (nearly) whole.
    if hidden < max(1, -(-len(value) // 3)):
        return char * len(value)
    return value[:start] + char * hidden + (value[len(value) - end :] if end else "")


def _email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local:
        return _keep(value, 0, 0, "*")
    return f"{local[0]}***@{domain}"
