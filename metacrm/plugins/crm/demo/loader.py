"""Loading the demo year: the org tree and the staff through the platform's user and org
functions, then every step of the plan replayed through the record service as the person who
took it, at the moment they took it — so permissions, validation, rules, pipeline gates,
approvals, history and events all apply as they would have then.

Steps are committed a few hundred at a time; the staff go in first, in a transaction of their
own, and are refused when any of them exists already (the demo was loaded before).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from metacrm.platform.errors import Conflict, MetacrmError, NotFound
from metacrm.platform.org import change_unit, create_unit
from metacrm.platform.security import hash_password
from metacrm.platform.users import User, create_user, find_user
from metacrm.plugins.crm.demo.plan import (
    SIZES,
    Create,
    Decide,
    Demo,
    Ref,
    Step,
    Update,
    UserOf,
    plan,
)
from metacrm.plugins.crm.demo.staff import DOMAIN, Staff
from metacrm.plugins.model import DemoLoaded, DemoRun, Progress
from metacrm.runtime import approvals
from metacrm.runtime.records import RecordService
from metacrm.runtime.services import Services

# Every demo user signs in with it; the README says so.
PASSWORD = "metacrm-demo"
# Steps per transaction.
BATCH = 300
ROLE_NAMES = {
    "sales_director": "sales directors",
    "sales_manager": "sales managers",
    "sales_rep": "sales reps",
    "service_manager": "service manager",
    "service_agent": "service agents",
}


class DemoStopped(MetacrmError):
    """A step of the demo was refused: the metadata no longer takes what the demo writes (an
    admin changed the templates) — the batches before it stay committed."""

    status, title, type_slug = 422, "Demo stopped", "demo-stopped"


def load(run: DemoRun) -> DemoLoaded:
    services = run.services
    demo = plan(run.seed, run.scale, services.clock())
    run.progress.start(len(demo.staff.members) + len(demo.steps))
    users = make_staff(services, demo.staff)
    run.progress.advance(len(users))
    replay(services, users, demo.steps, run.progress)
    run.progress.finish()
    return DemoLoaded(len(users) + len(demo.steps), summary(demo))


def make_staff(services: Services, staff: Staff) -> dict[str, User]:
    """The org units and the users, their heads and managers set; by staff key."""
    # One hash for every demo user: argon2 costs a tenth of a second a time, by design.
    password_hash = hash_password(PASSWORD)
    with services.writing() as conn:
        taken = [m.email for m in staff.members if _exists(conn, m.email)]
        if taken:
            raise Conflict(
                f"the demo users exist already ({taken[0]} and {len(taken) - 1} more): the demo "
                "was loaded into this database before; load it into a fresh one"
            )
        units: dict[str, str] = {}
        for unit in staff.units:
            parent = units[unit.parent] if unit.parent else None
            units[unit.name] = create_unit(conn, name=unit.name, label=unit.label, parent=parent).id
        users: dict[str, User] = {}
        for member in staff.members:
            users[member.key] = create_user(
                conn,
                email=member.email,
                password_hash=password_hash,
                name=member.name,
                roles=[member.role],
                org_unit=units[member.unit],
                manager=users[member.manager].id if member.manager else None,
            )
        for unit in staff.units:
            if unit.head:
                change_unit(conn, units[unit.name], head=users[unit.head].id)
    return users


def _exists(conn: Connection, email: str) -> bool:
    try:
        find_user(conn, email)
    except NotFound:
        return False
    return True


def replay(
    services: Services, users: Mapping[str, User], steps: Sequence[Step], progress: Progress
) -> None:
    """Each step as its actor at its moment, a batch of steps per transaction."""
    ids: dict[str, str] = {}
    for start in range(0, len(steps), BATCH):
        with services.writing() as conn:
            catalog = services.catalog(conn)
            actors = {
                key: RecordService(services.context(conn, user, catalog=catalog))
                for key, user in users.items()
            }
            for step in steps[start : start + BATCH]:
                records = actors[step.actor].at(step.at)
                try:
                    _take(records, step, ids, users)
                except MetacrmError as error:
                    what = f"{type(step).__name__.lower()} by {step.actor}"
                    raise DemoStopped(
                        f"the demo stopped at {step.entity} {step.key} ({what}), the steps "
                        f"before it loaded: {error.detail}",
                        errors=error.errors,
                    ) from error
                progress.advance()


def _take(
    records: RecordService, step: Step, ids: dict[str, str], users: Mapping[str, User]
) -> None:
    if isinstance(step, Decide):
        record_id = ids[step.key]
        pending = [
            a
            for a in approvals.record_approvals(records, step.entity, record_id)
            if a["status"] == "pending"
        ]
        if not pending:
            raise NotFound(f"no pending approval of {step.entity} {step.key}")
        approvals.decide(records, pending[0]["id"], step.answer, step.comment)
        return
    data = {name: _value(value, ids, users) for name, value in step.data.items()}
    # Nobody looks at the records written: the service needn't read them back.
    if isinstance(step, Create):
        ids[step.key] = records.create(step.entity, data, read_back=False)["id"]
    elif isinstance(step, Update):
        records.update(step.entity, ids[step.key], data, read_back=False)


def _value(value: Any, ids: Mapping[str, str], users: Mapping[str, User]) -> Any:
    if isinstance(value, Ref):
        return ids[value.key]
    if isinstance(value, UserOf):
        return users[value.key].id
    return value


def summary(demo: Demo) -> list[str]:
    """What was made, and who can sign in to see it."""
    made: dict[str, int] = {}
    for step in demo.steps:
        if isinstance(step, Create):
            made[step.entity] = made.get(step.entity, 0) + 1
    order = [*SIZES, *sorted(set(made) - set(SIZES))]
    counts = ", ".join(f"{made[e]:,} {e} records" for e in order if e in made)
    lines = [f"made {counts}", f"demo users (password {PASSWORD}), @{DOMAIN}:"]
    for role, label in ROLE_NAMES.items():
        keys = [m.key for m in demo.staff.by_role(role)]
        lines.append(f"  {label}: {', '.join(keys)}")
    return lines
