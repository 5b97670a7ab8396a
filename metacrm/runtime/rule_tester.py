"""The rule tester behind `POST /api/v1/meta/entities/{name}/rules/test`: what an expression
checks to, the SQL it compiles to, and its value for a record or the count of matching records,
so the admin UI can give live feedback while a rule is typed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from metacrm.metadata.values import ValueProblem, coerce, to_json
from metacrm.platform.errors import FieldError, MetacrmError, RuleError, Unprocessable
from metacrm.runtime.records import RecordService
from metacrm.runtime.rules.compile_py import compiled
from metacrm.runtime.rules.operators import BOOLEAN


def test_rule(service: RecordService, entity_name: str, body: Any) -> dict[str, Any]:
    entity = service.ctx.catalog.entity(entity_name)
    if not isinstance(body, dict) or not isinstance(body.get("expression"), str):
        raise Unprocessable(
            "send {expression, record?, old?}",
            errors=[FieldError("expression", "required", "must be a string")],
        )
    record_in, old_in = body.get("record"), body.get("old")
    checked, fn = compiled(
        entity,
        body["expression"],
        expect=None,
        allow_change_refs=old_in is not None,
        resolve_entity=service.ctx.catalog.find,
    )
    result: dict[str, Any] = {"type": checked.vtype}
    compiler = service.compiler(entity)
    table = service.ctx.catalog.table(entity.name)
    try:
        expression = compiler.value(checked)
        result["sql"] = str(expression.compile(dialect=service.ctx.conn.dialect))
    except RuleError as error:
        result["sql"] = None
        result["sql_error"] = error.detail
        expression = None
    if record_in is not None:
        record = _values(service, entity, record_in, "record")
        old = _values(service, entity, old_in, "old") if old_in is not None else None
        context = service.ctx.rules()
        result["value"] = to_json(fn(context.env(entity, record, old)))
    elif expression is not None and checked.vtype == BOOLEAN:
        stmt = compiler.apply(select(func.count()).select_from(table))
        stmt = stmt.where(table.c.deleted_at.is_(None), expression)
        result["count"] = service.ctx.conn.execute(stmt).scalar_one()
    return result


def _values(service: RecordService, entity: Any, raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Unprocessable(
            f"{where} must be an object of field values",
            errors=[FieldError(where, "type", "must be an object")],
        )
    values: dict[str, Any] = {
        "owner": service.ctx.user.id,
        "created_at": service.ctx.now,
        "updated_at": service.ctx.now,
    }
    errors = []
    for name, value in raw.items():
        field = entity.field(name)
        if field is None:
            errors.append(FieldError(f"{where}/{name}", "unknown_field", "no such field"))
            continue
        try:
            values[name] = coerce(field, value) if not field.system else value
        except (ValueProblem, MetacrmError) as problem:
            errors.append(FieldError(f"{where}/{name}", "invalid", str(problem)))
    if errors:
        raise Unprocessable(f"the {where} is not valid", errors=errors)
    return values
