"""Importing a whole metadata package: entities first, then the documents built on them (roles,
pipelines, approval processes, actions, automations, assignment rules, list views, form
layouts), each through its own designer, all in the caller's transaction.

It lives in the runtime because a pipeline's change may move records between stages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from metacrm.metadata import store
from metacrm.metadata.approvals import ApprovalProcessDesigner
from metacrm.metadata.assignment_rules import ASSIGNMENT_RULE, AssignmentRuleDesigner
from metacrm.metadata.documents import DocumentDesigner
from metacrm.metadata.entities import EntityDesigner
from metacrm.metadata.form_layouts import FORM_LAYOUT, FormLayoutDesigner
from metacrm.metadata.list_views import LIST_VIEW, ListViewDesigner
from metacrm.metadata.packages import DOCUMENT_KINDS, import_package
from metacrm.metadata.roles import RoleDesigner
from metacrm.platform.errors import FieldError, Unprocessable
from metacrm.runtime.actions import action_designer
from metacrm.runtime.automations import automation_designer
from metacrm.runtime.catalog import build_catalog
from metacrm.runtime.context import Records
from metacrm.runtime.pipelines.design import PipelineDesigner
from metacrm.runtime.rule_checks import StoredEntities, expression_checker

# Each designer works on the metadata as imported so far (`records` carries that snapshot).
DesignerFactory = Callable[[Records], DocumentDesigner[Any]]

_DESIGNERS: dict[str, DesignerFactory] = {
    "roles": lambda records: RoleDesigner(
        records.ctx.conn,
        records.ctx.user.id,
        records.ctx.catalog.entities,
        expression_checker(records.ctx.catalog),
    ),
    "pipelines": PipelineDesigner,
    "approval_processes": lambda records: ApprovalProcessDesigner(
        records.ctx.conn,
        records.ctx.user.id,
        records.ctx.catalog.entities,
        records.ctx.catalog.roles.keys(),
        expression_checker(records.ctx.catalog),
    ),
    "actions": lambda records: action_designer(records.ctx),
    "automations": lambda records: automation_designer(
        records.ctx.conn, records.ctx.user.id, records.ctx.catalog
    ),
    "assignment_rules": lambda records: AssignmentRuleDesigner(
        records.ctx.conn,
        records.ctx.user.id,
        records.ctx.catalog.entities,
        records.ctx.catalog.roles.keys(),
        records.ctx.catalog.of_kind(ASSIGNMENT_RULE),
        expression_checker(records.ctx.catalog),
    ),
    "list_views": lambda records: ListViewDesigner(
        records.ctx.conn,
        records.ctx.user.id,
        records.ctx.catalog.entities,
        records.ctx.catalog.of_kind(LIST_VIEW),
        expression_checker(records.ctx.catalog),
    ),
    "form_layouts": lambda records: FormLayoutDesigner(
        records.ctx.conn,
        records.ctx.user.id,
        records.ctx.catalog.entities,
        records.ctx.catalog.of_kind(FORM_LAYOUT),
        expression_checker(records.ctx.catalog),
    ),
}


def apply_package(records: Records, package: Any) -> list[str]:
    """Create what is missing and change what differs, as `records`' user; returns one line
    per change."""
    conn, author = records.ctx.conn, records.ctx.user.id
    entities = EntityDesigner(
        conn,
        author=author,
        check_expression=expression_checker(StoredEntities(conn)),
        validators=tuple(records.ctx.host.registry.validators),
    )
    changes = [
        f"{result.entity.name}: {op.describe()}"
        for result in import_package(entities, package)
        for op in result.plan.operations
    ]
    for key, kind in DOCUMENT_KINDS.items():
        for doc in _documents(package, key):
            # Each document is checked against everything imported before it.
            designer = _DESIGNERS[key](records.with_catalog(build_catalog(conn, -1)))
            name = _name(designer, doc)
            current = store.get(conn, kind, name) if name is not None else None
            if current is None or name is None:
                # A document without its name (or entity, for actions) is refused by create.
                designer.create(doc)
                changes.append(f"{kind} {name}: created")
            elif current.document != doc:
                designer.replace(name, doc)
                changes.append(f"{kind} {name}: changed")
    return changes


def _name(designer: DocumentDesigner[Any], doc: dict[str, Any]) -> str | None:
    """The name the document is stored under (`<entity>.<name>` for a record action)."""
    try:
        return designer.kind.key(doc)
    except (KeyError, TypeError):
        return None


def _documents(package: dict[str, Any], key: str) -> list[dict[str, Any]]:
    found = package.get(key, [])
    if not isinstance(found, list) or not all(
        isinstance(d, dict) and isinstance(d.get("name"), str) for d in found
    ):
        raise Unprocessable(
            f"the package's {key} must be a list of documents",
            errors=[FieldError(f"/{key}", "type", "must be a list of named documents")],
        )
    return [{k: v for k, v in d.items() if k != "version"} for d in found]


def delete_document(records: Records, kind: str, name: str) -> None:
    """Delete a named document of a package kind (not an entity) through its designer."""
    section = next((key for key, k in DOCUMENT_KINDS.items() if k == kind), None)
    if section is None:
        raise ValueError(f"{kind!r} is not a kind of document a package holds")
    designer = _DESIGNERS[section](records.with_catalog(build_catalog(records.ctx.conn, -1)))
    designer.delete(name)
