"""The permission leak matrix: for every person x entity x read path, the API shows exactly what
the test predicts from its own data, on SQLite and PostgreSQL.

The world (built once per database, see orgfixture.py):

* units company -> sales -> {north, south} and company -> service;
* the reporting line director -> manager -> rep -> junior;
* people holding each data scope: own (rep, junior, south_rep), subordinates (director,
  manager), org_unit (unit_user), org_unit_tree (sales_head), all (auditor); `dual` with two
  roles whose field permissions differ; `narrow` and `widen` with a narrowing and a widening
  record rule; `opp_only` with rights on opportunities only; `nobody` without roles; the admin;
  `frozen`, whose token must stop working; `keeper`, whose role masks and hides fields except
  on the records they own, and `keeper_plus`, who holds that role and one masking the same
  fields for everyone;
* accounts (name, industry, phone, secret, region) and opportunities (name, amount, account
  lookup, stage) of every owner, some deleted; records shared with a user, a role and org units
  (a share with `sales` reaches north and south); sharing rules on both entities.

The oracle below predicts, in plain Python over that data and never through the product's
permission code, which records each person may read and how each field shows; the admin's view
of the records is the truth it transforms. Each read path is held against it: list (every
page), get of every id of both entities, count, q, expand, lookup filters, export and history.
Then the refusals: filters and sorts on withheld fields are unknown fields, and writes outside
the caller's rights are refused without changing a thing. The write tests come last: they
leave the world as they found it, apart from versions and history.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import start_api
from orgfixture import (
    FIELD_TYPES,
    PEOPLE,
    PERSON,
    RECORDS,
    ROLES,
    SEARCHABLE_TYPES,
    SHARES,
    SHARING_RULES,
    UNITS,
    Grant,
    Person,
    Rec,
    World,
    build_world,
)

from metacrm.platform.db import reading
from metacrm.platform.errors import BadRequest, Forbidden
from metacrm.platform.users import find_user
from metacrm.runtime.exporting import export_records

ENTITIES = ("account", "opportunity")
READERS = [p.key for p in PEOPLE if not p.frozen]
HIDE, MASK, SHOW = 0, 1, 2
LEVEL = {"hidden": HIDE, "masked": MASK, "read_only": SHOW}
SHARE_ACCESS = {"read": ("read", "edit"), "update": ("edit",)}
IN_FULL = {"access": "read_only"}  # a field a role says nothing about
PAGE = "4"  # small, so every list spans several pages


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One world per database for the whole module: the read tests change nothing, and the
    write tests (last) put back what they change."""
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    database = f"t_permissions_leak_{secrets.token_hex(4)}"
    if server is None:
        url = f"sqlite:///{tmp_path_factory.mktemp('leak')}/test.db"
    else:
        url = server.create_database(database)
    api = start_api(url)
    try:
        with api.client:
            yield build_world(api)
    finally:
        api.engine.dispose()
        if server is not None:
            server.drop_database(database)


# ---- the oracle: who may read what, from the world's own data -------------------------------


def unit_chain(unit: str | None) -> list[str]:
    """The unit and every unit above it."""
    chain = []
    while unit is not None:
        chain.append(unit)
        unit = UNITS[unit]
    return chain


def units_below(unit: str) -> set[str]:
    """The unit and every unit below it."""
    return {u for u in UNITS if unit in unit_chain(u)}


def managers(key: str) -> list[str]:
    """The person and everyone above them in the reporting line."""
    chain = []
    person: Person | None = PERSON[key]
    while person is not None:
        chain.append(person.key)
        person = PERSON[person.manager] if person.manager else None
    return chain


def in_scope(p: Person, scope: str, owner: str) -> bool:
    if scope == "all" or owner == p.key:
        return True
    theirs = PERSON[owner].unit
    if scope == "subordinates":
        return p.key in managers(owner)
    if scope == "org_unit":
        return p.unit is not None and theirs == p.unit
    if scope == "org_unit_tree":
        return p.unit is not None and theirs in units_below(p.unit)
    assert scope == "own", scope
    return False


def grants(p: Person, entity: str, action: str) -> list[Grant]:
    return [
        ROLES[r][entity]
        for r in p.roles
        if entity in ROLES[r] and action in ROLES[r][entity].actions
    ]


def may(p: Person, entity: str, action: str) -> bool:
    """Whether the person holds the action on the entity at all (else 403)."""
    return p.admin or bool(grants(p, entity, action))


def selects(p: Person, grant: Grant, action: str, rec: Rec) -> bool:
    """(scope OR widening rules) AND narrowing rules, of one role."""
    rules = [r for r in grant.rules if r.applies_to(action)]
    chosen = in_scope(p, grant.actions[action], rec.owner)
    chosen = chosen or any(r.holds(rec.values) for r in rules if r.effect == "widen")
    return chosen and all(r.holds(rec.values) for r in rules if r.effect == "narrow")


def shared_with(p: Person, rec: Rec, access: tuple[str, ...]) -> bool:
    mine = {("user", p.key), *(("role", r) for r in p.roles)}
    mine |= {("org_unit", u) for u in unit_chain(p.unit)}
    if any(
        s.record == rec.key and s.access in access and (s.principal_type, s.principal) in mine
        for s in SHARES
    ):
        return True
    return any(
        rule.access in access and rule.share_with in mine and rule.holds(rec.values)
        for rule in SHARING_RULES[rec.entity]
    )


def allows(p: Person, rec: Rec, action: str) -> bool:
    """Whether the person may take the action on the record, deleted or not."""
    if p.admin:
        return True
    if any(selects(p, g, action, rec) for g in grants(p, rec.entity, action)):
        return True
    access = SHARE_ACCESS.get(action)
    return (
        access is not None and bool(grants(p, rec.entity, action)) and shared_with(p, rec, access)
    )


def visible(p: Person, rec: Rec) -> bool:
    """In lists and gets: readable and not deleted."""
    return not rec.deleted and allows(p, rec, "read")


def level_of(spec: dict[str, Any], owned: bool) -> int:
    """What one role's field permission shows; one sparing the owner, on the owner's record,
    shows the field in full."""
    return SHOW if owned and spec.get("except_owner") else LEVEL[spec["access"]]


def field_levels(p: Person, rec: Rec) -> dict[str, tuple[int, Any]]:
    """Field -> (level, mask) for one record: the most any role selecting it shows (a record
    seen only through a share: the most any of the person's read roles shows), the record's
    owner lifting the rules that spare them."""
    if p.admin:
        return {name: (SHOW, None) for name in FIELD_TYPES[rec.entity]}
    roles = grants(p, rec.entity, "read")
    granting = [g for g in roles if selects(p, g, "read", rec)] or roles
    owned = rec.owner == p.key
    levels = {}
    for name in FIELD_TYPES[rec.entity]:
        specs = [g.fields.get(name, IN_FULL) for g in granting]
        level = max(level_of(s, owned) for s in specs)
        how = next((s.get("mask") for s in specs if level_of(s, owned) == MASK), None)
        levels[name] = (level, how)
    return levels


def probeable(p: Person, entity: str) -> set[str]:
    """Fields the person may filter, sort and search on: every read role shows them in full on
    every record (owning some doesn't make a field probeable)."""
    roles = grants(p, entity, "read")
    return {
        name
        for name in FIELD_TYPES[entity]
        if p.admin or all(level_of(g.fields.get(name, IN_FULL), False) == SHOW for g in roles)
    }


def shown(p: Person, entity: str) -> set[str]:
    """Fields some read role shows at all (if only on the person's own records)."""
    roles = grants(p, entity, "read")
    return {
        name
        for name in FIELD_TYPES[entity]
        if p.admin or any(level_of(g.fields.get(name, IN_FULL), True) > HIDE for g in roles)
    }


def masked(value: Any, how: Any, field_type: str) -> Any:
    """The documented masks: phones keep 3 + 4, other text its last 4, "email" the first letter
    and the domain, custom keep/char; a value too short to keep anything safely (under a third
    starred) is starred whole."""
    if not isinstance(value, str) or not value:
        return value
    if how == "email":
        local, at, domain = value.rpartition("@")
        return f"{local[0]}***@{domain}" if at and local else "*" * len(value)
    if how is None:
        how = {"keep_start": 3 if field_type == "phone" else 0, "keep_end": 4}
    start, end, char = how.get("keep_start", 0), how.get("keep_end", 0), how.get("char", "*")
    starred = len(value) - start - end
    if starred < max(1, math.ceil(len(value) / 3)):
        return char * len(value)
    return value[:start] + char * starred + value[len(value) - end :]


def as_seen(p: Person, rec: Rec, record: dict[str, Any]) -> dict[str, Any]:
    """The admin's JSON of a record as the person must see it."""
    out = dict(record)
    for name, (level, how) in field_levels(p, rec).items():
        if name not in out:
            continue
        if level == HIDE:
            del out[name]
        elif level == MASK:
            out[name] = masked(out[name], how, FIELD_TYPES[rec.entity][name])
    return out


def history_as_seen(p: Person, rec: Rec, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    levels = field_levels(p, rec)
    seen = []
    for entry in entries:
        changes = {}
        for name, change in entry["changes"].items():
            level, how = levels.get(name, (SHOW, None))
            if level == HIDE:
                continue
            if level == MASK:
                change = {
                    k: masked(v, how, FIELD_TYPES[rec.entity][name]) for k, v in change.items()
                }
            changes[name] = change
        seen.append({**entry, "changes": changes})
    return seen


# ---- talking to the API ---------------------------------------------------------------------


def as_who(world: World, who: str) -> dict[str, Any]:
    return {"headers": {"token": world.token(who)}}


def truth(world: World, entity: str) -> dict[str, dict[str, Any]]:
    """Every live record as the admin sees it, by id."""
    key = ("records", entity)
    if key not in world.cache:
        response = world.api.get(f"{RECORDS}/{entity}", params={"limit": "500"})
        assert response.status_code == 200, response.text
        assert response.json()["next_cursor"] is None
        world.cache[key] = {r["id"]: r for r in response.json()["data"]}
    return world.cache[key]


def admin_history(world: World, rec: Rec) -> list[dict[str, Any]]:
    key = ("history", rec.id)
    if key not in world.cache:
        response = world.api.get(f"{RECORDS}/{rec.entity}/{rec.id}/history")
        assert response.status_code == 200, response.text
        world.cache[key] = response.json()["data"]
    return world.cache[key]


def list_all(
    world: World, who: str, entity: str, limit: str = PAGE, **params: str
) -> list[dict[str, Any]]:
    """Every page of a list, following next_cursor."""
    records: list[dict[str, Any]] = []
    cursor = None
    for _ in range(200):
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = world.api.get(f"{RECORDS}/{entity}", params=query, **as_who(world, who))
        assert response.status_code == 200, response.text
        body = response.json()
        records += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            ids = [r["id"] for r in records]
            assert len(ids) == len(set(ids)), "a record came twice across pages"
            return records
    raise AssertionError("the pages never ended")


def keys(world: World, records: list[dict[str, Any]]) -> set[str]:
    """Record keys (readable names) of API records, for readable failures."""
    return {world.by_id(r["id"]).key for r in records}


def expected_keys(world: World, who: str, entity: str, extra: Any = None) -> set[str]:
    p = PERSON[who]
    return {r.key for r in world.of(entity) if visible(p, r) and (extra is None or extra(r))}


def export_as(
    world: World, who: str, entity: str, filter_text: str | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """Export in-process, with a record service built as the API builds one."""
    with reading(world.api.engine) as conn:
        user = find_user(conn, PERSON[who].email)
        service = world.api.records(conn, user)
        columns, rows = export_records(service, entity, filter_text)
        return columns, list(rows)


def ids_to_try(world: World, who: str, entity: str) -> list[Rec]:
    """Every record of the entity, live and deleted, and a few of the other entity (the ones the
    person may read there, the likeliest to leak through the wrong path); when the person
    can't read the entity at all, a few records suffice (all are refused alike)."""
    p = PERSON[who]
    if not may(p, entity, "read"):
        return world.records[:: len(world.records) // 4]
    other = [r for r in world.records if r.entity != entity]
    readable_there = [r for r in other if allows(p, r, "read")]
    return world.of(entity) + (readable_there[:3] + [r for r in other if r.deleted])[:5]


def needs_read(world: World, who: str, entity: str) -> bool:
    """Whether the person holds read on the entity; if not, the list must be refused."""
    if may(PERSON[who], entity, "read"):
        return True
    response = world.api.get(f"{RECORDS}/{entity}", **as_who(world, who))
    assert response.status_code == 403, response.text
    return False


people = pytest.mark.parametrize("who", READERS)
entities = pytest.mark.parametrize("entity", ENTITIES)


# ---- read paths -----------------------------------------------------------------------------


@people
@entities
def test_list_shows_exactly_the_readable_records(world: World, who: str, entity: str) -> None:
    if not needs_read(world, who, entity):
        return
    p = PERSON[who]
    records = list_all(world, who, entity)
    assert keys(world, records) == expected_keys(world, who, entity)
    everything = truth(world, entity)
    for record in records:
        rec = world.by_id(record["id"])
        assert record == as_seen(p, rec, everything[rec.id]), rec.key


@people
@entities
def test_count_counts_only_readable_records(world: World, who: str, entity: str) -> None:
    if not needs_read(world, who, entity):
        return
    response = world.api.get(
        f"{RECORDS}/{entity}", params={"count": "true", "limit": "1"}, **as_who(world, who)
    )
    assert response.status_code == 200, response.text
    assert response.json()["count"] == len(expected_keys(world, who, entity))


@people
@entities
def test_get_of_every_id_is_200_only_when_readable(world: World, who: str, entity: str) -> None:
    """Ids of both entities (see ids_to_try), live and deleted: readable -> 200 with the record
    as seen, anything else -> 404 (403 for every id when the person can't read the entity)."""
    p = PERSON[who]
    everything = truth(world, entity)
    for rec in ids_to_try(world, who, entity):
        response = world.api.get(f"{RECORDS}/{entity}/{rec.id}", **as_who(world, who))
        if not may(p, entity, "read"):
            expected = 403
        elif rec.entity == entity and visible(p, rec):
            expected = 200
        else:
            expected = 404
        assert response.status_code == expected, (rec.entity, rec.key, response.text)
        if expected == 200:
            assert response.json() == as_seen(p, rec, everything[rec.id]), rec.key


@people
@entities
def test_history_only_of_readable_records(world: World, who: str, entity: str) -> None:
    """History works on deleted records too, under the same read condition; withheld fields
    are dropped from it and masked ones masked."""
    p = PERSON[who]
    for rec in ids_to_try(world, who, entity):
        response = world.api.get(f"{RECORDS}/{entity}/{rec.id}/history", **as_who(world, who))
        if not may(p, entity, "read"):
            expected = 403
        elif rec.entity == entity and allows(p, rec, "read"):
            expected = 200
        else:
            expected = 404
        assert response.status_code == expected, (rec.entity, rec.key, response.text)
        if expected == 200:
            seen = history_as_seen(p, rec, admin_history(world, rec))
            assert response.json()["data"] == seen, rec.key


SEARCHES = {
    "account": ("s3cr3t", "s3cr3t-rep", "0005", "139", "east", "rep-acct", "acct-1", "***"),
    "opportunity": ("opp-0", "rep-opp", "pp-1", "nothing-like-this"),
}


@people
@entities
def test_search_matches_only_fields_the_person_may_probe(
    world: World, who: str, entity: str
) -> None:
    """`q` looks in the searchable fields every read role shows in full; a masked or hidden
    field's value can't be found by searching."""
    if not needs_read(world, who, entity):
        return
    p = PERSON[who]
    everything = truth(world, entity)
    searched = {f for f in probeable(p, entity) if FIELD_TYPES[entity][f] in SEARCHABLE_TYPES}

    def matches(term: str) -> Any:
        def match(rec: Rec) -> bool:
            record = everything[rec.id]
            return any(term.lower() in str(record[f] or "").lower() for f in searched)

        return match

    for term in SEARCHES[entity]:
        found = keys(world, list_all(world, who, entity, limit="100", q=term))
        assert found == expected_keys(world, who, entity, matches(term)), term


@people
def test_expand_embeds_only_readable_accounts(world: World, who: str) -> None:
    if not needs_read(world, who, "opportunity"):
        return
    p = PERSON[who]
    accounts, opportunities = truth(world, "account"), truth(world, "opportunity")
    listed = list_all(world, who, "opportunity", expand="account")
    fetched = [
        world.api.get(
            f"{RECORDS}/opportunity/{r['id']}", params={"expand": "account"}, **as_who(world, who)
        ).json()
        for r in listed
    ]
    for record in listed + fetched:
        rec = world.by_id(record["id"])
        plain = as_seen(p, rec, opportunities[rec.id])
        assert {**record, "account": None} == {**plain, "account": None}, rec.key
        account_key = rec.values["account"]
        if account_key is None:
            assert record["account"] is None
            continue
        account = world.by_key(account_key)
        if may(p, "account", "read") and visible(p, account):
            assert record["account"] == as_seen(p, account, accounts[account.id]), rec.key
        else:
            # Nothing of an unreadable account beyond the id the opportunity holds anyway.
            assert record["account"] in (account.id, {"id": account.id}), rec.key


def account_of(world: World, rec: Rec) -> Rec | None:
    key = rec.values["account"]
    return world.by_key(key) if key else None


@people
def test_lookup_filters_see_only_readable_accounts(world: World, who: str) -> None:
    """`account.<field>` on opportunities matches only where the account itself is readable;
    an unreadable account behaves as absent."""
    if not needs_read(world, who, "opportunity"):
        return
    p = PERSON[who]
    filters: list[tuple[str, Any]] = [
        ('account.industry == "energy"', lambda a: a.values["industry"] == "energy"),
    ]
    for owner in ("rep", "admin", "auditor", "narrow", "junior"):
        filters.append(
            (f'account.owner == "{world.person_ids[owner]}"', lambda a, o=owner: a.owner == o)
        )
    for text, holds in filters:

        def matches(rec: Rec, holds: Any = holds) -> bool:
            # The lookup joins the account row as it is, deleted or not (like the admin's),
            # but only where the account is readable.
            account = account_of(world, rec)
            if account is None or not may(p, "account", "read"):
                return False
            return allows(p, account, "read") and holds(account)

        expected = expected_keys(world, who, "opportunity", matches)
        found = list_all(world, who, "opportunity", limit="100", filter=text)
        assert keys(world, found) == expected, text
        response = world.api.get(
            f"{RECORDS}/opportunity",
            params={"filter": text, "count": "true", "limit": "1"},
            **as_who(world, who),
        )
        assert response.json()["count"] == len(expected), text


@people
@entities
def test_export_gives_exported_and_readable_records_as_seen(
    world: World, who: str, entity: str
) -> None:
    p = PERSON[who]
    if not may(p, entity, "export"):
        with pytest.raises(Forbidden):
            export_as(world, who, entity)
        return
    columns, rows = export_as(world, who, entity)
    custom = set(FIELD_TYPES[entity])
    assert set(columns) & custom == shown(p, entity)
    assert "deleted_at" not in columns
    expected = {r.key for r in world.of(entity) if visible(p, r) and allows(p, r, "export")}
    assert {world.by_id(r["id"]).key for r in rows} == expected
    everything = truth(world, entity)
    for row in rows:
        rec = world.by_id(row["id"])
        assert row == as_seen(p, rec, everything[rec.id]), rec.key
    for name in custom - probeable(p, entity):
        with pytest.raises(BadRequest):
            export_as(world, who, entity, f"{name} == {name}")


# ---- withheld fields are unknown fields -----------------------------------------------------


def problem(response: httpx.Response, name: str) -> dict[str, Any]:
    """A 400's body with the field name and any did-you-mean taken out."""
    assert response.status_code == 400, response.text
    body = response.json()
    body.pop("suggestions", None)
    detail = re.sub(r"; did you mean .*\?$", "", body.get("detail", ""))
    body["detail"] = detail.replace(f"'{name.split('.')[-1]}'", "'<name>'")
    return body


@people
@entities
def test_withheld_fields_are_unknown_to_filter_sort_and_search(
    world: World, who: str, entity: str
) -> None:
    """Filtering or sorting on a field the person may not probe (hidden or masked by some
    role) answers exactly like a field that doesn't exist, and no did-you-mean names it."""
    if not needs_read(world, who, entity):
        return
    p = PERSON[who]
    path = f"{RECORDS}/{entity}"

    def get(**params: str) -> httpx.Response:
        return world.api.get(path, params={"limit": "1", **params}, **as_who(world, who))

    unknown_filter = problem(get(filter="nosuchfield == nosuchfield"), "nosuchfield")
    unknown_lookup = problem(get(filter="account.nosuch == account.nosuch"), "nosuch")
    unknown_sort = problem(get(sort="nosuchfield"), "nosuchfield")
    lookups = [(f"account.{f}", f in probeable(p, "account")) for f in FIELD_TYPES["account"]]
    own = [(f, f in probeable(p, entity)) for f in FIELD_TYPES[entity]]
    for path_name, allowed in own + (lookups if entity == "opportunity" else []):
        response = get(filter=f"{path_name} == {path_name}")
        if allowed:
            assert response.status_code == 200, (path_name, response.text)
            continue
        unknown = unknown_lookup if "." in path_name else unknown_filter
        assert problem(response, path_name) == unknown, path_name
        typo = get(filter=f"{path_name[:-1]} == 1").json()
        assert path_name.split(".")[-1] not in typo.get("suggestions", []), typo
    for name, allowed in own:
        response = get(sort=name)
        if allowed:
            assert response.status_code == 200, (name, response.text)
        else:
            assert problem(response, name) == unknown_sort, name
    for name in FIELD_TYPES[entity]:
        response = get(fields=f"name,{name}")
        assert response.status_code == (200 if name in shown(p, entity) else 400), name


# ---- anchors: a few literal expectations, so the oracle can't drift with the product --------


def test_literal_anchors(world: World) -> None:
    def get(who: str, key: str) -> dict[str, Any]:
        rec = world.by_key(key)
        response = world.api.get(f"{RECORDS}/{rec.entity}/{rec.id}", **as_who(world, who))
        assert response.status_code == 200, (who, key, response.text)
        return response.json()

    # unit_user: phones masked 3 + 4; too short -> starred whole.
    assert get("unit_user", "manager-acct-0")["phone"] == "139****0000"
    assert get("unit_user", "manager-acct-1")["phone"] == "*****"
    # auditor: a custom mask (the last two kept, "#" for the rest), and secret hidden.
    assert get("auditor", "manager-acct-0")["phone"] == "#########00"
    assert "secret" not in get("auditor", "manager-acct-0")
    # dual sees their own account in full (own_full), others of the tree masked (tree_reader).
    own = get("dual", "dual-acct-0")
    assert own["phone"] == "13900070000" and own["secret"] == "s3cr3t-dual-0"
    other = get("dual", "rep-acct-0")
    assert other["phone"] == "139****0000" and "secret" not in other
    assert get("sales_head", "rep-opp-0")["name"] == "*****pp-0"
    # The share with org unit sales reaches rep in north, a unit below it.
    assert get("rep", "narrow-acct-0")["name"] == "narrow-acct-0"
    # The manager chain: director and manager (subordinates) see junior's records; rep, whose
    # scope is own although junior reports to them, does not.
    for boss in ("director", "manager"):
        get(boss, "junior-acct-0")
    response = world.api.get(
        f"{RECORDS}/account/{world.by_key('junior-acct-0').id}", **as_who(world, "rep")
    )
    assert response.status_code == 404
    # keeper: phone masked and secret hidden except on the records keeper owns.
    own = get("keeper", "keeper-acct-0")
    assert own["phone"] == "13900130000" and own["secret"] == "s3cr3t-keeper-0"
    other = get("keeper", "south_rep-acct-0")
    assert other["phone"] == "139****0000" and "secret" not in other
    assert get("keeper", "keeper-opp-0")["name"] == "keeper-opp-0"
    assert get("keeper", "south_rep-opp-0")["name"] == "***********pp-0"
    # keeper_plus: the sparing role wins on their own records only; elsewhere all_reader's
    # custom mask applies, on records both roles grant as on those only all_reader grants.
    own = get("keeper_plus", "keeper_plus-acct-0")
    assert own["phone"] == "13900140000" and own["secret"] == "s3cr3t-keeper_plus-0"
    for key in ("keeper-acct-0", "rep-acct-0"):
        other = get("keeper_plus", key)
        assert other["phone"] == "#########00" and "secret" not in other, key
    # The owner decides even when `fields` leaves `owner` out, and `owner` stays out.
    response = world.api.get(
        f"{RECORDS}/account", params={"fields": "phone,secret"}, **as_who(world, "keeper")
    )
    assert response.status_code == 200, response.text
    listed = {world.by_id(r["id"]).key: r for r in response.json()["data"]}
    assert listed["keeper-acct-0"] == {
        "id": world.by_key("keeper-acct-0").id,
        "phone": "13900130000",
        "secret": "s3cr3t-keeper-0",
    }
    assert listed["south_rep-acct-0"] == {
        "id": world.by_key("south_rep-acct-0").id,
        "phone": "139****0000",
    }


def test_a_frozen_users_token_is_refused(world: World) -> None:
    for entity in ENTITIES:
        response = world.api.get(f"{RECORDS}/{entity}", **as_who(world, "frozen"))
        assert response.status_code == 401, response.text
        rec = next(r for r in world.of(entity) if r.owner == "frozen" and not r.deleted)
        response = world.api.get(f"{RECORDS}/{entity}/{rec.id}", **as_who(world, "frozen"))
        assert response.status_code == 401, response.text


# ---- write paths (last: they change versions and history, not values) -----------------------


def admin_view(world: World, rec: Rec) -> dict[str, Any]:
    response = world.api.get(f"{RECORDS}/{rec.entity}/{rec.id}")
    assert response.status_code == 200, response.text
    return response.json()


def write(world: World, who: str, method: str, rec: Rec, body: Any = None) -> httpx.Response:
    world.cache.clear()
    url = f"{RECORDS}/{rec.entity}/{rec.id}"
    if method == "DELETE":
        return world.api.delete(url, **as_who(world, who))
    return world.api.patch(url, body, **as_who(world, who))


def live(world: World, entity: str, owner: str) -> Rec:
    return next(r for r in world.of(entity) if r.owner == owner and not r.deleted)


def test_transfer_needs_the_transfer_right(world: World) -> None:
    mine = live(world, "account", "rep")
    before = admin_view(world, mine)
    response = write(world, "rep", "PATCH", mine, {"owner": world.person_ids["junior"]})
    assert response.status_code == 403, response.text
    assert admin_view(world, mine) == before
    # The manager holds transfer over subordinates: rep -> junior and back.
    for to in ("junior", "rep"):
        response = write(world, "manager", "PATCH", mine, {"owner": world.person_ids[to]})
        assert response.status_code == 200, response.text
    assert admin_view(world, mine)["owner"] == world.person_ids["rep"]


def test_create_for_someone_else_needs_a_scope_covering_them(world: World) -> None:
    def count() -> int:
        return world.api.get(f"{RECORDS}/account", params={"count": "true", "limit": "1"}).json()[
            "count"
        ]

    before = count()
    body = {"name": "smuggled", "owner": world.person_ids["junior"]}
    response = world.api.post(f"{RECORDS}/account", body, **as_who(world, "rep"))
    assert response.status_code == 403, response.text
    assert count() == before
    found = world.api.get(f"{RECORDS}/account", params={"filter": 'name == "smuggled"'})
    assert found.json()["data"] == []
    # Owned by themselves, it goes through (then the admin deletes it, as a deleted record).
    body = {"name": "rep-made", "owner": world.person_ids["rep"], "industry": "retail"}
    response = world.api.post(f"{RECORDS}/account", body, **as_who(world, "rep"))
    assert response.status_code == 201, response.text
    made = Rec(
        "account",
        "rep-made",
        "rep",
        {"industry": "retail", "phone": None, "secret": None, "region": None},
        deleted=True,
        id=response.json()["id"],
    )
    world.records.append(made)
    assert world.api.delete(f"{RECORDS}/account/{made.id}").status_code == 204
    world.cache.clear()


def test_an_update_leaving_the_update_scope_is_refused(world: World) -> None:
    retail = next(
        r
        for r in world.of("account")
        if r.values["industry"] == "retail" and not r.deleted and r.values["region"]
    )
    before = admin_view(world, retail)
    response = write(world, "narrow", "PATCH", retail, {"industry": "finance"})
    assert response.status_code == 403, response.text
    assert admin_view(world, retail) == before
    # Inside the scope it works (and is put back).
    for region in ("elsewhere", retail.values["region"]):
        response = write(world, "narrow", "PATCH", retail, {"region": region})
        assert response.status_code == 200, response.text
    after = admin_view(world, retail)
    assert {k: after[k] for k in FIELD_TYPES["account"]} == {
        k: before[k] for k in FIELD_TYPES["account"]
    }
    # A non-retail account is not even readable for narrow: 404, not 403.
    energy = next(r for r in world.of("account") if r.values["industry"] == "energy")
    response = write(world, "narrow", "PATCH", energy, {"industry": "retail"})
    assert response.status_code == 404, response.text


def test_unreadable_is_404_before_forbidden_is_403(world: World) -> None:
    unreadable = next(
        r for r in world.of("account") if r.owner == "auditor" and r.key != "auditor-acct-0"
    )
    shared = world.by_key("auditor-acct-0")  # readable by rep through a share, not theirs
    cases = [
        ("rep", unreadable, 404),
        ("rep", shared, 403),
        ("unit_user", live(world, "account", "manager"), 403),  # reads it, no update right
        ("unit_user", unreadable, 404),
        ("nobody", unreadable, 403),  # no right on accounts at all
    ]
    for who, rec, status in cases:
        before = admin_view(world, rec)
        for method in ("PATCH", "DELETE"):
            response = write(world, who, method, rec, {"region": "moved"})
            assert response.status_code == status, (who, rec.key, method, response.text)
        assert admin_view(world, rec) == before


def test_writing_a_hidden_field_is_an_unknown_field(world: World) -> None:
    mine = live(world, "account", "rep")
    before = admin_view(world, mine)
    response = write(world, "rep", "PATCH", mine, {"secret": "overwritten"})
    assert response.status_code == 422, response.text
    assert {e["field"]: e["code"] for e in response.json()["errors"]} == {"secret": "unknown_field"}
    assert admin_view(world, mine) == before
