"""`metacrm demo`: each installed plugin that brings demo data loads it. Demo data belongs in a
fresh database, so the command refuses one where the plugin's entities already have records
(unless forced), naming what it found; the command itself knows no template — what a plugin's
entities are, it reads from the plugin's package."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from metacrm.platform.errors import BadRequest, Conflict, NotFound
from metacrm.plugins.installer import installed
from metacrm.plugins.model import DemoRun, Plugin, Progress
from metacrm.runtime.listing import ListQuery
from metacrm.runtime.records import RecordService
from metacrm.runtime.services import Services

MAX_SCALE = 20.0


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 1
    scale: float = 1.0
    force: bool = False


def load_demos(
    services: Services,
    plugins: Mapping[str, Plugin],
    options: DemoOptions,
    progress: Progress,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Load the demo of every installed plugin among `plugins` that has one; returns what to
    tell the user (each plugin's summary, and the rows written per second)."""
    if not 0 < options.scale <= MAX_SCALE:
        raise BadRequest(
            f"--scale must be above 0 and at most {MAX_SCALE:g}, not {options.scale:g}"
        )
    with services.reading() as conn:
        here = installed(conn)
        records = RecordService(services.system_context(conn))
        chosen = [p for name, p in sorted(plugins.items()) if p.demo and name in here]
        if not chosen:
            offered = ", ".join(sorted(n for n, p in plugins.items() if p.demo)) or "none"
            raise NotFound(
                "no installed plugin has demo data (plugins with demo data: "
                f"{offered}; install one with `metacrm plugins install NAME`)"
            )
        if not options.force:
            found = [f"{count:,} {name}" for p in chosen for name, count in _filled(records, p)]
            if found:
                raise Conflict(
                    f"the database has records already ({', '.join(found)}); the demo is for a "
                    "fresh database — add --force to load it anyway"
                )
    lines: list[str] = []
    for plugin in chosen:
        assert plugin.demo is not None
        began = clock()
        loaded = plugin.demo(DemoRun(services, options.seed, options.scale, progress))
        took = max(clock() - began, 1e-9)
        lines += [f"{plugin.name} demo (seed {options.seed}, scale {options.scale:g}):"]
        lines += [f"  {line}" for line in loaded.lines]
        lines.append(
            f"  {loaded.writes:,} rows written in {took:.1f} s ({loaded.writes / took:,.0f} rows/s)"
        )
    return lines


def _filled(records: RecordService, plugin: Plugin) -> list[tuple[str, int]]:
    """The plugin's entities that have records, with how many."""
    names = [doc["name"] for doc in plugin.package().get("entities") or ()]
    found = []
    for name in names:
        if records.ctx.catalog.find(name) is None:
            continue
        count = records.list(name, ListQuery(limit=1, count=True))["count"]
        if count:
            found.append((name, count))
    return found
