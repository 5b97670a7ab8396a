"""Designing pipelines on live data. Saving a pipeline also rewrites its field's options to the
stage keys and adds the derived fields (through the entity designer), after moving records out
of removed stages by the `stage_mapping` the request carries; all in the caller's transaction,
so a refusal anywhere changes nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from metacrm.metadata.documents import DocumentDesigner, DocumentKind
from metacrm.metadata.entities import EntityDesigner, public_document
from metacrm.metadata.model import EntityDef
from metacrm.metadata.pipelines import PIPELINE, PipelineDef, entity_document, validate_pipeline
from metacrm.metadata.validate import pointer
from metacrm.platform.clock import utcnow
from metacrm.platform.errors import FieldError, Unprocessable
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.pipelines.remap import Mover, stranded
from metacrm.runtime.rule_checks import expression_checker

MAPPING = "stage_mapping"


class PipelineDesigner(DocumentDesigner[PipelineDef]):
    """Create, replace, delete and restore pipelines; create, replace and restore bring the
    entity (options, derived fields) and its records (mapped stages) along."""

    def __init__(self, conn: Connection, author: str | None, catalog: Catalog) -> None:
        self.catalog = catalog
        self.mapping: dict[str, str] = {}
        check = expression_checker(catalog)
        kind = DocumentKind(
            PIPELINE,
            "pipeline",
            lambda doc: validate_pipeline(doc, catalog.entities, catalog.pipelines, check),
            PipelineDef.from_doc,
        )
        super().__init__(conn, author, kind)

    def create(self, doc: Any) -> PipelineDef:
        return super().create(self._take_mapping(doc))

    def replace(self, name: str, doc: Any) -> PipelineDef:
        return super().replace(name, self._take_mapping(doc))

    def restore(self, name: str, version: int) -> PipelineDef:
        """A restored version whose stages no longer hold every record is refused (naming the
        stages); replace it with a mapping instead."""
        self.mapping = {}
        return super().restore(name, version)

    def _take_mapping(self, doc: Any) -> Any:
        """The document without `stage_mapping`, which is an instruction, not part of it."""
        if not isinstance(doc, dict) or MAPPING not in doc:
            self.mapping = {}
            return doc
        mapping = doc[MAPPING]
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
        ):
            raise Unprocessable(
                "the stage mapping is not valid",
                errors=[FieldError(f"/{MAPPING}", "type", "must map stage keys to stage keys")],
            )
        self.mapping = mapping
        return {k: v for k, v in doc.items() if k != MAPPING}

    def _save(self, doc: dict[str, Any], action: str) -> PipelineDef:
        # Every create, replace and restore ends here, its document already valid.
        self._bring_entity_along(doc)
        return super()._save(doc, action)

    def _bring_entity_along(self, doc: dict[str, Any]) -> None:
        entity = self.catalog.entity(doc["entity"])
        keys = {s["key"] for s in doc["stages"]}
        table = self.catalog.table(entity.name)
        errors = [
            FieldError(pointer(MAPPING, old), "unknown_stage", f"{new!r} is not a stage")
            for old, new in self.mapping.items()
            if new not in keys
        ]
        errors.extend(
            FieldError(pointer(MAPPING, old), "not_removed", f"{old!r} is still a stage")
            for old in self.mapping
            if old in keys
        )
        for found in stranded(self.conn, table, doc["field"], keys):
            if found.stage not in self.mapping:
                errors.append(
                    FieldError(
                        pointer(MAPPING, found.stage),
                        "stage_in_use",
                        f"{found.count} {entity.name} record(s) are in stage {found.stage!r} "
                        f"(e.g. {', '.join(found.sample)}); map it to a remaining stage",
                    )
                )
        if errors:
            raise Unprocessable("records stand in the way of the new stages", errors=errors)
        categories = {s["key"]: s["category"] for s in doc["stages"]}
        mover = Mover(
            self.conn, entity, table, doc["name"], doc["field"], self.author, utcnow(), categories
        )
        mover.move(self.mapping)
        current = public_document(entity.doc)
        wanted = entity_document(current, doc, self.mapping)
        if wanted != current:
            designer = EntityDesigner(
                self.conn, author=self.author, check_expression=expression_checker(self.catalog)
            )
            designer.replace(entity.name, wanted)


def binding_errors(catalog: Catalog, entity: EntityDef) -> list[FieldError]:
    """What a change of the entity itself (through the entity API) would break in the pipelines
    bound to it: each bound field must stay a picklist that offers every stage. Change stages
    through the pipeline, which brings the field along."""
    errors = []
    names = [f.get("name") for f in entity.doc.get("fields", [])]
    for pipeline in catalog.pipelines_of(entity.name):
        at = (
            pointer("fields", names.index(pipeline.field)) if pipeline.field in names else "/fields"
        )
        field = entity.field(pipeline.field)
        if field is None or field.type != "picklist":
            errors.append(
                FieldError(
                    at,
                    "pipeline_field",
                    f"pipeline {pipeline.name!r} moves records through this picklist; "
                    "delete the pipeline first",
                )
            )
            continue
        offered = {o.get("value") for o in field.doc.get("options") or ()}
        missing = [s["key"] for s in pipeline.doc["stages"] if s["key"] not in offered]
        if missing:
            errors.append(
                FieldError(
                    f"{at}/options",
                    "pipeline_stage",
                    f"{', '.join(map(repr, missing))} are stages of pipeline {pipeline.name!r}; "
                    "change the stages in the pipeline",
                )
            )
    return errors
