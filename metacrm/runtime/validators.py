"""The validation rules of an entity that name a validator hook (`{"name", "hook"}`) applied to
one write: each rule whose `when` holds calls the validator registered under its hook, and what
the validator finds becomes field errors, reported with the condition rules' errors.

A rule whose validator this server lacks (its plugin was removed, or is missing from this
process) refuses the write with a 503 naming it, logged — never skipped: a rule that can't be
judged must not let records through.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import FieldError, ServiceUnavailable
from metacrm.runtime.context import Records
from metacrm.runtime.rules.compile_py import holds

log = logging.getLogger("metacrm.validators")


def validator_errors(
    records: Records,
    entity: EntityDef,
    after: Mapping[str, Any],
    before: Mapping[str, Any] | None,
) -> list[FieldError]:
    """The problems the entity's validators find with the record as the write would save it
    (`after`), the stored record being `before` (None on a create)."""
    rules = [r for r in entity.doc.get("validation_rules", []) if "hook" in r]
    if not rules:
        return []
    context = records.ctx.rules()
    env = context.env(entity, after, before)
    registered = records.ctx.host.registry.validators
    # Read-only views: a validator judges the write, it doesn't change it.
    record = MappingProxyType(dict(after))
    old = MappingProxyType(dict(before)) if before is not None else None
    errors: list[FieldError] = []
    for rule in rules:
        when = rule.get("when")
        if when is not None and not holds(context.condition(entity, when, sees_change=True), env):
            continue
        fn = registered.get(rule["hook"])
        if fn is None:
            log.error(
                "%s rule %r names the validator %r, which this process has not registered",
                entity.name,
                rule["name"],
                rule["hook"],
            )
            raise ServiceUnavailable(
                f"the {entity.name} rule {rule['name']!r} needs the validator {rule['hook']!r}, "
                "which this server doesn't have (is the plugin that provides it installed?); "
                "the write is refused until it has, or the rule is removed",
                extra={"validator": rule["hook"]},
            )
        errors.extend(_placed(rule, problem) for problem in fn(records, entity, record, old) or ())
    return errors


def _placed(rule: Mapping[str, Any], problem: Any) -> FieldError:
    """A validator's problem as a field error: a FieldError stands as it is; a message goes to
    the rule's field under the rule's name, worded by the rule's `message` if it has one."""
    if isinstance(problem, FieldError):
        return problem
    if isinstance(problem, str):
        message = rule.get("message")
        text = (message.get("en") or next(iter(message.values()))) if message else problem
        return FieldError(rule.get("field", ""), rule["name"], text)
    raise TypeError(
        f"validator {rule['hook']!r} reported a {type(problem).__name__}, "
        "not a FieldError or a message"
    )
