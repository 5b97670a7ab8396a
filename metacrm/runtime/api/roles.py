"""Role documents through the metadata API. Roles decide what everyone may see, so only admins
read or change them."""

from __future__ import annotations

from typing import Any

from metacrm.metadata import store
from metacrm.metadata.roles import ROLE, RoleDesigner
from metacrm.runtime.api.context import Work
from metacrm.runtime.api.documents import DocumentEndpoints
from metacrm.runtime.rule_checks import expression_checker


def _designer(work: Work) -> RoleDesigner:
    return RoleDesigner(
        work.conn,
        author=work.user.id,
        entities=work.catalog.entities,
        check_expression=expression_checker(work.catalog),
    )


def _summary(doc: store.StoredDocument) -> dict[str, Any]:
    return {
        "name": doc.name,
        "label": doc.document["label"],
        "version": doc.version,
        "entities": len(doc.document.get("entities") or {}),
    }


ROLES = DocumentEndpoints("roles", ROLE, _designer, _summary, "Role", "RoleSummary")
