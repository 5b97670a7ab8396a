"""One benchmark run: seed both databases, serve both apps, check they answer alike, load each
operation in turn from a separate process, print the comparison, and clean everything up."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench import report
from bench.processes import Children, cpu_seconds, free_port, uvicorn_command, wait_until_ready
from bench.setup import Databases, prepare
from bench.workload import APPS, LIST_QUERY, OPERATIONS, RECORDS

REPO = Path(__file__).resolve().parent.parent
COMPARED_FIELDS = (
    "id",
    "owner",
    "created_at",
    "updated_at",
    "version",
    "name",
    "amount",
    "stage",
    "close_date",
    "probability",
    "owner_email",
    "region",
    "notes",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="metacrm against a hand-written baseline, on SQLite"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, default=100_000, help="deals seeded before the runs")
    parser.add_argument("--ops", nargs="+", choices=OPERATIONS, default=list(OPERATIONS))
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="the load generator's client"
    )
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="run ANALYZE on both databases after seeding (metacrm does not do this itself)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (databases, logs)"
    )
    return parser.parse_args(argv)


class Servers:
    """Both apps served by uvicorn in their own processes."""

    def __init__(self, children: Children, dbs: Databases, workdir: Path) -> None:
        self.children, self.dbs = children, dbs
        self.urls: dict[str, str] = {}
        self.pids: dict[str, int] = {}
        env = {"PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
        specs = {
            "metacrm": ("metacrm.cli:app_from_env", {"METACRM_DATABASE_URL": dbs.metacrm_url}),
            "baseline": (
                "bench.baseline_app:app_from_env",
                {
                    "BENCH_BASELINE_DATABASE_URL": dbs.baseline_url,
                    "BENCH_BASELINE_TOKEN": dbs.token,
                    "BENCH_BASELINE_USER_ID": dbs.user_id,
                },
            ),
        }
        os.chdir(workdir)  # anything a server writes beside itself lands in the temp dir
        for app, (factory, app_env) in specs.items():
            port = free_port()
            process = children.start(app, uvicorn_command(factory, port), {**env, **app_env})
            self.urls[app] = f"http://127.0.0.1:{port}"
            self.pids[app] = process.pid
            try:
                wait_until_ready(process, self.urls[app] + "/", dbs.token)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{children.log_tail(app)}") from None


def check_equivalence(servers: Servers, dbs: Databases) -> list[str]:
    """The two apps must return the same record and the same list page before we time them."""
    problems = []
    ids = json.loads(dbs.ids_file.read_text())
    some_id = ids[len(ids) // 2]
    headers = {"Authorization": f"Bearer {dbs.token}"}
    answers: dict[str, dict[str, Any]] = {}
    for app in APPS:
        base = servers.urls[app] + RECORDS[app]
        record = httpx.get(f"{base}/{some_id}", headers=headers, timeout=30)
        page = httpx.get(base + LIST_QUERY[app], headers=headers, timeout=30)
        for what, response in (("get", record), ("list", page)):
            if response.status_code != 200:
                problems.append(f"{app} {what}: {response.status_code} {response.text[:300]}")
        if not problems:
            answers[app] = {"record": record.json(), "page": page.json()["data"]}
    if problems:
        return problems
    ours, theirs = answers["metacrm"], answers["baseline"]
    for name in COMPARED_FIELDS:
        if ours["record"].get(name) != theirs["record"].get(name):
            problems.append(
                f"get: field {name}: metacrm {ours['record'].get(name)!r}"
                f" != baseline {theirs['record'].get(name)!r}"
            )
    our_ids = [r["id"] for r in ours["page"]]
    their_ids = [r["id"] for r in theirs["page"]]
    if our_ids != their_ids or len(our_ids) != 50:
        problems.append(
            f"list: the pages differ ({len(our_ids)} and {len(their_ids)} rows,"
            f" {sum(a != b for a, b in zip(our_ids, their_ids, strict=False))} positions differ)"
        )
    return problems


def load(
    children: Children,
    servers: Servers,
    dbs: Databases,
    app: str,
    op: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.load",
        f"--url={servers.urls[app]}",
        f"--token={dbs.token}",
        f"--app={app}",
        f"--op={op}",
        f"--ids={dbs.ids_file}",
        f"--duration={args.duration}",
        f"--warmup={args.warmup}",
        f"--concurrency={args.concurrency}",
        f"--client={args.client}",
    ]
    timeout = args.warmup + args.duration + 120
    cpu_before = cpu_seconds(servers.pids[app])
    result: dict[str, Any] = json.loads(children.run(command, timeout, {"PYTHONPATH": str(REPO)}))
    cpu_after = cpu_seconds(servers.pids[app])
    if cpu_before is not None and cpu_after is not None and result["served"]:
        cpu_ms = (cpu_after - cpu_before) * 1000 / result["served"]
        result["server_cpu_ms_per_request"] = round(cpu_ms, 3)
    return result


def measure(args: argparse.Namespace, workdir: Path) -> int:
    children = Children(workdir)
    try:
        started = time.monotonic()
        print(f"seeding {args.rows:,} deals into metacrm and the baseline (SQLite, {workdir}) …")
        dbs = prepare(workdir, args.rows, analyze=args.analyze)
        print(f"  done in {time.monotonic() - started:.1f} s; the two tables are identical")
        servers = Servers(children, dbs, workdir)
        problems = check_equivalence(servers, dbs)
        for problem in problems:
            print(f"WARNING: {problem}", file=sys.stderr)
        if not problems:
            print("  both apps return the same record and the same list page")
        by_op: dict[str, dict[str, dict[str, Any]]] = {}
        for op in args.ops:
            for app in APPS:
                print(
                    f"  {op:<6} {app:<8} {args.concurrency} clients,"
                    f" {args.warmup:g} s warm-up + {args.duration:g} s …",
                    end="",
                    flush=True,
                )
                result = load(children, servers, dbs, app, op, args)
                by_op.setdefault(op, {})[app] = result
                print(f" {result['rps']:.0f} req/s, {result['errors']} errors")
        print()
        print(report.render(by_op))
        if args.json:
            settings = {
                k: getattr(args, k)
                for k in ("duration", "warmup", "concurrency", "rows", "client", "analyze")
            }
            settings["equivalence_problems"] = problems
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report.as_json(by_op, settings), indent=2) + "\n")
            print(f"\nresults written to {args.json}")
        errors = sum(r["errors"] for results in by_op.values() for r in results.values())
        if errors or problems:
            return 1
        return 0 if all(goal.met for goal in report.goals(by_op)) else 2
    finally:
        children.stop_all()


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.json:
        args.json = args.json.resolve()
    home = Path.cwd()
    workdir = Path(tempfile.mkdtemp(prefix="metacrm-bench-"))
    # Both signals end the run through the `finally` below, even where the shell that started us
    # had SIGINT ignored (background jobs), so servers never outlive the benchmark.
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return measure(args, workdir)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.chdir(home)
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
