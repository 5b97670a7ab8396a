"""Assignment rules through the metadata API (admins only): who new records of an entity go to.
The rules act through a write hook (runtime/assignment.py), not through an endpoint."""

from __future__ import annotations

from typing import Any

from metacrm.metadata import store
from metacrm.metadata.assignment_rules import (
    ASSIGNMENT_RULE,
    OWNER,
    AssignmentRuleDesigner,
)
from metacrm.runtime.api.context import Work
from metacrm.runtime.api.documents import DocumentEndpoints
from metacrm.runtime.rule_checks import expression_checker


def _designer(work: Work) -> AssignmentRuleDesigner:
    return AssignmentRuleDesigner(
        work.conn,
        author=work.user.id,
        entities=work.catalog.entities,
        roles=work.catalog.roles.keys(),
        others=work.catalog.of_kind(ASSIGNMENT_RULE),
        check_expression=expression_checker(work.catalog),
    )


def _summary(doc: store.StoredDocument) -> dict[str, Any]:
    return {
        "name": doc.name,
        "label": doc.document["label"],
        "entity": doc.document["entity"],
        "field": doc.document.get("field", OWNER),
        "active": doc.document.get("active", True),
        "rules": len(doc.document["rules"]),
        "version": doc.version,
    }


ASSIGNMENT_RULES = DocumentEndpoints(
    "assignment-rules",
    ASSIGNMENT_RULE,
    _designer,
    _summary,
    "AssignmentRule",
    "AssignmentRuleSummary",
)
