"""Automations through the metadata API, under `/meta/automations` (admins only)."""

from __future__ import annotations

from typing import Any

from metacrm.metadata import store
from metacrm.metadata.automations import AUTOMATION, AutomationDesigner
from metacrm.runtime.api.context import Work
from metacrm.runtime.api.documents import DocumentEndpoints
from metacrm.runtime.automations import automation_designer


def _designer(work: Work) -> AutomationDesigner:
    return automation_designer(work.conn, work.user.id, work.catalog)


def _summary(doc: store.StoredDocument) -> dict[str, Any]:
    document = doc.document
    return {
        "name": doc.name,
        "label": document["label"],
        "entity": document["entity"],
        "on": document.get("on"),
        "every_minutes": document.get("every_minutes"),
        "active": document.get("active", True),
        "steps": len(document.get("steps") or ()),
        "version": doc.version,
    }


AUTOMATIONS = DocumentEndpoints(
    "automations", AUTOMATION, _designer, _summary, "Automation", "AutomationSummary"
)
