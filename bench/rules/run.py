"""One rules-benchmark run: a compiled 6-clause rule against its hand-written Python twin over
in-memory deals, then the time to parse, check and compile a 30-clause expression."""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from bench.report import Goal
from bench.rules.workload import NOW, RULE, USER, by_hand, long_expression, records
from bench.setup import DEAL
from metacrm.metadata.model import EntityDef
from metacrm.runtime.rules import Scope, check, parse
from metacrm.runtime.rules.operators import BOOLEAN

RATIO_GOAL = 2.0
COMPILE_GOAL_MS = 5.0
PROFILE_RECORDS = 200_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rules",
        description="compiled rules against hand-written Python, and rule compile time",
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="deals evaluated")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the best counts")
    parser.add_argument(
        "--compile-runs", type=int, default=300, help="timed compiles of the 30-clause expression"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile the compiled rule even when it is fast"
    )
    return parser.parse_args(argv)


def best_of_each(repeat: int, runs: dict[str, Callable[[], int]]) -> dict[str, tuple[float, int]]:
    """For each run, the fastest of `repeat` timed calls and what the call returned (the same
    every time). The runs take turns, so a busy spell on the machine weighs on all of them."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    results: dict[str, set[int]] = {name: set() for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            gc.collect()
            started = time.perf_counter()
            results[name].add(run())
            times[name].append(time.perf_counter() - started)
    for name, found in results.items():
        if len(found) != 1:
            raise RuntimeError(f"{name}: the same pass gave different counts: {sorted(found)}")
    return {name: (min(times[name]), results[name].pop()) for name in runs}


def count_by_hand(rows: list[dict[str, Any]]) -> int:
    count = 0
    for row in rows:
        if by_hand(row):
            count += 1
    return count


def count_records(rows: list[dict[str, Any]], checked: Any, compile_record: Any) -> int:
    """As a caller evaluating one rule over many records would: the rule compiled as a function
    of the record for this user and time (one compile per pass), then called per record."""
    run = compile_record(checked, USER, NOW)
    count = 0
    for row in rows:
        if run(row) is True:
            count += 1
    return count


def count_compiled(rows: list[dict[str, Any]], fn: Any, env_type: Any, holds: Any) -> int:
    """As a caller with one record at a time would: one Env per record, then `holds`."""
    count = 0
    for row in rows:
        if holds(fn, env_type(row, USER, NOW)):
            count += 1
    return count


def count_prebuilt(envs: Iterable[Any], fn: Any, holds: Any) -> int:
    """The Env path without building an Env per record: the evaluation alone."""
    count = 0
    for env in envs:
        if holds(fn, env):
            count += 1
    return count


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_compiles(text: str, scope: Scope, runs: int, compile_python: Any) -> dict[str, float]:
    """Median milliseconds for each stage, with the parse cache cleared before every run, and
    for check + compile when the parse comes from the cache."""
    cold, parse_only, check_only, compile_only, warm = [], [], [], [], []
    for _ in range(runs):
        parse.cache_clear()
        t0 = time.perf_counter()
        node = parse(text)
        t1 = time.perf_counter()
        checked = check(node, scope, expect=BOOLEAN)
        t2 = time.perf_counter()
        compile_python(checked)
        t3 = time.perf_counter()
        cold.append(t3 - t0)
        parse_only.append(t1 - t0)
        check_only.append(t2 - t1)
        compile_only.append(t3 - t2)
        # Now the parse is cached: what a second rule with the same text costs.
        t4 = time.perf_counter()
        compile_python(check(parse(text), scope, expect=BOOLEAN))
        warm.append(time.perf_counter() - t4)
    return {
        "cold": median_ms(cold),
        "parse": median_ms(parse_only),
        "check": median_ms(check_only),
        "compile": median_ms(compile_only),
        "warm": median_ms(warm),
    }


def profile(rows: list[dict[str, Any]], checked: Any, compile_record: Any) -> str:
    """Where the compiled path spends its time, heaviest functions first."""
    profiler = cProfile.Profile()
    profiler.enable()
    count_records(rows, checked, compile_record)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(14)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line for line in lines[start:] if line.strip())


def measure(args: argparse.Namespace) -> int:
    try:
        from metacrm.runtime.rules.compile_py import (
            Env,
            compile_python,
            compile_python_record,
            holds,
        )
    except ImportError as exc:
        print(f"bench.rules: the Python backend is not there yet ({exc})", file=sys.stderr)
        return 1
    entity = EntityDef.from_doc(DEAL)
    scope = Scope(entity, lambda _name: None)

    print(f"generating {args.records:,} deals (seeded, every field set, no nulls) …", flush=True)
    started = time.perf_counter()
    rows = records(args.records)
    envs = [Env(row, USER, NOW) for row in rows]  # for the evaluation alone, on the Env path
    # The records live for the whole run; keep the collector from walking them again and again.
    gc.collect()
    gc.freeze()
    print(f"  done in {time.perf_counter() - started:.1f} s")

    checked = check(parse(RULE), scope, expect=BOOLEAN)
    fn = compile_python(checked)
    best = best_of_each(
        args.repeat,
        {
            "hand": lambda: count_by_hand(rows),
            "record": lambda: count_records(rows, checked, compile_python_record),
            "env": lambda: count_compiled(rows, fn, Env, holds),
            "prebuilt": lambda: count_prebuilt(envs, fn, holds),
        },
    )
    (hand_s, hand_count), (record_s, record_count) = best["hand"], best["record"]
    (compiled_s, compiled_count), (prebuilt_s, prebuilt_count) = best["env"], best["prebuilt"]
    ratio = record_s / hand_s

    timings = time_compiles(long_expression(), scope, args.compile_runs, compile_python)

    n = len(rows)
    print()
    print(f"rule ({RULE.count(' and ') + 1} clauses): {RULE}")
    print(f"{n:,} records, best of {args.repeat} passes taken in turns")
    print(f"{'evaluator':<42} {'seconds':>8} {'ns/record':>10} {'true':>9} {'ratio':>6}")
    for label, seconds, count in (
        ("hand-written Python function", hand_s, hand_count),
        ("compile_python_record, called per record", record_s, record_count),
        ("compile_python + holds, Env per record", compiled_s, compiled_count),
        ("compile_python + holds, Envs prebuilt", prebuilt_s, prebuilt_count),
    ):
        print(
            f"{label:<42} {seconds:>8.3f} {seconds / n * 1e9:>10.0f} {count:>9,}"
            f" {seconds / hand_s:>5.2f}x"
        )
    print()
    print(f"30-clause expression, median of {args.compile_runs} runs:")
    print(f"  parse + check + compile, parse cache cleared  {timings['cold']:7.3f} ms")
    print(
        f"    of which parse {timings['parse']:.3f} ms, check {timings['check']:.3f} ms,"
        f" compile {timings['compile']:.3f} ms"
    )
    print(f"  check + compile, parse from the cache          {timings['warm']:7.3f} ms")
    print()

    agree = hand_count == record_count == compiled_count == prebuilt_count
    goals = [
        Goal(
            f"compiled rule within {RATIO_GOAL:g}x the hand-written function",
            ratio <= RATIO_GOAL,
            f"{ratio:.2f}x; {compiled_s / hand_s:.2f}x through an Env per record,"
            f" {prebuilt_s / hand_s:.2f}x with the Envs built beforehand",
        ),
        Goal(
            f"parse + check + compile of 30 clauses < {COMPILE_GOAL_MS:g} ms",
            timings["cold"] < COMPILE_GOAL_MS,
            f"{timings['cold']:.3f} ms",
        ),
    ]
    for goal in goals:
        print(goal.line())
    if not agree:
        print(
            f"MISMATCH: hand-written {hand_count:,} true, per record {record_count:,},"
            f" Env per record {compiled_count:,}, prebuilt {prebuilt_count:,}",
            file=sys.stderr,
        )
    else:
        print(f"every evaluator found the same {hand_count:,} matching records")
    if args.profile or ratio > RATIO_GOAL:
        sample = rows[:PROFILE_RECORDS]
        print(f"\nprofile of the compiled path over {len(sample):,} records (by own time):")
        print(profile(sample, checked, compile_python_record))
    if not agree:
        return 1
    return 0 if all(goal.met for goal in goals) else 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return measure(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"bench.rules: {exc}", file=sys.stderr)
        return 1
