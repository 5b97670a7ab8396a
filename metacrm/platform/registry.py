"""What a process can run, registered explicitly by whoever starts the process (the web app,
the CLI, a Celery worker): background tasks and periodic jobs, and how failures are retried.

Nothing registers itself on import. The runtime extends this registry with what it adds (event
consumers, write hooks, record actions); the task platform needs only what is here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

TaskFunction = Callable[..., None]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    fn: TaskFunction
    # Periodic jobs: run every this many seconds (by beat, or the in-process timer).
    every: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How a task that fails unexpectedly is retried: `max_failures` times, waiting `base`,
    2·`base`, 4·`base` … seconds, never more than `cap`."""

    max_failures: int = 8
    base: float = 2.0
    cap: float = 600.0

    def backoff(self, attempt: int, base: float | None = None) -> float:
        """Seconds before retry number `attempt` (1, 2, …)."""
        return min((self.base if base is None else base) * 2 ** (attempt - 1), self.cap)


@dataclass
class Registry:
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def task(self, name: str, fn: TaskFunction, *, every: float | None = None) -> None:
        """Register `fn(host, *args)` under `name`; with `every`, also run it periodically."""
        if name in self.tasks:
            raise ValueError(f"a task named {name!r} is registered already")
        self.tasks[name] = TaskSpec(name, fn, every)

    def spec(self, name: str) -> TaskSpec:
        found = self.tasks.get(name)
        if found is None:
            raise LookupError(f"no task named {name!r} is registered")
        return found

    def periodic(self) -> Iterator[TaskSpec]:
        return (spec for spec in self.tasks.values() if spec.every is not None)
