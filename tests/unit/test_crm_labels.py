"""The CRM templates speak 简体中文 wherever they speak English: every label of every entity,
field, option, stage, action, list view, form section and approval step has a zh-CN text, and
every input of a record action is labelled (through the field it fills) in both languages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from metacrm.app.i18n import Locale, time_zone
from metacrm.app.pages.records import filled_fields, schema_inputs
from metacrm.metadata.labels import ANY_ITEM, ANY_MEMBER, label_paths
from metacrm.metadata.model import EntityDef
from metacrm.metadata.packages import DOCUMENT_KINDS
from metacrm.plugins.crm import plugin as crm

KINDS = {"entities": "entity", **DOCUMENT_KINDS}
LANGUAGES = ("en", "zh-CN")


def labels(document: Any, path: tuple[str, ...], where: str) -> Iterator[tuple[str, Any]]:
    """Each label a path of the schema leads to in the document, with where it is."""
    if not path:
        yield where, document
        return
    step, rest = path[0], path[1:]
    if step == ANY_ITEM and isinstance(document, list):
        for i, item in enumerate(document):
            yield from labels(item, rest, f"{where}/{i}")
    elif step == ANY_MEMBER and isinstance(document, dict):
        for key, item in document.items():
            yield from labels(item, rest, f"{where}/{key}")
    elif isinstance(document, dict) and step in document:
        yield from labels(document[step], rest, f"{where}/{step}")


def every_label() -> list[tuple[str, Any]]:
    package = crm.package()
    found = []
    for section, kind in KINDS.items():
        for document in package.get(section) or ():
            name = f"{section}:{document.get('entity', '')}.{document['name']}"
            for path in label_paths(kind):
                found += list(labels(document, path, name))
    return found


def test_the_label_walk_finds_the_templates_labels() -> None:
    found = dict(every_label())
    assert len(found) > 300
    assert found["entities:.opportunity/label"] == {"en": "Opportunity", "zh-CN": "商机"}
    assert any(w.startswith("pipelines:") and "/stages/" in w for w in found)
    assert any(w.startswith("form_layouts:") and "/sections/" in w for w in found)


def test_every_label_of_the_templates_is_in_english_and_chinese() -> None:
    missing = [
        where
        for where, label in every_label()
        if not (isinstance(label, dict) and all(label.get(lang) for lang in LANGUAGES))
    ]
    assert missing == []


def test_nothing_the_app_shows_falls_back_to_a_name() -> None:
    """What has no label at all would show its name (in English): entities' plurals, fields,
    options, stages, actions, list views and form sections all have one."""
    package = crm.package()
    unlabelled = []
    for entity in package["entities"]:
        for key in ("label", "plural_label"):
            if key not in entity:
                unlabelled.append(f"{entity['name']} {key}")
        for field in entity["fields"]:
            if "label" not in field:
                unlabelled.append(f"{entity['name']}.{field['name']}")
            unlabelled += [
                f"{entity['name']}.{field['name']}={o['value']}"
                for o in field.get("options", ())
                if "label" not in o
            ]
    for pipeline in package["pipelines"]:
        unlabelled += [
            f"{pipeline['name']}:{s['key']}" for s in pipeline["stages"] if not s.get("label")
        ]
    for section in ("actions", "list_views", "approval_processes"):
        unlabelled += [d["name"] for d in package[section] if not d.get("label")]
    for layout in package["form_layouts"]:
        unlabelled += [
            f"{layout['name']}:{s['key']}" for s in layout.get("sections", ()) if not s.get("label")
        ]
    assert unlabelled == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_action_input_is_labelled_by_the_field_it_fills(language: str) -> None:
    package = crm.package()
    entities = {e["name"]: EntityDef.from_doc(e) for e in package["entities"]}
    locale = Locale(language, time_zone(None))
    seen = 0
    for action in package["actions"]:
        entity = entities[action["entity"]]
        schema = action.get("input_schema") or {}
        filled = filled_fields(entity, action)
        for item in schema_inputs(schema, entity, filled, locale):
            seen += 1
            field = filled.get(item["key"]) or entity.field(item["key"])
            assert field is not None, (action["name"], item["key"])
            assert item["label"] == field.doc["label"][language]
            for value, label in item["options"]:
                option = next(o for o in field.doc["options"] if o["value"] == value)
                assert label == option["label"][language]
    assert seen >= 5


def test_an_input_that_fills_no_field_keeps_its_schema_title() -> None:
    entity = EntityDef.from_doc(
        {"name": "deal", "fields": [{"name": "note", "type": "text", "label": {"en": "Note"}}]}
    )
    action = {"steps": [{"type": "set_fields", "values": {"note": "input.text"}}]}
    schema = {
        "properties": {
            "text": {"type": "string"},
            "why": {"type": "string", "title": "Why now"},
            "how_much": {"type": "integer"},
        }
    }
    locale = Locale("zh-CN", time_zone(None))
    inputs = schema_inputs(schema, entity, filled_fields(entity, action), locale)
    assert [i["label"] for i in inputs] == ["Note", "Why now", "How much"]
