"""The versioned metadata store: current documents, every past version with author and diff,
and the stamp that tells every process its cache is stale."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from metacrm.metadata.model import without_storage_ids
from metacrm.platform.clock import as_utc, utcnow
from metacrm.platform.errors import MetacrmError, NotFound, Unprocessable
from metacrm.platform.invalidation import metadata_changed
from metacrm.platform.systables import counters, meta_documents, meta_stamp, meta_versions
from metacrm.platform.text import unencodable_text

ENTITY = "entity"
ENTITY_STORAGE_COUNTER = "entity_storage_id"
# The version actions that take a document away: a delete can be undone, a purge is final.
DELETE, PURGE = "delete", "purge"


@dataclass(frozen=True)
class StoredDocument:
    kind: str
    name: str
    version: int
    document: dict[str, Any]


@dataclass(frozen=True)
class VersionInfo:
    version: int
    action: str
    created_at: datetime
    created_by: str | None
    diff: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "action": self.action,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "created_by": self.created_by,
            "diff": self.diff,
        }


def current_stamp(conn: Connection) -> int:
    return conn.execute(select(meta_stamp.c.stamp).where(meta_stamp.c.id == 1)).scalar() or 0


def bump_stamp(conn: Connection) -> None:
    metadata_changed(conn)
    changed = conn.execute(
        update(meta_stamp).where(meta_stamp.c.id == 1).values(stamp=meta_stamp.c.stamp + 1)
    ).rowcount
    if not changed:
        conn.execute(meta_stamp.insert().values(id=1, stamp=1))


def next_entity_storage_id(conn: Connection) -> int:
    """A storage id no entity has had in this database (metadata/storage.py names indexes after
    it). Taken in the caller's transaction: a rollback gives it back."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(counters)
        .values(name=ENTITY_STORAGE_COUNTER, value=1)
        .on_conflict_do_update(index_elements=["name"], set_={"value": counters.c.value + 1})
        .returning(counters.c.value)
    )
    return int(conn.execute(stmt).scalar_one())


def replace_current(conn: Connection, kind: str, name: str, document: dict[str, Any]) -> None:
    """Rewrite the current document in place, without a new version: only for what the platform
    itself keeps in a document and admins never see (storage ids given by an upgrade), so the
    version an admin read stays the version to send back."""
    conn.execute(
        update(meta_documents)
        .where(meta_documents.c.kind == kind, meta_documents.c.name == name)
        .values(document=copy.deepcopy(document))
    )
    bump_stamp(conn)


def load_all(conn: Connection, kind: str) -> list[StoredDocument]:
    rows = conn.execute(
        select(meta_documents).where(meta_documents.c.kind == kind).order_by(meta_documents.c.name)
    )
    return [StoredDocument(kind, r.name, r.version, r.document) for r in rows]


def get(conn: Connection, kind: str, name: str) -> StoredDocument | None:
    row = conn.execute(
        select(meta_documents).where(meta_documents.c.kind == kind, meta_documents.c.name == name)
    ).first()
    return StoredDocument(kind, name, row.version, row.document) if row else None


def save(
    conn: Connection,
    kind: str,
    name: str,
    document: dict[str, Any],
    *,
    author: str | None,
    action: str,
) -> int:
    """Store a new version as current and in history; returns its number. The caller's
    transaction makes this atomic with the schema change it describes, and with the check that
    what was stored reads back as it was meant: a document that can't be read back and served
    is never committed."""
    bad_text = list(unencodable_text(document))
    if bad_text:
        raise Unprocessable(
            f"the {kind} document holds text that is not valid Unicode", errors=bad_text
        )
    previous = get(conn, kind, name)
    # A document brought back after a deletion differs from what was deleted, not from nothing.
    basis = previous or removed(conn, kind, name)
    version = next_version(conn, kind, name)
    now = utcnow()
    document = copy.deepcopy(document)
    conn.execute(
        meta_versions.insert().values(
            kind=kind,
            name=name,
            version=version,
            action=action,
            document=document,
            diff=diff_documents(basis.document if basis else {}, document),
            created_at=now,
            created_by=author,
        )
    )
    values = {"version": version, "document": document, "updated_at": now, "updated_by": author}
    if previous:
        conn.execute(
            update(meta_documents)
            .where(meta_documents.c.kind == kind, meta_documents.c.name == name)
            .values(**values)
        )
    else:
        conn.execute(meta_documents.insert().values(kind=kind, name=name, **values))
    _check_read_back(conn, kind, name, version, document)
    bump_stamp(conn)
    return version


class UnreadableDocument(MetacrmError):
    """A stored document that would not read back as it was meant (a bug, not the client's)."""


def _check_read_back(
    conn: Connection, kind: str, name: str, version: int, document: dict[str, Any]
) -> None:
    """Read the new version back, current and in history, and serialise it as a response
    would; any difference or failure raises inside the caller's transaction, which rolls the
    whole change back."""
    current = get(conn, kind, name)
    kept = conn.execute(
        select(meta_versions.c.document, meta_versions.c.diff).where(
            meta_versions.c.kind == kind,
            meta_versions.c.name == name,
            meta_versions.c.version == version,
        )
    ).first()
    if current is None or kept is None or current.version != version:
        raise UnreadableDocument(f"{kind} {name!r} version {version} did not read back")
    for stored in (current.document, kept.document):
        if stored != document:
            raise UnreadableDocument(f"{kind} {name!r} reads back changed")
    try:
        json.dumps([current.document, kept.diff], ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise UnreadableDocument(f"{kind} {name!r} can't be served: {error}") from None


def next_version(conn: Connection, kind: str, name: str) -> int:
    """The number the next saved version of a document gets (1 for a new one)."""
    return _last_version(conn, kind, name) + 1


# What a removal records in its version's diff.
_REMOVAL_DIFF = {DELETE: {"deleted": True}, PURGE: {"purged": True}}


def remove(
    conn: Connection, kind: str, name: str, *, author: str | None, action: str = DELETE
) -> int:
    """Delete the current document; its history stays, with the removal as its last entry (the
    document as it was), whose number is returned. A purge also takes a document that was
    deleted before: the name is then free for a new document."""
    previous = get(conn, kind, name) or (removed(conn, kind, name) if action == PURGE else None)
    if previous is None:
        raise NotFound(f"no {kind} named {name!r}")
    version = _last_version(conn, kind, name) + 1
    conn.execute(
        meta_versions.insert().values(
            kind=kind,
            name=name,
            version=version,
            action=action,
            document=previous.document,
            diff=_REMOVAL_DIFF[action],
            created_at=utcnow(),
            created_by=author,
        )
    )
    conn.execute(
        delete(meta_documents).where(meta_documents.c.kind == kind, meta_documents.c.name == name)
    )
    bump_stamp(conn)
    return version


def removed(conn: Connection, kind: str, name: str) -> StoredDocument | None:
    """A document deleted and not brought back since: its last version, the deletion, with the
    document as it was. None when the name is current, was purged, or never existed."""
    if get(conn, kind, name) is not None:
        return None
    row = conn.execute(
        select(meta_versions.c.version, meta_versions.c.action, meta_versions.c.document)
        .where(meta_versions.c.kind == kind, meta_versions.c.name == name)
        .order_by(meta_versions.c.version.desc())
        .limit(1)
    ).first()
    if row is None or row.action != DELETE:
        return None
    return StoredDocument(kind, name, row.version, copy.deepcopy(row.document))


def _last_version(conn: Connection, kind: str, name: str) -> int:
    return (
        conn.execute(
            select(func.max(meta_versions.c.version)).where(
                meta_versions.c.kind == kind, meta_versions.c.name == name
            )
        ).scalar()
        or 0
    )


def versions(conn: Connection, kind: str, name: str) -> list[VersionInfo]:
    rows = conn.execute(
        select(meta_versions)
        .where(meta_versions.c.kind == kind, meta_versions.c.name == name)
        .order_by(meta_versions.c.version.desc())
    )
    return [
        VersionInfo(r.version, r.action, as_utc(r.created_at), r.created_by, r.diff) for r in rows
    ]


def version_document(conn: Connection, kind: str, name: str, version: int) -> dict[str, Any]:
    row = conn.execute(
        select(meta_versions.c.document).where(
            meta_versions.c.kind == kind,
            meta_versions.c.name == name,
            meta_versions.c.version == version,
        )
    ).first()
    if row is None:
        raise NotFound(f"{kind} {name!r} has no version {version}")
    return copy.deepcopy(row.document)


def diff_documents(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What changed between two documents: top-level keys, and fields by name (storage ids are
    the platform's, not a change an admin made)."""
    old, new = without_storage_ids(old), without_storage_ids(new)
    changed = sorted(
        k
        for k in set(old) | set(new)
        if k not in ("fields", "hidden_fields") and old.get(k) != new.get(k)
    )
    old_fields = {f["name"]: f for f in old.get("fields", [])}
    new_fields = {f["name"]: f for f in new.get("fields", [])}
    diff: dict[str, Any] = {}
    if changed:
        diff["changed"] = changed
    added = sorted(set(new_fields) - set(old_fields))
    removed = sorted(set(old_fields) - set(new_fields))
    modified = sorted(
        n for n in set(old_fields) & set(new_fields) if old_fields[n] != new_fields[n]
    )
    if added:
        diff["fields_added"] = added
    if removed:
        diff["fields_removed"] = removed
    if modified:
        diff["fields_changed"] = modified
    return diff
