"""The `metacrm` command (docs/api.md, "The metacrm command")."""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from metacrm.metadata import store
from metacrm.metadata.packages import export_package
from metacrm.metadata.roles import role_errors
from metacrm.metadata.upgrade import upgrade_entities
from metacrm.platform.db import make_engine, reading, writing
from metacrm.platform.errors import MetacrmError, Unprocessable
from metacrm.platform.install import install, is_installed
from metacrm.platform.org import create_unit, find_unit
from metacrm.platform.security import verify_password
from metacrm.platform.settings import Settings
from metacrm.platform.users import (
    ADMIN_ROLE,
    User,
    UserChange,
    change_user,
    create_token,
    create_user,
    find_user,
    password_of,
)
from metacrm.plugins.demos import DemoOptions, load_demos
from metacrm.plugins.discovery import available
from metacrm.plugins.installer import Outcome, installed
from metacrm.plugins.installer import install as install_plugin
from metacrm.plugins.installer import upgrade as upgrade_plugin
from metacrm.plugins.model import Plugin
from metacrm.plugins.progress import progress_for
from metacrm.plugins.registration import registry_with_plugins
from metacrm.runtime.exporting import export_records
from metacrm.runtime.records import RecordService
from metacrm.runtime.services import Services
from metacrm.runtime.startup import build_services

if TYPE_CHECKING:
    from celery import Celery
    from starlette.applications import Starlette

DEFAULT_ADMIN = "admin@example.com"
# The plugin `init` installs unless told not to.
TEMPLATES = "crm"
# Who the command line acts as when no --user is named: an admin, as whoever runs it owns the
# database anyway.
CLI_ADMIN = User(id="cli", email="cli@localhost", name="command line", is_admin=True)
# Where earlier versions left the generated admin password in plain text; `init` now shows the
# password once, keeps it nowhere, and removes this file when it finds it.
LEGACY_CREDENTIALS_FILE = Path(".metacrm/admin-credentials.json")


def app_from_env() -> Starlette:
    """The ASGI app for uvicorn (a factory, so each worker process builds its own)."""
    from metacrm.server import build_server

    settings = Settings.from_env()
    return build_server(settings, services=_services(settings))


def _services(settings: Settings, engine: Engine | None = None) -> Services:
    """This process's services, with the plugins' hooks in their registry."""
    return build_services(settings, engine, registry=registry_with_plugins())


def _engine(settings: Settings) -> Engine:
    engine = make_engine(settings.database_url)
    if not is_installed(engine):
        raise MetacrmError("the database is not initialised; run `metacrm init` first")
    return engine


def cmd_init(args: argparse.Namespace, settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    install(engine)
    with writing(engine) as conn:
        upgraded = upgrade_entities(conn)
    for line in upgraded.lines():
        print(line)
    password = args.admin_password or secrets.token_urlsafe(12)
    with writing(engine) as conn:
        existing = password_of(conn, args.admin_email)
        if existing is None:
            create_user(
                conn, email=args.admin_email, password=password, name="Admin", is_admin=True
            )
        fresh = not store.load_all(conn, store.ENTITY)
    templates = (
        not args.no_templates and fresh and _install_templates(settings, engine, args.admin_email)
    )
    if existing is not None:
        _existing_admin(args, existing[1])
    else:
        # Shown once and kept nowhere: only its argon2 hash is stored.
        _remove_legacy_file()
        print(f"admin login: {args.admin_email.strip().lower()} / {password}")
    if args.demo and templates:
        # Only on the init that installed the templates: a fresh database.
        _load_demo(settings, engine, DemoOptions(scale=args.demo))


def _install_templates(settings: Settings, engine: Engine, admin_email: str) -> bool:
    """The CRM templates on a platform that has no entities yet (a later `init` leaves the
    metadata alone: `metacrm plugins install crm` adds them to one that started empty).
    Whether they were installed now."""
    plugin = available().get(TEMPLATES)
    if plugin is None:
        print(f"metacrm: the {TEMPLATES!r} plugin is not installed in Python", file=sys.stderr)
        return False
    services = _services(settings, engine)
    try:
        with services.writing() as conn:
            if TEMPLATES in installed(conn):
                return False
            admin = find_user(conn, admin_email)
            outcome = install_plugin(RecordService(services.context(conn, admin)), plugin)
    finally:
        services.close()
    print(f"installed the {TEMPLATES} templates {plugin.version} ({len(outcome.changes)} changes)")
    return True


def cmd_demo(args: argparse.Namespace, settings: Settings) -> None:
    options = DemoOptions(seed=args.seed, scale=args.scale, force=args.force)
    _load_demo(settings, _engine(settings), options)


def _load_demo(settings: Settings, engine: Engine, options: DemoOptions) -> None:
    """Every installed plugin's demo data; progress on stderr, the summary on stdout."""
    services = _services(settings, engine)
    try:
        lines = load_demos(services, available(), options, progress_for(sys.stderr))
    finally:
        services.close()
    for line in lines:
        print(line)


def cmd_plugins_list(args: argparse.Namespace, settings: Settings) -> None:
    with reading(_engine(settings)) as conn:
        here = installed(conn)
    for name, plugin in sorted(available().items()):
        state = here[name].version if name in here else "not installed"
        print(f"{name}\t{plugin.version}\t{state}\t{plugin.label.get('en', name)}")
    for name in sorted(set(here) - set(available())):
        print(f"{name}\t-\t{here[name].version}\t(installed, but its distribution is missing)")


def _plugin(name: str) -> Plugin:
    found = available().get(name)
    if found is None:
        known = ", ".join(sorted(available())) or "none"
        raise MetacrmError(f"no plugin named {name!r} in this Python environment (found: {known})")
    return found


def cmd_plugins_install(args: argparse.Namespace, settings: Settings) -> None:
    _run_plugin(settings, args.name, args.user, install_plugin, dry_run=False)


def cmd_plugins_upgrade(args: argparse.Namespace, settings: Settings) -> None:
    _run_plugin(settings, args.name, args.user, upgrade_plugin, dry_run=args.dry_run)


def _run_plugin(
    settings: Settings,
    name: str,
    user_email: str | None,
    step: Callable[[RecordService, Plugin], Outcome],
    *,
    dry_run: bool,
) -> None:
    plugin = _plugin(name)
    services = _services(settings, _engine(settings))
    try:
        with services.writing() as conn:
            user = find_user(conn, user_email) if user_email else CLI_ADMIN
            outcome = step(RecordService(services.context(conn, user)), plugin)
            for line in outcome.lines():
                print(line)
            if dry_run:
                raise _DryRun
    except _DryRun:
        print("dry run: nothing was changed")
    finally:
        services.close()


def _existing_admin(args: argparse.Namespace, password_hash: str) -> None:
    """What a repeated `init` can say about the admin: never the password, which is stored only
    as a hash — except once more from the file earlier versions left (if it still signs in),
    which is then removed."""
    email = args.admin_email.strip().lower()
    legacy = _legacy_password(email)
    if legacy is not None and verify_password(password_hash, legacy):
        print(f"admin login: {email} / {legacy}")
        print(
            f"(shown for the last time: {LEGACY_CREDENTIALS_FILE} kept it in plain text and "
            f"has been removed; `metacrm user password --email {email}` sets a new one)"
        )
        return
    print(f"admin login: {email} (the password was shown when the admin was created)")
    print(f"forgotten it? `metacrm user password --email {email}` sets a new one")
    if args.admin_password:
        print(
            "metacrm: the admin exists, so --admin-password changed nothing; "
            "use `metacrm user password`",
            file=sys.stderr,
        )


def _legacy_password(email: str) -> str | None:
    """The password in the credentials file of earlier versions, if it is there for this
    admin; the file is removed either way, so no plain-text password stays on disk."""
    try:
        saved = json.loads(LEGACY_CREDENTIALS_FILE.read_text())
    except (OSError, ValueError):
        saved = None
    _remove_legacy_file()
    if isinstance(saved, dict) and saved.get("email") == email:
        password = saved.get("password")
        return password if isinstance(password, str) else None
    return None


def _remove_legacy_file() -> None:
    try:
        LEGACY_CREDENTIALS_FILE.unlink(missing_ok=True)
    except OSError as exc:
        print(f"metacrm: remove {LEGACY_CREDENTIALS_FILE} yourself: {exc}", file=sys.stderr)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    _engine(settings).dispose()
    uvicorn.run(
        "metacrm.cli:app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        log_level="info",
    )


def _celery(settings: Settings, command: str) -> Celery:
    if not settings.redis_url:
        raise MetacrmError(
            f"`metacrm {command}` needs METACRM_REDIS_URL; without Redis, tasks and periodic "
            "jobs run inside `metacrm serve`"
        )
    _engine(settings).dispose()
    from metacrm.platform.celery_app import make_celery

    # Each worker process makes its own services (engine, queue) on its first task.
    return make_celery(settings, registry_with_plugins(), lambda: _services(settings))


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    from metacrm.platform.celery_app import QUEUE_NAME

    app = _celery(settings, "worker")
    argv = ["worker", "--loglevel", args.loglevel, "--queues", QUEUE_NAME, "--pool", args.pool]
    argv += ["--without-gossip", "--without-mingle", "--hostname", f"metacrm-{os.getpid()}@%h"]
    if args.concurrency:
        argv += ["--concurrency", str(args.concurrency)]
    app.worker_main(argv)


def cmd_beat(args: argparse.Namespace, settings: Settings) -> None:
    app = _celery(settings, "beat")
    schedule = Path(args.schedule)
    schedule.parent.mkdir(parents=True, exist_ok=True)
    app.Beat(loglevel=args.loglevel, schedule=str(schedule)).run()


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> None:
    roles = args.role or []
    with writing(_engine(settings)) as conn:
        errors = role_errors(conn, roles, "--role")
        if errors:
            raise Unprocessable("unknown role", errors=errors)
        user = create_user(
            conn,
            email=args.email,
            password=args.password,
            name=args.name or "",
            roles=[r for r in roles if r != ADMIN_ROLE],
            is_admin=ADMIN_ROLE in roles,
            org_unit=find_unit(conn, args.org_unit).id if args.org_unit else None,
            manager=find_user(conn, args.manager).id if args.manager else None,
        )
    print(user.id)


def cmd_user_password(args: argparse.Namespace, settings: Settings) -> None:
    """Set a user's password: the one given, or a new one printed alone on its line. Their
    tokens keep working (revoke them through DELETE /api/v1/tokens/{id})."""
    password = args.password or secrets.token_urlsafe(12)
    with writing(_engine(settings)) as conn:
        change_user(conn, find_user(conn, args.email).id, UserChange(password=password))
    if not args.password:
        print(password)


def cmd_org_create(args: argparse.Namespace, settings: Settings) -> None:
    with writing(_engine(settings)) as conn:
        unit = create_unit(
            conn,
            name=args.name,
            label=args.label,
            parent=find_unit(conn, args.parent).id if args.parent else None,
        )
    print(unit.id)


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> None:
    with writing(_engine(settings)) as conn:
        token = create_token(conn, find_user(conn, args.user), args.name)
    print(token)


def cmd_export(args: argparse.Namespace, settings: Settings) -> None:
    """Records as CSV on stdout, as the acting user may export and read them."""
    services = _services(settings, _engine(settings))
    with services.reading() as conn:
        user = find_user(conn, args.user) if args.user else CLI_ADMIN
        service = RecordService(services.context(conn, user))
        columns, records = export_records(service, args.entity, args.filter)
        writer = csv.DictWriter(sys.stdout, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        count = 0
        for record in records:
            writer.writerow({k: _csv_value(v) for k, v in record.items()})
            count += 1
    print(f"exported {count} {args.entity} records", file=sys.stderr)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return value


def cmd_meta_export(args: argparse.Namespace, settings: Settings) -> None:
    with reading(_engine(settings)) as conn:
        package = export_package(conn, args.entities or None)
    json.dump(package, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


class _DryRun(Exception):
    """Raised to roll back a dry-run import after printing its plan."""


def cmd_meta_import(args: argparse.Namespace, settings: Settings) -> None:
    from metacrm.runtime.packages import apply_package

    try:
        package = json.loads(Path(args.package).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise MetacrmError(f"can't read {args.package}: {exc}") from None
    services = _services(settings, _engine(settings))
    try:
        with services.writing() as conn:
            changes = apply_package(RecordService(services.context(conn, CLI_ADMIN)), package)
            for line in changes:
                print(line)
            if not changes:
                print("nothing to change")
            if args.dry_run:
                raise _DryRun
    except _DryRun:
        print("dry run: nothing was changed")
    finally:
        services.close()


def _plugin_commands(sub: Any) -> None:
    plugins = sub.add_parser("plugins", help="plugins and their metadata packages").add_subparsers(
        dest="action", required=True
    )
    listing = plugins.add_parser("list", help="the plugins available and installed")
    listing.set_defaults(run=cmd_plugins_list)
    for action, run, text in (
        ("install", cmd_plugins_install, "install a plugin's package"),
        ("upgrade", cmd_plugins_upgrade, "merge a newer version's package into the metadata"),
    ):
        command = plugins.add_parser(action, help=text)
        command.add_argument("name")
        command.add_argument("--user", help="act as this user (email); default: as admin")
        if action == "upgrade":
            command.add_argument(
                "--dry-run", action="store_true", help="print the plan and the conflicts only"
            )
        command.set_defaults(run=run)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metacrm", description="metadata-driven CRM platform")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create or upgrade the database and the admin")
    init.add_argument("--admin-email", default=DEFAULT_ADMIN)
    init.add_argument("--admin-password")
    init.add_argument(
        "--no-templates", action="store_true", help="don't install the default templates"
    )
    init.add_argument(
        "--demo",
        type=float,
        nargs="?",
        const=1.0,
        metavar="SCALE",
        help="also load the demo data (at this scale; 1.0 = full size) when this init installs "
        "the templates, i.e. on a fresh database",
    )
    init.set_defaults(run=cmd_init)

    demo = sub.add_parser("demo", help="load the installed plugins' demo data")
    demo.add_argument("--seed", type=int, default=1, help="the same seed loads the same data")
    demo.add_argument(
        "--scale", type=float, default=1.0, help="1.0 = the full size; 0.1 = a tenth of it"
    )
    demo.add_argument(
        "--force", action="store_true", help="load even where the entities have records"
    )
    demo.set_defaults(run=cmd_demo)

    serve = sub.add_parser("serve", help="serve the web app and API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(run=cmd_serve)

    worker = sub.add_parser("worker", help="a Celery worker (needs METACRM_REDIS_URL)")
    worker.add_argument("--concurrency", type=int, help="tasks at once (default: CPU count)")
    worker.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"])
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(run=cmd_worker)

    beat = sub.add_parser("beat", help="the periodic job scheduler (needs METACRM_REDIS_URL)")
    beat.add_argument("--schedule", default=".metacrm/celerybeat-schedule")
    beat.add_argument("--loglevel", default="INFO")
    beat.set_defaults(run=cmd_beat)

    user = sub.add_parser("user", help="users").add_subparsers(dest="action", required=True)
    create = user.add_parser("create", help="add a user")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--name")
    create.add_argument(
        "--role", action="append", help="a role name (repeat for several); admin = the admin flag"
    )
    create.add_argument("--org-unit", help="the org unit's name")
    create.add_argument("--manager", help="the manager's email")
    create.set_defaults(run=cmd_user_create)
    password = user.add_parser(
        "password", help="set a user's password (a new one is made and printed if none is given)"
    )
    password.add_argument("--email", required=True)
    password.add_argument("--password")
    password.set_defaults(run=cmd_user_password)

    org = sub.add_parser("org", help="the org tree").add_subparsers(dest="action", required=True)
    unit = org.add_parser("create", help="add an org unit")
    unit.add_argument("name")
    unit.add_argument("--label")
    unit.add_argument("--parent", help="the parent unit's name")
    unit.set_defaults(run=cmd_org_create)

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    new_token = token.add_parser("create", help="print a new API token for a user")
    new_token.add_argument("--user", required=True, help="the user's email")
    new_token.add_argument("--name", default="cli")
    new_token.set_defaults(run=cmd_token_create)

    export_cmd = sub.add_parser("export", help="print records as CSV")
    export_cmd.add_argument("entity")
    export_cmd.add_argument("--filter", help="a rule-language expression")
    export_cmd.add_argument(
        "--user", help="export as this user (email), with their permissions; default: as admin"
    )
    export_cmd.set_defaults(run=cmd_export)

    meta = sub.add_parser("meta", help="metadata packages").add_subparsers(
        dest="action", required=True
    )
    export = meta.add_parser("export", help="print a package of entities")
    export.add_argument("entities", nargs="*")
    export.set_defaults(run=cmd_meta_export)
    load = meta.add_parser("import", help="apply a package")
    load.add_argument("package")
    load.add_argument("--dry-run", action="store_true")
    load.set_defaults(run=cmd_meta_import)
    _plugin_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        args.run(args, settings)
    except MetacrmError as error:
        print(f"metacrm: {_one_line(error)}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"metacrm: {error}", file=sys.stderr)
        return 1
    return 0


def _one_line(error: MetacrmError) -> str:
    details: list[Any] = [f"{e.field or '(document)'}: {e.message}" for e in error.errors]
    return "; ".join([error.detail, *details])


if __name__ == "__main__":
    sys.exit(main())
