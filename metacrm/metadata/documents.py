"""Designing named metadata documents other than entities (roles, pipelines, approval
processes): create, replace, delete and restore, each change a new version in the store.

A kind says how to validate its documents and what they become; the designer keeps the rules
every kind shares: names are unique, a document can't be renamed, history is never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

from metacrm.metadata import store
from metacrm.metadata.labels import with_label_maps
from metacrm.platform.errors import (
    BadRequest,
    Conflict,
    FieldError,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)

T = TypeVar("T")


def by_name(doc: dict[str, Any]) -> str:
    return str(doc["name"])


@dataclass(frozen=True)
class DocumentKind(Generic[T]):
    kind: str
    # How people call it in messages: "role", "pipeline", "approval process".
    noun: str
    # Every problem with a document, each with a JSON Pointer.
    validate: Callable[[Any], list[FieldError]]
    # The typed definition a stored document becomes.
    build: Callable[[dict[str, Any], int], T]
    # The name a valid document is stored and addressed under: its `name`, unless names are
    # unique only within something else (a record action's is `<entity>.<name>`).
    key: Callable[[dict[str, Any]], str] = by_name


@dataclass
class DocumentDesigner(Generic[T]):
    conn: Connection
    author: str | None
    kind: DocumentKind[T]

    def create(self, doc: Any) -> T:
        doc = with_label_maps(self.kind.kind, doc)
        self.check(doc)
        key = self.kind.key(doc)
        if store.get(self.conn, self.kind.kind, key) is not None:
            raise Conflict(f"a {self.kind.noun} named {key!r} already exists")
        return self._save(doc, "create")

    def replace(self, name: str, doc: Any) -> T:
        """Replace the document; a `version` in it must be the current one (412 otherwise), so
        two admins editing the same document can't overwrite each other unknowingly."""
        current = self.current(name)
        doc = with_label_maps(self.kind.kind, doc)
        expected = doc.get("version") if isinstance(doc, dict) else None
        if expected is not None:
            if not isinstance(expected, int) or isinstance(expected, bool):
                raise BadRequest("version must be the integer version the document was read at")
            if expected != current.version:
                raise PreconditionFailed(
                    f"{self.kind.noun} {name!r} is at version {current.version}, not {expected}",
                    extra={"current_version": current.version},
                )
        self.check(doc)
        if self.kind.key(doc) != name:
            raise Unprocessable(
                f"a {self.kind.noun} can't be renamed",
                errors=[FieldError("/name", "rename", f"must be {name}")],
            )
        return self._save(doc, "update")

    def delete(self, name: str) -> None:
        self.current(name)
        store.remove(self.conn, self.kind.kind, name, author=self.author)

    def restore(self, name: str, version: int) -> T:
        """Bring back a past version, also of a deleted document."""
        doc = store.version_document(self.conn, self.kind.kind, name, version)
        self.check(doc)
        return self._save(doc, "restore")

    def current(self, name: str) -> store.StoredDocument:
        found = store.get(self.conn, self.kind.kind, name)
        if found is None:
            raise NotFound(f"no {self.kind.noun} named {name!r}")
        return found

    def check(self, doc: Any) -> None:
        errors = self.kind.validate(doc)
        if errors:
            raise Unprocessable(f"the {self.kind.noun} document is not valid", errors=errors)

    def _save(self, doc: dict[str, Any], action: str) -> T:
        doc = {k: v for k, v in doc.items() if k != "version"}
        version = store.save(
            self.conn, self.kind.kind, self.kind.key(doc), doc, author=self.author, action=action
        )
        return self.kind.build(doc, version)
