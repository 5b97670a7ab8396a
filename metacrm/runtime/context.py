"""The request context — what one unit of work runs with: its transaction, the metadata
snapshot, the caller and the clock — and the ports through which the record service and the
processes around it (pipelines, approvals, events) reach each other without importing each
other.

Every runtime function that works on the database takes a `RequestContext`. Functions that also
read or write records through the record service take it as `Records` (the protocol below), so
nothing but `runtime/records.py` needs to import the record service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine

from metacrm.metadata.model import EntityDef
from metacrm.platform.clock import utcnow
from metacrm.platform.errors import FieldError, Unprocessable
from metacrm.platform.events import Event
from metacrm.platform.preconditions import IfMatch
from metacrm.platform.settings import Settings
from metacrm.platform.tasks import TaskQueue
from metacrm.platform.users import User
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.permissions import Permissions, Reading
from metacrm.runtime.record_rules import WriteContext

# How many process actions deep a write may go (a stage action creating a record that enters a
# stage whose action …); bounded so a cycle in metadata can't recurse forever.
MAX_ACTION_DEPTH = 8


@dataclass(frozen=True)
class RequestContext:
    conn: Connection
    catalog: Catalog
    user: User
    host: Host
    now: datetime = field(default_factory=utcnow)
    depth: int = 0

    def elevated(self) -> RequestContext:
        """The same caller acting for a process (an approval's or a stage's actions): the
        caller's permissions and the approval lock don't apply; validation, rules, history and
        events do, and history names the caller."""
        if self.depth >= MAX_ACTION_DEPTH:
            raise Unprocessable(
                f"process actions triggered each other more than {MAX_ACTION_DEPTH} levels "
                "deep; check the stage and approval actions for a cycle"
            )
        return replace(self, user=replace(self.user, is_admin=True), depth=self.depth + 1)

    def user_values(self) -> dict[str, Any]:
        """The caller as rules see it (`$user.id`, `$user.role`, `$user.org_unit`)."""
        return {"id": self.user.id, "role": self.user.role, "org_unit": self.user.org_unit}

    def rules(self) -> WriteContext:
        """Evaluates rule-language expressions over records in this context."""
        return WriteContext(self.conn, self.catalog, self.user_values(), self.now)


# ---- what the context reaches beyond its transaction ----------------------------------------


class Host(Protocol):
    """The process's services (runtime/services.py) as work in a context sees them."""

    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def secret(self) -> str: ...

    @property
    def queue(self) -> TaskQueue: ...

    @property
    def registry(self) -> Extensions: ...


class Extensions(Protocol):
    """The behaviour registered at start-up that the record service and the event bus call."""

    @property
    def write_hooks(self) -> Sequence[WriteHook]: ...

    @property
    def event_consumers(self) -> Sequence[EventConsumer]: ...

    @property
    def actions(self) -> Mapping[str, ActionHook]: ...

    @property
    def validators(self) -> Mapping[str, Validator]: ...


# An event consumer sees each event inside the publishing transaction. It must leave the
# transaction usable: whatever may fail, it does in a savepoint.
EventConsumer = Callable[[RequestContext, Event], None]


# ---- the record service, as the processes around it see it --------------------------------


class Records(Protocol):
    @property
    def ctx(self) -> RequestContext: ...

    @property
    def permissions(self) -> Permissions: ...

    def elevated(self) -> Records: ...

    def with_catalog(self, catalog: Catalog) -> Records: ...

    def for_user(self, user: User) -> Records: ...

    def update_many(
        self,
        entity_name: str,
        changes: Mapping[str, Any],
        *,
        all_or_none: bool = True,
        include_deleted: bool = False,
    ) -> Any: ...

    def get(
        self,
        entity_name: str,
        record_id: str,
        *,
        fields: Sequence[str] | None = None,
        expand: Sequence[str] = (),
    ) -> dict[str, Any]: ...

    def read_row(
        self, entity: EntityDef, record_id: str, *, include_deleted: bool = False
    ) -> tuple[Any, Reading]: ...

    def require_on(self, entity: EntityDef, action: str, record_id: str, what: str) -> None: ...

    def create(self, entity_name: str, data: Any) -> dict[str, Any]: ...

    def update(
        self,
        entity_name: str,
        record_id: str,
        data: Any,
        *,
        if_match: IfMatch | int | None = None,
    ) -> dict[str, Any]: ...

    def record_history(
        self, entity: EntityDef, record_id: str, version: int, action: str, changes: dict[str, Any]
    ) -> None: ...


# A named Python step of record actions (`{"type": "hook", "name": …}`), registered at start-up
# (by a plugin, say): called with the record service acting for the process, the entity, the
# record's id and the action's input; returns a JSON object (or None) merged into the action's
# result. It writes only through the record service it is given.
ActionHook = Callable[[Records, EntityDef, str, Mapping[str, Any]], Mapping[str, Any] | None]

# A named Python validator of an entity's records (`{"name", "hook": name}` among its
# validation rules), registered at start-up (by a plugin, say): called on every write the rule
# applies to with the record service, the entity, the record as the write would save it and
# the stored record (None on a create). It returns the problems it finds — FieldErrors, or
# messages the record service puts at the rule's field — or nothing, and writes nothing.
Validator = Callable[
    [Records, EntityDef, Mapping[str, Any], Mapping[str, Any] | None],
    Iterable[FieldError | str] | None,
]


class Draft(dict[str, Any]):
    """The record a create is about to write, as `before_write` hooks see it, knowing which of
    its fields the client sent: the others are defaults, computed values or, for `owner`, the
    creator. An assignment rule keeps what the client chose and fills the rest."""

    def __init__(self, values: Mapping[str, Any], sent: Iterable[str]) -> None:
        super().__init__(values)
        self.sent = frozenset(sent)


class WriteHook(Protocol):
    """What runs around every record write besides the write itself (the approval lock, stage
    pipelines, auto-submitted approvals), called by the record service at fixed points so no
    write path can skip it. Subclass `NoHook` and override what you need."""

    def before_change(self, records: Records, entity: EntityDef, record_id: str) -> None:
        """Before an existing record is updated, deleted or restored (e.g. refuse: locked)."""

    def before_write(
        self,
        records: Records,
        entity: EntityDef,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Before a create (`before` None, `after` a `Draft`) or an update is written: raise
        to refuse it; returns values the write must also set (on a create, `owner` too)."""
        ...

    def after_write(
        self,
        records: Records,
        entity: EntityDef,
        record_id: str,
        action: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
    ) -> None:
        """After the row, its history and its event are written, in the same transaction."""


class NoHook:
    """A write hook that does nothing; subclasses override the moments they care about."""

    def before_change(self, records: Records, entity: EntityDef, record_id: str) -> None:
        return None

    def before_write(
        self,
        records: Records,
        entity: EntityDef,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
    ) -> dict[str, Any]:
        return {}

    def after_write(
        self,
        records: Records,
        entity: EntityDef,
        record_id: str,
        action: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
    ) -> None:
        return None
