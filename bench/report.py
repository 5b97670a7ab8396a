"""Turning load-generator results into the comparison table, the goal verdicts and JSON.

The goals: metacrm keeps at least half the baseline's throughput, and its list p99 stays < 50 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.workload import LABELS

MIN_RATIO = 0.5
LIST_P99_LIMIT_MS = 50.0


@dataclass(frozen=True)
class Goal:
    """One benchmark goal, as every benchmark prints it: [PASS] or [FAIL], what, and the figure."""

    description: str
    met: bool
    measured: str

    def line(self) -> str:
        return f"[{'PASS' if self.met else 'FAIL'}] {self.description} ({self.measured})"


def ratio(results: dict[str, dict[str, Any]]) -> float:
    baseline = results["baseline"]["rps"]
    return results["metacrm"]["rps"] / baseline if baseline else 0.0


def goals(by_op: dict[str, dict[str, dict[str, Any]]]) -> list[Goal]:
    found = []
    for op, results in by_op.items():
        found.append(
            Goal(
                f"{LABELS[op]}: metacrm/baseline throughput >= {MIN_RATIO}",
                ratio(results) >= MIN_RATIO,
                f"{ratio(results):.2f}",
            )
        )
    if "list" in by_op:
        p99 = by_op["list"]["metacrm"]["p99_ms"]
        found.append(
            Goal(
                f"{LABELS['list']}: metacrm p99 < {LIST_P99_LIMIT_MS:.0f} ms",
                p99 < LIST_P99_LIMIT_MS,
                f"{p99:.1f} ms",
            )
        )
    return found


def table(by_op: dict[str, dict[str, dict[str, Any]]]) -> str:
    header = (
        "operation",
        "metacrm req/s",
        "p50 ms",
        "p99 ms",
        "baseline req/s",
        "p50 ms",
        "p99 ms",
        "ratio",
    )
    rows = [header]
    for op, results in by_op.items():
        ours, theirs = results["metacrm"], results["baseline"]
        rows.append(
            (
                LABELS[op],
                f"{ours['rps']:.0f}",
                f"{ours['p50_ms']:.1f}",
                f"{ours['p99_ms']:.1f}",
                f"{theirs['rps']:.0f}",
                f"{theirs['p50_ms']:.1f}",
                f"{theirs['p99_ms']:.1f}",
                f"{ratio(results):.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def errors_text(by_op: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = []
    for op, results in by_op.items():
        for app, result in results.items():
            if result["errors"]:
                lines.append(f"{app} {LABELS[op]}: {result['errors']} errors, e.g.")
                lines.extend(f"    {sample}" for sample in result["error_samples"])
    return "\n".join(lines)


def cpu_text(by_op: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Server CPU per request: what each request costs, free of the load generator's share."""
    lines = []
    for op, results in by_op.items():
        ours = results["metacrm"].get("server_cpu_ms_per_request")
        theirs = results["baseline"].get("server_cpu_ms_per_request")
        if ours is None or theirs is None:
            continue
        lines.append(
            f"  {LABELS[op]:<18}  metacrm {ours:6.2f}  baseline {theirs:6.2f}"
            f"  ({ours / theirs if theirs else float('nan'):.1f}x)"
        )
    return "server CPU ms per request:\n" + "\n".join(lines) if lines else ""


def render(by_op: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [table(by_op), ""]
    if cpu_text(by_op):
        lines.extend([cpu_text(by_op), ""])
    for goal in goals(by_op):
        lines.append(goal.line())
    total = sum(r["errors"] for results in by_op.values() for r in results.values())
    lines.append("")
    lines.append(f"errors (non-2xx or failed requests): {total}")
    if total:
        lines.append(errors_text(by_op))
    return "\n".join(lines)


def as_json(
    by_op: dict[str, dict[str, dict[str, Any]]], settings: dict[str, Any]
) -> dict[str, Any]:
    return {
        "settings": settings,
        "operations": {
            op: {**results, "ratio": round(ratio(results), 3)} for op, results in by_op.items()
        },
        "goals": [
            {"goal": g.description, "met": g.met, "measured": g.measured} for g in goals(by_op)
        ],
    }
