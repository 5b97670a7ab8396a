"""One events-benchmark run: a receiver process, a redis-server, and PostgreSQL when installed
(SQLite otherwise); then, against the same receiver, a plain POST loop (the baseline), metacrm
with one `metacrm worker` process, and metacrm embedded (the in-process queue).

Latency is measured from the commit of a record's transaction to the arrival of its webhook
at the receiver, with records created one at a time at a fixed interval (the platform idle in
between). Throughput is N records created as fast as one writer can, one transaction each,
divided by the time from the first commit to the last arrival.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from bench.permissions.run import load_servers
from bench.processes import Children, free_port
from bench.report import Goal
from metacrm.metadata.entities import EntityDesigner
from metacrm.platform.clock import utcnow
from metacrm.platform.db import after_commit, make_engine, writing
from metacrm.platform.ids import new_id
from metacrm.platform.install import SECRET_KEY, install, stored_setting
from metacrm.platform.settings import Settings
from metacrm.platform.systables import webhook_deliveries, webhooks
from metacrm.platform.users import User, create_user
from metacrm.runtime.catalog import build_catalog
from metacrm.runtime.records import RecordService
from metacrm.runtime.rule_checks import expression_checker
from metacrm.runtime.startup import build_services

ENTITY: dict[str, Any] = {
    "name": "account",
    "label": {"en": "Account"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True, "max_length": 200},
        {"name": "industry", "type": "picklist", "options": [{"value": "energy"}]},
        {"name": "website", "type": "url"},
    ],
}
WARMUP_EVENTS = 20
ARRIVAL_TIMEOUT = 600.0
WARMUP_TIMEOUT = 120.0
SECRET = "whsec_bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.events",
        description="record commit → webhook arrival: latency and throughput, Celery and embedded",
    )
    parser.add_argument("--events", type=int, default=2000, help="records for the throughput run")
    parser.add_argument(
        "--latency-events", type=int, default=200, help="records for the latency run"
    )
    parser.add_argument(
        "--interval", type=float, default=0.05, help="seconds between latency-run records"
    )
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument("--concurrency", type=int, default=2, help="the worker's processes")
    parser.add_argument("--database", default="auto", choices=["auto", "postgres", "sqlite"])
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["baseline", "celery", "embedded"],
        choices=["baseline", "celery", "embedded"],
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


@dataclass
class Result:
    label: str
    latencies: list[float] = field(default_factory=list)  # seconds, one record at a time
    throughput: float = 0.0  # deliveries per second
    loaded: list[float] = field(default_factory=list)  # seconds, during the throughput run
    written_per_second: float | None = None  # how fast the records were committed
    missing: int = 0  # records whose webhook never arrived

    def p(self, which: float, samples: list[float] | None = None) -> float:
        values = self.latencies if samples is None else samples
        if len(values) < 2:
            return values[0] * 1000 if values else float("nan")
        return statistics.quantiles(values, n=100, method="inclusive")[int(which) - 1] * 1000

    def as_json(self) -> dict[str, Any]:
        return {
            "latency_p50_ms": round(self.p(50), 2),
            "latency_p99_ms": round(self.p(99), 2),
            "throughput_per_s": round(self.throughput, 1),
            "loaded_p50_ms": round(self.p(50, self.loaded), 1) if self.loaded else None,
            "loaded_p99_ms": round(self.p(99, self.loaded), 1) if self.loaded else None,
            "written_per_s": round(self.written_per_second, 1) if self.written_per_second else None,
            "missing": self.missing,
        }


class Receiver:
    """The receiver process, and what arrived at it."""

    def __init__(self, children: Children) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = children.start(
            "receiver", [sys.executable, "-m", "bench.events.receiver", str(port)], {}
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/count", timeout=1)
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the receiver did not start") from None
                time.sleep(0.05)

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook"

    def reset(self) -> None:
        httpx.delete(f"{self.url}/arrivals", timeout=10)

    def wait_for(self, count: int, timeout: float = ARRIVAL_TIMEOUT) -> dict[str, float]:
        """The first arrival of each key, once `count` have arrived (or the time is up)."""
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/count", timeout=10).json() < count:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        first: dict[str, float] = {}
        for key, arrived in httpx.get(f"{self.url}/arrivals", timeout=30).json():
            first.setdefault(key, arrived)
        return first


# ---- the baseline: a plain POST loop ---------------------------------------------------------


def baseline_body(key: str) -> bytes:
    record = {"id": key, "name": f"Account {key}", "industry": None, "website": None}
    return json.dumps(
        {"id": new_id(), "event": "record.created", "data": {"id": key, "record": record}}
    ).encode()


def run_baseline(
    label: str, post: Callable[..., httpx.Response], receiver: Receiver, args: argparse.Namespace
) -> Result:
    result = Result(label)
    headers = {"Content-Type": "application/json"}
    for phase, count in (("latency", args.latency_events), ("throughput", args.events)):
        receiver.reset()
        sent: dict[str, float] = {}
        for n in range(count):
            key = f"{phase}-{n}"
            body = baseline_body(key)
            sent[key] = time.monotonic()
            post(receiver.hook_url, content=body, headers=headers).raise_for_status()
        arrived = receiver.wait_for(count)
        result.missing += len(set(sent) - set(arrived))
        latencies = [arrived[k] - sent[k] for k in sent if k in arrived]
        if phase == "latency":
            result.latencies = latencies
        else:
            result.loaded = latencies
            result.throughput = count / (max(arrived.values()) - min(sent.values()))
    return result


# ---- metacrm ---------------------------------------------------------------------------------


class Platform:
    """A metacrm database with an `account` entity and one webhook to the receiver, and record
    writes through the record service (the one write path) as the admin."""

    def __init__(self, url: str, settings: Settings, receiver: Receiver) -> None:
        self.engine: Engine = make_engine(url)
        install(self.engine)
        with writing(self.engine) as conn:
            self.user: User = create_user(
                conn, email="admin@example.com", password="bench-password", is_admin=True
            )
            catalog = build_catalog(conn, -1)
            designer = EntityDesigner(
                conn, author=self.user.id, check_expression=expression_checker(catalog)
            )
            designer.create(ENTITY)
            self.secret = stored_setting(conn, SECRET_KEY) or ""
            conn.execute(
                webhooks.insert().values(
                    id=new_id(),
                    name="bench",
                    url=receiver.hook_url,
                    entity="account",
                    events=["record.created"],
                    secret=SECRET,
                    active=True,
                    created_at=utcnow(),
                )
            )
        self.services = build_services(settings, self.engine)
        self.services.queue  # noqa: B018  (started now: the in-process one runs deliveries)

    def create(self, name: str) -> tuple[str, float]:
        """Write one record; its id and the moment its transaction committed."""
        committed: list[float] = []
        with self.services.writing() as conn:
            # Registered first, so it runs first after the commit: before the hand-over.
            after_commit(conn, lambda: committed.append(time.monotonic()))
            service = RecordService(self.services.context(conn, self.user))
            record = service.create("account", {"name": name})
        return record["id"], committed[0]

    def undelivered(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).where(webhook_deliveries.c.status != "delivered")
            ).scalar_one()

    def close(self) -> None:
        self.services.close()
        self.engine.dispose()


def run_platform(label: str, platform: Platform, receiver: Receiver, args: Any) -> Result:
    result = Result(label)
    receiver.reset()
    for n in range(WARMUP_EVENTS):
        platform.create(f"warm-up {n}")
    # Also waits for the worker to start (its first deliveries).
    if len(receiver.wait_for(WARMUP_EVENTS, WARMUP_TIMEOUT)) < WARMUP_EVENTS:
        raise RuntimeError(f"{label}: the warm-up events were not delivered")

    receiver.reset()
    committed: dict[str, float] = {}
    next_at = time.monotonic()
    for n in range(args.latency_events):
        record_id, at = platform.create(f"latency {n}")
        committed[record_id] = at
        next_at += args.interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    arrived = receiver.wait_for(len(committed))
    result.missing += len(set(committed) - set(arrived))
    result.latencies = [arrived[k] - committed[k] for k in committed if k in arrived]

    receiver.reset()
    committed = {}
    started = time.monotonic()
    for n in range(args.events):
        record_id, at = platform.create(f"burst {n}")
        committed[record_id] = at
    written = time.monotonic() - started
    arrived = receiver.wait_for(len(committed))
    result.missing += len(set(committed) - set(arrived))
    result.loaded = [arrived[k] - committed[k] for k in committed if k in arrived]
    if arrived:
        result.throughput = len(arrived) / (max(arrived.values()) - min(committed.values()))
    result.written_per_second = args.events / written
    result.missing += platform.undelivered()
    return result


# ---- the run ---------------------------------------------------------------------------------


def database_urls(servers: ModuleType, choice: str, workdir: Path) -> tuple[str, str, Any]:
    """Two empty databases (Celery, embedded) and the server holding them (or None)."""
    if choice != "sqlite":
        try:
            server = servers.PostgresServer.start()
        except servers.MissingBinary as exc:
            if choice == "postgres":
                raise RuntimeError(str(exc)) from None
            print(f"  PostgreSQL not available ({exc}); using SQLite")
        else:
            urls = (server.create_database("bench_celery"), server.create_database("bench_embed"))
            return urls[0], urls[1], server
    return f"sqlite:///{workdir}/celery.db", f"sqlite:///{workdir}/embedded.db", None


def render(results: list[Result]) -> str:
    header = (
        f"{'':<38}{'latency (idle)':>18}{'throughput':>13}{'latency (burst)':>19}\n"
        f"{'mode':<38}{'p50 ms':>9}{'p99 ms':>9}{'per s':>13}{'p50 ms':>10}{'p99 ms':>9}"
    )
    lines = [header, "-" * len(header.splitlines()[1])]
    for r in results:
        lines.append(
            f"{r.label:<38}{r.p(50):>9.2f}{r.p(99):>9.2f}{r.throughput:>13.0f}"
            f"{r.p(50, r.loaded):>10.0f}{r.p(99, r.loaded):>9.0f}"
        )
    return "\n".join(lines)


def render_ratios(results: list[Result]) -> str:
    """Each metacrm mode against each baseline: latency as a multiple of the baseline's (the
    cost of the platform over the raw POST), throughput as a fraction of it."""
    baselines = [r for r in results if r.label.startswith("baseline")]
    lines = [f"{'platform / baseline':<66}{'p50':>7}{'p99':>7}{'throughput':>12}"]
    for r in results:
        if r in baselines:
            continue
        for b in baselines:
            lines.append(
                f"{r.label + ' / ' + b.label.removeprefix('baseline: '):<66}"
                f"{r.p(50) / b.p(50):>6.1f}x{r.p(99) / b.p(99):>6.1f}x"
                f"{r.throughput / b.throughput:>11.2f}x"
            )
    return "\n".join(lines) if len(lines) > 1 else ""


def measure(args: argparse.Namespace, workdir: Path) -> int:
    children = Children(workdir)
    servers = load_servers()
    started: list[Any] = []
    try:
        redis_server = servers.RedisServer.start()
        started.append(redis_server)
        celery_url, embedded_url, pg = database_urls(servers, args.database, workdir)
        if pg is not None:
            started.append(pg)
        kind = "PostgreSQL" if pg is not None else "SQLite"
        receiver = Receiver(children)
        print(
            f"events benchmark on {kind}: {args.latency_events} records at {args.interval:g} s"
            f" intervals for latency, {args.events:,} as fast as possible for throughput"
        )
        results: list[Result] = []
        if "baseline" in args.modes:
            print("  baseline: httpx.post loop …", flush=True)
            results.append(run_baseline("baseline: httpx.post loop", httpx.post, receiver, args))
            print("  baseline: one httpx.Client (keep-alive) …", flush=True)
            with httpx.Client() as client:
                results.append(
                    run_baseline("baseline: httpx.Client loop", client.post, receiver, args)
                )
        if "celery" in args.modes:
            settings = Settings(database_url=celery_url, redis_url=redis_server.url)
            platform = Platform(celery_url, settings, receiver)
            worker = [sys.executable, "-m", "metacrm.cli", "worker", "--pool", args.pool]
            worker += ["--concurrency", str(args.concurrency), "--loglevel", "WARNING"]
            env = {"METACRM_DATABASE_URL": celery_url, "METACRM_REDIS_URL": redis_server.url}
            children.start("worker", worker, env)
            label = f"celery: 1 worker, {args.pool} x{args.concurrency}"
            print(f"  {label} …", flush=True)
            try:
                results.append(run_platform(label, platform, receiver, args))
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{children.log_tail('worker')}") from None
            finally:
                platform.close()
        if "embedded" in args.modes:
            platform = Platform(embedded_url, Settings(database_url=embedded_url), receiver)
            print("  embedded: in-process queue, 2 threads …", flush=True)
            try:
                results.append(
                    run_platform("embedded: in-process, 2 threads", platform, receiver, args)
                )
            finally:
                platform.close()
        print()
        print(render(results))
        print()
        print(render_ratios(results))
        print(
            "\nlatency (idle): record commit → webhook arrival, records one at a time;"
            " latency (burst): the same during the throughput run"
        )
        for r in results:
            if r.written_per_second:
                print(f"  {r.label}: records committed at {r.written_per_second:.0f}/s")
        goals = [
            Goal(f"{r.label}: every event delivered", r.missing == 0, f"{r.missing} missing")
            for r in results
        ]
        print()
        for goal in goals:
            print(goal.line())
        if args.json:
            figures = {r.label: r.as_json() for r in results}
            settings_json = {k: v for k, v in vars(args).items() if k != "json"}
            settings_json["database"] = kind
            args.json.write_text(json.dumps({"settings": settings_json, "results": figures}))
        return 0 if all(g.met for g in goals) else 1
    finally:
        children.stop_all()
        for server in reversed(started):
            server.stop()


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="metacrm-bench-events-"))
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return measure(args, workdir)
    except KeyboardInterrupt:
        print("\ninterrupted; processes stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"bench.events: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(workdir, ignore_errors=True)
