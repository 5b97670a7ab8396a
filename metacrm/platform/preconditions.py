"""Conditional writes: an If-Match condition on a record's version (RFC 9110, 13.1.1), as the
HTTP layer parses it and the record service checks it, in the transaction that writes."""

from __future__ import annotations

from dataclasses import dataclass

from metacrm.platform.errors import PreconditionFailed


@dataclass(frozen=True)
class IfMatch:
    """An If-Match header: `*`, or a list of entity tags compared strongly (RFC 9110, 13.1.1):
    a weak tag (`W/"3"`) never matches, and a list matches when one of its strong tags does."""

    header: str
    any: bool = False
    # The versions the header's strong tags name; other tags can't match any version.
    versions: frozenset[int] = frozenset()
    tags: int = 0
    weak: bool = False

    @property
    def single_version(self) -> int | None:
        """The version asked for, when the header is exactly one strong tag naming one."""
        if self.tags == 1 and len(self.versions) == 1:
            return next(iter(self.versions))
        return None

    def matches(self, version: int) -> bool:
        return self.any or version in self.versions

    def refusal(self, what: str, version: int) -> PreconditionFailed:
        reason = f"If-Match {self.header} does not match {what}, which is at version {version}"
        if self.weak:
            reason += " (a weak tag, W/…, never matches: If-Match compares tags strongly)"
        return PreconditionFailed(
            f'{reason}; its ETag is "{version}"', extra={"current_version": version}
        )

    @classmethod
    def version(cls, version: int) -> IfMatch:
        """The condition `If-Match: "<version>"` (callers other than HTTP say it this way)."""
        return cls(f'"{version}"', versions=frozenset({version}), tags=1)
