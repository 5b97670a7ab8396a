"""Stage pipelines: the ordered stages a record moves through, bound to a picklist field.

(Skeleton: the full model, schema and validation are being written.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PIPELINE = "pipeline"


@dataclass(frozen=True)
class PipelineDef:
    name: str
    entity: str
    field: str
    doc: Mapping[str, Any]
    version: int = 0

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], version: int = 0) -> PipelineDef:
        return cls(doc["name"], doc["entity"], doc["field"], doc, version)
