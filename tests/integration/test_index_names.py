"""Index and constraint names can't collide across entities (issue 10, defect 2), on SQLite and
PostgreSQL: names built from entity and field names did ("acme" + "q_owner" and "acme_q" + its
owner index were both ix_acme_q_owner, so the second entity could never be made); names made
from storage ids can't, and `metacrm init` renames the indexes of entities made before them.
A unique conflict names its field by the index that refused the write."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Api, start_api
from sqlalchemy import Column, Engine, Index, MetaData, Table, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import DropIndex

from metacrm.metadata import store
from metacrm.metadata.model import SYSTEM_FIELD_DEFS, EntityDef, FieldDef
from metacrm.metadata.storage import column_type, index_specs, violated_unique_field
from metacrm.metadata.upgrade import upgrade_entities
from metacrm.platform.db import make_engine, reading, writing
from metacrm.platform.install import install

META = "/api/v1/meta/entities"
RECORDS = "/api/v1/records"
MAX_IDENTIFIER = 63


def entity(name: str, *fields: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "label": {"en": name}, "fields": list(fields)}


def stored_entity(engine: Engine, name: str) -> EntityDef:
    with reading(engine) as conn:
        found = store.get(conn, store.ENTITY, name)
    assert found is not None
    return EntityDef.from_doc(found.document, found.version)


def table_indexes(engine: Engine, table: str) -> dict[str, tuple[tuple[str, ...], bool]]:
    return {
        ix["name"]: (tuple(ix["column_names"]), bool(ix["unique"]))
        for ix in inspect(engine).get_indexes(table)
    }


def assert_indexes_as_the_metadata_says(engine: Engine, *names: str) -> None:
    """Each table has exactly the indexes its metadata names, every name short enough and
    used once in the whole database."""
    seen: list[str] = []
    for name in names:
        found = stored_entity(engine, name)
        wanted = {s.name: (s.columns, s.unique) for s in index_specs(found)}
        assert table_indexes(engine, name) == wanted
        seen.extend(wanted)
        if engine.dialect.name == "postgresql":
            key = inspect(engine).get_pk_constraint(name)["name"]
            assert key == f"mc_pk_{found.storage_id}"
            seen.append(key)
    assert len(seen) == len(set(seen))
    assert all(len(n.encode()) <= MAX_IDENTIFIER and n.startswith("mc_") for n in seen)


def test_an_entity_named_like_another_entitys_index_prefix_is_created(api: Api) -> None:
    api.make_entity(
        entity(
            "acme",
            {"name": "q_owner", "type": "text", "indexed": True},
            {"name": "q_code", "type": "text", "unique": True},
        )
    )
    # Under the old names its owner index was ix_acme_q_owner and its unique index on `code`
    # uq_acme_q_code, both taken by acme: a 500 every time.
    second = api.post(META, entity("acme_q", {"name": "code", "type": "text", "unique": True}))
    assert second.status_code == 201, second.text
    assert api.post(f"{RECORDS}/acme", {"q_code": "X"}).status_code == 201
    assert api.post(f"{RECORDS}/acme_q", {"code": "X"}).status_code == 201
    again = api.post(f"{RECORDS}/acme_q", {"code": "X"})
    assert again.status_code == 409
    assert again.json()["errors"][0]["field"] == "code"
    assert_indexes_as_the_metadata_says(api.engine, "acme", "acme_q")


def test_fields_added_or_renamed_later_never_take_another_entitys_index_name(api: Api) -> None:
    api.make_entity(entity("acme_q", {"name": "code", "type": "text", "unique": True}))
    api.make_entity(entity("acme", {"name": "x", "type": "text", "indexed": True}))
    fields = f"{META}/acme/fields"
    added = api.post(fields, {"name": "q_code", "type": "text", "unique": True})
    assert added.status_code == 201, added.text
    indexed = api.post(fields, {"name": "q_owner", "type": "text", "indexed": True})
    assert indexed.status_code == 201, indexed.text
    renamed = api.patch(f"{fields}/x", {"name": "q_created_at"})
    assert renamed.status_code == 200, renamed.text
    unique_later = api.patch(f"{fields}/q_created_at", {"unique": True})
    assert unique_later.status_code == 200, unique_later.text
    # Tables share the databases' one namespace with indexes and PostgreSQL's <table>_pkey.
    for name in ("ix_acme_owner", "uq_acme_q_code", "acme_pkey", "acme_q_pkey"):
        made = api.post(META, entity(name, {"name": "v", "type": "text", "indexed": True}))
        assert made.status_code == 201, (name, made.text)
    assert_indexes_as_the_metadata_says(
        api.engine, "acme", "acme_q", "ix_acme_owner", "uq_acme_q_code", "acme_pkey"
    )


def test_renaming_a_field_keeps_its_index_and_its_unique_check(api: Api) -> None:
    api.make_entity(entity("deal", {"name": "code", "type": "text", "unique": True}))
    before = table_indexes(api.engine, "deal")
    assert api.patch(f"{META}/deal/fields/code", {"name": "ref"}).status_code == 200
    after = table_indexes(api.engine, "deal")
    assert set(after) == set(before)
    assert ("ref",) in {columns for columns, unique in after.values() if unique}
    assert api.post(f"{RECORDS}/deal", {"ref": "R1"}).status_code == 201
    duplicate = api.post(f"{RECORDS}/deal", {"ref": "R1"})
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"][0]["field"] == "ref"


def test_storage_ids_are_never_shown_and_cant_be_sent(api: Api) -> None:
    api.make_entity(entity("deal", {"name": "code", "type": "text", "indexed": True}))
    document = api.get(f"{META}/deal").json()
    assert "storage" not in document
    assert all("storage_id" not in f for f in document["fields"])
    assert api.put(f"{META}/deal", document).status_code == 200
    history = api.get(f"{META}/deal/versions").json()["data"]
    assert history[0]["diff"] == {}
    document.pop("version")
    forged = {**document, "storage": {"id": 1, "next_field_id": 1}}
    assert api.put(f"{META}/deal", forged).status_code == 422
    document["fields"][0]["storage_id"] = 9
    assert api.put(f"{META}/deal", document).status_code == 422
    assert_indexes_as_the_metadata_says(api.engine, "deal")


def test_a_unique_conflict_names_the_field_whose_index_refused_it(api: Api) -> None:
    # "code" is in "zip_code" and comes first: searching the message named the wrong field.
    api.make_entity(
        entity(
            "place",
            {"name": "code", "type": "text", "unique": True},
            {"name": "zip_code", "type": "text", "unique": True},
        )
    )
    first = api.post(f"{RECORDS}/place", {"code": "A", "zip_code": "Z"})
    assert first.status_code == 201
    same_zip = api.post(f"{RECORDS}/place", {"code": "B", "zip_code": "Z"})
    assert same_zip.status_code == 409
    assert [e["field"] for e in same_zip.json()["errors"]] == ["zip_code"]
    same_code = api.post(f"{RECORDS}/place", {"code": "A", "zip_code": "Y"})
    assert [e["field"] for e in same_code.json()["errors"]] == ["code"]
    changed = api.patch(f"{RECORDS}/place/{first.json()['id']}", {"code": "C"})
    assert changed.status_code == 200
    # A conflict on the primary key is no field's.
    place = stored_entity(api.engine, "place")
    table = Table("place", MetaData(), autoload_with=api.engine)
    with pytest.raises(IntegrityError) as caught, writing(api.engine) as conn:
        conn.execute(table.insert().values(id=first.json()["id"], version=1))
    assert violated_unique_field(place, caught.value) is None


# --- databases made before storage ids ---------------------------------------------------------

ACME = {
    "name": "acme",
    "label": {"en": "Acme"},
    "fields": [
        {"name": "title", "type": "text"},
        {"name": "q_owner", "type": "text", "indexed": True},
        {"name": "code", "type": "text", "unique": True},
        {"name": "zip_code", "type": "text", "unique": True},
        {"name": "boss", "type": "user"},
    ],
    "hidden_fields": [{"name": "old", "type": "text", "indexed": True}],
}
LONG_ENTITY = "l" * 60
LONG_FIELD = "f" * 62
LONG = {
    "name": LONG_ENTITY,
    "label": {"en": "Long"},
    "fields": [{"name": LONG_FIELD, "type": "text", "unique": True}],
    "hidden_fields": [],
}
SYSTEM_INDEXES = {
    "owner": ("owner",),
    "updated_at": ("updated_at", "id"),
    "created_at": ("created_at", "id"),
}


def old_name(prefix: str, table: str, key: str) -> str:
    """How names were made before storage ids (cut to 63 with a hash when longer)."""
    name = f"{prefix}_{table}_{key}"
    if len(name) <= MAX_IDENTIFIER:
        return name
    return f"{name[:54]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def old_table(document: dict[str, Any]) -> tuple[Table, set[str]]:
    """The table as the old code made it, and its index names."""
    name = document["name"]
    fields = [FieldDef.from_doc(f) for f in (*document["fields"], *document["hidden_fields"])]
    table = Table(
        name,
        MetaData(),
        *(Column(f.name, column_type(f), primary_key=f.name == "id") for f in SYSTEM_FIELD_DEFS),
        *(Column(f.name, column_type(f)) for f in fields),
    )
    names = set()
    for key, on in SYSTEM_INDEXES.items():
        names.add(Index(old_name("ix", name, key), *(table.c[c] for c in on)).name)
    live = table.c.deleted_at.is_(None)
    for f in fields:
        if f.unique:
            index = Index(
                old_name("uq", name, f.name),
                table.c[f.name],
                unique=True,
                sqlite_where=live,
                postgresql_where=live,
            )
        elif f.indexed or f.type in ("user", "lookup"):
            index = Index(old_name("ix", name, f.name), table.c[f.name])
        else:
            continue
        names.add(str(index.name))
    return table, names


def run_init(url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metacrm.cli", "init", "--admin-email", "boss@example.com"],
        env={**os.environ, "METACRM_DATABASE_URL": url},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_renames_the_indexes_of_entities_made_before_storage_ids(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    install(engine)
    old_names = {}
    with writing(engine) as conn:
        for document in (ACME, LONG):
            table, old_names[document["name"]] = old_table(document)
            table.create(conn)
            store.save(conn, store.ENTITY, document["name"], document, author=None, action="create")
    assert set(table_indexes(engine, "acme")) == old_names["acme"]
    assert "ix_acme_q_owner" in old_names["acme"]
    assert all(len(n) <= MAX_IDENTIFIER for n in old_names[LONG_ENTITY])

    first = run_init(database_url, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "upgraded 2 entities to id-based index names" in first.stdout
    assert "warning" not in first.stdout
    for name in ("acme", LONG_ENTITY):
        upgraded = stored_entity(engine, name)
        assert upgraded.version == 1  # the ids are the platform's: no new version
        assert not set(table_indexes(engine, name)) & old_names[name]
    assert_indexes_as_the_metadata_says(engine, "acme", LONG_ENTITY)
    renamed = table_indexes(engine, "acme")

    again = run_init(database_url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "upgraded" not in again.stdout
    assert table_indexes(engine, "acme") == renamed
    engine.dispose()

    api = start_api(database_url)
    with api.client:
        made = api.post(META, entity("acme_q", {"name": "code", "type": "text", "unique": True}))
        assert made.status_code == 201, made.text
        assert api.post(f"{RECORDS}/acme", {"code": "A", "zip_code": "Z"}).status_code == 201
        conflict = api.post(f"{RECORDS}/acme", {"code": "B", "zip_code": "Z"})
        assert conflict.status_code == 409
        assert [e["field"] for e in conflict.json()["errors"]] == ["zip_code"]
        fields = f"{META}/acme/fields"
        added = api.post(fields, {"name": "q_code", "type": "text", "unique": True})
        assert added.status_code == 201, added.text
        assert api.patch(f"{fields}/q_owner", {"name": "q_lead"}).status_code == 200
        assert api.patch(f"{fields}/code", {"unique": False, "indexed": True}).status_code == 200
        assert api.delete(f"{fields}/old?purge=true").status_code == 200
        long_record = api.post(f"{RECORDS}/{LONG_ENTITY}", {LONG_FIELD: "v"})
        assert long_record.status_code == 201
        long_conflict = api.post(f"{RECORDS}/{LONG_ENTITY}", {LONG_FIELD: "v"})
        assert [e["field"] for e in long_conflict.json()["errors"]] == [LONG_FIELD]
        assert_indexes_as_the_metadata_says(api.engine, "acme", "acme_q", LONG_ENTITY)
    api.engine.dispose()


def test_an_index_missing_from_an_old_table_is_reported_and_the_rest_renamed(
    sqlite_url: str,
) -> None:
    engine = make_engine(sqlite_url)
    install(engine)
    table, names = old_table(ACME)
    with writing(engine) as conn:
        table.create(conn)
        conn.execute(DropIndex(next(ix for ix in table.indexes if ix.name == "ix_acme_q_owner")))
        store.save(conn, store.ENTITY, "acme", ACME, author=None, action="create")
    with writing(engine) as conn:
        report = upgrade_entities(conn)
    upgraded = stored_entity(engine, "acme")
    q_owner = next(s for s in index_specs(upgraded) if s.columns == ("q_owner",))
    assert report.entities == ["acme"]
    assert report.missing == [q_owner.name]
    assert report.lines()[-1] == f"warning: index {q_owner.name} is missing"
    present = table_indexes(engine, "acme")
    assert len(report.renamed) == len(names) - 1 == len(present)
    assert not set(present) & names
    with writing(engine) as conn:
        assert upgrade_entities(conn).lines() == []
    engine.dispose()
