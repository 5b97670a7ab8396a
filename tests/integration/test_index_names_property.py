"""Any sequence of valid entity and field designs succeeds, on SQLite and PostgreSQL, and leaves
every table with exactly the indexes its metadata names: each name used once in the database and
within PostgreSQL's 63 bytes. Names are generated to collide under the old name-based scheme
(words such as acme, q, owner joined by "_"), near the 63-character limit, and at random.

Each example runs in one transaction that is rolled back, so the database stays small.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, inspect

from metacrm.metadata import store
from metacrm.metadata.entities import EntityDesigner
from metacrm.metadata.model import EntityDef
from metacrm.metadata.storage import index_specs
from metacrm.metadata.types import (
    RESERVED_ENTITY_NAMES,
    RESERVED_ENTITY_PREFIXES,
    RESERVED_FIELD_NAMES,
)
from metacrm.platform.db import WRITE_OPTION, make_engine
from metacrm.platform.install import install

IN_CI = os.environ.get("CI") == "true"
MAX_EXAMPLES = int(os.environ.get("INDEX_NAMES_PROPERTY_EXAMPLES", "100" if IN_CI else "25"))
MAX_IDENTIFIER = 63

# Words whose joins collide under "ix_<entity>_<field>": acme + q_owner, acme_q + owner, …
WORDS = ["acme", "q", "owner", "code", "ix", "uq", "pkey", "created", "at", "a1"]
joined = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map("_".join)
long = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from("alq"),
    st.text("abq_019", min_size=52, max_size=62),
)
anything = st.from_regex(r"[a-z][a-z0-9_]{0,62}", fullmatch=True)
names = st.one_of(joined, joined, long, anything)
KINDS = ["plain", "indexed", "unique", "user", "lookup"]


@dataclass(frozen=True)
class Create:
    entity: str
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Add:
    pick: int
    field: tuple[str, str]


@dataclass(frozen=True)
class Rename:
    pick: int
    which: int
    to: str


@dataclass(frozen=True)
class Hide:
    pick: int
    which: int
    purge: bool


fields = st.tuples(names, st.sampled_from(KINDS))
single = st.one_of(
    st.builds(Create, names, st.lists(fields, max_size=4).map(tuple)),
    st.builds(Create, names, st.lists(fields, max_size=4).map(tuple)),
    st.builds(Add, st.integers(0, 20), fields),
    st.builds(Rename, st.integers(0, 20), st.integers(0, 20), names),
    st.builds(Hide, st.integers(0, 20), st.integers(0, 20), st.booleans()),
).map(lambda step: [step])

# Designs whose old names were one and the same: entity `a` with field `b_c` and entity `a_b`
# with field `c` (or its owner index, c = "owner"), the second one made at once, by adding a
# field later, or by renaming one. Parts of up to 30 characters make the old names run past 63
# bytes, where the old hash of the same long name was the same too.
part = st.one_of(st.sampled_from(WORDS), st.from_regex(r"[a-z][a-z0-9_]{0,29}", fullmatch=True))
INDEXED = ["indexed", "unique", "user"]


def _colliding(a: str, b: str, c: str, kind: str, how: str) -> list[Create | Add | Rename]:
    if c == "owner":
        first: list[Create | Add | Rename] = [Create(a, ((f"{b}_owner", "indexed"),))]
        return [*first, Create(f"{a}_{b}", ())]
    if how == "at_once":
        return [Create(a, ((f"{b}_{c}", kind),)), Create(f"{a}_{b}", ((c, kind),))]
    if how == "added":
        return [Create(f"{a}_{b}", ((c, kind),)), Create(a, ()), Add(-1, (f"{b}_{c}", kind))]
    return [
        Create(a, (("before", kind),)),
        Create(f"{a}_{b}", ((c, kind),)),
        Rename(-2, 0, f"{b}_{c}"),
    ]


colliding = st.builds(
    _colliding,
    part,
    part,
    st.one_of(st.just("owner"), part),
    st.sampled_from(INDEXED),
    st.sampled_from(["at_once", "added", "renamed"]),
)
designs = st.lists(st.one_of(single, colliding), min_size=1, max_size=5).map(
    lambda chunks: [step for chunk in chunks for step in chunk]
)


def field_doc(name: str, kind: str, target: str) -> dict[str, Any]:
    if kind == "user":
        return {"name": name, "type": "user"}
    if kind == "lookup":
        return {"name": name, "type": "lookup", "target": target}
    doc = {"name": name, "type": "text"}
    if kind in ("indexed", "unique"):
        doc[kind] = True
    return doc


class Designs:
    """Applies steps through the entity designer, skipping the ones validation would refuse
    (reserved or taken names), which are not what this test is about."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.designer = EntityDesigner(conn, author=None)
        self.entities: list[str] = []

    def current(self, pick: int) -> EntityDef | None:
        if not self.entities:
            return None
        return self.designer.current(self.entities[pick % len(self.entities)])

    def run(self, step: Create | Add | Rename | Hide) -> None:
        if isinstance(step, Create):
            self.create(step)
            return
        entity = self.current(step.pick)
        if entity is None:
            return
        taken = {f.name for f in (*entity.fields, *entity.hidden_fields)}
        if isinstance(step, Add):
            name, kind = step.field
            if name in taken or name in RESERVED_FIELD_NAMES:
                return
            note(f"add {name} ({kind}) to {entity.name}")
            self.designer.add_field(entity.name, field_doc(name, kind, entity.name))
        elif entity.fields and isinstance(step, Rename):
            old = entity.fields[step.which % len(entity.fields)].name
            if step.to in taken or step.to in RESERVED_FIELD_NAMES:
                return
            note(f"rename {entity.name}.{old} to {step.to}")
            self.designer.change_field(entity.name, old, {"name": step.to})
        elif entity.fields and isinstance(step, Hide):
            old = entity.fields[step.which % len(entity.fields)].name
            note(f"{'purge' if step.purge else 'hide'} {entity.name}.{old}")
            self.designer.delete_field(entity.name, old, purge=step.purge)

    def create(self, step: Create) -> None:
        name = step.entity
        if (
            name in self.entities
            or name in RESERVED_ENTITY_NAMES
            or name.startswith(RESERVED_ENTITY_PREFIXES)
        ):
            return
        target = self.entities[0] if self.entities else name
        docs: dict[str, dict[str, Any]] = {}
        for field, kind in step.fields:
            if field not in RESERVED_FIELD_NAMES:
                docs.setdefault(field, field_doc(field, kind, target))
        note(f"create {name} with {list(docs.values())}")
        self.designer.create({"name": name, "label": {"en": "E"}, "fields": list(docs.values())})
        self.entities.append(name)


def check_indexes(conn: Connection, entities: list[str]) -> None:
    inspector = inspect(conn)
    every_name: list[str] = []
    for name in entities:
        found = store.get(conn, store.ENTITY, name)
        assert found is not None
        entity = EntityDef.from_doc(found.document)
        present = {
            ix["name"]: (tuple(ix["column_names"]), bool(ix["unique"]))
            for ix in inspector.get_indexes(name)
        }
        # What the design asked for, read from the table alone.
        for f in (*entity.fields, *entity.hidden_fields):
            if f.unique:
                assert ((f.name,), True) in present.values(), (name, f.name)
            elif f.indexed or f.type in ("user", "lookup"):
                assert ((f.name,), False) in present.values(), (name, f.name)
        # And exactly the names the metadata gives them.
        assert present == {s.name: (s.columns, s.unique) for s in index_specs(entity)}
        every_name.extend(present)
        if conn.dialect.name == "postgresql":
            every_name.append(inspector.get_pk_constraint(name)["name"])
    assert len(every_name) == len(set(every_name))
    assert all(len(n.encode()) <= MAX_IDENTIFIER for n in every_name)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    dropper: str | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('names')) / 'names.db'}"
    else:
        dropper = f"t_index_names_{secrets.token_hex(4)}"
        url = request.getfixturevalue("postgres_server").create_database(dropper)
    engine = make_engine(url)
    install(engine)
    yield engine
    engine.dispose()
    if dropper:
        request.getfixturevalue("postgres_server").drop_database(dropper)


@pytest.mark.slow
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(designs)
@example([Create("acme", (("q_owner", "indexed"),)), Create("acme_q", ())])
@example([Create("acme", (("q_code", "unique"),)), Create("acme_q", (("code", "unique"),))])
@example(
    [Create("acme_q", (("code", "unique"),)), Create("acme", ()), Add(1, ("q_code", "unique"))]
)
@example([Create("acme", (("x", "indexed"),)), Create("acme_q", ()), Rename(0, 0, "q_owner")])
@example([Create("acme", ()), Create("ix_acme_owner", ()), Create("acme_pkey", ())])
@example([Create("l" * 63, (("f" * 63, "unique"), ("g" * 63, "user")))])
def test_any_design_sequence_succeeds_with_distinct_index_names(
    engine: Engine, designs: list[Create | Add | Rename | Hide]
) -> None:
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin() as transaction:
            run = Designs(conn)
            for step in designs:
                run.run(step)
            check_indexes(conn, run.entities)
            transaction.rollback()
