"""One permissions-benchmark run: start a throwaway PostgreSQL, build a million deals owned by
2,000 users in a six-level org, then time a manager's `subordinates`-scoped list page against the
same page listed by an admin (no permission condition), at a few levels of the reporting line."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from sqlalchemy import Engine, text

from bench.permissions import experiments, workload
from bench.permissions.measure import (
    COLUMNS,
    FIRST_PAGE,
    PAGE,
    Lister,
    Series,
    explain,
    list_statement,
    plan_shape,
    reference_ids,
    run_series,
)
from bench.permissions.workload import ENTITY, Org
from bench.report import Goal
from metacrm.metadata.store import current_stamp
from metacrm.platform.db import make_engine, reading
from metacrm.platform.install import SECRET_KEY, stored_setting
from metacrm.platform.users import User, get_user
from metacrm.runtime.listing import ListQuery

REPO = Path(__file__).resolve().parents[2]
RATIO_GOAL = 2.0
P99_GOAL_MS = 50.0
HEADLINE_LEVEL = 2
LEVEL_NAMES = {0: "top", 1: "upper", 2: "mid", 3: "lower", 4: "near-leaf"}
PAGES = ("1st", "2nd")
DATABASE = "bench_permissions"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.permissions",
        description="a manager's subordinates-scoped list page against an admin's, on PostgreSQL",
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="deals built")
    parser.add_argument("--users", type=int, default=2_000, help="users in the org")
    parser.add_argument("--iterations", type=int, default=300, help="timed calls per series")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per series first")
    parser.add_argument(
        "--levels",
        type=int,
        nargs="+",
        choices=sorted(LEVEL_NAMES),
        default=[0, HEADLINE_LEVEL, 4],
        help=f"manager levels measured (0 = top; {HEADLINE_LEVEL} is the headline)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print the EXPLAIN ANALYZE plan of the headline filtered query (also on a miss)",
    )
    parser.add_argument(
        "--experiments",
        action="store_true",
        help="also measure extra indexes and other renderings of the scope (not the product)",
    )
    parser.add_argument(
        "--experiment-iterations", type=int, default=100, help="timed calls per series there"
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Manager:
    level: int
    user: User
    team: set[str]  # the manager and everyone below them
    records: int

    @property
    def label(self) -> str:
        return f"{LEVEL_NAMES[self.level]} (level {self.level})"


def load_servers() -> ModuleType:
    """tests/servers.py (PostgresServer), which is not an importable package."""
    spec = importlib.util.spec_from_file_location("bench_test_servers", REPO / "tests/servers.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("tests/servers.py is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def pick_managers(engine: Engine, org: Org, levels: Sequence[int]) -> list[Manager]:
    """Per level, the manager with the median team size (ties broken by id)."""
    found = []
    with reading(engine) as conn:
        for level in sorted(set(levels), key=lambda lv: (lv != HEADLINE_LEVEL, lv)):
            teams = sorted((len(org.subordinates(p.id)), p.id) for p in org.at_level(level))
            person = teams[len(teams) // 2][1]
            team = org.subordinates(person)
            records = conn.execute(
                text(f"SELECT count(*) FROM {ENTITY} WHERE owner = ANY(:team)"),
                {"team": sorted(team)},
            ).scalar_one()
            found.append(Manager(level, get_user(conn, person), team, records))
    return found


def make_series(lister: Lister, admin: User, managers: list[Manager]) -> list[Series]:
    """Both pages for the admin and for each manager; the 2nd page by the 1st's next_cursor."""
    found = []
    for key, label, user in [
        ("admin", "admin", admin),
        *((f"L{m.level}", m.label, m.user) for m in managers),
    ]:
        cursor = lister.list(user, FIRST_PAGE)["next_cursor"]
        if cursor is None:
            raise RuntimeError(f"{label} has fewer than {PAGE + 1} records: no second page")
        second = ListQuery(sort=FIRST_PAGE.sort, limit=PAGE, cursor=cursor)
        for page, query in zip(PAGES, (FIRST_PAGE, second), strict=True):
            found.append(Series(f"{key}/{page}", f"{label}, {page} page", user, query))
    return found


def check_pages(lister: Lister, series: list[Series], managers: list[Manager]) -> list[str]:
    """Every page must be what a plain query over the owner column returns, in the same order."""
    teams = {m.user.id: m.team for m in managers}
    problems = []
    for each in series:
        team = teams.get(each.user.id)
        expected = reference_ids(lister.engine, team, 2 * PAGE)
        expected = expected[:PAGE] if each.query.cursor is None else expected[PAGE:]
        got = [r["id"] for r in lister.list(each.user, each.query)["data"]]
        if got != expected:
            differ = sum(a != b for a, b in zip(got, expected, strict=False))
            problems.append(
                f"{each.label}: {len(got)} rows, {differ} differ from the reference query's"
                f" {len(expected)}"
            )
    return problems


def ratio(filtered: Series, admin: Series, which: str) -> float:
    return float(getattr(filtered, which)() / getattr(admin, which)())


def pairs(series: list[Series]) -> list[tuple[Series, Series]]:
    """Each manager's series with the admin's series of the same page."""
    admin = {s.key.split("/")[1]: s for s in series if s.key.startswith("admin/")}
    return [(s, admin[s.key.split("/")[1]]) for s in series if not s.key.startswith("admin/")]


def render_table(series: list[Series], managers: list[Manager]) -> str:
    by_label = {m.label: m for m in managers}
    lines = [
        f"{'':<44}{'filtered (manager)':>18}{'admin (no condition)':>22}{'filter adds':>15}",
        f"{'manager':<22}{'team':>6}{'records':>10}{'page':>6}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'p50 ms':>11}{'p99 ms':>9}{'p50':>9}{'p99':>7}",
    ]
    for filtered, admin in pairs(series):
        name, page = filtered.label.rsplit(", ", 1)
        manager = by_label[name]
        first = filtered.query.cursor is None
        headline = " *" if manager.level == HEADLINE_LEVEL else ""
        lines.append(
            (
                f"{name + headline:<22}{len(manager.team):>6}{manager.records:>10,}"
                if first
                else f"{'':<38}"
            )
            + f"{page.split()[0]:>6}"
            + f"{filtered.p50():>9.1f}{filtered.p99():>9.1f}{admin.p50():>11.1f}{admin.p99():>9.1f}"
            + f"{ratio(filtered, admin, 'p50'):>8.2f}x{ratio(filtered, admin, 'p99'):>6.2f}x"
        )
    if any(m.level == HEADLINE_LEVEL for m in managers):
        lines.append("* the headline: a mid-level manager")
    return "\n".join(lines)


def render_breakdown(series: list[Series]) -> str:
    widths = [max(9, len(c) + 1) for c in COLUMNS]
    lines = [
        f"{'series':<30}{'total':>7}"
        + "".join(f"{c:>{w}}" for c, w in zip(COLUMNS, widths, strict=True))
        + f"{'stmts':>7}"
    ]
    for each in series:
        parts = each.breakdown()
        total = statistics.fmean(each.samples) * 1000
        lines.append(
            f"{each.label:<30}{total:>7.1f}"
            + "".join(
                f"{parts[c]:>{w}.1f}" if c in parts else f"{'-':>{w}}"
                for c, w in zip(COLUMNS, widths, strict=True)
            )
            + f"{each.statements / len(each.samples):>7.0f}"
        )
    return "\n".join(lines)


def goals(series: list[Series]) -> list[Goal]:
    found = []
    for filtered, admin in pairs(series):
        r = ratio(filtered, admin, "p50")
        found.append(
            Goal(
                f"{filtered.label}: the filter adds < {RATIO_GOAL:g}x",
                r < RATIO_GOAL,
                f"p50 {filtered.p50():.1f} ms = {r:.2f}x the admin's {admin.p50():.1f} ms",
            )
        )
        found.append(
            Goal(
                f"{filtered.label}: p99 < {P99_GOAL_MS:g} ms",
                filtered.p99() < P99_GOAL_MS,
                f"{filtered.p99():.1f} ms",
            )
        )
    return found


def plan_shapes(lister: Lister, series: list[Series]) -> str:
    """Each series' plan, top node first (from EXPLAIN ANALYZE of the statement it sends)."""
    lines = []
    for each in series:
        shape = plan_shape(explain(lister, each.user, each.query))
        lines.append(f"  {each.label + ':':<32}{shape}")
    return "\n".join(lines)


def fresh(series: list[Series]) -> list[Series]:
    return [Series(s.key, s.label, s.user, s.query) for s in series]


def run_experiments(
    lister: Lister,
    series: list[Series],
    managers: list[Manager],
    args: argparse.Namespace,
) -> bool:
    """Each experiment measured like the product; False when one changed what is listed."""
    print()
    print("EXPERIMENTS: not the product. Each adds an index to this throwaway database and/or")
    print("replaces pieces of metacrm.runtime in this process (bench/permissions/experiments.py),")
    print(f"measures the same series ({args.experiment_iterations} calls each), then undoes it.")
    for experiment in experiments.EXPERIMENTS:
        print(f"\n--- experiment {experiment.key}: {experiment.title}")
        started = time.monotonic()
        with experiments.applied(lister.engine, experiment):
            trial = fresh(series)
            problems = check_pages(lister, trial, managers)
            if problems:
                for problem in problems:
                    print(f"WRONG PAGE: {problem}", file=sys.stderr)
                return False
            shapes = plan_shapes(lister, trial)
            print("plans:")
            print(shapes)
            if experiment.unchanged_by(shapes):
                print("no plan uses the new index and nothing else changes: not timed (the")
                print("figures would be the product's)")
                continue
            run_series(lister, trial, args.experiment_iterations, max(1, args.warmup // 2))
        print(render_table(trial, managers))
        print(render_breakdown(trial))
        verdicts = goals(trial)
        missed = [g for g in verdicts if not g.met]
        print(
            f"goals would hold: {len(verdicts) - len(missed)} of {len(verdicts)}"
            f" ({time.monotonic() - started:.0f} s)"
        )
        for goal in missed:
            print(f"  {goal.line()}")
    return run_statement_experiment(lister, managers, args.experiment_iterations)


def run_statement_experiment(lister: Lister, managers: list[Manager], iterations: int) -> bool:
    """The list statement alone, as the product renders it and per owner; False when the two
    disagree about the page."""
    print(f"\n--- experiment per-owner: {experiments.PER_OWNER_TITLE}")
    both = experiments.Experiment(
        "per-owner", "", (experiments.SORT_INDEX, experiments.OWNER_INDEX)
    )
    lines = [
        f"{'':<28}{'as rendered':>18}{'per owner':>18}",
        f"{'manager':<22}{'team':>6}{'p50 ms':>9}{'p99 ms':>9}{'p50 ms':>9}{'p99 ms':>9}",
    ]
    shapes = []
    with experiments.applied(lister.engine, both), lister.engine.connect() as conn:
        for manager in managers:
            variants = [
                list_statement(lister, manager.user, FIRST_PAGE),
                experiments.per_owner_statement(sorted(manager.team), PAGE + 1),
            ]
            pages = [
                [row.id for row in conn.exec_driver_sql(sql, params)] for sql, params in variants
            ]
            if pages[0] != pages[1]:
                print(
                    f"WRONG PAGE: {manager.label}: the per-owner statement differs", file=sys.stderr
                )
                return False
            samples: list[list[float]] = [[], []]
            for _ in range(iterations):
                for (sql, params), times in zip(variants, samples, strict=True):
                    started = time.perf_counter()
                    conn.exec_driver_sql(sql, params).all()
                    times.append(time.perf_counter() - started)
            figures = "".join(
                f"{statistics.median(t) * 1000:>9.1f}"
                f"{statistics.quantiles(t, n=100, method='inclusive')[98] * 1000:>9.1f}"
                for t in samples
            )
            lines.append(f"{manager.label:<22}{len(manager.team):>6}{figures}")
            for name, (sql, params) in zip(("as rendered", "per owner"), variants, strict=True):
                plan = conn.exec_driver_sql("EXPLAIN ANALYZE " + sql, params).scalars().all()
                shapes.append(f"  {f'{manager.label}, {name}:':<34}{plan_shape(plan)}")
            conn.rollback()
    print("\n".join(lines))
    print("plans:")
    print("\n".join(shapes))
    return True


def measure(args: argparse.Namespace) -> int:
    servers = load_servers()
    try:
        server = servers.PostgresServer.start()
    except servers.MissingBinary as exc:
        raise RuntimeError(str(exc)) from None
    with server:
        engine = make_engine(server.create_database(DATABASE))
        try:
            return measure_on(engine, args)
        finally:
            engine.dispose()


def measure_on(engine: Engine, args: argparse.Namespace) -> int:
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SHOW server_version").scalar_one()
        buffers = conn.exec_driver_sql("SHOW shared_buffers").scalar_one()
    print(
        f"building {args.records:,} deals owned by {args.users:,} users in a"
        f" {workload.LEVELS}-level org (PostgreSQL {version.split()[0]},"
        f" shared_buffers {buffers}) …",
        flush=True,
    )
    started = time.monotonic()
    org = workload.build(engine, args.users, args.records)
    with engine.connect() as conn:
        size = conn.exec_driver_sql(
            f"SELECT pg_size_pretty(pg_total_relation_size('{ENTITY}'))"
        ).scalar_one()
    print(
        f"  done in {time.monotonic() - started:.1f} s: {org.units} org units, the deal table"
        f" with its indexes {size}, VACUUM ANALYZE run"
    )
    with reading(engine) as conn:
        secret = stored_setting(conn, SECRET_KEY) or ""
        stamp = current_stamp(conn)
        admin = get_user(conn, org.admin)
    managers = pick_managers(engine, org, args.levels)
    lister = Lister(engine, secret, stamp)
    try:
        return _measure(lister, admin, managers, args)
    finally:
        lister.close()


def _measure(lister: Lister, admin: User, managers: list[Manager], args: argparse.Namespace) -> int:
    series = make_series(lister, admin, managers)
    problems = check_pages(lister, series, managers)
    for problem in problems:
        print(f"WRONG PAGE: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("  every page equals a plain query's (owner = ANY(team), same order)")
    print("plans:")
    print(plan_shapes(lister, series))
    print(
        f'\ntiming RecordService.list("{ENTITY}", sort=-updated_at, limit={PAGE}) in-process:'
        f" {args.iterations} calls per series after {args.warmup} warm-up calls, round-robin;"
        "\n  a call = read-only transaction + catalog snapshot + the service + commit (token"
        " authentication excluded)",
        flush=True,
    )
    started, load = time.monotonic(), os.getloadavg()[0]
    run_series(lister, series, args.iterations, args.warmup)
    print(
        f"  done in {time.monotonic() - started:.0f} s; load average {load:.1f} before,"
        f" {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs\n"
    )
    print(render_table(series, managers))
    print("\nwhere a call's time goes (mean ms per call; SQL from execute to the rows received):")
    print(render_breakdown(series))
    print()
    verdicts = goals(series)
    for goal in verdicts:
        print(goal.line())
    missed = not all(g.met for g in verdicts)
    headline = next((m for m in managers if m.level == HEADLINE_LEVEL), managers[0])
    if args.explain or missed:
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the list statement for {headline.label}, 1st page:")
        print("\n".join(explain(lister, headline.user, FIRST_PAGE)))
    if args.experiments and not run_experiments(lister, series, managers, args):
        return 1
    if missed and not args.experiments:
        print("\n(--experiments measures the candidate fixes)")
    return 2 if missed else 0


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Both signals end the run through the `with` that stops PostgreSQL, even when started in
    # the background with SIGINT ignored.
    previous: dict[int, Any] = {
        sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return measure(args)
    except KeyboardInterrupt:
        print("\ninterrupted; PostgreSQL stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"bench.permissions: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
