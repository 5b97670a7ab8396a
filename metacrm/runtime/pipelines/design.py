"""Designing pipelines on live data. Saving a pipeline also rewrites its field's options to the
stage keys and adds the derived fields (through the entity designer), and moves records out of
removed stages by the `stage_mapping` the request carries — through the record service, as
moves by the admin making the change (gates, rules, history, events, entry actions); all in the
caller's transaction, so a refusal anywhere changes nothing."""

from __future__ import annotations

import copy
from typing import Any

from metacrm.metadata.documents import DocumentDesigner, DocumentKind
from metacrm.metadata.entities import EntityDesigner, public_document
from metacrm.metadata.model import EntityDef
from metacrm.metadata.pipelines import PIPELINE, PipelineDef, entity_document, validate_pipeline
from metacrm.metadata.validate import pointer
from metacrm.platform.errors import FieldError, Unprocessable
from metacrm.runtime.catalog import Catalog, build_catalog
from metacrm.runtime.context import Records
from metacrm.runtime.pipelines.remap import stranded, stranded_ids
from metacrm.runtime.rule_checks import expression_checker

MAPPING = "stage_mapping"
# Records moved per bulk update while a pipeline change maps them to new stages.
MOVE_BATCH = 500
# A refused mapping names at most about this many records.
MAX_REFUSALS = 20


class PipelineDesigner(DocumentDesigner[PipelineDef]):
    """Create, replace, delete and restore pipelines; create, replace and restore bring the
    entity (options, derived fields) and its records (mapped stages) along."""

    def __init__(self, records: Records) -> None:
        self.records = records
        catalog = self.catalog = records.ctx.catalog
        self.mapping: dict[str, str] = {}
        check = expression_checker(catalog)
        kind = DocumentKind(
            PIPELINE,
            "pipeline",
            lambda doc: validate_pipeline(doc, catalog.entities, catalog.pipelines, check),
            PipelineDef.from_doc,
        )
        super().__init__(records.ctx.conn, records.ctx.user.id, kind)

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
        entity = self.catalog.entity(doc["entity"])
        moving = self._stranded_records(entity, doc)
        current = public_document(entity.doc)
        wanted = entity_document(current, doc, self.mapping)
        if not moving:
            self._replace_entity(entity, current, wanted)
            return super()._save(doc, action)
        # The field offers the old stages next to the new ones while records move out of them,
        # and the records move under the new pipeline (its gates, probabilities, actions).
        field = doc["field"]
        old_options = [o for o in _options(current, field) if o.get("value") in self.mapping]
        interim = copy.deepcopy(wanted)
        for f in interim["fields"]:
            if f.get("name") == field:
                f["options"] = [*f["options"], *old_options]
        self._replace_entity(entity, current, interim)
        saved = super()._save(doc, action)
        mover = self.records.with_catalog(build_catalog(self.conn, -1))
        refused: list[FieldError] = []
        for start in range(0, len(moving), MOVE_BATCH):
            batch = dict(moving[start : start + MOVE_BATCH])
            outcome = mover.update_many(
                entity.name,
                {record_id: {field: self.mapping[stage]} for record_id, stage in batch.items()},
                all_or_none=False,
                include_deleted=True,
            )
            refused.extend(
                FieldError(
                    pointer(MAPPING, batch[record_id]),
                    error.code,
                    f"{entity.name} {record_id} can't move to {self.mapping[batch[record_id]]!r}: "
                    f"{error.field + ' ' if error.field else ''}{error.message}",
                )
                for record_id, errors in outcome.refused.items()
                for error in errors
            )
            if len(refused) >= MAX_REFUSALS:
                break
        if refused:
            # The whole change is refused; the caller's transaction rolls back what moved.
            raise Unprocessable(
                "records can't move to the stages they are mapped to", errors=refused
            )
        self._replace_entity(entity, interim, wanted)
        return saved

    def _stranded_records(self, entity: EntityDef, doc: dict[str, Any]) -> list[tuple[str, str]]:
        """The (id, stage) of every record whose stage the new document removes; refused
        unless the mapping says where each removed stage goes."""
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
        return stranded_ids(self.conn, table, doc["field"], keys)

    def _replace_entity(
        self, entity: EntityDef, current: dict[str, Any], wanted: dict[str, Any]
    ) -> None:
        if wanted != current:
            designer = EntityDesigner(
                self.conn, author=self.author, check_expression=expression_checker(self.catalog)
            )
            designer.replace(entity.name, wanted)


def _options(entity_doc: dict[str, Any], field: str) -> list[dict[str, Any]]:
    for f in entity_doc.get("fields", []):
        if f.get("name") == field:
            return list(f.get("options") or [])
    return []


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
