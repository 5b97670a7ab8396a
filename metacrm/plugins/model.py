"""What a plugin is: a name, a version, its metadata package, an optional function that
registers its Python hooks (named actions, jobs) in the start-up registry, and an optional
loader of demo data (`metacrm demo`).

A plugin distribution exposes one under the `metacrm.plugins` entry-point group:

    [project.entry-points."metacrm.plugins"]
    mine = "my_package:plugin"

The package is plain metadata, read from JSON files shipped with the plugin; an admin changes
what it installs like anything they built themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any, Protocol

from metacrm.metadata.packages import FORMAT, FORMAT_VERSION

if TYPE_CHECKING:
    from metacrm.runtime.services import Services

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
VERSION = re.compile(r"^\d+(\.\d+){0,3}$")
Register = Callable[[Any], None]


class Progress(Protocol):
    """Where a long job says how far it is (a bar on a terminal, lines in a log)."""

    def start(self, total: int) -> None: ...

    def advance(self, steps: int = 1) -> None: ...

    def finish(self) -> None: ...


@dataclass(frozen=True)
class DemoRun:
    """What a plugin's demo loader gets: the services to open its transactions with, the seed
    (the same seed loads the same data), the scale (1.0 = the plugin's full size) and where to
    report progress."""

    services: Services
    seed: int
    scale: float
    progress: Progress


@dataclass(frozen=True)
class DemoLoaded:
    """What a demo loader did: how many records it wrote (creates, updates and decisions) and
    what to tell whoever ran it (the records made, the demo users and their password)."""

    writes: int
    lines: list[str]


# demo(run): loads the plugin's demo data into a database where its package is installed.
Demo = Callable[[DemoRun], DemoLoaded]


@dataclass(frozen=True)
class Plugin:
    name: str
    version: str
    label: dict[str, str]
    # Reads the metadata package (a dict in the package format); called when it is needed.
    package: Callable[[], dict[str, Any]]
    # register(registry): its named hooks, in the runtime's start-up registry.
    register: Register | None = None
    description: dict[str, str] = field(default_factory=dict)
    demo: Demo | None = None

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"a plugin's name must match {NAME.pattern}, not {self.name!r}")
        if not VERSION.match(self.version):
            raise ValueError(
                f"plugin {self.name}: version must be like 1.2.0, not {self.version!r}"
            )

    @property
    def version_key(self) -> tuple[int, ...]:
        return version_key(self.version)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def package_from_files(folder: Traversable) -> dict[str, Any]:
    """A package from a folder of JSON files, one per section (`entities.json`, `roles.json`,
    `pipelines.json` …), each a list of documents."""
    package: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        if item.name.endswith(".json"):
            package[item.name[: -len(".json")]] = json.loads(item.read_text("utf-8"))
    return package
