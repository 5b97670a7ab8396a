"""The permission model at run time: the caller's roles as one SQL condition per entity and
action, and what each field shows.

For an entity and an action, a record is allowed when any role granting the action selects it —
its data scope (own, subordinates, org unit, org unit tree, all) widened and narrowed by the
role's record rules — or, for reading and editing, when it is shared with the caller (directly,
with one of their roles or org units, or by a sharing rule of the entity), or when a lookup marked
`inherit_sharing` names a record shared with them. The whole condition is SQL, ANDed into the
query; nothing is filtered in Python.

Field permissions follow the roles that grant a record: a field shows the most of what any of
them allows. When the caller's roles disagree about fields, each row carries one flag per role
(computed by the database) saying whether that role grants it; a rule that spares the record's
owner (`except_owner`) is lifted on the rows whose `owner` is the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, Connection, Label, and_, case, false, literal, or_, select

from metacrm.metadata.model import EntityDef
from metacrm.metadata.roles import HIDDEN, MASKED, VISIBLE, EntityPermissions, RecordRule
from metacrm.platform.errors import Forbidden, MetacrmError
from metacrm.platform.org import members, subordinates, unit_ancestors, unit_subtree
from metacrm.platform.systables import org_units, record_shares
from metacrm.platform.users import User
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.masking import mask
from metacrm.runtime.rules import Scope, SqlCompiler, check, parse
from metacrm.runtime.rules.operators import BOOLEAN

# Shares of one caller inlined as an id list up to this many; beyond, a subquery.
INLINE_SHARES = 500
SHARE_ACCESS = {"read": ("read", "edit"), "update": ("edit",)}
GRANT_PREFIX = "_grant_"


@dataclass
class Principal:
    """The caller with their place in the org resolved, each walk at most once per request."""

    conn: Connection
    user: User

    @cached_property
    def subordinates(self) -> list[str]:
        return sorted(subordinates(self.conn, self.user.id))

    @cached_property
    def unit_members(self) -> list[str]:
        unit = self.user.org_unit
        return sorted(members(self.conn, {unit}) | {self.user.id}) if unit else [self.user.id]

    @cached_property
    def unit_tree_members(self) -> list[str]:
        unit = self.user.org_unit
        if not unit:
            return [self.user.id]
        return sorted(members(self.conn, unit_subtree(self.conn, unit)) | {self.user.id})

    @cached_property
    def unit_ancestors(self) -> list[str]:
        return sorted(unit_ancestors(self.conn, self.user.org_unit)) if self.user.org_unit else []

    @cached_property
    def share_holders(self) -> ColumnElement[bool]:
        """Which shares reach the caller: made to them, to one of their roles, or to their org
        unit or one above it (built once: every permission condition asks)."""
        kind, who = record_shares.c.principal_type, record_shares.c.principal
        mine = [and_(kind == "user", who == self.user.id)]
        if self.user.roles:
            mine.append(and_(kind == "role", who.in_(self.user.roles)))
        if self.unit_ancestors:
            mine.append(and_(kind == "org_unit", who.in_(self.unit_ancestors)))
        return or_(*mine)

    @cached_property
    def unit_ancestor_names(self) -> frozenset[str]:
        if not self.unit_ancestors:
            return frozenset()
        names = select(org_units.c.name).where(org_units.c.id.in_(self.unit_ancestors))
        return frozenset(self.conn.execute(names).scalars())


@dataclass(frozen=True)
class FieldPolicy:
    """What reading shows of each restricted field; fields not named show in full."""

    levels: Mapping[str, int] = field(default_factory=dict)
    masks: Mapping[str, Any] = field(default_factory=dict)

    def level(self, name: str) -> int:
        return self.levels.get(name, VISIBLE)

    def apply(self, entity: EntityDef, record: dict[str, Any]) -> dict[str, Any]:
        for name, level in self.levels.items():
            if name not in record:
                continue
            if level == HIDDEN:
                del record[name]
            elif level == MASKED:
                record[name] = mask(record[name], self.masks.get(name), entity.field_map[name])
        return record

    def changes(self, entity: EntityDef, changes: dict[str, Any]) -> dict[str, Any]:
        """A history entry's {field: {old, new}} as this policy lets it be seen."""
        shown = {}
        for name, change in changes.items():
            level = self.level(name)
            if level == HIDDEN:
                continue
            if level == MASKED:
                how, f = self.masks.get(name), entity.field_map.get(name)
                change = {k: mask(v, how, f) for k, v in change.items()}
            shown[name] = change
        return shown


UNRESTRICTED = FieldPolicy()


def _most_permissive(roles: Sequence[EntityPermissions], owned: bool = False) -> FieldPolicy:
    """The field policy of a record the roles grant: each field shows the most any of them
    lets it show, on a record the reader owns (`owned`: rules sparing the owner lift) or not."""
    restricted = {name for perms in roles for name in perms.fields}
    levels, masks = {}, {}
    for name in restricted:
        level = max(perms.read_level(name, owned) for perms in roles)
        if level == VISIBLE:
            continue
        levels[name] = level
        if level == MASKED:
            masks[name] = next(
                p.fields[name].mask
                for p in roles
                if name in p.fields and p.read_level(name, owned) == MASKED
            )
    return FieldPolicy(levels, masks)


def _shown(roles: Sequence[EntityPermissions], name: str) -> bool:
    """Whether any role shows the field at all (a field no role shows is not there) — on the
    caller's own records at least."""
    return any(p.read_level(name, owned=True) > HIDDEN for p in roles)


def _probeable(roles: Sequence[EntityPermissions], name: str) -> bool:
    """Whether the field may be filtered, sorted or searched on: every role shows it in full,
    so no answer can tell more than the records show. A rule sparing the owner doesn't make a
    field probeable: a filter runs over every readable record, so `mobile startswith "1381"`
    would tell the caller about the mobiles of records they don't own, which they see masked."""
    return all(p.read_level(name) == VISIBLE for p in roles)


@dataclass
class Reading:
    """How one read of an entity is restricted: the row condition, the per-role grant columns
    (when the roles disagree about fields), and the field policy of each row (which, when a
    rule spares owners, also depends on whether the caller owns the row)."""

    condition: ColumnElement[bool] | None
    roles: Sequence[EntityPermissions]
    grant_columns: list[Label[Any]]
    unrestricted: bool
    user_id: str = ""
    _merged: dict[tuple[tuple[int, ...], bool], FieldPolicy] = field(
        default_factory=dict, repr=False
    )

    @cached_property
    def spares_owners(self) -> bool:
        return any(p.spares_owners for p in self.roles)

    @property
    def per_row(self) -> bool:
        """Whether rows of this read may show their fields differently."""
        return not self.unrestricted and (bool(self.grant_columns) or self.spares_owners)

    def policy(self, row: Any = None) -> FieldPolicy:
        """The policy of one row as read (it needs the grant columns and `owner`); without a
        row, that of a record the caller doesn't own, granted by all their read roles."""
        if self.unrestricted:
            return UNRESTRICTED
        granting: tuple[int, ...] = tuple(range(len(self.roles)))
        owned = False
        if row is not None:
            m = row._mapping
            if self.grant_columns:
                # A record seen only through a share shows what the caller's roles show at most.
                granting = tuple(i for i in granting if m.get(f"{GRANT_PREFIX}{i}")) or granting
            owned = self.spares_owners and m.get("owner") == self.user_id
        key = (granting, owned)
        found = self._merged.get(key)
        if found is None:
            found = _most_permissive([self.roles[i] for i in granting], owned)
            self._merged[key] = found
        return found


class Permissions:
    """The caller's rights, for one request."""

    def __init__(
        self,
        conn: Connection,
        catalog: Catalog,
        user: User,
        compiler_for: Callable[[EntityDef], SqlCompiler],
        principal: Principal | None = None,
    ) -> None:
        """`principal`: the caller's place in the org resolved already in this transaction."""
        self.conn, self.catalog, self.user = conn, catalog, user
        self.compiler_for = compiler_for
        self.principal = principal or Principal(conn, user)
        self._views: dict[tuple[str, bool], EntityDef] = {}

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin

    def grants(self, entity: EntityDef, action: str) -> list[EntityPermissions]:
        """The caller's roles' permissions on the entity that grant the action."""
        found = []
        for name in self.user.roles:
            role = self.catalog.roles.get(name)
            perms = role.on(entity.name) if role else None
            if perms is not None and action in perms.actions:
                found.append(perms)
        return found

    def may(self, entity: EntityDef, action: str) -> bool:
        """Whether the caller may take the action on some records of the entity."""
        return self.is_admin or bool(self.grants(entity, action))

    def require(self, entity: EntityDef, action: str) -> None:
        if not self.may(entity, action):
            raise Forbidden(f"you may not {action} {entity.name} records")

    def condition(
        self, entity: EntityDef, action: str, compiler: SqlCompiler
    ) -> ColumnElement[bool] | None:
        """Which records the action may touch, as SQL over the compiler's table; None when
        nothing is excluded."""
        if self.is_admin:
            return None
        roles = self.grants(entity, action)
        if not roles:
            return false()
        clauses = [self._role_clause(entity, action, perms, compiler) for perms in roles]
        if any(c is None for c in clauses):
            return None
        if action in SHARE_ACCESS:
            clauses.extend(self._shared(entity, action, compiler))
        return or_(*clauses)  # type: ignore[arg-type]

    def reading(self, entity: EntityDef, compiler: SqlCompiler) -> Reading:
        if self.is_admin:
            return Reading(None, (), [], True)
        self.require(entity, "read")
        roles = self.grants(entity, "read")
        condition = self.condition(entity, "read", compiler)
        grant_columns: list[Label[Any]] = []
        if any(p.fields != roles[0].fields for p in roles[1:]):
            for i, perms in enumerate(roles):
                clause = self._role_clause(entity, "read", perms, compiler)
                flag = literal(1) if clause is None else case((clause, 1), else_=0)
                grant_columns.append(flag.label(f"{GRANT_PREFIX}{i}"))
        return Reading(condition, roles, grant_columns, False, self.user.id)

    def view(self, entity: EntityDef, *, probe: bool) -> EntityDef:
        """The entity as the caller may name it: with `probe`, only fields they may filter,
        sort and search on; otherwise the fields some role shows them. Checking a caller's
        expression against this view makes a withheld field exactly as unknown as a missing
        one (close-match suggestions included)."""
        if self.is_admin:
            return entity
        key = (entity.name, probe)
        found = self._views.get(key)
        if found is None:
            roles = self.grants(entity, "read")
            keep = _probeable if probe else _shown
            found = replace(entity, fields=tuple(f for f in entity.fields if keep(roles, f.name)))
            self._views[key] = found
        return found

    def find_view(self, name: str) -> EntityDef | None:
        """Lookup targets as the caller may probe them (for expression scopes)."""
        entity = self.catalog.find(name)
        return self.view(entity, probe=True) if entity is not None else None

    def writable(self, entity: EntityDef, action: str, name: str, *, owned: bool = False) -> bool:
        """Whether a role granting the action leaves the field free to write, on a record the
        caller owns (`owned`) or on any."""
        return self.is_admin or any(p.writable(name, owned) for p in self.grants(entity, action))

    # ---- pieces of the condition -------------------------------------------------------------

    def _role_clause(
        self, entity: EntityDef, action: str, perms: EntityPermissions, compiler: SqlCompiler
    ) -> ColumnElement[bool] | None:
        clause = self._scope(perms.actions[action], compiler)
        widen = [self._rule(entity, r, compiler) for r in perms.rules(action, "widen")]
        narrow = [self._rule(entity, r, compiler) for r in perms.rules(action, "narrow")]
        if clause is not None and widen:
            clause = or_(clause, *widen)
        if narrow:
            clause = and_(*([clause] if clause is not None else []), *narrow)
        return clause

    def _scope(self, scope: str, compiler: SqlCompiler) -> ColumnElement[bool] | None:
        owner = compiler.table.c.owner
        p = self.principal
        if scope == "own":
            return owner == self.user.id
        if scope == "subordinates":
            return owner.in_(p.subordinates)
        if scope == "org_unit":
            return owner.in_(p.unit_members)
        if scope == "org_unit_tree":
            return owner.in_(p.unit_tree_members)
        return None

    def _rule(self, entity: EntityDef, rule: RecordRule, compiler: SqlCompiler) -> Any:
        try:
            checked = check(parse(rule.condition), Scope(entity, self.catalog.find), BOOLEAN)
            return compiler.value(checked)
        except MetacrmError:
            # The entity changed under the rule since it was saved: it selects nothing, so a
            # broken narrowing rule hides records rather than showing them.
            return false()

    def _shared(
        self, entity: EntityDef, action: str, compiler: SqlCompiler
    ) -> list[ColumnElement[bool]]:
        access = SHARE_ACCESS[action]
        clauses: list[ColumnElement[bool]] = []
        shared = (
            select(record_shares.c.record_id)
            .where(record_shares.c.entity == entity.name, record_shares.c.access.in_(access))
            .where(self.principal.share_holders)
        )
        ids = list(self.conn.execute(shared.limit(INLINE_SHARES + 1)).scalars())
        if len(ids) > INLINE_SHARES:
            clauses.append(compiler.table.c.id.in_(shared))
        elif ids:
            clauses.append(compiler.table.c.id.in_(ids))
        clauses.extend(self._inherited(entity, access, compiler))
        for rule in entity.doc.get("sharing_rules") or ():
            if rule["access"] in access and self._shared_with_me(rule["share_with"]):
                clauses.append(
                    self._rule(
                        entity, RecordRule(rule["name"], rule["condition"], "widen"), compiler
                    )
                )
        return clauses

    def _inherited(
        self, entity: EntityDef, access: Sequence[str], compiler: SqlCompiler
    ) -> list[ColumnElement[bool]]:
        """Records whose `inherit_sharing` lookup names a record shared with the caller: one
        subquery per such lookup on the shares (indexed by entity, then record or principal),
        matched against the lookup column's own index. Only the parent's own shares count (one
        level), so the condition never walks a chain of lookups."""
        table = compiler.table
        clauses: list[ColumnElement[bool]] = []
        for lookup in entity.fields:
            if not lookup.inherits_sharing or not lookup.target or lookup.name not in table.c:
                continue
            parents = (
                select(record_shares.c.record_id)
                .where(record_shares.c.entity == lookup.target)
                .where(record_shares.c.access.in_(access))
                .where(self.principal.share_holders)
            )
            clauses.append(table.c[lookup.name].in_(parents))
        return clauses

    def _shared_with_me(self, share_with: Mapping[str, str]) -> bool:
        if "user" in share_with:
            return share_with["user"].strip().lower() == self.user.email
        if "role" in share_with:
            return share_with["role"] in self.user.roles
        return share_with.get("org_unit") in self.principal.unit_ancestor_names
