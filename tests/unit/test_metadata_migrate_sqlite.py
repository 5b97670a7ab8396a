"""The entity designer and migration runner against a real (temporary-file) SQLite database.

SQLite is in-process, so these stay fast; each test gets a fresh database file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, MetaData, Table, inspect, select
from sqlalchemy.exc import IntegrityError

from metacrm.metadata import store
from metacrm.metadata.entities import DesignResult, EntityDesigner, public_document
from metacrm.metadata.model import EntityDef
from metacrm.metadata.storage import index_name, system_index_name, unique_index_name
from metacrm.platform.db import make_engine, reading, writing
from metacrm.platform.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from metacrm.platform.install import install

T = TypeVar("T")

SYSTEM_COLUMNS = {
    "id",
    "owner",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "version",
    "deleted_at",
}


def deal() -> dict[str, Any]:
    return {
        "name": "deal",
        "label": {"en": "Deal"},
        "title_field": "name",
        "fields": [
            {"name": "name", "type": "text", "required": True},
            {"name": "code", "type": "text"},
            {"name": "amount", "type": "decimal", "precision": 10, "scale": 2},
            {"name": "closed_at", "type": "datetime"},
        ],
    }


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'metacrm.db'}")
    install(engine)
    yield engine
    engine.dispose()


def design(engine: Engine, action: Callable[[EntityDesigner], T]) -> T:
    with writing(engine) as conn:
        return action(EntityDesigner(conn, author=None))


def create(engine: Engine, document: dict[str, Any] | None = None) -> DesignResult:
    return design(engine, lambda d: d.create(document or deal()))


def insert(engine: Engine, table: str, *rows: dict[str, Any]) -> None:
    with writing(engine) as conn:
        reflected = Table(table, MetaData(), autoload_with=conn)
        for row in rows:
            conn.execute(reflected.insert().values(row))


def rows(engine: Engine, table: str, *names: str) -> list[tuple[Any, ...]]:
    with reading(engine) as conn:
        reflected = Table(table, MetaData(), autoload_with=conn)
        query = select(reflected.c.id, *(reflected.c[n] for n in names)).order_by(reflected.c.id)
        return [tuple(r) for r in conn.execute(query)]


def columns(engine: Engine, table: str) -> dict[str, str]:
    return {c["name"]: str(c["type"]) for c in inspect(engine).get_columns(table)}


def indexes(engine: Engine, table: str) -> dict[str, tuple[tuple[str, ...], bool]]:
    return {
        ix["name"]: (tuple(ix["column_names"]), bool(ix["unique"]))
        for ix in inspect(engine).get_indexes(table)
    }


def stored(engine: Engine, name: str = "deal") -> store.StoredDocument:
    with reading(engine) as conn:
        found = store.get(conn, store.ENTITY, name)
    assert found is not None
    return found


def snapshot(engine: Engine, table: str = "deal") -> tuple[Any, ...]:
    """Everything a refused change must leave as it was."""
    names = [n for n in columns(engine, table) if n != "id"]
    found = stored(engine, table)
    with reading(engine) as conn:
        history = store.versions(conn, store.ENTITY, table)
    return (
        columns(engine, table),
        indexes(engine, table),
        rows(engine, table, *names),
        found.version,
        found.document,
        len(history),
    )


def refused(engine: Engine, action: Callable[[EntityDesigner], Any]) -> Unprocessable:
    """Runs a change that must be refused; the transaction still commits, so a refusal that
    left half a change behind would show."""
    with writing(engine) as conn, pytest.raises(Unprocessable) as caught:
        action(EntityDesigner(conn, author=None))
    return caught.value


def field_doc(engine: Engine, name: str) -> dict[str, Any]:
    """The field as an admin sees it (without its storage id)."""
    public = public_document(stored(engine).document)
    return next(f for f in public["fields"] if f["name"] == name)


def ix(engine: Engine, field: str, entity: str = "deal") -> str:
    """The name the field's index has by the stored metadata (active or hidden)."""
    found = EntityDef.from_doc(stored(engine, entity).document)
    target = next(f for f in (*found.fields, *found.hidden_fields) if f.name == field)
    return index_name(found, target)


def uq(engine: Engine, field: str, entity: str = "deal") -> str:
    found = EntityDef.from_doc(stored(engine, entity).document)
    target = next(f for f in (*found.fields, *found.hidden_fields) if f.name == field)
    return unique_index_name(found, target)


def indexed_columns(engine: Engine, table: str = "deal") -> set[tuple[str, ...]]:
    return {columns for columns, _ in indexes(engine, table).values()}


# --- create ----------------------------------------------------------------------------------


def test_create_makes_the_table_with_system_and_field_columns(engine: Engine) -> None:
    document = deal()
    document["fields"].append({"name": "ref", "type": "text", "unique": True})
    document["fields"].append({"name": "due", "type": "date", "indexed": True})
    result = create(engine, document)
    assert result.applied
    assert result.entity.version == 1
    assert set(columns(engine, "deal")) == SYSTEM_COLUMNS | {
        "name",
        "code",
        "amount",
        "closed_at",
        "ref",
        "due",
    }
    found = indexes(engine, "deal")
    assert found[uq(engine, "ref")] == (("ref",), True)
    assert found[ix(engine, "due")] == (("due",), False)
    entity = EntityDef.from_doc(stored(engine).document)
    for key, system in [("owner", ("owner",)), ("updated_at", ("updated_at", "id"))]:
        assert found[system_index_name(entity, key)] == (system, False)
    assert found[system_index_name(entity, "created_at")] == (("created_at", "id"), False)
    assert stored(engine).version == 1
    assert stored(engine).document["hidden_fields"] == []


def test_formula_fields_get_no_column(engine: Engine) -> None:
    document = deal()
    document["fields"].append(
        {"name": "twice", "type": "formula", "expression": "amount * 2", "result_type": "decimal"}
    )
    create(engine, document)
    assert "twice" not in columns(engine, "deal")


def test_creating_an_existing_entity_is_a_conflict(engine: Engine) -> None:
    create(engine)
    with pytest.raises(Conflict):
        create(engine)


def test_invalid_document_is_refused_with_every_error_and_creates_nothing(engine: Engine) -> None:
    document = deal()
    document["fields"].append({"name": "owner", "type": "text"})
    document["fields"].append({"name": "account", "type": "lookup", "target": "account"})
    problem = refused(engine, lambda d: d.create(document))
    assert {(e.field, e.code) for e in problem.errors} == {
        ("/fields/4/name", "reserved"),
        ("/fields/5/target", "unknown_entity"),
    }
    assert not inspect(engine).has_table("deal")
    with reading(engine) as conn:
        assert store.get(conn, store.ENTITY, "deal") is None


def test_lookup_to_an_entity_created_earlier_is_accepted(engine: Engine) -> None:
    create(engine, {"name": "account", "label": {"en": "Account"}, "fields": []})
    document = deal()
    document["fields"].append({"name": "account", "type": "lookup", "target": "account"})
    create(engine, document)
    assert indexes(engine, "deal")[ix(engine, "account")] == (("account",), False)


# --- type changes ----------------------------------------------------------------------------


def test_type_change_some_rows_cant_take_is_refused_with_count_and_ids(engine: Engine) -> None:
    create(engine)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "code": "12"},
        {"id": "r2", "name": "b", "code": "abc"},
        {"id": "r3", "name": "c", "code": "7"},
        {"id": "r4", "name": "d", "code": None},
        {"id": "r5", "name": "e", "code": "x1"},
    )
    before = snapshot(engine)
    problem = refused(engine, lambda d: d.change_field("deal", "code", {"type": "integer"}))
    assert problem.status == 422
    assert [(e.field, e.code) for e in problem.errors] == [("/fields/1", "values")]
    message = problem.errors[0].message
    assert message.startswith("2 record(s)")
    assert "r2, r5" in message
    assert "r1" not in message
    assert snapshot(engine) == before


def test_refusal_lists_at_most_five_sample_ids(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", *({"id": f"r{i:02}", "name": "n", "code": "bad"} for i in range(8)))
    problem = refused(engine, lambda d: d.change_field("deal", "code", {"type": "integer"}))
    message = problem.errors[0].message
    assert message.startswith("8 record(s)")
    assert "r04" in message
    assert "r05" not in message


def test_valid_type_change_converts_the_data(engine: Engine) -> None:
    create(engine)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "code": "12"},
        {"id": "r2", "name": "b", "code": " -7 "},
        {"id": "r3", "name": "c", "code": None},
    )
    result = design(engine, lambda d: d.change_field("deal", "code", {"type": "integer"}))
    assert result.applied
    assert rows(engine, "deal", "code", "name") == [
        ("r1", 12, "a"),
        ("r2", -7, "b"),
        ("r3", None, "c"),
    ]
    assert columns(engine, "deal")["code"] == "BIGINT"
    assert not any(name.endswith("__mc_new") for name in columns(engine, "deal"))
    assert stored(engine).version == 2
    assert field_doc(engine, "code") == {"name": "code", "type": "integer"}


def test_type_change_keeps_a_unique_index(engine: Engine) -> None:
    document = deal()
    document["fields"][1]["unique"] = True
    create(engine, document)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": "1"})
    design(engine, lambda d: d.change_field("deal", "code", {"type": "integer"}))
    assert indexes(engine, "deal")[uq(engine, "code")] == (("code",), True)
    with pytest.raises(IntegrityError):
        insert(engine, "deal", {"id": "r2", "name": "b", "code": 1})


def test_datetime_with_time_of_day_is_refused_as_date(engine: Engine) -> None:
    create(engine)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "closed_at": datetime(2024, 3, 1, tzinfo=UTC)},
        {"id": "r2", "name": "b", "closed_at": datetime(2024, 3, 2, 9, 30, tzinfo=UTC)},
    )
    before = snapshot(engine)
    problem = refused(engine, lambda d: d.change_field("deal", "closed_at", {"type": "date"}))
    assert "1 record(s)" in problem.errors[0].message
    assert "r2" in problem.errors[0].message
    assert "time of day" in problem.errors[0].message
    assert snapshot(engine) == before


def test_decimal_to_integer_converts_whole_amounts(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a", "amount": 3}, {"id": "r2", "name": "b"})
    design(engine, lambda d: d.change_field("deal", "amount", {"type": "integer"}))
    assert rows(engine, "deal", "amount") == [("r1", 3), ("r2", None)]


def test_revalidating_type_change_refuses_values_that_dont_fit(engine: Engine) -> None:
    create(engine)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "code": "ann@example.com"},
        {"id": "r2", "name": "b", "code": "not an email"},
    )
    before = snapshot(engine)
    problem = refused(engine, lambda d: d.change_field("deal", "code", {"type": "email"}))
    assert problem.errors[0].message.startswith("1 record(s)")
    assert "r2" in problem.errors[0].message
    assert snapshot(engine) == before


def test_tightened_max_length_is_refused_when_values_are_longer(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": "abcdef"})
    problem = refused(engine, lambda d: d.change_field("deal", "code", {"max_length": 3}))
    assert "r1" in problem.errors[0].message
    assert "max_length" not in field_doc(engine, "code")


def test_type_change_the_table_forbids_is_refused(engine: Engine) -> None:
    create(engine)
    before = snapshot(engine)
    problem = refused(engine, lambda d: d.change_field("deal", "closed_at", {"type": "boolean"}))
    assert [(e.field, e.code) for e in problem.errors] == [("/fields/3/type", "type_change")]
    assert snapshot(engine) == before


# --- required and unique ---------------------------------------------------------------------


def test_required_on_a_field_with_blanks_is_refused_with_count(engine: Engine) -> None:
    create(engine)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "code": "x"},
        {"id": "r2", "name": "b", "code": None},
        {"id": "r3", "name": "c", "code": ""},
    )
    before = snapshot(engine)
    problem = refused(engine, lambda d: d.change_field("deal", "code", {"required": True}))
    assert [(e.field, e.code) for e in problem.errors] == [("/fields/1", "required")]
    assert problem.errors[0].message.startswith("2 record(s) have no value for code")
    assert "r2, r3" in problem.errors[0].message
    assert snapshot(engine) == before


def test_required_on_a_field_without_blanks_is_applied(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": "x"})
    design(engine, lambda d: d.change_field("deal", "code", {"required": True}))
    assert field_doc(engine, "code")["required"] is True


def test_unique_over_duplicates_is_refused_with_count_and_ids(engine: Engine) -> None:
    create(engine)
    deleted = datetime(2024, 1, 1, tzinfo=UTC)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "code": "same"},
        {"id": "r2", "name": "b", "code": "same"},
        {"id": "r3", "name": "c", "code": "other"},
        {"id": "r4", "name": "d", "code": "other", "deleted_at": deleted},
        {"id": "r5", "name": "e", "code": None},
        {"id": "r6", "name": "f", "code": None},
    )
    before = snapshot(engine)
    problem = refused(engine, lambda d: d.change_field("deal", "code", {"unique": True}))
    assert [(e.field, e.code) for e in problem.errors] == [("/fields/1", "unique")]
    message = problem.errors[0].message
    assert message.startswith("2 record(s) share a value of code")
    assert "r1, r2" in message
    assert "r3" not in message
    assert snapshot(engine) == before


def test_unique_ignores_deleted_records_and_then_enforces_itself(engine: Engine) -> None:
    create(engine)
    deleted = datetime(2024, 1, 1, tzinfo=UTC)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "code": "same"},
        {"id": "r2", "name": "b", "code": "same", "deleted_at": deleted},
    )
    design(engine, lambda d: d.change_field("deal", "code", {"unique": True}))
    assert indexes(engine, "deal")[uq(engine, "code")] == (("code",), True)
    insert(engine, "deal", {"id": "r3", "name": "c", "code": "same", "deleted_at": deleted})
    with pytest.raises(IntegrityError):
        insert(engine, "deal", {"id": "r4", "name": "d", "code": "same"})


def test_all_data_problems_are_reported_together(engine: Engine) -> None:
    create(engine)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "code": "dup", "closed_at": datetime(2024, 1, 1, 8, tzinfo=UTC)},
        {"id": "r2", "name": "b", "code": "dup"},
    )
    document = deal()
    document["fields"][1]["unique"] = True
    document["fields"][3]["type"] = "date"
    document["fields"][2]["required"] = True
    problem = refused(engine, lambda d: d.replace("deal", document))
    assert {(e.field, e.code) for e in problem.errors} == {
        ("/fields/1", "unique"),
        ("/fields/2", "required"),
        ("/fields/3", "values"),
    }


# --- adding, hiding, purging, renaming -------------------------------------------------------


def test_added_field_with_default_is_filled_on_existing_rows(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a"}, {"id": "r2", "name": "b"})
    stage = {
        "name": "stage",
        "type": "picklist",
        "options": [{"value": "new"}, {"value": "won"}],
        "default": "new",
        "required": True,
    }
    result = design(engine, lambda d: d.add_field("deal", stage))
    assert result.entity.version == 2
    assert rows(engine, "deal", "stage") == [("r1", "new"), ("r2", "new")]
    assert field_doc(engine, "stage") == stage


def test_added_multipicklist_default_is_stored_as_json(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a"})
    tags = {
        "name": "tags",
        "type": "multipicklist",
        "options": [{"value": "hot"}, {"value": "big"}],
        "default": ["hot", "big"],
    }
    design(engine, lambda d: d.add_field("deal", tags))
    assert rows(engine, "deal", "tags") == [("r1", '["hot", "big"]')]


def test_added_required_field_without_default_is_refused_when_rows_exist(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a"}, {"id": "r2", "name": "b"})
    before = snapshot(engine)
    problem = refused(
        engine, lambda d: d.add_field("deal", {"name": "size", "type": "integer", "required": True})
    )
    assert problem.errors[0].code == "rows_need_default"
    assert problem.errors[0].message.startswith("2 existing record(s)")
    assert "r1, r2" in problem.errors[0].message
    assert snapshot(engine) == before


def test_added_required_field_without_default_is_fine_on_an_empty_table(engine: Engine) -> None:
    create(engine)
    design(
        engine, lambda d: d.add_field("deal", {"name": "size", "type": "integer", "required": True})
    )
    assert columns(engine, "deal")["size"] == "BIGINT"


def test_added_invalid_field_is_refused_with_its_pointer(engine: Engine) -> None:
    create(engine)
    problem = refused(engine, lambda d: d.add_field("deal", {"name": "id", "type": "text"}))
    assert [(e.field, e.code) for e in problem.errors] == [("/fields/4/name", "reserved")]


def test_adding_an_existing_field_is_a_conflict(engine: Engine) -> None:
    create(engine)
    with pytest.raises(Conflict):
        design(engine, lambda d: d.add_field("deal", {"name": "code", "type": "text"}))


def test_deleted_field_is_hidden_and_its_data_kept_until_readded(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": "K1"})
    design(engine, lambda d: d.delete_field("deal", "code"))
    document = stored(engine).document
    assert "code" not in [f["name"] for f in document["fields"]]
    assert [f["name"] for f in document["hidden_fields"]] == ["code"]
    assert rows(engine, "deal", "code") == [("r1", "K1")]
    design(engine, lambda d: d.add_field("deal", {"name": "code", "type": "text"}))
    assert stored(engine).document["hidden_fields"] == []
    assert rows(engine, "deal", "code") == [("r1", "K1")]


def test_deleting_the_title_field_is_refused(engine: Engine) -> None:
    create(engine)
    problem = refused(engine, lambda d: d.delete_field("deal", "name"))
    assert [(e.field, e.code) for e in problem.errors] == [("/title_field", "in_use")]
    assert stored(engine).version == 1


def test_purge_drops_the_column_and_its_index(engine: Engine) -> None:
    document = deal()
    document["fields"][1]["indexed"] = True
    create(engine, document)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": "K1"})
    name = ix(engine, "code")
    design(engine, lambda d: d.delete_field("deal", "code", purge=True))
    assert "code" not in columns(engine, "deal")
    assert name not in indexes(engine, "deal")
    assert ("code",) not in indexed_columns(engine)
    assert rows(engine, "deal", "name") == [("r1", "a")]
    assert "code" not in [f["name"] for f in stored(engine).document["fields"]]
    assert stored(engine).version == 2


def test_purge_of_a_hidden_field_drops_its_column(engine: Engine) -> None:
    create(engine)
    design(engine, lambda d: d.delete_field("deal", "code"))
    design(engine, lambda d: d.delete_field("deal", "code", purge=True))
    assert "code" not in columns(engine, "deal")
    assert stored(engine).document["hidden_fields"] == []


def test_purge_of_the_title_field_is_refused_and_keeps_the_column(engine: Engine) -> None:
    create(engine)
    before = snapshot(engine)
    problem = refused(engine, lambda d: d.delete_field("deal", "name", purge=True))
    assert [(e.field, e.code) for e in problem.errors] == [("/title_field", "in_use")]
    assert snapshot(engine) == before


def test_purge_of_an_unknown_field_is_refused(engine: Engine) -> None:
    create(engine)
    problem = refused(engine, lambda d: d.delete_field("deal", "ghost", purge=True))
    assert problem.errors[0].code == "unknown_field"


def test_rename_keeps_the_data_and_moves_the_index(engine: Engine) -> None:
    document = deal()
    document["fields"][1]["indexed"] = True
    create(engine, document)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": "K1"})
    name = ix(engine, "code")
    design(engine, lambda d: d.change_field("deal", "code", {"name": "ref"}))
    found = columns(engine, "deal")
    assert "ref" in found
    assert "code" not in found
    assert rows(engine, "deal", "ref") == [("r1", "K1")]
    # The index's name is made from ids, not from the field's name: it stays as it was.
    assert ix(engine, "ref") == name
    assert indexes(engine, "deal")[name] == (("ref",), False)
    assert ("code",) not in indexed_columns(engine)
    assert [f["name"] for f in stored(engine).document["fields"]] == [
        "name",
        "ref",
        "amount",
        "closed_at",
    ]


def test_renaming_the_title_field_moves_the_title(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "Big deal"})
    design(engine, lambda d: d.change_field("deal", "name", {"name": "title"}))
    assert stored(engine).document["title_field"] == "title"
    assert rows(engine, "deal", "title") == [("r1", "Big deal")]


def test_rename_onto_a_hidden_field_is_refused(engine: Engine) -> None:
    create(engine)
    design(engine, lambda d: d.delete_field("deal", "code"))
    before = snapshot(engine)
    problem = refused(engine, lambda d: d.change_field("deal", "amount", {"name": "code"}))
    assert problem.errors[0].code == "exists"
    assert snapshot(engine) == before


# --- versions, restore, dry runs -------------------------------------------------------------


def test_restore_of_an_earlier_version_brings_back_its_fields_and_types(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": "12"})
    stage = {"name": "stage", "type": "text", "default": "new"}
    design(engine, lambda d: d.add_field("deal", stage))
    design(engine, lambda d: d.change_field("deal", "code", {"type": "integer"}))
    assert rows(engine, "deal", "code") == [("r1", 12)]

    result = design(engine, lambda d: d.restore("deal", 1))
    assert result.entity.version == 4
    current = stored(engine)
    assert current.version == 4
    assert public_document(current.document)["fields"] == deal()["fields"]
    assert [f["name"] for f in current.document["hidden_fields"]] == ["stage"]
    assert rows(engine, "deal", "code", "stage") == [("r1", "12", "new")]
    with reading(engine) as conn:
        history = store.versions(conn, store.ENTITY, "deal")
    assert [(v.version, v.action) for v in history] == [
        (4, "restore"),
        (3, "update"),
        (2, "update"),
        (1, "create"),
    ]


def test_restore_of_a_missing_version_is_not_found(engine: Engine) -> None:
    create(engine)
    with pytest.raises(NotFound):
        design(engine, lambda d: d.restore("deal", 9))


def test_dry_run_returns_the_plan_and_changes_nothing(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": "12"})
    before = snapshot(engine)
    document = deal()
    document["fields"][1]["type"] = "integer"
    document["fields"].append({"name": "stage", "type": "text", "default": "new"})
    result = design(engine, lambda d: d.replace("deal", document, dry_run=True))
    assert not result.applied
    assert [op["op"] for op in result.plan.as_json()["operations"]] == [
        "change_type",
        "add_column",
        "backfill",
    ]
    assert snapshot(engine) == before


def test_dry_run_reports_data_problems(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": "twelve"})
    document = deal()
    document["fields"][1]["type"] = "integer"
    problem = refused(engine, lambda d: d.replace("deal", document, dry_run=True))
    assert "r1" in problem.errors[0].message


def test_stale_expected_version_is_refused_and_changes_nothing(engine: Engine) -> None:
    create(engine)
    before = snapshot(engine)
    document = deal()
    document["fields"].append({"name": "extra", "type": "text"})
    with writing(engine) as conn, pytest.raises(PreconditionFailed):
        EntityDesigner(conn, author=None).replace("deal", document, expected_version=5)
    assert snapshot(engine) == before


def test_entity_cannot_be_renamed_by_replace(engine: Engine) -> None:
    create(engine)
    document = copy.deepcopy(deal())
    document["name"] = "agreement"
    problem = refused(engine, lambda d: d.replace("deal", document))
    assert [(e.field, e.code) for e in problem.errors] == [("/name", "immutable")]


def test_each_change_bumps_the_metadata_stamp(engine: Engine) -> None:
    with reading(engine) as conn:
        first = store.current_stamp(conn)
    create(engine)
    with reading(engine) as conn:
        second = store.current_stamp(conn)
    design(engine, lambda d: d.add_field("deal", {"name": "extra", "type": "text"}))
    with reading(engine) as conn:
        third = store.current_stamp(conn)
    assert first < second < third


# --- changes combined with renames -----------------------------------------------------------


def test_rename_with_a_type_change_converts_the_data(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": "12"})
    design(engine, lambda d: d.change_field("deal", "code", {"name": "ref", "type": "integer"}))
    assert rows(engine, "deal", "ref") == [("r1", 12)]
    assert "code" not in columns(engine, "deal")


def test_rename_with_a_type_change_some_rows_cant_take_is_refused(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": "twelve"})
    before = snapshot(engine)
    problem = refused(
        engine, lambda d: d.change_field("deal", "code", {"name": "ref", "type": "integer"})
    )
    assert "r1" in problem.errors[0].message
    assert snapshot(engine) == before


def test_rename_and_required_over_blanks_is_refused(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a", "code": None})
    before = snapshot(engine)
    problem = refused(
        engine, lambda d: d.change_field("deal", "code", {"name": "ref", "required": True})
    )
    assert problem.errors[0].code == "required"
    assert "r1" in problem.errors[0].message
    assert snapshot(engine) == before


def test_rename_and_unique_over_duplicates_is_refused(engine: Engine) -> None:
    create(engine)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "code": "same"},
        {"id": "r2", "name": "b", "code": "same"},
    )
    before = snapshot(engine)
    problem = refused(
        engine, lambda d: d.change_field("deal", "code", {"name": "ref", "unique": True})
    )
    assert problem.errors[0].code == "unique"
    assert snapshot(engine) == before


def test_type_change_that_makes_unique_values_collide_is_refused(engine: Engine) -> None:
    document = deal()
    document["fields"][1]["unique"] = True
    create(engine, document)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "code": "1"},
        {"id": "r2", "name": "b", "code": "01"},
    )
    before = snapshot(engine)
    problem = refused(engine, lambda d: d.change_field("deal", "code", {"type": "integer"}))
    assert problem.errors[0].code == "unique"
    assert "r1, r2" in problem.errors[0].message
    assert snapshot(engine) == before


# --- more constraint changes -----------------------------------------------------------------


def test_removed_picklist_option_still_in_use_is_refused(engine: Engine) -> None:
    document = deal()
    document["fields"].append(
        {"name": "stage", "type": "picklist", "options": [{"value": "new"}, {"value": "won"}]}
    )
    create(engine, document)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "stage": "new"},
        {"id": "r2", "name": "b", "stage": "won"},
    )
    problem = refused(
        engine, lambda d: d.change_field("deal", "stage", {"options": [{"value": "new"}]})
    )
    assert problem.errors[0].message.startswith("1 record(s)")
    assert "r2" in problem.errors[0].message


def test_decimal_scale_reduction_is_refused_when_places_would_be_lost(engine: Engine) -> None:
    create(engine)
    insert(
        engine,
        "deal",
        {"id": "r1", "name": "a", "amount": Decimal("1.20")},
        {"id": "r2", "name": "b", "amount": Decimal("1.25")},
    )
    before = snapshot(engine)
    problem = refused(engine, lambda d: d.change_field("deal", "amount", {"scale": 1}))
    assert problem.errors[0].message.startswith("1 record(s)")
    assert "r2" in problem.errors[0].message
    assert snapshot(engine) == before


def test_decimal_scale_reduction_keeps_values_that_fit(engine: Engine) -> None:
    create(engine)
    insert(engine, "deal", {"id": "r1", "name": "a", "amount": Decimal("1.20")})
    design(engine, lambda d: d.change_field("deal", "amount", {"scale": 1}))
    assert rows(engine, "deal", "amount") == [("r1", Decimal("1.2"))]


def test_purge_of_a_hidden_indexed_field_drops_its_index(engine: Engine) -> None:
    document = deal()
    document["fields"][1]["indexed"] = True
    create(engine, document)
    design(engine, lambda d: d.delete_field("deal", "code"))
    name = ix(engine, "code")
    assert indexes(engine, "deal")[name] == (("code",), False)
    design(engine, lambda d: d.delete_field("deal", "code", purge=True))
    assert name not in indexes(engine, "deal")
    assert ("code",) not in indexed_columns(engine)
    assert "code" not in columns(engine, "deal")
