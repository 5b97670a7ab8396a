"""The three-way merge of metadata that upgrades a plugin: the package it installed before (the
common ancestor), the package of the new version (theirs), and the metadata as the admin has
customised it since (yours). Pure: documents in, documents and conflicts out.

What only one side changed is taken from that side; what both changed alike is taken once;
what both changed differently is a conflict, and the admin's version wins — nothing the admin
did is overwritten, and every conflict is reported with where it is and the three values.

Objects merge key by key. Lists of named things (fields by `name`, stages by `key`, options by
`value`) merge item by item, so a field the admin added and a field the new version added both
end up in the document; a place inside one is written `/fields/amount/label/en`, the item by its
name rather than its index. Other lists are single values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Item identities tried in order for a list of objects.
IDENTITIES = ("name", "key", "value")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Conflict:
    """Both sides changed the same place differently; `yours` (the admin's) was kept."""

    document: str  # "entity lead", "pipeline lead_status"
    where: str  # a path inside it, items named by their identity: /fields/mobile/label
    base: Any
    yours: Any
    theirs: Any

    def describe(self) -> str:
        def show(value: Any) -> str:
            return "(absent)" if value is MISSING else repr(value)

        return (
            f"{self.document} {self.where or '/'}: kept yours {show(self.yours)}; "
            f"the new version has {show(self.theirs)} (was {show(self.base)})"
        )

    def as_json(self) -> dict[str, Any]:
        def value(v: Any) -> Any:
            return None if v is MISSING else v

        return {
            "document": self.document,
            "where": self.where or "/",
            "base": value(self.base),
            "yours": value(self.yours),
            "theirs": value(self.theirs),
            "absent": [
                k
                for k, v in (("base", self.base), ("yours", self.yours), ("theirs", self.theirs))
                if v is MISSING
            ],
        }


@dataclass
class Merge:
    document: str
    conflicts: list[Conflict] = field(default_factory=list)

    def value(self, base: Any, yours: Any, theirs: Any, path: str = "") -> Any:
        if yours == theirs:
            return yours
        if base == yours:
            return theirs
        if base == theirs:
            return yours
        if _is_object(yours) and _is_object(theirs) and (base is MISSING or _is_object(base)):
            return self._objects(base if base is not MISSING else {}, yours, theirs, path)
        identity = _identity(base, yours, theirs)
        if identity is not None:
            return self._lists(identity, base if base is not MISSING else [], yours, theirs, path)
        self.conflicts.append(Conflict(self.document, path, base, yours, theirs))
        return yours

    def _objects(
        self,
        base: Mapping[str, Any],
        yours: Mapping[str, Any],
        theirs: Mapping[str, Any],
        path: str,
    ) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        keys = list(dict.fromkeys([*yours, *theirs, *base]))
        for key in keys:
            found = self.value(
                base.get(key, MISSING),
                yours.get(key, MISSING),
                theirs.get(key, MISSING),
                f"{path}/{_escape(str(key))}",
            )
            if found is not MISSING:
                merged[key] = found
        return merged

    def _lists(
        self,
        identity: str,
        base: Sequence[Any],
        yours: Sequence[Any],
        theirs: Sequence[Any],
        path: str,
    ) -> list[Any]:
        by_base = {item[identity]: item for item in base}
        by_yours = {item[identity]: item for item in yours}
        by_theirs = {item[identity]: item for item in theirs}
        order = list(by_yours)
        # Items only the new version brings go after the item they follow there.
        for position, key in enumerate(by_theirs):
            if key in by_yours or key in by_base:
                continue
            before = next((k for k in reversed(list(by_theirs)[:position]) if k in order), None)
            order.insert(order.index(before) + 1 if before is not None else len(order), key)
        # Items removed on your side that the new version still has stay removed, unless the
        # new version changed them (a conflict: still removed).
        for key in by_base:
            if key not in order and key in by_theirs:
                order.append(key)
        merged = []
        for key in order:
            found = self.value(
                by_base.get(key, MISSING),
                by_yours.get(key, MISSING),
                by_theirs.get(key, MISSING),
                f"{path}/{_escape(str(key))}",
            )
            if found is not MISSING:
                merged.append(found)
        return merged


def merge_document(name: str, base: Any, yours: Any, theirs: Any) -> tuple[Any, list[Conflict]]:
    """One document three ways; MISSING on a side means the document isn't there."""
    merge = Merge(name)
    return merge.value(base, yours, theirs), merge.conflicts


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _identity(*sides: Any) -> str | None:
    """The key that names every item of the lists (those that are lists), if there is one."""
    lists = [s for s in sides if s is not MISSING]
    if not lists or not all(isinstance(s, list) for s in lists):
        return None
    items = [item for s in lists for item in s]
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    for key in IDENTITIES:
        if all(isinstance(item.get(key), str | int) for item in items) and all(
            len({item[key] for item in s}) == len(s) for s in lists
        ):
            return key
    return None


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")
