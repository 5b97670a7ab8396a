"""Approval processes: who must approve a record, in which steps, and what happens then.

(Skeleton: the full model, schema and validation are being written.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

APPROVAL_PROCESS = "approval_process"


@dataclass(frozen=True)
class ApprovalProcessDef:
    name: str
    entity: str
    doc: Mapping[str, Any]
    version: int = 0

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], version: int = 0) -> ApprovalProcessDef:
        return cls(doc["name"], doc["entity"], doc, version)
