"""Form layouts as one user gets them: the entity's designed default layout, or the layout
derived from its metadata when none is designed, showing only what the user may see.

A field the user may not see is left out of its section (a section left empty goes too), a
related list of records they may not read goes, and the fields they see that the layout leaves
out are listed as `unplaced` — a layout needn't place every field.
"""

from __future__ import annotations

from typing import Any

from metacrm.metadata.form_layouts import (
    FORM_LAYOUT,
    NOT_PLACED,
    FormLayoutDef,
    derived_layout,
)
from metacrm.platform.errors import NotFound
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.context import Records


def layout_of(catalog: Catalog, entity_name: str, name: str | None = None) -> FormLayoutDef:
    """The named layout of the entity; without a name, its default layout, or the derived one
    when no designed layout is its default."""
    entity = catalog.entity(entity_name)
    designed = catalog.of_kind_for(FORM_LAYOUT, entity.name)
    if name is not None:
        found = next((layout for layout in designed if layout.name == name), None)
        if found is None:
            raise NotFound(f"{entity.name} has no form layout named {name!r}")
        return found
    chosen = next((layout for layout in designed if layout.is_default), None)
    return chosen or derived_layout(entity, catalog.entities.values())


def layout_for(records: Records, entity_name: str, name: str | None = None) -> dict[str, Any]:
    """The layout as the records' user may see it (404 for an entity they may not read)."""
    catalog, permissions = records.ctx.catalog, records.permissions
    entity = catalog.find(entity_name)
    if entity is None or not permissions.may(entity, "read"):
        raise NotFound(f"no entity named {entity_name!r}")
    layout = layout_of(catalog, entity.name, name)
    shown = permissions.view(entity, probe=False)
    sections = []
    for section in layout.doc["sections"]:
        fields = [f for f in section.get("fields") or () if _visible(shown.field(f))]
        if fields:
            sections.append({**section, "fields": fields})
    related = []
    for item in layout.doc.get("related_lists") or ():
        other = catalog.find(item["entity"])
        if other is None or not permissions.may(other, "read"):
            continue
        seen = permissions.view(other, probe=False)
        if seen.field(item["lookup"]) is None:
            continue
        columns = [c for c in item.get("columns") or () if _visible(seen.field(c))]
        related.append({**item, "columns": columns})
    placed = {f for s in sections for f in s["fields"]}
    return {
        **{k: v for k, v in layout.doc.items() if k not in ("sections", "related_lists")},
        "label": layout.label,
        "derived": layout.derived,
        "sections": sections,
        "related_lists": related,
        "unplaced": [f.name for f in shown.fields if f.name not in placed],
        "version": layout.version,
    }


def _visible(field: Any) -> bool:
    return field is not None and field.name != NOT_PLACED
