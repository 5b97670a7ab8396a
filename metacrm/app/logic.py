"""Judging metadata's conditions on a record as a page holds it (JSON values, as read or as
typed): section and field visibility on record pages and forms."""

from __future__ import annotations

from typing import Any

from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.values import ValueProblem, coerce
from metacrm.platform.errors import MetacrmError
from metacrm.runtime.context import RequestContext


def rule_values(entity: EntityDef, record: dict[str, Any]) -> dict[str, Any]:
    """The record as the rule language sees it: typed values; a value that isn't one (masked,
    or typed wrong in a form) is unknown (null)."""
    values: dict[str, Any] = {}
    for f in entity.all_fields:
        raw = record.get(f.name)
        if isinstance(raw, dict):
            raw = raw.get("id")
        typed = f
        if f.type == "formula":
            kind = str(f.doc.get("result_type", "text"))
            typed = FieldDef.from_doc({"name": f.name, "type": kind, "scale": 10, "precision": 38})
        try:
            values[f.name] = coerce(typed, raw) if raw is not None else None
        except (ValueProblem, KeyError):
            values[f.name] = None
    return values


def holds(ctx: RequestContext, entity: EntityDef, text: str | None, values: dict[str, Any]) -> bool:
    """Whether a display condition holds; one that can't be judged shows what it guards."""
    if not text:
        return True
    rules = ctx.rules()
    try:
        return rules.condition(entity, text)(rules.env(entity, values, None)) is True
    except (MetacrmError, TypeError, ValueError, ArithmeticError):
        return True
