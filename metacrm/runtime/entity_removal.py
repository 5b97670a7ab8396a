"""Deleting an entity, from the runtime's side: what other metadata stands in its way, and the
runtime's rows about its records that a purge takes with its table.

A blocker is a `FieldError` whose `field` is a JSON Pointer into the metadata as the API lists
it: `/entities/{name}/…`, `/pipelines/{name}/…`, `/approval-processes/{name}/…`,
`/roles/{name}/…`, `/webhooks/{id}/…`, `/actions/{entity}.{name}/…`, `/automations/{name}/…`,
`/assignment-rules/{name}/…`, `/list-views/{name}/…`, `/form-layouts/{name}/…` — every one is
listed, so the admin knows what to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, delete, select

from metacrm.metadata.actions import ACTION, validate_action
from metacrm.metadata.actions import References as ActionReferences
from metacrm.metadata.approvals import References, validate_approval_process
from metacrm.metadata.assignment_rules import ASSIGNMENT_RULE, validate_assignment_rule
from metacrm.metadata.automations import (
    AUTOMATION,
    CREATE_RECORD,
    UPDATE_RELATED,
    AutomationChecks,
    validate_automation,
)
from metacrm.metadata.entities import DesignResult, EntityDesigner
from metacrm.metadata.form_layouts import FORM_LAYOUT, FormLayoutDef, validate_form_layout
from metacrm.metadata.list_views import LIST_VIEW, validate_list_view
from metacrm.metadata.model import EntityDef
from metacrm.metadata.pipelines import validate_pipeline
from metacrm.metadata.validate import ExpressionChecker, ExpressionSite, expression_sites, pointer
from metacrm.platform.errors import FieldError, RuleError, Unprocessable
from metacrm.platform.systables import (
    approvals,
    autonumbers,
    notifications,
    personal_views,
    record_history,
    record_shares,
    stage_history,
    stage_plans,
    webhooks,
)
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rules import Scope, check, parse

# The code of a blocker that is an expression following a lookup into the entity.
READS_THROUGH = "reads_through"

# The runtime's rows about one entity's records, each table with an `entity` column. A purge
# deletes them with the table (an approval's tasks and log go with it by foreign key). The event
# outbox and webhook deliveries stay: they record what was already announced to the outside.
RECORD_ROWS: tuple[Table, ...] = (
    record_history,
    autonumbers,
    record_shares,
    stage_history,
    stage_plans,
    approvals,
    notifications,
    personal_views,
)


@dataclass(frozen=True)
class Subscription:
    """A webhook, as far as it can depend on an entity."""

    id: str
    name: str
    entity: str | None
    condition: str | None


def subscriptions(conn: Connection) -> list[Subscription]:
    rows = conn.execute(
        select(webhooks.c.id, webhooks.c.name, webhooks.c.entity, webhooks.c.condition)
    )
    return [Subscription(r.id, r.name, r.entity, r.condition) for r in rows]


def remove_entity(
    conn: Connection, catalog: Catalog, author: str | None, name: str, *, purge: bool
) -> DesignResult:
    """Delete (or purge) the entity in the caller's transaction, refused with every blocker
    while other metadata depends on it. A failure anywhere leaves data and metadata as they were:
    the table is dropped, and its rows forgotten, in the same transaction."""
    found = blockers(catalog, name, subscriptions(conn))
    if found:
        raise Unprocessable(
            f"entity {name!r} is still used; change or delete what uses it first", errors=found
        )
    result = EntityDesigner(conn, author=author).delete(name, purge=purge)
    if purge:
        forget_records(conn, name)
    return result


def forget_records(conn: Connection, name: str) -> None:
    for table in RECORD_ROWS:
        conn.execute(delete(table).where(table.c.entity == name))


def blockers(catalog: Catalog, name: str, hooks: Sequence[Subscription]) -> list[FieldError]:
    """Everything that depends on entity `name`, besides the entity's own document."""
    others = [e for e in sorted(catalog.entities.values(), key=lambda e: e.name) if e.name != name]
    reads = _reads_through(catalog, name)
    return [
        *_lookups(others, name),
        *_documents_on(catalog, name),
        *_webhooks_on(hooks, name),
        *_entity_expressions(others, reads),
        *_role_expressions(catalog, name, reads),
        *_pipeline_references(catalog, name, reads),
        *_process_expressions(catalog, name, reads),
        *_webhook_expressions(catalog, hooks, name, reads),
        *_action_references(catalog, name, reads),
        *_automation_references(catalog, name, reads),
        *_views_and_layouts_on(catalog, name, reads),
    ]


def _lookups(others: Iterable[EntityDef], name: str) -> list[FieldError]:
    return [
        FieldError(
            pointer("entities", entity.name, "fields", i, "target"),
            "lookup",
            f"{entity.name}.{field['name']} looks up {name}",
        )
        for entity in others
        for i, field in enumerate(entity.doc.get("fields", []))
        if field.get("type") == "lookup" and field.get("target") == name
    ]


def _documents_on(catalog: Catalog, name: str) -> list[FieldError]:
    found = [
        FieldError(
            pointer("pipelines", p.name, "entity"), "pipeline", f"pipeline {p.name} runs on {name}"
        )
        for p in sorted(catalog.pipelines_of(name), key=lambda p: p.name)
    ]
    found += [
        FieldError(
            pointer("approval-processes", p.name, "entity"),
            "approval_process",
            f"approval process {p.name} runs on {name}",
        )
        for p in sorted(catalog.approval_processes_of(name), key=lambda p: p.name)
    ]
    found += [
        FieldError(
            pointer("roles", r.name, "entities", name),
            "role",
            f"role {r.name} grants rights on {name}",
        )
        for r in sorted(catalog.roles.values(), key=lambda r: r.name)
        if r.on(name) is not None
    ]
    return found


def _webhooks_on(hooks: Sequence[Subscription], name: str) -> list[FieldError]:
    return [
        FieldError(
            pointer("webhooks", hook.id, "entity"),
            "webhook",
            f"webhook {hook.name!r} is subscribed to {name}",
        )
        for hook in hooks
        if hook.entity == name
    ]


def _reads_through(catalog: Catalog, name: str) -> ExpressionChecker:
    """An expression checker that reports, instead of type errors, an expression that follows a
    lookup into entity `name`. Each document kind's validator knows where its expressions are,
    so running it with this checker walks them all."""

    def check_expression(document: dict[str, Any], site: ExpressionSite) -> list[FieldError]:
        entity = EntityDef.from_doc(document)
        entered = False

        def resolve(target: str) -> EntityDef | None:
            nonlocal entered
            entered = entered or target == name
            return entity if target == entity.name else catalog.find(target)

        scope = Scope(
            entity=entity, resolve_entity=resolve, allow_change_refs=True, inputs=site.inputs
        )
        # It was checked when saved; a lookup it followed before failing now still counts.
        with suppress(RuleError):
            check(parse(site.expression), scope)
        if not entered:
            return []
        return [
            FieldError(
                site.pointer, READS_THROUGH, f"{site.expression!r} reads {name} through a lookup"
            )
        ]

    return check_expression


def _under(prefix: str, errors: Iterable[FieldError]) -> list[FieldError]:
    """The reads-through findings among a validator's results, placed under their document."""
    return [
        FieldError(prefix + e.field, e.code, e.message) for e in errors if e.code == READS_THROUGH
    ]


def _entity_expressions(others: Iterable[EntityDef], reads: ExpressionChecker) -> list[FieldError]:
    return [
        finding
        for entity in others
        for site in expression_sites(entity.doc)
        for finding in _under(pointer("entities", entity.name), reads(entity.doc, site))
    ]


def _role_expressions(catalog: Catalog, name: str, reads: ExpressionChecker) -> list[FieldError]:
    found = []
    for role in sorted(catalog.roles.values(), key=lambda r: r.name):
        for entity_name, spec in role.entities.items():
            entity = catalog.find(entity_name)
            if entity_name == name or entity is None:
                continue
            for i, rule in enumerate(spec.record_rules):
                at = pointer("entities", entity_name, "record_rules", i, "condition")
                site = ExpressionSite(at, rule.condition, "boolean", needs_sql=True)
                found += _under(pointer("roles", role.name), reads(entity.doc, site))
    return found


def _pipeline_references(catalog: Catalog, name: str, reads: ExpressionChecker) -> list[FieldError]:
    """Pipelines of other entities whose stages read the entity or create its records."""
    found = []
    for pipeline in sorted(catalog.pipelines.values(), key=lambda p: p.name):
        if pipeline.entity == name:
            continue
        at = pointer("pipelines", pipeline.name)
        for i, stage in enumerate(pipeline.stages):
            for j, action in enumerate(stage.actions):
                if action.get("type") == "create_record" and action.get("entity") == name:
                    found.append(
                        FieldError(
                            f"{at}/stages/{i}/actions/{j}/entity",
                            "pipeline_action",
                            f"pipeline {pipeline.name} creates {name} records in stage {stage.key}",
                        )
                    )
        errors = validate_pipeline(dict(pipeline.doc), catalog.entities, catalog.pipelines, reads)
        found += _under(at, errors)
    return found


def _process_expressions(catalog: Catalog, name: str, reads: ExpressionChecker) -> list[FieldError]:
    refs = References(catalog.entities, catalog.roles.keys(), lambda _user: True, reads)
    return [
        finding
        for process in sorted(catalog.approval_processes.values(), key=lambda p: p.name)
        if process.entity != name
        for finding in _under(
            pointer("approval-processes", process.name),
            validate_approval_process(dict(process.doc), refs),
        )
    ]


def _webhook_expressions(
    catalog: Catalog, hooks: Sequence[Subscription], name: str, reads: ExpressionChecker
) -> list[FieldError]:
    found = []
    for hook in hooks:
        entity = catalog.find(hook.entity) if hook.entity else None
        if entity is None or hook.entity == name or not hook.condition:
            continue
        site = ExpressionSite("/condition", hook.condition, "boolean", needs_sql=True)
        found += _under(pointer("webhooks", hook.id), reads(entity.doc, site))
    return found


def _action_references(catalog: Catalog, name: str, reads: ExpressionChecker) -> list[FieldError]:
    """Record actions on the entity, and other entities' actions that create its records or
    read it through a lookup."""
    refs = ActionReferences(
        catalog.entities, catalog.pipelines, catalog.approval_processes, (), reads
    )
    found = []
    for key, action in sorted(catalog.of_kind(ACTION).items()):
        at = pointer("actions", key)
        if action.entity == name:
            found.append(FieldError(f"{at}/entity", "action", f"action {key} runs on {name}"))
            continue
        for i, step in enumerate(action.steps):
            if step.get("type") == "create_record" and step.get("entity") == name:
                found.append(
                    FieldError(
                        f"{at}/steps/{i}/entity",
                        "action_step",
                        f"action {key} creates {name} records",
                    )
                )
        found += _under(at, validate_action(dict(action.doc), refs))
    return found


def _automation_references(
    catalog: Catalog, name: str, reads: ExpressionChecker
) -> list[FieldError]:
    """Automations on the entity, steps that update or create its records, and expressions of
    automations on other entities that read it through a lookup."""
    found = []
    checks = AutomationChecks(catalog.entities, reads)
    for automation in sorted(catalog.of_kind(AUTOMATION).values(), key=lambda a: a.name):
        at = pointer("automations", automation.name)
        if automation.entity == name:
            found.append(
                FieldError(
                    f"{at}/entity", "automation", f"automation {automation.name} runs on {name}"
                )
            )
            continue
        entity = catalog.find(automation.entity)
        for i, step in enumerate(automation.steps):
            lookup = entity.field(step.get("lookup", "")) if entity is not None else None
            if step["type"] == UPDATE_RELATED and lookup is not None and lookup.target == name:
                found.append(
                    FieldError(
                        f"{at}/steps/{i}/lookup",
                        "automation_step",
                        f"automation {automation.name} updates {name} records",
                    )
                )
            elif step["type"] == CREATE_RECORD and step.get("entity") == name:
                found.append(
                    FieldError(
                        f"{at}/steps/{i}/entity",
                        "automation_step",
                        f"automation {automation.name} creates {name} records",
                    )
                )
        found += _under(at, validate_automation(dict(automation.doc), checks))
    return found


def _views_and_layouts_on(
    catalog: Catalog, name: str, reads: ExpressionChecker
) -> list[FieldError]:
    """Assignment rules, list views and form layouts on the entity; layouts of other entities
    listing its records; and their rules that read it through a lookup."""
    refs = References(catalog.entities, catalog.roles.keys(), lambda _user: True, reads)
    # Kind → where the API lists it, what it is called, its expressions as reads-through finds.
    kinds: dict[str, tuple[str, str, Callable[[dict[str, Any]], list[FieldError]]]] = {
        ASSIGNMENT_RULE: (
            "assignment-rules",
            "assignment rule",
            lambda doc: validate_assignment_rule(doc, refs, {}),
        ),
        LIST_VIEW: (
            "list-views",
            "list view",
            lambda doc: validate_list_view(doc, catalog.entities, {}, reads),
        ),
        FORM_LAYOUT: (
            "form-layouts",
            "form layout",
            lambda doc: validate_form_layout(doc, catalog.entities, {}, reads),
        ),
    }
    found = []
    for kind, (collection, noun, _) in kinds.items():
        found += [
            FieldError(pointer(collection, d.name, "entity"), kind, f"{noun} {d.name} is on {name}")
            for d in catalog.of_kind_for(kind, name)
        ]
    layouts: dict[str, FormLayoutDef] = catalog.of_kind(FORM_LAYOUT)
    for layout in sorted(layouts.values(), key=lambda item: item.name):
        for i, related in enumerate(layout.related_lists):
            if layout.entity != name and related.entity == name:
                found.append(
                    FieldError(
                        pointer("form-layouts", layout.name, "related_lists", i, "entity"),
                        "related_list",
                        f"form layout {layout.name} lists {name} records",
                    )
                )
    for kind, (collection, _, validate) in kinds.items():
        documents = catalog.of_kind(kind)
        for doc_name in sorted(documents):
            document = documents[doc_name]
            if document.entity != name:
                found += _under(pointer(collection, doc_name), validate(dict(document.doc)))
    return found
