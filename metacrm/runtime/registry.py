"""Everything the runtime runs besides interpreting metadata, registered at start-up: background
tasks (the platform's part), event consumers and write hooks. `runtime/startup.py` fills one for
the built-in behaviour; tests build their own to configure what runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from metacrm.platform.registry import Registry
from metacrm.runtime.context import EventConsumer, WriteHook


@dataclass
class RuntimeRegistry(Registry):
    write_hooks: list[WriteHook] = field(default_factory=list)
    event_consumers: list[EventConsumer] = field(default_factory=list)

    def write_hook(self, hook: WriteHook) -> None:
        """Call `hook` around every record write, after the hooks registered before it."""
        self.write_hooks.append(hook)

    def consume_events(self, consumer: EventConsumer) -> None:
        """Call `consumer(ctx, event)` for every event, inside the publishing transaction."""
        self.event_consumers.append(consumer)
