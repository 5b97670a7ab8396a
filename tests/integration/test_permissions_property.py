"""The permission condition has one meaning: for every user and for reading, updating and
deleting, the records the product's SQL selects are exactly those a plain Python model of the
permission rules allows. Checked on SQLite and PostgreSQL with generated org trees, reporting
lines, roles (scopes and record rules), users holding 0-2 roles, records (some deleted), shares
(with users, roles, units; also shares of another entity and with a role nobody holds) and sharing
rules. The product answers in-process: the record service's list (paged) for reading, and its
permission condition for every action.

The model below is written from the rules, not from the product code:

- a role selects a record when (its scope holds for the owner OR a widening rule holds) AND every
  narrowing rule holds; a rule without `actions` applies to every action of the role;
- scopes: own = owner is me; subordinates = me or anyone below me in the manager chain;
  org_unit = me or an owner in my unit; org_unit_tree = me or an owner in my unit or below it;
- an action is allowed on the records any of my granting roles selects, plus, for read, records
  shared with me (my user id, one of my roles, my unit or a unit above it) for read or edit and
  sharing rules that target me; for update only edit shares and rules; delete is never shared;
- no role granting the action on the entity: nothing (a 403 for lists), whatever is shared;
- admins see and change everything; lists leave deleted records out.

Conditions compare under SQL's three-valued logic: a comparison with null is unknown and
selects nothing (also under `not` and `!=`).

Each example runs in one transaction that is rolled back, on one database per module; password
hashing (argon2) is swapped for a cheap stand-in while the module runs.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from passwords import password_hash
from sqlalchemy import Connection, Engine, select

from metacrm.metadata.entities import EntityDesigner
from metacrm.metadata.model import EntityDef
from metacrm.metadata.roles import RoleDesigner
from metacrm.metadata.validate import validate_entity
from metacrm.metadata.values import to_storage
from metacrm.platform.db import make_engine, writing
from metacrm.platform.errors import Forbidden
from metacrm.platform.ids import new_id
from metacrm.platform.install import install
from metacrm.platform.org import create_unit
from metacrm.platform.settings import Settings
from metacrm.platform.systables import record_shares
from metacrm.platform.users import User, create_user
from metacrm.runtime.catalog import Catalog, CatalogCache
from metacrm.runtime.context import RequestContext
from metacrm.runtime.listing import ListQuery
from metacrm.runtime.records import RecordService
from metacrm.runtime.rule_checks import expression_checker
from metacrm.runtime.startup import build_services

IN_CI = os.environ.get("CI") == "true"
MAX_EXAMPLES = int(os.environ.get("PERMISSIONS_PROPERTY_EXAMPLES", "300" if IN_CI else "200"))

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
SECRET = "permissions-property-secret"
ENTITY = "deal"
INDUSTRIES = ("energy", "retail", "finance")
DEAL = {
    "name": ENTITY,
    "label": {"en": "Deal"},
    "fields": [
        {"name": "industry", "type": "picklist", "options": [{"value": v} for v in INDUSTRIES]},
        {"name": "amount", "type": "decimal", "precision": 10, "scale": 2},
        {"name": "region", "type": "text"},
    ],
}
SCOPES = ("own", "subordinates", "org_unit", "org_unit_tree", "all")
# What a share or sharing rule must give for an action; other actions are never shared.
SHARE_ACCESS = {"read": ("read", "edit"), "update": ("edit",), "delete": ()}
ACTIONS = ("read", "update", "delete")


@dataclass(frozen=True)
class Deal:
    owner: int  # index of the owning user
    industry: str | None
    amount: Decimal | None
    region: str | None
    deleted: bool


def _cmp(value: Any, test: Callable[[Any], bool]) -> bool:
    """A comparison under SQL's logic, reduced to "selected": null is never selected."""
    return value is not None and test(value)


# Record rule conditions and what they mean, record by record, for the user with this id.
CONDITIONS: dict[str, Callable[[Deal, str, str], bool]] = {
    'industry == "energy"': lambda d, _o, _u: _cmp(d.industry, lambda v: v == "energy"),
    'industry != "energy"': lambda d, _o, _u: _cmp(d.industry, lambda v: v != "energy"),
    'industry in ["energy", "retail"]': lambda d, _o, _u: _cmp(
        d.industry, lambda v: v in ("energy", "retail")
    ),
    'industry not in ["retail"]': lambda d, _o, _u: _cmp(d.industry, lambda v: v != "retail"),
    "amount > 100": lambda d, _o, _u: _cmp(d.amount, lambda v: v > 100),
    "amount <= 50": lambda d, _o, _u: _cmp(d.amount, lambda v: v <= 50),
    "not (amount > 100)": lambda d, _o, _u: _cmp(d.amount, lambda v: not v > 100),
    "region is null": lambda d, _o, _u: d.region is None,
    "region is not blank": lambda d, _o, _u: d.region not in (None, ""),
    'region == "north"': lambda d, _o, _u: d.region == "north",
    "owner == $user.id": lambda _d, owner, user: owner == user,
    'industry == "energy" or amount > 100': lambda d, _o, _u: (
        _cmp(d.industry, lambda v: v == "energy") or _cmp(d.amount, lambda v: v > 100)
    ),
}


# --- the generated world -----------------------------------------------------------------------


@dataclass(frozen=True)
class RoleSpec:
    on_entity: bool  # whether the role mentions the entity at all
    actions: dict[str, str]
    # (condition, effect, actions or None for every action)
    rules: tuple[tuple[str, str, tuple[str, ...] | None], ...]


@dataclass(frozen=True)
class UserSpec:
    unit: int | None
    manager: int | None  # always an earlier user: the reporting line has no cycles
    roles: tuple[int, ...]
    admin: bool


@dataclass(frozen=True)
class Share:
    entity: str
    record: int
    principal_type: str
    principal: int  # index of a user, role (len(roles) = a role nobody has) or unit
    access: str


@dataclass(frozen=True)
class SharingRule:
    condition: str
    share_with: str  # user | role | org_unit
    target: int
    access: str


@dataclass(frozen=True)
class World:
    unit_parents: tuple[int | None, ...]
    roles: tuple[RoleSpec, ...]
    users: tuple[UserSpec, ...]
    deals: tuple[Deal, ...]
    shares: tuple[Share, ...]
    sharing_rules: tuple[SharingRule, ...]


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def above(i: int) -> st.SearchStrategy[int | None]:
    """A parent (unit) or manager (user) for item i: mostly the one just before it, so trees and
    reporting lines run deep; sometimes none."""
    return st.sampled_from([i - 1, *([i - 2] if i > 1 else []), None]) if i else st.none()


role_specs = st.builds(
    RoleSpec,
    on_entity=st.integers(0, 7).map(lambda n: n < 7),
    actions=st.tuples(*(st.sampled_from([*SCOPES, None]) for _ in ACTIONS)).map(
        lambda scopes: {a: s for a, s in zip(ACTIONS, scopes, strict=True) if s is not None}
    ),
    rules=st.lists(
        st.tuples(
            st.sampled_from(sorted(CONDITIONS)),
            st.sampled_from(["widen", "narrow"]),
            st.sampled_from([None, ("read",), ("update",), ("read", "update"), ("delete",)]),
        ),
        max_size=2,
    ).map(tuple),
)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    n_units = draw(st.integers(0, 4))
    unit_parents = tuple(draw(above(i)) for i in range(n_units))
    roles = tuple(draw(st.lists(role_specs, min_size=1, max_size=3)))
    n_users = draw(st.integers(1, 7))
    users = tuple(
        UserSpec(
            unit=draw(st.sampled_from([*reversed(range(n_units)), None])),
            manager=draw(above(i)),
            roles=tuple(
                draw(st.permutations(range(len(roles))))[: draw(st.sampled_from((1, 2, 1, 2, 0)))]
            ),
            admin=draw(st.integers(0, 11)) == 11,
        )
        for i in range(n_users)
    )
    deal = st.builds(
        Deal,
        owner=st.integers(0, n_users - 1),
        industry=nullable(st.sampled_from(INDUSTRIES)),
        amount=nullable(
            st.sampled_from([Decimal(0), Decimal(50), Decimal(100), Decimal("100.25")])
        ),
        region=nullable(st.sampled_from(["", "north", "south"])),
        deleted=st.integers(0, 5).map(lambda n: n == 5),
    )
    deals = tuple(draw(deal) for _ in range(draw(st.integers(0, 12))))
    kinds = ["user", "role"] + (["org_unit"] if n_units else [])
    sizes = {"user": n_users, "role": len(roles) + 1, "org_unit": n_units}
    shares = []
    for _ in range(draw(st.integers(0, 6)) if deals else 0):
        kind = draw(st.sampled_from(kinds))
        shares.append(
            Share(
                entity=draw(st.sampled_from([ENTITY, ENTITY, ENTITY, "other"])),
                record=draw(st.integers(0, len(deals) - 1)),
                principal_type=kind,
                principal=draw(st.integers(0, sizes[kind] - 1)),
                access=draw(st.sampled_from(["read", "edit"])),
            )
        )
    sharing_rules = []
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(kinds))
        sharing_rules.append(
            SharingRule(
                condition=draw(st.sampled_from(sorted(CONDITIONS))),
                share_with=kind,
                target=draw(st.integers(0, sizes[kind] - 1)),
                access=draw(st.sampled_from(["read", "edit"])),
            )
        )
    return World(unit_parents, roles, users, deals, tuple(shares), tuple(sharing_rules))


# --- the reference model -----------------------------------------------------------------------


def _role_name(world: World, index: int) -> str:
    return f"r{index}" if index < len(world.roles) else "ghost"


def _email(index: int) -> str:
    return f"u{index}@example.com"


class Model:
    """What the permission rules allow, computed from the generated world alone."""

    def __init__(self, world: World, user_ids: list[str]) -> None:
        self.world, self.user_ids = world, user_ids

    def reports(self, me: int) -> set[int]:
        """Me and everyone whose manager chain reaches me."""
        found = {me}
        for i in range(len(self.world.users)):
            boss = self.world.users[i].manager
            while boss is not None:
                if boss == me:
                    found.add(i)
                    break
                boss = self.world.users[boss].manager
        return found

    def units_below(self, unit: int) -> set[int]:
        return {u for u in range(len(self.world.unit_parents)) if unit in self.units_above(u)}

    def units_above(self, unit: int) -> set[int]:
        found = set()
        current: int | None = unit
        while current is not None:
            found.add(current)
            current = self.world.unit_parents[current]
        return found

    def owners_in_scope(self, me: int, scope: str) -> set[int]:
        users = self.world.users
        unit = users[me].unit
        if scope == "all":
            return set(range(len(users)))
        if scope == "own":
            return {me}
        if scope == "subordinates":
            return self.reports(me)
        if unit is None:
            return {me}
        units = {unit} if scope == "org_unit" else self.units_below(unit)
        return {me} | {i for i, u in enumerate(users) if u.unit in units}

    def holds(self, condition: str, deal: Deal, me: int) -> bool:
        return CONDITIONS[condition](deal, self.user_ids[deal.owner], self.user_ids[me])

    def role_selects(self, role: RoleSpec, action: str, me: int, deal: Deal) -> bool:
        rules = [(c, effect) for c, effect, acts in role.rules if acts is None or action in acts]
        selected = deal.owner in self.owners_in_scope(me, role.actions[action]) or any(
            self.holds(c, deal, me) for c, effect in rules if effect == "widen"
        )
        return selected and all(
            self.holds(c, deal, me) for c, effect in rules if effect == "narrow"
        )

    def targets(self, me: int, kind: str, index: int) -> bool:
        user = self.world.users[me]
        if kind == "user":
            return index == me
        if kind == "role":
            return index in user.roles
        return user.unit is not None and index in self.units_above(user.unit)

    def allowed(self, me: int, action: str) -> set[int] | None:
        """Indices of the deals the user may take the action on (deleted ones too); None when
        no role grants the action at all."""
        world, user = self.world, self.world.users[me]
        everything = set(range(len(world.deals)))
        if user.admin:
            return everything
        granting = [
            world.roles[r]
            for r in user.roles
            if world.roles[r].on_entity and action in world.roles[r].actions
        ]
        if not granting:
            return None
        allowed = {
            i
            for i, deal in enumerate(world.deals)
            if any(self.role_selects(role, action, me, deal) for role in granting)
        }
        for share in world.shares:
            if (
                share.entity == ENTITY
                and share.access in SHARE_ACCESS[action]
                and self.targets(me, share.principal_type, share.principal)
            ):
                allowed.add(share.record)
        for rule in world.sharing_rules:
            if rule.access in SHARE_ACCESS[action] and self.targets(
                me, rule.share_with, rule.target
            ):
                allowed |= {i for i in everything if self.holds(rule.condition, world.deals[i], me)}
        return allowed


# --- the product -------------------------------------------------------------------------------


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, Catalog]]:
    dropper: str | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('perms')) / 'perms.db'}"
    else:
        dropper = f"t_permissions_property_{secrets.token_hex(4)}"
        url = request.getfixturevalue("postgres_server").create_database(dropper)
    engine = make_engine(url)
    install(engine)
    with writing(engine) as conn:
        EntityDesigner(conn, author=None).create(DEAL)
        catalog = CatalogCache().snapshot(conn)
    yield engine, catalog
    engine.dispose()
    if dropper:
        request.getfixturevalue("postgres_server").drop_database(dropper)


def _role_doc(index: int, role: RoleSpec) -> dict[str, Any]:
    entities: dict[str, Any] = {}
    if role.on_entity:
        rules = []
        for j, (condition, effect, actions) in enumerate(role.rules):
            rule: dict[str, Any] = {"name": f"rule{j}", "condition": condition, "effect": effect}
            if actions is not None:
                rule["actions"] = list(actions)
            rules.append(rule)
        entities[ENTITY] = {"actions": dict(role.actions), "record_rules": rules}
    return {"name": f"r{index}", "label": {"en": f"Role {index}"}, "entities": entities}


def _sharing_rule_doc(
    world: World, index: int, rule: SharingRule, unit_names: list[str]
) -> dict[str, Any]:
    if rule.share_with == "user":
        # Emails are kept in lower case; a rule may spell them in any case.
        target = _email(rule.target).upper()
    elif rule.share_with == "role":
        target = _role_name(world, rule.target)
    else:
        target = unit_names[rule.target]
    return {
        "name": f"share{index}",
        "condition": rule.condition,
        "share_with": {rule.share_with: target},
        "access": rule.access,
    }


def build(conn: Connection, base: Catalog, world: World) -> tuple[Catalog, list[User]]:
    """The world in the database (this transaction), and the catalog that knows its roles."""
    checker = expression_checker(base)
    designer = RoleDesigner(conn, None, base.entities, checker)
    roles = {f"r{i}": designer.create(_role_doc(i, role)) for i, role in enumerate(world.roles)}
    unit_ids: list[str] = []
    unit_names: list[str] = []
    for i, parent in enumerate(world.unit_parents):
        unit = create_unit(conn, name=f"n{i}", parent=None if parent is None else unit_ids[parent])
        unit_ids.append(unit.id)
        unit_names.append(unit.name)
    users: list[User] = []
    for i, spec in enumerate(world.users):
        users.append(
            create_user(
                conn,
                email=_email(i),
                password_hash=password_hash("a-long-password"),
                roles=[f"r{r}" for r in spec.roles],
                is_admin=spec.admin,
                org_unit=None if spec.unit is None else unit_ids[spec.unit],
                manager=None if spec.manager is None else users[spec.manager].id,
            )
        )
    entity = base.entity(ENTITY)
    table = base.table(ENTITY)
    if world.deals:
        rows = []
        for i, deal in enumerate(world.deals):
            owner = users[deal.owner].id
            values = {
                "industry": deal.industry,
                "amount": deal.amount,
                "region": deal.region,
            }
            rows.append(
                {
                    **{k: to_storage(entity.field_map[k], v) for k, v in values.items()},
                    "id": f"d{i}",
                    "owner": owner,
                    "created_at": NOW,
                    "created_by": owner,
                    "updated_at": NOW,
                    "updated_by": owner,
                    "version": 1,
                    "deleted_at": NOW if deal.deleted else None,
                }
            )
        conn.execute(table.insert(), rows)
    principals = {
        "user": lambda i: users[i].id,
        "role": lambda i: _role_name(world, i),
        "org_unit": lambda i: unit_ids[i],
    }
    if world.shares:
        conn.execute(
            record_shares.insert(),
            [
                {
                    "id": new_id(),
                    "entity": share.entity,
                    "record_id": f"d{share.record}",
                    "principal_type": share.principal_type,
                    "principal": principals[share.principal_type](share.principal),
                    "access": share.access,
                    "created_at": NOW,
                    "created_by": None,
                }
                for share in world.shares
            ],
        )
    if world.sharing_rules:
        public = {
            **DEAL,
            "sharing_rules": [
                _sharing_rule_doc(world, i, rule, unit_names)
                for i, rule in enumerate(world.sharing_rules)
            ],
        }
        assert validate_entity(public, set(base.entities), checker) == []
        shared = {**entity.doc, "sharing_rules": public["sharing_rules"]}
        entity = EntityDef.from_doc(shared, entity.version)
    catalog = replace(base, entities={**base.entities, ENTITY: entity}, roles=roles)
    return catalog, users


def listed(service: RecordService) -> set[str] | None:
    """Ids the user's list shows, page by page; None when the list is refused."""
    found: set[str] = set()
    cursor = None
    while True:
        try:
            page = service.list(ENTITY, ListQuery(limit=5, cursor=cursor))
        except Forbidden:
            return None
        found |= {record["id"] for record in page["data"]}
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def selected(service: RecordService, action: str) -> set[str]:
    """Ids (deleted records too) the action's permission condition selects."""
    entity = service.ctx.catalog.entity(ENTITY)
    compiler = service._plain_compiler(entity)
    condition = service.permissions.condition(entity, action, compiler)
    stmt = select(compiler.table.c.id)
    if condition is not None:
        stmt = stmt.where(condition)
    return set(service.ctx.conn.scalars(compiler.apply(stmt)))


@pytest.mark.slow
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=IN_CI,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(world=worlds())
def test_permission_condition_matches_the_model(
    database: tuple[Engine, Catalog], world: World
) -> None:
    engine, base = database
    note(repr(world))
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            catalog, users = build(conn, base, world)
            model = Model(world, [u.id for u in users])
            deleted = {f"d{i}" for i, deal in enumerate(world.deals) if deal.deleted}
            for me, user in enumerate(users):
                # One service a user, as one request: its org walks are made once.
                host = build_services(Settings(secret_key=SECRET), engine)
                service = RecordService(RequestContext(conn, catalog, user, host, now=NOW))
                for action in ACTIONS:
                    allowed = model.allowed(me, action)
                    expected = set() if allowed is None else {f"d{i}" for i in allowed}
                    found = selected(service, action)
                    report = {"user": me, "action": action, "sql": sorted(found)}
                    assert found == expected, json.dumps({**report, "model": sorted(expected)})
                    may = service.permissions.may(catalog.entity(ENTITY), action)
                    assert may == (allowed is not None), json.dumps({**report, "may": may})
                    if action == "read":
                        shown = listed(service)
                        want = None if allowed is None else expected - deleted
                        assert shown == want, json.dumps(
                            {**report, "list": sorted(shown or ()), "model": sorted(want or ())}
                        )
        finally:
            transaction.rollback()
