"""Installing and upgrading a plugin's metadata package in the database, as a user (the admin
running the command), in the caller's transaction: all of it lands, or none of it.

Both are one three-way merge (merge.py) of the package installed before (nothing, for a first
install), the metadata as it is now, and the new package; the merged documents are applied
through the designers, like a package import, so every document is validated, versioned and
migrated like an admin's own change. The new package is then remembered as the ancestor of the
next upgrade.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select, update

from metacrm.metadata import store
from metacrm.metadata.entities import public_document
from metacrm.metadata.packages import DOCUMENT_KINDS, FORMAT, FORMAT_VERSION
from metacrm.platform.clock import utcnow
from metacrm.platform.errors import Conflict as ConflictError
from metacrm.platform.errors import NotFound
from metacrm.platform.systables import installed_plugins
from metacrm.plugins.merge import MISSING, Conflict, merge_document
from metacrm.plugins.model import Plugin, version_key
from metacrm.runtime.context import Records
from metacrm.runtime.packages import apply_package, delete_document

ENTITIES = "entities"
# Package section → document kind, entities first (the order a package is applied in).
SECTIONS: dict[str, str] = {ENTITIES: store.ENTITY, **DOCUMENT_KINDS}


@dataclass(frozen=True)
class Installed:
    name: str
    version: str
    package: dict[str, Any]


@dataclass
class Outcome:
    """What an install or upgrade did (or, in a dry run, would do)."""

    plugin: str
    from_version: str | None
    to_version: str
    changes: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    # Documents the new version no longer has, left in place because they hold the admin's
    # changes (or, for entities, records): the admin removes them if they want.
    kept: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        verb = "upgrade" if self.from_version else "install"
        start = f"{self.plugin} {self.from_version} → " if self.from_version else f"{self.plugin} "
        lines = [f"{verb} {start}{self.to_version}"]
        lines += [f"  {c}" for c in self.changes] or ["  no change to the metadata"]
        lines += [f"  kept: {k}" for k in self.kept]
        if self.conflicts:
            lines.append(f"{len(self.conflicts)} conflict(s), your version kept in each:")
            lines += [f"  {c.describe()}" for c in self.conflicts]
        return lines


def installed(conn: Connection) -> dict[str, Installed]:
    rows = conn.execute(select(installed_plugins)).all()
    return {r.name: Installed(r.name, r.version, r.package) for r in rows}


def install(records: Records, plugin: Plugin) -> Outcome:
    """Install a plugin that is not installed yet. Documents of the same names that exist
    already are merged with the package, the admin's values winning."""
    conn = records.ctx.conn
    if plugin.name in installed(conn):
        raise ConflictError(
            f"plugin {plugin.name!r} is installed already; upgrade it instead",
        )
    package = plugin.package()
    outcome = _apply(records, plugin, None, _empty(), package)
    conn.execute(
        installed_plugins.insert().values(
            name=plugin.name, version=plugin.version, package=package, installed_at=utcnow()
        )
    )
    return outcome


def upgrade(records: Records, plugin: Plugin) -> Outcome:
    """Merge the plugin's package into the metadata: what the new version changed comes in
    where the admin left it alone; where both changed the same thing, the admin's stays and it
    is listed. Installing the same version again only re-applies what was lost."""
    conn = records.ctx.conn
    current = installed(conn).get(plugin.name)
    if current is None:
        raise NotFound(f"plugin {plugin.name!r} is not installed; install it first")
    if version_key(plugin.version) < version_key(current.version):
        raise ConflictError(
            f"plugin {plugin.name!r} {current.version} is installed; "
            f"{plugin.version} is older and would undo it"
        )
    package = plugin.package()
    outcome = _apply(records, plugin, current.version, current.package, package)
    conn.execute(
        update(installed_plugins)
        .where(installed_plugins.c.name == plugin.name)
        .values(version=plugin.version, package=package, upgraded_at=utcnow())
    )
    return outcome


def _apply(
    records: Records,
    plugin: Plugin,
    from_version: str | None,
    base: dict[str, Any],
    theirs: dict[str, Any],
) -> Outcome:
    conn = records.ctx.conn
    outcome = Outcome(plugin.name, from_version, plugin.version)
    target: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    removals: list[tuple[str, str]] = []
    for section, kind in SECTIONS.items():
        before, after = _by_name(base, section), _by_name(theirs, section)
        merged_docs = []
        for name in list(dict.fromkeys([*after, *before])):
            yours = _current(conn, kind, name)
            old, new = before.get(name, MISSING), after.get(name, MISSING)
            doc, conflicts = merge_document(f"{kind} {name}", old, yours, new)
            outcome.conflicts.extend(conflicts)
            if new is MISSING:
                # The new version dropped it: remove it if the admin never touched it.
                if yours is MISSING:
                    continue
                if yours == old and kind != store.ENTITY:
                    removals.append((kind, name))
                else:
                    why = "it has records" if kind == store.ENTITY else "you changed it"
                    outcome.kept.append(f"{kind} {name} ({why})")
                continue
            if doc is not MISSING:
                merged_docs.append(doc)
        target[section] = merged_docs
    outcome.changes.extend(apply_package(records, target))
    for kind, name in reversed(removals):
        delete_document(records, kind, name)
        outcome.changes.append(f"{kind} {name}: removed (the new version has no such document)")
    return outcome


def _current(conn: Connection, kind: str, name: str) -> Any:
    found = store.get(conn, kind, name)
    if found is None:
        return MISSING
    return (
        public_document(found.document) if kind == store.ENTITY else copy.deepcopy(found.document)
    )


def _by_name(package: dict[str, Any], section: str) -> dict[str, Any]:
    return {doc["name"]: doc for doc in package.get(section) or []}


def _empty() -> dict[str, Any]:
    return {"format": FORMAT, "format_version": FORMAT_VERSION}
